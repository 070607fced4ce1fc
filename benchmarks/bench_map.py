"""`python -m benchmarks map`: how long the map takes to redraw after a colour-by change, 500 vs 5 000 points.

Python side: the time from `explorer.color_by = ...` until the update message is built and JSON-encoded
(the restyle plotly.py makes, the widget's serialisers, then `json.dumps` as the kernel's session does),
and the bytes sent. Front end (`--browser`, needs Debian's chromium): the time `Plotly.restyle` takes
to recolour the same SVG scatter in headless chromium, up to the next animation frame. Each figure is
the median of `--repeats` changes, with the min and max beside it.

    >>> from benchmarks.bench_map import python_redraw
    >>> python_redraw(200, repeats=2)["n_points"]
    200
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

from widgets.projection_view import ProjectionExplorer

GENRES = ("rock", "jazz", "classical", "electronic", "folk", "hiphop", "ambient", "metal")
COLOURS = ("dynamics", "tempo", "label")  # categorical (3), continuous, categorical (8): cycled


def map_of(n_points: int, seed: int = 0) -> ProjectionExplorer:
    """An explorer of `n_points` random points with a label, seed, tempo and dynamics column."""
    rng = np.random.default_rng(seed)
    labels = [GENRES[i % len(GENRES)] for i in range(n_points)]
    columns = dict(prompt=[f"{g} music" for g in labels], seed=list(range(n_points)),
                   tempo=rng.uniform(60, 180, n_points).round(1).tolist(),
                   dynamics=[("soft", "medium", "loud")[i % 3] for i in range(n_points)])
    return ProjectionExplorer(rng.normal(size=(n_points, 2)), labels, columns=columns)


def _spread(values: list[float]) -> dict:
    return dict(median=statistics.median(values), min=min(values), max=max(values))


def python_redraw(n_points: int, repeats: int = 7) -> dict:
    """Seconds and bytes of the update one colour-by change sends (median, min, max over `repeats`)."""
    explorer = map_of(n_points)
    sent: list[int] = []

    def send(msg, buffers=None):  # what ipywidgets hands the kernel's comm: JSON plus binary buffers
        sent.append(len(json.dumps(msg)) + sum(len(memoryview(b).cast("B")) for b in buffers or ()))
    explorer.figure._send = send
    seconds, sizes = [], []
    for k in range(repeats + 1):
        sent.clear()
        start = time.perf_counter()
        explorer.color_by = COLOURS[k % len(COLOURS)]
        elapsed = time.perf_counter() - start
        if k:  # the first change is a warm-up
            seconds.append(elapsed)
            sizes.append(sum(sent))
    return dict(n_points=n_points, seconds=_spread(seconds), bytes=int(statistics.median(sizes)))


_PAGE = """<html><head><meta charset="utf-8"><script>{plotly_js}</script></head><body><div id="map"></div>
<script>
const n = {n}, xs = [], ys = [];
for (let i = 0; i < n; i++) {{ xs.push(Math.sin(i * 12.9898) * 3); ys.push(Math.cos(i * 78.233) * 3); }}
Plotly.newPlot('map', [{{type: 'scatter', mode: 'markers', x: xs, y: ys, marker: {{size: 9, color: '#0072B2'}}}}],
               {{width: 640, height: 480}});
window.recolour = async (k) => {{
  const palette = {palette};
  const colours = xs.map((_, i) => palette[(i * (k + 1)) % palette.length]);
  const start = performance.now();
  await Plotly.restyle('map', {{'marker.color': [colours]}}, [0]);
  await new Promise(r => requestAnimationFrame(() => r()));
  return (performance.now() - start) / 1000;
}};
</script></body></html>"""


def browser_redraw(n_points: int, repeats: int = 7) -> dict:
    """Seconds `Plotly.restyle` takes to recolour an SVG scatter of `n_points` in headless chromium."""
    import shutil
    import tempfile
    from pathlib import Path

    from playwright.sync_api import sync_playwright
    from plotly.offline import get_plotlyjs

    from widgets.static import PALETTE

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with tempfile.TemporaryDirectory() as tmp:
        page_path = Path(tmp) / "map.html"
        page_path.write_text(_PAGE.format(plotly_js=get_plotlyjs(), n=n_points, palette=json.dumps(PALETTE)))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True,
                                        args=["--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page()
                page.goto(page_path.as_uri())
                page.wait_for_function("() => document.querySelectorAll('path.point').length > 0")
                seconds = [page.evaluate(f"() => window.recolour({k})") for k in range(repeats + 1)][1:]
            finally:
                browser.close()
    return dict(n_points=n_points, seconds=_spread(seconds))


def _line(name: str, r: dict) -> str:
    s = r["seconds"]
    size = f"  {r['bytes'] / 1024:7.1f} KiB sent" if "bytes" in r else ""
    return (f"{name:9} {r['n_points']:6d} points  median {1000 * s['median']:7.1f} ms  "
            f"(min {1000 * s['min']:.1f}, max {1000 * s['max']:.1f}){size}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks map", description=__doc__.splitlines()[0])
    parser.add_argument("--points", default="500,5000", help="comma-separated map sizes")
    parser.add_argument("--repeats", type=int, default=7, help="colour-by changes timed per size")
    parser.add_argument("--browser", action="store_true", help="also time the restyle in headless chromium")
    parser.add_argument("--json", help="write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    sizes = [int(n) for n in args.points.split(",")]
    results = {"python": [python_redraw(n, args.repeats) for n in sizes]}
    if args.browser:
        results["browser"] = [browser_redraw(n, args.repeats) for n in sizes]
    print(f"map redraw after a colour-by change (median of {args.repeats}, min-max):")
    for side, rows in results.items():
        for r in rows:
            print(_line(side, r))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
