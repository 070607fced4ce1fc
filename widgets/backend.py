"""Everything the views ask of `workbench`, in one adapter (the views never import torch).

`Backend(handle, collection)` answers: generate a (steered) clip for a `widgets.requests.SteerRequest`,
make a direction for a `widgets.requests.DirectionRequest`, project the collected clips to 2-D, place
a new clip in that map, score a clip (judge + probe reading). Tests swap in a fake with the same
methods. torch loads on the first call that needs the model, not on import.

    >>> import workbench as wb                                   # doctest: +SKIP
    >>> h = wb.random_model("tiny")                              # doctest: +SKIP
    >>> col = Collection.generate(h, {"rock": ["rock music"], "jazz": ["jazz music"]}, n_per_label=4,
    ...                           duration_s=0.5)                # doctest: +SKIP
    >>> be = Backend(h, col); be.project("resid", 1).shape       # doctest: +SKIP
    (8, 2)
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from .requests import DirectionRequest, SteerRequest


@dataclasses.dataclass
class Collection:
    """Collected clips with labels, hover texts and pooled activations dict[(site, layer)] -> (N, H)."""

    acts: dict
    labels: list
    texts: list
    clips: list

    @classmethod
    def generate(cls, handle, prompts_by_label: dict, n_per_label: int = 8, duration_s: float = 2.0,
                 seed: int = 0, guidance_scale: float = 3.0, sites=("resid",), batch_size: int = 8,
                 progress: bool = False) -> Collection:
        """Generate `n_per_label` clips per label (prompts cycled, seeds seed, seed+1, ...) and capture them."""
        import workbench as wb
        prompts, labels = [], []
        for label, options in prompts_by_label.items():
            options = [options] if isinstance(options, str) else list(options)
            prompts += [options[i % len(options)] for i in range(n_per_label)]
            labels += [label] * n_per_label
        seeds = [seed + i for i in range(len(prompts))]
        res = wb.generate(handle, prompts, duration_s=duration_s, seeds=seeds, guidance_scale=guidance_scale,
                          capture=wb.CaptureSpec(sites=tuple(sites), pooling="mean"), batch_size=batch_size,
                          progress=progress)  # one torch thread for small models: the core's threads="auto"
        for clip, label in zip(res.clips, labels):
            clip.label = label
        texts = [f"“{p}” (seed {s})" for p, s in zip(prompts, seeds)]
        return cls(acts=res.activations, labels=labels, texts=texts, clips=res.clips)

    @classmethod
    def from_store(cls, store, label_column: str = "label") -> Collection:
        """A view of a `workbench.data.store.ActivationStore` (what `workbench.data.collect.collect` returns);
        clips are read from the store when clicked."""
        table = store.table
        texts = [str(r.get("prompt") or r.get("path") or r.get("id"))
                 + (f" (seed {r['seed']})" if r.get("seed") is not None else "") for r in table]
        has_audio = bool(store.sample_rate_hz)
        return cls(acts=store.arrays(), labels=[str(r.get(label_column)) for r in table], texts=texts,
                   clips=store.clip if has_audio else None)

    @property
    def classes(self) -> list:
        return list(dict.fromkeys(self.labels))


class Backend:
    """The workbench calls behind the views, for one model handle and one collection."""

    def __init__(self, handle, collection: Collection, sweep=None, projection_method: str = "pca"):
        self.handle, self.collection, self.sweep = handle, collection, sweep
        self.projection_method = projection_method
        # "mean_norm": strength 1 moves an activation by its layer's mean norm (comparable across layers)
        self.normalize = "mean_norm"
        self._projection = None  # the current workbench.analysis.projections.Projection
        self.probe_key = None
        self._judge = None

    # -- generation ----------------------------------------------------------------------------
    def steering_spec(self, request: SteerRequest):
        """The core's SteeringSpec for a request, or None when it does not steer."""
        import workbench as wb
        request = SteerRequest.of(request)
        if not request.steered:
            return None
        return wb.SteeringSpec.single(request.direction, request.layers, request.strength, mode=request.mode,
                                      rows=request.rows, schedule=wb.Schedule(kind=request.schedule))

    def generate(self, request: SteerRequest, on_progress: Callable | None = None,
                 should_stop: Callable | None = None):
        """One clip for a SteeringPanel request; polls `should_stop` and reports progress each step."""
        import workbench as wb
        request = SteerRequest.of(request)
        h = self.handle
        total = h.frames_for(request.duration_s) + h.delay_steps  # stop() is polled once a step
        steps = [0]

        def stop() -> bool:
            steps[0] += 1
            if on_progress is not None:
                on_progress(steps[0] / total)
            return bool(should_stop and should_stop())
        res = wb.generate(h, request.prompt or "music", duration_s=request.duration_s, seeds=request.seed,
                          guidance_scale=request.guidance_scale, steering=self.steering_spec(request), stop=stop)
        return res.clips[0]

    # -- directions ----------------------------------------------------------------------------
    def make_direction(self, request: DirectionRequest):
        """A `workbench.analysis.directions.Direction` at the request's (site, layer), by its method."""
        from workbench.analysis import directions as d
        if not isinstance(request, DirectionRequest):
            raise TypeError(f"make_direction takes a widgets.requests.DirectionRequest, not {type(request).__name__}")
        site, layer, method = request.site, request.layer, request.method
        if (site, layer) not in self.collection.acts:
            raise ValueError(f"no collected activations at {site} layer {layer}: collect that site and layer")
        X = self.collection.acts[(site, layer)]
        labels = np.asarray(self.collection.labels)
        where = dict(model_id=self.handle.model_id, layer=layer, site=site, normalize=self.normalize)
        if method == "probe_class":
            return d.from_probe(self._probe(site, layer), request.class_a, activations=X, **where)
        if method == "class_pair":
            return d.from_class_means(X, labels, request.class_b, request.class_a, **where)
        if method == "class_vs_rest":
            return d.from_class_means(X, labels, request.class_a, **where)
        if method == "pca":
            return d.from_pca(X, labels, request.class_a, component=request.component, **where)
        away, toward = request.groups  # "selection": DirectionRequest checked that both are there
        return d.from_point_sets(X, away, toward, **where)

    def direction_from_groups(self, site: str, layer: int) -> Callable:
        return lambda a, b: self.make_direction(DirectionRequest("selection", site=site, layer=layer, groups=(a, b)))

    def _probe(self, site: str, layer: int):
        if self.sweep is None or (site, layer) not in getattr(self.sweep, "probes", {}):
            raise ValueError(f"no fitted probe at {site} layer {layer}: pass "
                             "sweep=workbench.analysis.probes.sweep(...)")
        return self.sweep.probes[(site, layer)]

    # -- projection ----------------------------------------------------------------------------
    def project(self, site: str, layer: int) -> np.ndarray:
        """2-D coordinates of the collected clips at (site, layer) (`projection_method`: "pca" or
        "umap", by `workbench.analysis.projections`); the map is remembered so `place` can add new clips."""
        from workbench.analysis.projections import project
        self._projection = project(self.collection.acts[(site, layer)], self.projection_method, site=site,
                                   layer=layer)
        return self._projection.embedding

    def place(self, clip) -> np.ndarray:
        """Where a new clip lands in the current map (teacher-forced through the unsteered model)."""
        if self._projection is None:
            raise ValueError("no map yet: call project(site, layer) first")
        proj = self._projection
        return proj.transform(self.read(clip, proj.site, proj.layer))

    def read(self, clip, site: str, layer: int) -> np.ndarray:
        import workbench as wb
        acts = wb.teacher_force(self.handle, [clip.mono], clip.sample_rate_hz, prompts=[clip.prompt or ""],
                                capture=wb.CaptureSpec(layers=(layer,), sites=(site,), pooling="mean"))
        return acts[(site, layer)]

    # -- scores --------------------------------------------------------------------------------
    def scores(self, clip) -> dict:
        """Judge probabilities (teaching model only: it knows the four synthetic genres) and the probe's
        reading at `probe_key` (the clip teacher-forced through the unsteered model, null text)."""
        from workbench import scores
        out = {}
        if "teaching" in str(self.handle.model_id):
            judged = scores.judge_reading([clip])
            if judged is not None:
                classes, probs = judged
                out.update({f"judge: {c}": float(p) for c, p in zip(classes, probs[0])})
        if self.probe_key is not None and self.sweep is not None and self.probe_key in self.sweep.probes:
            site, layer = self.probe_key
            probe = self.sweep.probes[self.probe_key]
            probs = scores.probe_reading(self.handle, [clip], probe, layer=layer, site=site)[0]
            out.update({f"probe L{layer}: {c}": float(p) for c, p in zip(probe.classes_, probs)})
        return out

    # -- causal inspection (nnsight traces) ------------------------------------------------------
    def trace(self, request: SteerRequest, direction):
        """(original, steered) `StepTrace`s of a request's clip: every layer's projection on ``direction``
        at every step (steered is None when the request does not steer)."""
        from workbench.analysis.step_traces import trace_steps
        request = SteerRequest.of(request)
        kwargs = dict(duration_s=request.duration_s, seeds=[request.seed], guidance_scale=request.guidance_scale)
        prompt = [request.prompt or "music"]
        original = trace_steps(self.handle, prompt, direction, **kwargs)
        spec = self.steering_spec(request)
        steered = trace_steps(self.handle, prompt, direction, steering=spec, **kwargs) if spec is not None else None
        return original, steered

    def patching(self, source_prompt: str, target_prompt: str, *, seed: int = 0, duration_s: float = 2.0,
                 windows: int = 8, guidance_scale: float = 3.0):
        """(teacher-forced sweep, clip_fn) for a `PatchingView`: the two prompts' clips (same seed) are
        swept layer x window (log-probability of the source's codes), and ``clip_fn(row)`` generates
        that cell's patched clip with its source and target."""
        import workbench as wb
        from workbench.analysis import patching as P
        h = self.handle
        source, target = wb.generate(h, [source_prompt, target_prompt], duration_s=duration_s, seeds=[seed, seed],
                                     guidance_scale=guidance_scale).clips
        sweep = P.patching_sweep(h, P.ForcedInput.of(h, source), P.ForcedInput.of(h, target), windows=windows)

        def clip_fn(row) -> dict:
            _, patched = P.generate_patched(h, source_prompt, target_prompt, site=row["site"], layer=int(row["layer"]),
                                            window=(int(row["start"]), int(row["stop"])), seed=seed,
                                            duration_s=duration_s, guidance_scale=guidance_scale)
            return {"source": source, "target": target, "patched": patched}
        return sweep, clip_fn
