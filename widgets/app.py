"""`Workbench.from_model(...)`: the layer sweep, projection explorer, direction picker, steering panel, clip
comparer, trace view and patching view, linked in one cell.

Links: clicking a layer in the sweep re-draws the map at that layer, points the picker there and sets
the steering layers; a direction from the picker or from a lasso A → B goes to the steering panel;
each generated clip is compared with its unsteered twin and placed as a star in the map. Inspect:
the trace view traces the panel's last request along its direction (original and steered, every
layer at every step); the patching view patches group B's prompt into group A's (or any two prompts).

    >>> from widgets import Workbench               # doctest: +SKIP
    >>> wb_ui = Workbench.from_model()              # teaching model, 8 clips per genre  # doctest: +SKIP
    >>> wb_ui.panel.strength = 0.5; clip = wb_ui.panel.generate()                        # doctest: +SKIP
"""
from __future__ import annotations

import ipywidgets as w
import traitlets as t

import workbench
from workbench import validation
from workbench.errors import BadInputError
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

    Make one with `Workbench.from_model` (load, collect, sweep, map) or `Workbench.from_backend` (a ready
    `widgets.backend.Backend`, or a test fake: map it at the sweep's best layer); the constructor only stores
    and lays out what it is given.

    backend: a `widgets.backend.Backend` (its handle, collection, sweep and projection method).
    xy: the collected clips' 2-D map (N, 2) at the layer the sweep view selects first (the sweep's best), as
        ``backend.project(site, layer)`` returns it. sweep_view: that `LayerSweepView` (default: made here).
    prompts_by_label: the labels' prompts (default: the teaching model's genres, or two moods): the patching
        view's two prompts and the panel's first prompt. prompt: the steering panel's starting prompt.
    steer_duration_s: the panel's starting clip length.
    The map's method follows ``backend.projection_method`` ("pca" or "umap": the first UMAP fit in a process
    compiles numba code first, which `make warm-numba` caches ahead); switch any time with `ui.map_method`.
    """

    layer = t.Int(0)
    site = t.Unicode("resid")
    map_method = t.Enum(("pca", "umap"), default_value="pca", help="how the explorer maps the clips")

    def __init__(self, backend: Backend, xy, *, sweep_view: LayerSweepView | None = None,
                 prompts_by_label: dict | None = None, prompt: str | None = None, steer_duration_s: float = 4.0,
                 **kwargs):
        super().__init__(**kwargs)
        handle, collection = backend.handle, backend.collection
        if len(xy) != len(collection.labels):
            raise BadInputError(f"xy holds {len(xy)} points for {len(collection.labels)} collected clips: pass "
                                "backend.project(site, layer) of this backend, or use Workbench.from_backend(backend)")
        prompts_by_label = prompts_by_label or default_prompts(handle)
        self.handle, self.collection, self.backend = handle, collection, backend
        self.set_trait("map_method", getattr(backend, "projection_method", "pca"))
        self.sweep_view = sweep_view or LayerSweepView(backend.sweep)
        self.site, self.layer = self.sweep_view.site, self.sweep_view.layer
        self.backend.probe_key = (self.site, self.layer)
        self.explorer = ProjectionExplorer(xy, collection.labels, texts=collection.texts, clips=collection.clips,
                                           direction_fn=self._direction_from_groups, title=self._map_title(),
                                           columns=collection.columns, axes=self._map_axes())
        self.picker = DirectionPicker(collection.classes, make_fn=self.backend.make_direction)
        if prompt is None:
            first_prompts = next(iter(prompts_by_label.values()))
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
        self.patching_view.source_prompt, self.patching_view.target_prompt = _two_prompts(prompts_by_label)
        self._wire()
        self.picker.layer, self.picker.site = self.layer, self.site
        self.panel.layers = [self.layer]
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

    @classmethod
    def from_backend(cls, backend: Backend, **options) -> Workbench:
        """A Workbench on a ready backend: its clips mapped at the sweep's best layer, and a default direction
        (class A -> B, so Generate steers right away). options: the constructor's keywords."""
        sweep_view = options.pop("sweep_view", None) or LayerSweepView(backend.sweep)
        xy = backend.project(sweep_view.site, sweep_view.layer)
        ui = cls(backend, xy, sweep_view=sweep_view, **options)
        if len(ui.collection.classes) > 1:
            ui.picker.make()
        return ui

    @classmethod
    def from_model(cls, handle=None, collection=None, sweep=None, *, prompts_by_label: dict | None = None,
                   n_per_label: int = 8, duration_s: float = 2.0, seed: int = 0, map_method: str = "pca",
                   **options) -> Workbench:
        """Load, collect, sweep and map: ``Workbench.from_model()`` is the teaching model, 8 clips per genre.

        handle: a workbench model handle (default `workbench.load_model()`, the teaching model).
        collection: a `widgets.backend.Collection` or an ActivationStore from `workbench.data.collect.collect`
            (default: generate ``n_per_label`` clips of ``duration_s`` per label of ``prompts_by_label``, seeds
            ``seed``, ``seed + 1``, ...). sweep: a `workbench.analysis.probes.sweep` result on the collection
            (default: computed here). map_method: "pca" (instant) or "umap". options: the constructor's keywords
            (``prompt``, default a store's first prompt; ``steer_duration_s``).
        """
        validation.choice(map_method, "map_method", ("pca", "umap"))
        if handle is None:
            handle = workbench.load_model()
        if collection is not None and hasattr(collection, "arrays"):  # an ActivationStore from workbench.data.collect
            options.setdefault("prompt", next((r.get("prompt") for r in collection.table if r.get("prompt")), None))
            collection = Collection.from_store(collection)
        if collection is None:
            # a bar over the clips (a widget bar above the views): 32 clips of 2 s took 6.2 s on a shared 2-core CPU
            collection = Collection.generate(handle, prompts_by_label or default_prompts(handle),
                                             n_per_label=n_per_label,
                                             settings=workbench.GenerationSettings(duration_s=duration_s), seed=seed,
                                             progress=True)
        if sweep is None:
            from workbench.analysis.probes import SweepConfig  # torch-free import of widgets (see test_structure)
            from workbench.analysis.probes import sweep as run_sweep
            folds = max(2, min(5, min(collection.labels.count(c) for c in collection.classes)))
            sweep = run_sweep(collection.acts, collection.labels, config=SweepConfig(folds=folds))
        backend = Backend(handle, collection, sweep=sweep, projection_method=map_method)
        return cls.from_backend(backend, prompts_by_label=prompts_by_label, **options)

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
