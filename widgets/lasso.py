"""Which map points lie inside the outlines that plotly keeps in `layout.selections`.

The explorer reads a lasso from two messages: plotly's selected-points event and the outline
itself (a relayout of `layout.selections`). The event can be lost: ipywidgets sends one message
at a time and merges what waits, so a hover right after the mouse-up overwrites the selection in
the same trait (`_js2py_pointsCallback`). The outline arrives in its own trait, so the points are
recomputed from it here.

    >>> import numpy as np
    >>> xy = np.array([[0.0, 0.0], [2.0, 2.0], [5.0, 5.0]])
    >>> points_in_selections(xy, [{"type": "path", "path": "M-1,-1L3,-1L3,3L-1,3Z"}])
    [0, 1]
    >>> points_in_selections(xy, [{"type": "rect", "x0": 4, "x1": 6, "y0": 6, "y1": 4}])
    [2]
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import numpy as np

_NUMBER_PAIR = re.compile(r"(-?[\d.]+(?:e[-+]?\d+)?),(-?[\d.]+(?:e[-+]?\d+)?)", re.IGNORECASE)


def path_polygon(path: str) -> np.ndarray:
    """The vertices (K, 2) of an SVG path made of M/L/Z commands (plotly's lasso outline)."""
    return np.array([[float(x), float(y)] for x, y in _NUMBER_PAIR.findall(path)], dtype=float).reshape(-1, 2)


def inside_polygon(xy: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule: a boolean per point of `xy` (N, 2), True inside the closed `polygon` (K, 2)."""
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    inside = np.zeros(len(xy), dtype=bool)
    if len(polygon) < 3:
        return inside
    x, y = xy[:, 0], xy[:, 1]
    for (x1, y1), (x2, y2) in zip(polygon, np.roll(polygon, -1, axis=0)):
        crosses = (y1 > y) != (y2 > y)  # the edge spans the point's height
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at_y = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (x < x_at_y)
    return inside


def points_in_selections(xy, selections: Iterable[Mapping]) -> list[int]:
    """Indices of the points of `xy` (N, 2) inside any lasso (`path`) or box (`rect`) outline."""
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    chosen = np.zeros(len(xy), dtype=bool)
    for outline in selections:
        kind = outline.get("type")
        if kind == "path" and outline.get("path"):
            chosen |= inside_polygon(xy, path_polygon(outline["path"]))
        elif kind == "rect" and None not in (outline.get(k) for k in ("x0", "x1", "y0", "y1")):
            (x_lo, x_hi), (y_lo, y_hi) = (sorted((float(outline["x0"]), float(outline["x1"]))),
                                          sorted((float(outline["y0"]), float(outline["y1"]))))
            chosen |= (xy[:, 0] >= x_lo) & (xy[:, 0] <= x_hi) & (xy[:, 1] >= y_lo) & (xy[:, 1] <= y_hi)
    return [int(i) for i in np.flatnonzero(chosen)]
