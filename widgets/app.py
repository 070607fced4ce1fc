"""`Workbench(...)`: the layer sweep, projection explorer, direction picker, steering panel, clip
comparer, trace view and patching view, linked in one cell.

Links: clicking a layer in the sweep re-draws the map at that layer, points the picker there and sets
the steering layers; a direction from the picker or from a lasso A → B goes to the steering panel;
each generated clip is compared with its unsteered twin and placed as a star in the map. Inspect:
the trace view traces the panel's last request along its direction (original and steered, every
layer at every step); the patching view patches group B's prompt into group A's (or any two prompts).

    >>> from widgets import Workbench               # doctest: +SKIP
    >>> wb_ui = Workbench()                         # teaching model, 8 clips per genre  # doctest: +SKIP
    >>> wb_ui.panel.strength = 0.5; clip = wb_ui.panel.generate()                        # doctest: +SKIP
"""
from __future__ import annotations

import ipywidgets as w
import traitlets as t

import workbench
from workbench.toy.prompts import EVAL_PROMPTS

from ._base import View
from .backend import Backend, Collection
from .clip_compare import ClipComparer, TwinClips, band_fn_of
from .direction_picker import DirectionPicker
from .feature_dashboard import FeatureDashboard
from .patching_view import PatchingView
from .projection_view import ProjectionExplorer, axis_titles
from .requests import SteerRequest
from .steering_panel import SteeringPanel
from .sweep_view import LayerSweepView
from .trace_view import TraceView

GENERIC_PROMPTS = {"calm": ["calm ambient music", "slow gentle piano"],
                   "energetic": ["energetic rock with drums", "fast techno with a drum machine"]}


def default_prompts(handle) -> dict:
    """Prompts per label: the teaching model's genres, or two moods for other models."""
    if "teaching" in str(handle.model_id):
        return {genre: list(prompts) for genre, prompts in EVAL_PROMPTS.items()}
    return GENERIC_PROMPTS


def _two_prompts(prompts_by_label: dict) -> tuple[str, str]:
    """(source, target) for the patching view: the second label's first prompt into the first's."""
    firsts = [p if isinstance(p, str) else p[0] for p in prompts_by_label.values()]
    return (firsts[1], firsts[0]) if len(firsts) > 1 else (firsts[0], firsts[0])


