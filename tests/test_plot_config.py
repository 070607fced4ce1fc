"""No plot offers cloud sharing (issue 29, item 5): every plotly FigureWidget the views make carries the
workbench's config (no "Share chart" button, no plotly logo, PNG download kept)."""
from __future__ import annotations

import doctest
import pathlib
import re

import numpy as np
import plotly.basewidget
from ipywidgets.widgets.widget import _instances
from test_inspect_widgets import InspectingBackend, patch_rows, step_trace
from test_verdict_ui import fake_result
from test_widgets import FakeBackend, sweep_rows

import widgets._base
from widgets import EvaluationView, LayerSweepView, PatchingView, ProjectionExplorer, TraceView, Workbench
from widgets._base import PLOT_CONFIG

WIDGETS_DIR = pathlib.Path(__file__).resolve().parents[1] / "widgets"


def every_view_that_plots():
    """Each view that makes a plotly figure, on small fake data, with its plots filled."""
    trace = TraceView()
    trace.show(step_trace(), step_trace(shift=1.0))
    workbench = Workbench.from_backend(InspectingBackend(),
                                       prompts_by_label={"rock": "rock music", "jazz": "jazz music"})
    return [LayerSweepView(sweep_rows(sites=("resid", "mlp"))),
            ProjectionExplorer(np.random.default_rng(0).normal(size=(6, 2)), ["a", "a", "a", "b", "b", "b"]),
            PatchingView(patch_rows()), trace, EvaluationView(fake_result()), workbench,
            Workbench.from_backend(FakeBackend(), prompts_by_label={"rock": "rock music"})]


def assert_no_cloud_sharing(config: dict, where: str):
    assert config.get("displaylogo") is False, f"{where}: shows the plotly logo"
    assert config.get("showSendToCloud") is False, f"{where}: shows plotly's 'Share chart' button"
    assert config.get("showEditInChartStudio") is False, f"{where}: offers 'Edit in Chart Studio'"
    # no modeBarButtonsToRemove: a name plotly.js does not know there stopped it binding click events
    # (the patching heatmap of notebook 06 stopped answering clicks in the browser test)
    assert "modeBarButtonsToRemove" not in config, f"{where}: removes mode-bar buttons by name"
    assert config["toImageButtonOptions"]["format"] == "png", f"{where}: no PNG"


def test_the_shared_config_removes_cloud_sharing_and_keeps_png():
    assert_no_cloud_sharing(PLOT_CONFIG, "PLOT_CONFIG")
    assert doctest.testmod(widgets._base).failed == 0


def test_every_figure_the_views_make_has_the_config():
    before = set(_instances)
    views = every_view_that_plots()
    figures = [widget for key, widget in list(_instances.items())
               if key not in before and isinstance(widget, plotly.basewidget.BaseFigureWidget)]
    assert len(figures) >= 8 + 2 * 5 and all(view is not None for view in views)  # 8 in the views, 5 per Workbench
    assert any(len(fig.data) for fig in figures)
    for fig in figures:
        where = f"figure {fig.layout.title.text!r}"
        assert_no_cloud_sharing(fig._config, where)
        assert fig._config["toImageButtonOptions"].get("filename"), f"{where}: downloads as 'newplot.png'"


def test_no_view_makes_a_figure_widget_without_the_config():
    """A new view that forgets `configured(...)` fails here, even before a test constructs it."""
    for path in sorted(WIDGETS_DIR.glob("*.py")):
        source = path.read_text()
        for match in re.finditer(r"go\.FigureWidget\(", source):
            line = source[source.rfind("\n", 0, match.start()) + 1: match.start()]
            assert line.rstrip().endswith("configured("), f"{path.name}: {line.strip()}FigureWidget(...) lacks " \
                                                          "configured(...)"


def test_the_state_a_front_end_draws_from_holds_the_filled_figure():
    """A view filled before it is shown, re-shown, or restored after a page reload is drawn from the figure's
    synced state. Plotly keeps that state only in one-off messages: before StatefulFigureWidget, every view of
    notebook 06 drew empty axes under its first title after a reload (`_widget_data` was [] in the kernel)."""
    before = set(_instances)
    views = every_view_that_plots()
    figures = [widget for key, widget in list(_instances.items())
               if key not in before and isinstance(widget, plotly.basewidget.BaseFigureWidget)]
    filled = [fig for fig in figures if len(fig.data)]
    assert len(filled) >= 8 and views
    for fig in filled:
        state = fig.get_state()
        assert len(state["_widget_data"]) == len(fig.data), fig.layout.title.text
        assert [t["type"] for t in state["_widget_data"]] == [t.type for t in fig.data]
        title = state["_widget_layout"].get("title", {})
        assert (title.get("text") if isinstance(title, dict) else title) == fig.layout.title.text
    # displaying a view sends the figures' current state (a front end that missed the messages draws from it)
    trace = TraceView()
    trace.show(step_trace(), step_trace(shift=1.0))
    fig = trace.figures["steered"]
    sent = []
    fig.comm.send = lambda data=None, metadata=None, buffers=None: sent.append(data)
    trace._repr_mimebundle_()
    (update,) = [d for d in sent if d.get("method") == "update" and "_widget_data" in d.get("state", {})]
    assert set(update["state"]) == {"_widget_data", "_widget_layout"}
    assert len(fig._widget_data) == 1 and fig._widget_layout["title"]["text"].startswith("steered")


def test_views_hide_their_axes_until_they_have_something_to_draw():
    """The Workbench's trace and patching views were empty axes until their buttons were pressed (a plot that
    looks broken): the figures are hidden until the first trace or sweep."""
    trace, patching = TraceView(), PatchingView()
    assert all(box.layout.display == "none" for box in trace.figure_boxes.values())
    assert patching.figure_box.layout.display == "none" and "no sweep yet" in patching.readout.value
    trace.show(step_trace(), None)
    assert trace.figure_boxes["original"].layout.display is None
    assert trace.figure_boxes["steered"].layout.display == "none"  # strength 0: nothing to draw
    patching.show(patch_rows())
    assert patching.figure_box.layout.display is None
