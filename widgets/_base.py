"""Shared plumbing for the views: visible callback errors and a static fallback in the display bundle."""
from __future__ import annotations

import functools
import traceback
from copy import deepcopy

import ipywidgets as w
import plotly.graph_objects as go
import traitlets as t

from workbench.errors import BadInputError

# Every plotly figure the views make gets this config. Plotly.js 3 shows a "Share chart..." button by default
# (`showSendToCloud`) that uploads the chart to a cloud service: off, and so is "Edit in Chart Studio", so no
# plot offers to leave the machine; no plotly logo; the camera button keeps downloading a PNG. No
# `modeBarButtonsToRemove`: a button name plotly.js does not know there stopped it binding click events
# (notebook 06's patching heatmap stopped answering clicks in the browser test).
PLOT_CONFIG = {
    "displaylogo": False,
    "showSendToCloud": False,
    "showEditInChartStudio": False,
    "toImageButtonOptions": {"format": "png", "scale": 2},
}


class StatefulFigureWidget(go.FigureWidget):
    """A plotly FigureWidget whose synced state always holds its current data and layout.

    Plotly's FigureWidget sends every edit (add traces, restyle, relayout) as a one-off message that the
    front-end model applies to its copy of ``_widget_data`` / ``_widget_layout``; the kernel-side traits are
    refreshed only when the figure itself is displayed. A figure shown inside a view (a child of a VBox) and
    filled before it is shown is therefore drawn from whatever those messages left in the front end: after a
    page reload (the models are rebuilt from the kernel's stale traits) every view of notebook 06 drew empty
    axes under its first title, and a front end that had not yet attached plotly's listeners when the
    messages came drew the same. Here the traits are brought up to date whenever the state is read (a reload
    or a new front end asks for it) and when the view is displayed (`View._repr_mimebundle_` calls
    `sync_state`), so a view draws its data however it was filled, shown, re-run or re-displayed.

        >>> fig = StatefulFigureWidget()
        >>> _ = fig.add_heatmap(z=[[0.0, 1.0]])
        >>> [trace["type"] for trace in fig.get_state()["_widget_data"]]
        ['heatmap']
    """

    def sync_state(self) -> None:
        """Send the current data and layout to the front end (always: `get_state` may have brought the traits
        up to date already, so setting them would look like no change and send nothing)."""
        self.send_state(key=["_widget_data", "_widget_layout"])

    def get_state(self, key=None, drop_defaults=False):
        # Written without notifications: get_state runs while a state message is being built (also from
        # the widget's constructor, before plotly has set up `_data`). Only when the state asked for holds them:
        # every edit message (a restyle of a 5 000-point map) reads the state of its own key.
        keys = {key} if isinstance(key, str) else set(key) if key is not None else None
        wanted = keys is None or bool(keys & {"_widget_data", "_widget_layout"})
        if wanted and hasattr(self, "_data") and hasattr(self, "_layout_obj"):
            self._trait_values["_widget_data"] = deepcopy(self._data)
            self._trait_values["_widget_layout"] = deepcopy(self._layout_obj._props)
        return super().get_state(key=key, drop_defaults=drop_defaults)


def configured(figure, filename: str = "workbench-plot") -> StatefulFigureWidget:
    """`figure` (a plotly figure) as a `StatefulFigureWidget` with `PLOT_CONFIG`; the PNG download is saved as
    `filename`.png. A FigureWidget passed in is closed (its copy replaces it).

    FigureWidget takes no config argument: its synced `_config` trait is what the front end passes to
    Plotly.newPlot.

        >>> configured(go.FigureWidget(), "sweep")._config["toImageButtonOptions"]["filename"]
        'sweep'
    """
    stateful = figure if isinstance(figure, StatefulFigureWidget) else StatefulFigureWidget(
        data=figure.data, layout=figure.layout)
    if stateful is not figure and hasattr(figure, "close"):
        figure.close()
    config = dict(PLOT_CONFIG, toImageButtonOptions=dict(PLOT_CONFIG["toImageButtonOptions"], filename=filename))
    stateful._config = config
    return stateful


def figures_in(widget) -> list[StatefulFigureWidget]:
    """Every `StatefulFigureWidget` in a widget tree (children of boxes, depth first)."""
    found, stack = [], [widget]
    while stack:
        node = stack.pop()
        if isinstance(node, StatefulFigureWidget):
            found.append(node)
        stack.extend(reversed(list(getattr(node, "children", ()) or ())))
    return found


class RefusedValueError(BadInputError, t.TraitError):
    """A value set from code that the view's control cannot show (e.g. outside a slider's range).

    The trait keeps its last good value, so what the control shows is what a generation uses; a
    TraitError, so traitlets rolls back a batch of changes (`hold_trait_notifications`) that holds one.
    """


class View(w.VBox):
    """A VBox with an `errors` Output (callback exceptions land there) and a static HTML fallback.

    Subclasses implement `static_html()`; `_repr_mimebundle_` adds it as ``text/html`` so a notebook
    viewed without a kernel or widget state still shows the plot (JupyterLab prefers the live widget).
    """

    last_error = t.Unicode("", help="the last callback error (also shown in `errors`)")

    def __init__(self, **kwargs):
        self.errors = w.Output(layout=w.Layout(max_height="160px", overflow="auto"))
        super().__init__(**kwargs)

    def report(self, exc: BaseException) -> None:
        """Show an exception inside the widget; thread-safe (no Output context manager)."""
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        self.last_error = text
        self.errors.append_stderr(f"{text}\n")

    def refuse(self, message: str) -> RefusedValueError:
        """Show `message` in the view and return the error to raise (from a trait validator)."""
        exc = RefusedValueError(message)
        self.report(exc)
        return exc

    def in_range(self, name: str, value, control, hint: str = ""):
        """`value` if `control` (a slider or bounded box) can show it, else refuse it: shown == used."""
        if control is not None and not control.min <= value <= control.max:  # NaN fails too
            raise self.refuse(f"{name}={value!r} is outside the range the {control.description or name} control "
                              f"shows ({control.min:g} to {control.max:g}): pick a value in it"
                              + (f", or {hint}" if hint else ""))
        return value

    def clear_errors(self) -> None:
        self.last_error = ""
        self.errors.outputs = ()

    def static_html(self) -> str:
        return ""

    def _repr_mimebundle_(self, **kwargs):
        for figure in figures_in(self):  # the front end draws the figures from this state: see StatefulFigureWidget
            figure.sync_state()
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        try:
            fallback = self.static_html()
        except Exception as exc:  # never let the fallback break the live display
            fallback = f"<pre>static view unavailable: {exc!r}</pre>"
        if fallback:
            bundle["text/html"] = fallback
        return bundle


def guarded(method):
    """Decorator for callbacks: exceptions go to the view's `errors` Output instead of vanishing."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            self.report(exc)
            return None
    return wrapper