class Workbench(View):
    """All views on one model; every part stays reachable (`.sweep_view`, `.explorer`, `.picker`,
    `.panel`, `.comparer`, `.trace_view`, `.patching_view`, `.backend`) and usable from code.

    handle: a workbench model handle (default `workbench.load_model()`, the teaching model).
    collection: a `widgets.backend.Collection` or an ActivationStore from `workbench.data.collect.collect`
        (default: generate `n_per_label` clips per label).
    sweep: a `workbench.analysis.probes.sweep` result on the collection (default: computed here).
    prompt: the steering panel's starting prompt (default: the store's first prompt, or a genre prompt).
    map_method: "pca" (instant) or "umap" (the first UMAP fit in a process compiles numba code first, which
        `make warm-numba` caches ahead; notebook 01 prints how long its switch took); switch any time with
        `ui.map_method`.
    """

    layer = t.Int(0)
    site = t.Unicode("resid")
    map_method = t.Enum(("pca", "umap"), default_value="pca", help="how the explorer maps the clips")

    def __init__(self, handle=None, collection: Collection | None = None, sweep=None, *,
                 prompts_by_label: dict | None = None, n_per_label: int = 8, duration_s: float = 2.0,
                 steer_duration_s: float = 4.0, seed: int = 0, map_method: str = "pca", prompt: str | None = None,
                 backend: Backend | None = None, **kwargs):
        super().__init__(**kwargs)
        if backend is not None:  # a ready backend (or a test fake) brings its handle, collection and sweep
            handle, collection, sweep = backend.handle, backend.collection, backend.sweep
        if handle is None:
            handle = workbench.load_model()
        if collection is not None and hasattr(collection, "arrays"):  # an ActivationStore from workbench.data.collect
            prompt = prompt or next((r.get("prompt") for r in collection.table if r.get("prompt")), None)
            collection = Collection.from_store(collection)
        if collection is None:
            # a bar over the clips (a widget bar above the views): 32 clips of 2 s took 6.2 s on a shared 2-core CPU
            collection = Collection.generate(handle, prompts_by_label or default_prompts(handle),
                                             n_per_label=n_per_label, duration_s=duration_s, seed=seed,
                                             progress=True)
        if sweep is None:
            from workbench.analysis.probes import SweepConfig
            from workbench.analysis.probes import sweep as run_sweep
            folds = max(2, min(5, min(collection.labels.count(c) for c in collection.classes)))
            sweep = run_sweep(collection.acts, collection.labels, config=SweepConfig(folds=folds))
        self.handle, self.collection = handle, collection
        self.backend = backend or Backend(handle, collection, sweep=sweep, projection_method=map_method)
        self.set_trait("map_method", map_method)
        self.sweep_view = LayerSweepView(sweep)
        self.site, self.layer = self.sweep_view.site, self.sweep_view.layer
        self.backend.probe_key = (self.site, self.layer)
        self.explorer = ProjectionExplorer(self.backend.project(self.site, self.layer), collection.labels,
                                           texts=collection.texts, clips=collection.clips,
                                           direction_fn=self._direction_from_groups, title=self._map_title(),
                                           columns=collection.columns, axes=self._map_axes())
        self.picker = DirectionPicker(collection.classes, make_fn=self.backend.make_direction)
        if prompt is None:
            first_prompts = next(iter((prompts_by_label or default_prompts(handle)).values()))
            prompt = first_prompts if isinstance(first_prompts, str) else first_prompts[0]
        self.panel = SteeringPanel(handle.n_layers, self.backend.generate, prompt=prompt,
                                   max_duration_s=min(10.0, float(handle.max_duration_s)),
                                   unit_fn=self._known_unit if hasattr(self.backend, "known_strength_unit") else None)
        self.panel.duration_s = min(steer_duration_s, self.panel.duration_slider.max)
        self.comparer = ClipComparer(score_fn=self.backend.scores, band_fn=band_fn_of(self.backend),
                                     describe_fn=getattr(self.backend, "describe_steering", None))
        self.twins = TwinClips(self.backend.generate)
        self.trace_view = TraceView(trace_fn=getattr(self.backend, "trace", None))
        self.patching_view = PatchingView(run_fn=getattr(self.backend, "patching", None))
        self.patching_view.source_prompt, self.patching_view.target_prompt = _two_prompts(
            prompts_by_label or default_prompts(handle))
        self._wire()
        self.picker.layer, self.picker.site = self.layer, self.site
        self.panel.layers = [self.layer]
        if len(collection.classes) > 1:
            self.picker.make()  # a default direction (class A → B) so Generate steers right away
        self.map_dd = w.ToggleButtons(options=[("PCA", "pca"), ("UMAP", "umap")], description="map",
                                      style={"button_width": "70px"}, tooltips=[
                                          "instant", "slower the first time: UMAP compiles numba code"])
        t.link((self, "map_method"), (self.map_dd, "value"))
        self.explorer.children = (self.map_dd,) + tuple(self.explorer.children)
        steer_box = w.VBox([w.HTML("<h4>Direction</h4>"), self.picker, w.HTML("<h4>Steer</h4>"), self.panel])
        self.add_class("wb-app")
        self.children = [w.HBox([self.sweep_view, self.explorer], layout=w.Layout(flex_flow="row wrap")), steer_box,
                         w.HTML("<h4>Compare</h4>"), self.comparer,
                         w.HTML("<h4>Inspect: when does steering take hold?</h4>"), self.trace_view,
                         w.HTML("<h4>Inspect: where does the model use it? (activation patching)</h4>"),
                         self.patching_view, self.errors]

    def _map_title(self) -> str:
        method = getattr(self.backend, "projection_method", "pca").upper()
        return f"Clips at {self.site} layer {self.layer} ({method})"

    def _map_axes(self) -> tuple[str, str]:
        explained = getattr(self.backend, "explained_variance", lambda: None)()
        return axis_titles(getattr(self.backend, "projection_method", "pca"), explained)

    def _known_unit(self, layer: int):
        return self.backend.known_strength_unit(layer, getattr(self.panel.direction, "site", "resid")
                                                if hasattr(self, "panel") else "resid")

    def _direction_from_groups(self, group_a, group_b):  # stored clips only: the explorer drops stars
        self.picker.groups = (tuple(group_a), tuple(group_b))
        self.picker.method = "selection"
        return self.picker.make()

    def _wire(self) -> None:
        t.link((self.sweep_view, "layer"), (self, "layer"))
        t.link((self.sweep_view, "site"), (self, "site"))
        self.explorer.observe(self._groups_changed, names=["group_a", "group_b"])
        self.picker.observe(lambda ch: setattr(self.panel, "direction", ch["new"]), names="direction")
        self.panel.observe(lambda ch: setattr(self.trace_view, "direction", ch["new"]), names="direction")
        self.panel.on_clip(self._after_clip)

    @t.observe("layer", "site", "map_method")
    def _layer_changed(self, change):
        if not hasattr(self, "explorer"):
            return
        try:
            self.backend.projection_method = self.map_method
            self.backend.probe_key = (self.site, self.layer)
            self.picker.layer, self.picker.site = self.layer, self.site
            self.panel.layers = [self.layer]
            self.explorer.set_xy(self.backend.project(self.site, self.layer), title=self._map_title(),
                                 axes=self._map_axes())
            if self.picker.direction is not None and change["name"] != "map_method":
                self.picker.make()  # the same kind of direction, at the newly selected layer
        except Exception as exc:
            self.report(exc)

    def _groups_changed(self, change):
        self.picker.groups = tuple(tuple(g) for g in self.explorer.stored_groups())
        prompts = [self._first_prompt(g) for g in self.explorer.stored_groups()]
        if all(prompts):  # direction A -> B: patch B (where steering goes) into A
            self.patching_view.target_prompt, self.patching_view.source_prompt = prompts

    def _first_prompt(self, group) -> str | None:
        clips = self.collection.clips
        if not group or clips is None:
            return None
        clip = clips[group[0]] if isinstance(clips, list) else clips(group[0])
        return getattr(clip, "prompt", None)

    def original_for(self, request: SteerRequest):
        """The unsteered clip with the same prompt, seed, duration and guidance (generated once, cached)."""
        return self.twins(request)

    def _after_clip(self, clip, request: SteerRequest) -> None:
        self.trace_view.request = request  # the Trace button traces this one, original and steered
        original = self.original_for(request) if SteerRequest.of(request).steered else clip
        self.comparer.compare(original, clip, request=request)  # reports its own errors; players show regardless
        text = f"generated: {SteeringPanel.caption(request)}"
        try:
            self.explorer.add_points(self.backend.place(clip), [text], [clip])
        except Exception as exc:
            self.explorer.report(exc)

    def add_features(self, labels, **kwargs):
        """Add a `widgets.feature_dashboard.FeatureDashboard` on `labels` (a
        `workbench.analysis.features.FeatureLabels`) below the other views, linked: "steer with this feature" sets
        the panel's direction and layer."""
        dash = labels if isinstance(labels, FeatureDashboard) else FeatureDashboard(
            labels, model_id=self.handle.model_id, **kwargs)
        self.features = dash.link(self)
        self.children = (*self.children[:-1], w.HTML("<h4>Features (sparse autoencoder)</h4>"), dash,
                         self.children[-1])
        return dash

    @property
    def clips(self) -> list:
        return self.panel.clips

    @property
    def direction(self):
        return self.panel.direction

    @property
    def selection(self) -> list:
        return self.explorer.selection

    def static_html(self) -> str:
        parts = [self.sweep_view.static_html(), self.explorer.static_html(), self.comparer.static_html(),
                 self.trace_view.static_html(), self.patching_view.static_html()]
        return "<div>" + "".join(f"<div>{p}</div>" for p in parts) + "</div>"
