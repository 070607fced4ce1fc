"""The projection explorer (the map) as a view object: its traces, layout, and what clicks, lassos,
the colour-by menu and the search box do to them (issue 29, item 2)."""
from __future__ import annotations

import numpy as np
import pytest

from widgets import ProjectionExplorer
from widgets.projection_view import FONT_PX, UNSELECTED_OPACITY, axis_titles, colour_columns
from widgets.static import PALETTE

RATE = 8000


def tone(freq=220.0, seconds=0.2):
    return (np.sin(2 * np.pi * freq * np.arange(int(RATE * seconds)) / RATE).astype(np.float32) * 0.3, RATE)


def plotly_event(fig, event, point_indexes, trace_indexes):
    """What the browser sends when a point is clicked / lasso-selected."""
    fig._js2py_pointsCallback = {"event_type": event, "points": {
        "xs": [0.0] * len(point_indexes), "ys": [0.0] * len(point_indexes),
        "point_indexes": point_indexes, "trace_indexes": trace_indexes}, "selector": None}


def explorer(n=12, **kwargs):
    xy = np.random.default_rng(0).normal(size=(n, 2))
    labels = ["rock"] * (n // 2) + ["jazz"] * (n - n // 2)
    columns = dict(id=[f"row-{i}" for i in range(n)], prompt=[f"{lab} music" for lab in labels],
                   seed=list(range(n)), tempo=[float(90 + 5 * i) for i in range(n)],
                   dynamics=["loud", "soft", "medium"] * (n // 3) + ["loud"] * (n % 3))
    return ProjectionExplorer(xy, labels, clips=[tone(200 + 20 * i) for i in range(n)], columns=columns, **kwargs)


def points(ex):
    return ex.figure.data[0]


def test_points_are_solid_until_something_is_selected_and_solid_again_after():
    ex = explorer()
    assert points(ex).selectedpoints is None  # plotly dims every point while selectedpoints is set at all
    assert points(ex).unselected.marker.opacity == UNSELECTED_OPACITY and points(ex).selected.marker.opacity == 1
    ex.select([1, 2])
    assert list(points(ex).selectedpoints) == [1, 2]
    ex.select([])
    assert points(ex).selectedpoints is None
    # a new map (another layer or method) used to leave selectedpoints=[]: the whole map ghosted
    ex.select([3])
    ex.set_xy(ex.xy + 1, title="Clips at resid layer 0 (UMAP)", axes=axis_titles("umap"))
    assert points(ex).selectedpoints is None and ex.figure.data[1].selectedpoints is None
    assert ex.figure.layout.xaxis.title.text == "UMAP 1" and ex.figure.layout.title.text.startswith("Clips at")


def test_groups_keep_their_marks_after_later_lassos_and_the_playing_point_is_ringed():
    ex = explorer()
    ex.select([0, 1])
    ex.use_selection_as("A")
    assert ex.selection == [] and points(ex).selectedpoints is None  # the map is solid again, A shows
    ex.select([8, 9])
    ex.use_selection_as("B")
    ex.select([4, 5])  # a later lasso
    symbols = list(points(ex).marker.symbol)  # plotly's numbers: 0 circle, 1 square, 2 diamond
    assert symbols[0] == symbols[1] == 2 and symbols[8] == symbols[9] == 1 and symbols[4] == 0
    widths = list(points(ex).marker.line.width)
    assert widths[0] > widths[4] and widths[8] > widths[4]
    legend = {t.name: t.showlegend for t in ex.figure.data[2:]}
    assert legend["group A"] and legend["group B"]
    plotly_event(ex.figure, "plotly_click", [7], [0])
    assert ex.clicked == 7 and ex.player.value[:4] == b"RIFF"
    sizes = list(points(ex).marker.size)
    assert sizes[7] == max(sizes) and sizes.count(max(sizes)) == 1
    assert "wb-explorer-rows" in ex.rows_html.value and "background" in ex.rows_html.value  # the table marks it
    ex.add_points([[0.0, 0.0]], ["steered: rock"], [tone()])
    plotly_event(ex.figure, "plotly_click", [0], [1])  # the star
    assert ex.clicked == 12 and list(ex.figure.data[1].marker.size) == [26]
    assert max(points(ex).marker.size) < 16  # the stored point is no longer the playing one


def test_colour_by_any_label_column_restyles_the_points_and_the_legend():
    ex = explorer()
    assert ex.color_dd.options == ("label", "seed", "tempo", "dynamics")  # no ids, no 12 distinct prompts
    assert ex.point_colours()[0] == PALETTE[0] and ex.point_colours()[-1] == PALETTE[1]
    keys = [t.name for t in ex.figure.data[2:] if t.showlegend]
    assert keys == ["label: rock", "jazz"]
    n_traces = len(ex.figure.data)
    ex.color_dd.value = "dynamics"
    keys = [t.name for t in ex.figure.data[2:] if t.showlegend]
    assert ex.color_by == "dynamics" and keys == ["dynamics: loud", "soft", "medium"]
    assert ex.point_colours()[:3] == PALETTE[:3]
    assert len(ex.figure.data) == n_traces  # a restyle: no trace added or removed
    ex.color_by = "tempo"  # 12 distinct numbers: a continuous scale with a colour bar
    assert points(ex).marker.showscale and points(ex).marker.colorbar.title.text == "tempo"
    assert list(points(ex).marker.color) == [float(90 + 5 * i) for i in range(12)]
    assert not any(t.showlegend for t in ex.figure.data[2:2 + len(PALETTE)])
    with pytest.raises(Exception, match="pick one of"):
        ex.color_by = "id"
    assert "pick one of" in ex.last_error and ex.color_by == "tempo"


def test_many_categories_share_an_other_colour():
    cols = {"take": [f"t{i % 11}" for i in range(22)]}
    ex = ProjectionExplorer(np.zeros((22, 2)), ["a"] * 22, columns=cols)
    ex.color_by = "take"
    keys = [t.name for t in ex.figure.data[2:] if t.showlegend]
    assert len(keys) == len(PALETTE) and keys[-1] == "other"
    assert sum(c == "#999999" for c in ex.point_colours()) == 22 - 2 * (len(PALETTE) - 1)


def test_search_selects_by_prompt_seed_or_label():
    ex = explorer()
    assert ex.search("jazz") == [6, 7, 8, 9, 10, 11]
    assert ex.search("seed=3") == [3] and ex.search("3") == [3]  # a number is a field's value, not a digit
    assert ex.search("dynamics: soft") == [1, 4, 7, 10]
    ex.search_box.value = "rock music"
    assert ex.selection == [0, 1, 2, 3, 4, 5] and "selected: 6 clips (rock 6)" in ex.groups_readout.value
    assert ex.search("polka") == [] and "no clip matches" in ex.groups_readout.value
    assert ex.search("") == [] and points(ex).selectedpoints is None


def test_the_selection_as_a_dataframe_and_tooltips_that_name_fields():
    ex = explorer()
    ex.select([2, 7])
    ex.use_selection_as("A")
    ex.select([2, 7])
    frame = ex.selected_rows()
    assert list(frame.index) == [2, 7] and frame.loc[7, "label"] == "jazz" and frame.loc[7, "seed"] == 7
    assert list(frame["group"]) == ["A", "A"] and {"x", "y", "prompt", "tempo"} <= set(frame.columns)
    tip = points(ex).hovertext[7]
    assert tip.startswith("label: jazz<br>") and "seed: 7" in tip and "prompt: jazz music" in tip
    assert "row-7" not in tip and "#7" not in tip and "#" not in ex.groups_readout.value  # no internal ids
    assert points(ex).hovertemplate == "%{hovertext}<extra></extra>"


def test_layout_is_readable_on_a_projector():
    ex = explorer(axes=axis_titles("pca", (0.42, 0.137)))
    layout = ex.figure.layout
    assert layout.font.size >= 14 and layout.hoverlabel.font.size >= 14 and layout.legend.font.size >= 14
    assert layout.title.font.size > FONT_PX
    assert layout.xaxis.title.text == "PC1 (42% var)" and layout.yaxis.title.text == "PC2 (14% var)"
    assert all(c.startswith("#") for c in PALETTE) and len(set(PALETTE)) == len(PALETTE)


def test_a_lasso_across_both_traces_and_steered_stars_left_out_of_directions():
    made = []
    ex = explorer(direction_fn=lambda a, b: made.append((a, b)) or "a->b")
    ex.add_points([[0.1, 0.2]], ["steered clip"], [tone(880)])
    plotly_event(ex.figure, "plotly_selected", [0, 5, 0], [0, 0, 1])  # two stored points, then the star
    assert ex.selection == [0, 5, 12]
    assert "selected: 3 clips (rock 2, steered 1)" in ex.groups_readout.value
    ex.use_selection_as("B")
    assert "B: 3 points (mostly rock, 1 steered left out)" in ex.groups_readout.value
    ex.select([9])
    ex.use_selection_as("A")
    assert ex.make_direction() == "a->b" and made == [([9], [0, 5])]


def test_a_lasso_whose_points_event_was_lost_still_selects():
    """The outline alone (a relayout of `layout.selections`) selects: ipywidgets merged the hover that
    followed the mouse-up into the trait that held the selected-points event (seen in the browser)."""
    xy = np.array([[-3.0, 1.0], [-2.0, 0.0], [1.0, 2.0], [2.0, -1.0]])
    ex = ProjectionExplorer(xy, ["classical", "classical", "rock", "rock"])
    ex.add_points([[0.5, 0.0]], ["steered clip"])  # a star inside the outline is selected too
    plotly_event(ex.figure, "plotly_hover", [0], [0])
    assert ex.selection == []
    box = "M-0.1,2.6L3.1,2.6L3.1,-2.8L-0.1,-2.8L-0.1,2.5Z"  # plotly's lasso path, in data units
    ex.figure.plotly_relayout({"selections": [{"type": "path", "path": box, "xref": "x", "yref": "y"}]})
    assert ex.selection == [2, 3, 4] and ex.groups_readout.value.startswith("selected: 3 clips (rock 2, steered 1)")
    ex.use_selection_as("B")
    ex.figure.plotly_relayout({"selections": [{"type": "rect", "x0": -3.5, "x1": -1.5, "y0": -0.5, "y1": 1.5}]})
    assert ex.selection == [0, 1] and ex.group_b == [2, 3, 4]
    ex.figure.plotly_relayout({"selections": []})
    assert ex.selection == []
    ex.figure.plotly_relayout({"selections": [{"type": "rect", "x0": -9, "x1": 9, "y0": -9, "y1": 9}]})
    ex.set_xy(xy + 10)  # python's own clearing outlines select nothing
    assert ex.selection == [] and ex.last_error == ""


def test_colour_columns_skip_ids_and_repeats_and_columns_must_fit():
    assert colour_columns({"label": ["a", "b"], "genre": ["a", "b"], "row": [0, 1]}) == ["label"]
    with pytest.raises(ValueError, match="one per point"):
        ProjectionExplorer(np.zeros((3, 2)), ["a"] * 3, columns={"seed": [1, 2]})


def test_no_update_resets_another_traces_properties():
    """A batch that sets a property on some traces sends "_undefined_" for the others, which plotly.js
    took as a reset: in the browser the points' trace lost its name and appeared in the legend as "trace 0"."""
    ex = explorer()
    sent = []
    ex.figure._send = lambda msg, buffers=None: sent.append(msg)
    ex.color_by = "dynamics"
    ex.color_by = "tempo"
    ex.select([0, 1])
    ex.use_selection_as("A")
    ex.click(3)
    ex.add_points([[0, 0]], ["steered"], [tone()])
    ex.search("jazz")
    ex.set_xy(ex.xy + 1, axes=("UMAP 1", "UMAP 2"))
    updates = [v for m in sent for k, v in m["state"].items() if k.startswith("_py2js") and v]
    assert len(updates) > 5 and "_undefined_" not in repr(updates)
    assert points(ex).name == "clips" and points(ex).showlegend is False
