"""Direction picker: choose how to make a steering direction at the selected layer.

Methods: ``probe class`` (the probe's weight for class A), ``class A → B`` (difference of the class
means, A to B), ``difference of means`` (class A against the rest), ``PCA`` (a principal component),
``current selection`` (the explorer's group A → group B). The work is `make_fn(method, **choices)`,
e.g. `widgets.backend.Backend.make_direction`; the picker only collects the choices.

    >>> made = []
    >>> picker = DirectionPicker(["rock", "jazz"], make_fn=lambda method, **kw: made.append((method, kw)) or "v")
    >>> picker.method = "class A → B"; picker.class_a, picker.class_b = "jazz", "rock"; picker.layer = 2
    >>> picker.make(), made[0][0], made[0][1]["class_a"]
    ('v', 'class A → B', 'jazz')
"""
from __future__ import annotations

from typing import Callable, Sequence

import ipywidgets as w
import traitlets as t

from ._base import View, guarded

METHODS = ("probe class", "class A → B", "difference of means", "PCA", "current selection")


class DirectionPicker(View):
    """Dropdowns for method / class A / class B / PCA component, a Make button, and `direction`."""

    method = t.Enum(METHODS, default_value="class A → B")
    class_a = t.Unicode()
    class_b = t.Unicode()
    component = t.Int(0)
    layer = t.Int(0)
    site = t.Unicode("resid")
    groups = t.Tuple((), help="(group_a indices, group_b indices) for 'current selection'")
    direction = t.Any(None, allow_none=True, help="the last direction made (object with .vector)")

    def __init__(self, classes: Sequence[str], make_fn: Callable | None = None, **kwargs):
        super().__init__(**kwargs)
        self.classes = [str(c) for c in classes]
        if not self.classes:
            raise ValueError("no classes: pass the labels of the collected clips, e.g. ['rock', 'jazz']")
        self.make_fn = make_fn
        self.class_a = self.classes[0]
        self.class_b = self.classes[1] if len(self.classes) > 1 else self.classes[0]
        self.method_dd = w.Dropdown(options=METHODS, description="method")
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

    @t.observe("method")
    def _sync_controls(self, change=None):
        m = self.method
        self.a_dd.disabled = m in ("PCA", "current selection")
        self.b_dd.disabled = m != "class A → B"
        self.pc_box.disabled = m != "PCA"

    def choices(self) -> dict:
        """What `make_fn` receives besides the method."""
        return dict(site=self.site, layer=self.layer, class_a=self.class_a, class_b=self.class_b,
                    component=self.component, groups=self.groups)

    @guarded
    def make(self):
        """Make the direction with the current choices; also sets `direction`."""
        self.clear_errors()
        if self.make_fn is None:
            raise ValueError("this picker has no make_fn: pass DirectionPicker(classes, make_fn=...)")
        if self.method == "current selection" and not (self.groups and self.groups[0] and self.groups[1]):
            raise ValueError("no selection: lasso group A and group B in the projection explorer first")
        if self.method == "class A → B" and self.class_a == self.class_b:
            raise ValueError(f"class A and class B are both {self.class_a!r}: pick two different classes")
        self.direction = self.make_fn(self.method, **self.choices())
        return self.direction

    @t.observe("direction")
    def _describe(self, change):
        d = self.direction
        name = getattr(d, "name", None) or getattr(d, "describe", lambda: None)() or self.method
        self.summary.value = f"<b>direction:</b> {name} · {self.site} layer {self.layer}" if d is not None else ""

    def static_html(self) -> str:
        return f"<div>direction picker: {self.method} · {self.site} layer {self.layer} · {self.summary.value}</div>"
