"""Shared plumbing for the views: visible callback errors and a static fallback in the display bundle."""
from __future__ import annotations

import functools
import traceback

import ipywidgets as w
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


def configured(figure, filename: str = "workbench-plot"):
    """`figure` (a plotly FigureWidget) with `PLOT_CONFIG`; the PNG download is saved as `filename`.png.

    FigureWidget takes no config argument: its synced `_config` trait is what the front end passes to
    Plotly.newPlot.

        >>> import plotly.graph_objects as go
        >>> configured(go.FigureWidget(), "sweep")._config["toImageButtonOptions"]["filename"]
        'sweep'
    """
    config = dict(PLOT_CONFIG, toImageButtonOptions=dict(PLOT_CONFIG["toImageButtonOptions"], filename=filename))
    figure._config = config
    return figure


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
