"""Direction picker: choose how to make a steering direction at the selected layer.

Methods (keys of `widgets.requests.METHOD_LABELS`, shown by their labels): ``probe_class`` (the
probe's weight for class A), ``class_pair`` (difference of the class means, A to B),
``class_vs_rest`` (class A against the rest), ``pca`` (a principal component), ``selection`` (the
explorer's group A → group B). The work is `make_fn(request)` with a
`widgets.requests.DirectionRequest`, e.g. `widgets.backend.Backend.make_direction`; the picker only
collects the choices. `method` takes a key or a label and holds the key.

    >>> made = []
    >>> picker = DirectionPicker(["rock", "jazz"], make_fn=lambda request: made.append(request) or "v")
    >>> picker.method = "class A → B"; picker.class_a, picker.class_b = "jazz", "rock"; picker.layer = 2
    >>> picker.make(), picker.method, made[0].method, made[0].class_a
    ('v', 'class_pair', 'class_pair', 'jazz')
"""
from __future__ import annotations

import html
from collections.abc import Callable, Sequence

import ipywidgets as w
import traitlets as t

from ._base import View, guarded
from .requests import DIRECTION_METHODS, METHOD_LABELS, DirectionRequest, method_key

METHODS = DIRECTION_METHODS


class DirectionPicker(View):
    """Dropdowns for method / class A / class B / PCA component, a Make button, and `direction`."""

    method = t.Unicode("class_pair", help="a key of widgets.requests.METHOD_LABELS (a label is read as its key)")
    class_a = t.Unicode()
    class_b = t.Unicode()
    component = t.Int(0)
    layer = t.Int(0)
    site = t.Unicode("resid")
    groups = t.Tuple((), help="(group_a indices, group_b indices) for 'selection'")
    direction = t.Any(None, allow_none=True, help="the last direction made (object with .vector)")

    def __init__(self, classes: Sequence[str], make_fn: Callable | None = None, **kwargs):
        super().__init__(**kwargs)
        self.classes = [str(c) for c in classes]
        if not self.classes:
            raise ValueError("no classes: pass the labels of the collected clips, e.g. ['rock', 'jazz']")
        self.make_fn = make_fn
        self.class_a = self.classes[0]
        self.class_b = self.classes[1] if len(self.classes) > 1 else self.classes[0]
        self.method_dd = w.Dropdown(options=[(label, key) for key, label in METHOD_LABELS.items()],
                                    description="method")
        self.a_dd = w.Dropdown(options=self.classes, description="class A")
        self.b_dd = w.Dropdown(options=self.classes, description="class B")
        self.pc_box = w.BoundedIntText(min=0, max=16, description="PC")
        for name, control in [("method", self.method_dd), ("class_a", self.a_dd), ("class_b", self.b_dd),
                              ("component", self.pc_box)]:
            w.link((self, name), (control, "value"))
        self.make_button = w.Button(description="make direction", button_style="info")
        self.make_button.on_click(lambda _: self.make())
        self.summary = w.HTML()
        self.children = [w.HBox([self.method_dd, self.pc_box]), w.HBox([self.a_dd, self.b_dd]),
                         w.HBox([self.make_button, self.summary]), self.errors]
        self.add_class("wb-picker")
        self._sync_controls()

    @t.validate("method")
    def _check_method(self, proposal):
        try:
            return method_key(proposal["value"])
        except ValueError as exc:
            raise self.refuse(str(exc)) from exc

    @t.validate("class_a", "class_b")
    def _check_class(self, proposal):
        if hasattr(self, "classes") and proposal["value"] not in self.classes:
            raise self.refuse(f"{proposal['trait'].name}={proposal['value']!r} is not one of the classes "
                              f"{self.classes}")
        return proposal["value"]

    @t.validate("component")
    def _check_component(self, proposal):
        return self.in_range("component", proposal["value"], getattr(self, "pc_box", None))

    @t.observe("method")
    def _sync_controls(self, change=None):
        m = self.method
        self.a_dd.disabled = m in ("pca", "selection")
        self.b_dd.disabled = m != "class_pair"
        self.pc_box.disabled = m != "pca"

    def request(self) -> DirectionRequest:
        """What `make_fn` receives (validated: two different classes, a selection for 'selection', ...)."""
        return DirectionRequest(method=self.method, site=self.site, layer=self.layer, class_a=self.class_a,
                                class_b=self.class_b, component=self.component, groups=self.groups)

    @guarded
    def make(self):
        """Make the direction with the current choices; also sets `direction`."""
        self.clear_errors()
        if self.make_fn is None:
            raise ValueError("this picker has no make_fn: pass DirectionPicker(classes, make_fn=...)")
        self.direction = self.make_fn(self.request())
        return self.direction

    @t.observe("direction")
    def _describe(self, change):
        d = self.direction
        name = getattr(d, "name", None) or getattr(d, "describe", lambda: None)() or METHOD_LABELS[self.method]
        self.summary.value = (f"<b>direction:</b> {html.escape(str(name))} · {html.escape(self.site)} layer "
                              f"{self.layer}" if d is not None else "")

    def static_html(self) -> str:
        return (f"<div>direction picker: {html.escape(METHOD_LABELS[self.method])} · {html.escape(self.site)} layer "
                f"{self.layer} · {self.summary.value}</div>")
