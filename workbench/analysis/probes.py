"""Linear probes on activations: a scikit-learn-style `LinearProbe` and a cross-validated `sweep`.

Both run on one batched torch solver (`workbench.analysis.solvers`): every fold (and the
shuffled-label control) of a layer is fitted in the same pass over the activations, which is what
makes 24 layers x 5 folds fast on a CPU. `sweep(..., baselines=...)` fits the same probe on
baseline features (`workbench.analysis.baselines`) beside the layers. Folds are grouped (`groups=`):
rows that share a prompt, a synthesiser seed or a source clip never sit on both sides of a split, and
each row's `margin` is its accuracy over the stronger of chance and the shuffled-label control.

    >>> import numpy as np
    >>> from workbench.analysis.probes import LinearProbe, SweepConfig, sweep
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(["jazz", "rock"], 50)
    >>> X = rng.normal(size=(100, 16)).astype(np.float32) + (y == "rock")[:, None]
    >>> LinearProbe().fit(X, y).score(X, y) > 0.9
    True
    >>> result = sweep({("resid", 0): X}, y, SweepConfig(folds=5))
    >>> sorted(result.rows[0])[:4]
    ['accuracy_mean', 'accuracy_std', 'baseline', 'chance']
    >>> result.grouping, result.folds  # a dict of arrays: each row its own group
    ('rows', 5)
"""
from __future__ import annotations

import json
import numbers
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, column_or_1d, validate_data

from workbench import validation
from workbench.analysis.saving import read_saved, save_paths
from workbench.analysis.solvers import (  # the input errors live with the checks that raise them
    KINDS,
    FoldPlan,
    LabelMismatchError,
    NonFiniteActivationsError,
    OneClassError,
    ProbeInputError,
    ProbeParams,
    TooFewGroupsError,
    TooFewSamplesError,
    check_inputs,
    fit_batch,
    fit_layers,
    fold_ids,
    macro_f1,
    table_groups,
)
from workbench.errors import CorruptFileError

__all__ = ["LinearProbe", "SweepConfig", "SweepResult", "sweep", "KINDS", "ProbeInputError", "OneClassError",
           "TooFewSamplesError", "TooFewGroupsError", "NonFiniteActivationsError", "LabelMismatchError",
           "ProbeNotFittedError"]


_fold_ids = fold_ids  # its old address (tests import it from here)


class ProbeNotFittedError(ProbeInputError, NotFittedError):
    """predict / score / save on a probe that was never fitted."""


def _check_params(probe) -> ProbeParams:
    """Validate the hyper-parameters (scikit-learn's rule: stored by __init__, checked by fit)."""
    return ProbeParams(probe.kind, probe.C, probe.alpha, probe.standardize, probe.max_iter)


class LinearProbe(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression (kind="logistic") or ridge on one-hot targets (kind="ridge").

    A scikit-learn estimator: `get_params` / `set_params` / `clone` work, hyper-parameters are
    checked by `fit`, learned state ends in `_`. C: inverse L2 strength for logistic
    (scikit-learn's convention); alpha: ridge strength on standardised features. `coef_`
    (n_classes, n_features) and `intercept_` are in activation space (standardisation folded in),
    one row per class even for two classes, so `X @ coef_.T + intercept_` gives the class scores.
    `decision_function` follows scikit-learn: (n,) for two classes (score of `classes_[1]` minus
    that of `classes_[0]`), (n, n_classes) otherwise. For ridge, `predict_proba` is a softmax of
    the scores: a convenience, not calibrated.

        >>> import numpy as np
        >>> X = np.r_[np.zeros((5, 3)), np.ones((5, 3))] + np.random.default_rng(0).normal(0, .1, (10, 3))
        >>> LinearProbe(kind="ridge").fit(X, [0] * 5 + [1] * 5).predict(X[:2]).tolist()
        [0, 0]
        >>> LinearProbe().set_params(C=0.5).get_params()["C"]
        0.5
    """

    def __init__(self, kind: str = "logistic", C: float = 1.0, alpha: float = 1.0,
                 standardize: bool = True, max_iter: int = 100):
        self.kind = kind
        self.C = C
        self.alpha = alpha
        self.standardize = standardize
        self.max_iter = max_iter

    def _validated_X(self, X, *, reset: bool) -> np.ndarray:
        """X as a numeric 2-D array, with our messages; feature count and names checked against fit."""
        array = check_array(X, dtype="numeric", ensure_2d=False, allow_nd=True, ensure_all_finite=False,
                            estimator=self)
        array, _ = check_inputs(array)
        if not reset and array.shape[1] != self.n_features_in_:
            raise LabelMismatchError(
                f"X has {array.shape[1]} features, but LinearProbe is expecting {self.n_features_in_} features "
                "as input: use activations from the same site, layer and pooling as the fit.")
        validate_data(self, X, reset=reset, skip_check_array=True)  # n_features_in_, feature_names_in_
        return array

    def fit(self, X, y) -> LinearProbe:
        """Fit on activations X (n_clips, n_features) and one label per row; returns self."""
        _check_params(self)
        if y is None:
            raise LabelMismatchError("LinearProbe requires y to be passed, but the target y is None: pass one "
                                     "label per row of X")
        X = self._validated_X(X, reset=True)
        y = column_or_1d(y, warn=True)
        X, y = check_inputs(X, y)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        Xt = torch.from_numpy(np.array(X, dtype=np.float32))
        Y = torch.nn.functional.one_hot(torch.as_tensor(codes), len(self.classes_)).float()
        info: dict = {}
        coef, intercept, mean, scale = fit_batch(_check_params(self), Xt, Y[:, None], torch.ones(1, len(Xt)), info)
        self._set_state(coef[0], intercept[0], mean[0], scale[0])
        self.n_iter_ = int(info.get("n_iter", 1))  # ridge: one closed-form solve
        return self

    def _set_state(self, coef, intercept, mean, scale):
        self.coef_ = np.ascontiguousarray(coef.T.numpy(), dtype=np.float32)  # (K, d)
        self.intercept_ = intercept.numpy().astype(np.float32)  # (K,)
        self.mean_ = mean.numpy().astype(np.float32)
        self.scale_ = scale.numpy().astype(np.float32)
        self.n_features_in_ = self.coef_.shape[1]

    @property
    def coef_standardized_(self) -> np.ndarray:
        """Weights on standardised features (comparable across features)."""
        return self.coef_ * self.scale_

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise ProbeNotFittedError("this probe is not fitted yet: call .fit(X, y) first, or LinearProbe.load(path)")

    def _class_scores(self, X) -> np.ndarray:
        """(n, n_classes) scores, `X @ coef_.T + intercept_`."""
        self._check_fitted()
        X = self._validated_X(X, reset=False)
        return X.astype(np.float32) @ self.coef_.T + self.intercept_

    def decision_function(self, X) -> np.ndarray:
        """Class scores: (n, n_classes), or (n,) for two classes (positive means `classes_[1]`)."""
        scores = self._class_scores(X)
        return scores[:, 1] - scores[:, 0] if scores.shape[1] == 2 else scores

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (softmax of the scores; for ridge a convenience, not calibrated)."""
        z = self._class_scores(X)
        z = np.exp(z - z.max(1, keepdims=True))
        return z / z.sum(1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        scores = self._class_scores(X)
        return self.classes_[scores.argmax(1)]

    def score(self, X, y, sample_weight=None) -> float:
        """Mean accuracy (scikit-learn's `ClassifierMixin.score`)."""
        return float(super().score(X, y, sample_weight=sample_weight))

    def save(self, path, **provenance) -> Path:
        """Write `<path>.safetensors` (coef, intercept, mean, scale) and a JSON sidecar `<path>.safetensors.json`
        (params, classes, provenance); returns the first. The name is kept as given: `rock_s1.0` ->
        `rock_s1.0.safetensors`; a name ending in `.safetensors` is used as is."""
        from safetensors.numpy import save_file
        self._check_fitted()
        path, sidecar = save_paths(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = json.dumps(dict(params=self.get_params(), classes=[c.item() for c in self.classes_],
                               provenance=provenance, format="workbench.probe/1"), default=str)
        save_file(dict(coef=self.coef_, intercept=self.intercept_, mean=self.mean_, scale=self.scale_), str(path),
                  metadata={"workbench": meta})
        sidecar.write_text(meta)
        return path

    @classmethod
    def load(cls, path, expect_n_features: int | None = None) -> LinearProbe:
        """Read a saved probe, by the name given to `save` or the full `.safetensors` name (older saves,
        with a `<stem>.json` sidecar, load too); refuse one fitted on another number of features."""
        path, tensors, meta, source = read_saved(path, "probe", ("coef", "intercept", "mean", "scale"))
        try:
            params, classes = dict(meta["params"]), np.asarray(meta["classes"])
            probe = cls(**params)
            _check_params(probe)
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptFileError(source, f"its metadata is not a probe's ({type(exc).__name__}: {exc}): "
                                           "re-save the probe") from exc
        coef = tensors["coef"]
        if coef.ndim != 2 or coef.shape[0] != len(classes):
            raise CorruptFileError(path, f"coef has shape {coef.shape} for {len(classes)} classes: re-save the probe")
        if expect_n_features is not None and coef.shape[1] != expect_n_features:
            raise LabelMismatchError(f"{path.name} reads {coef.shape[1]} features, not "
                                     f"{expect_n_features}: it was fitted on another model, site or pooling")
        probe.classes_ = classes
        probe.provenance = meta.get("provenance", {})
        probe._set_state(torch.from_numpy(coef.T.copy()),
                         *(torch.from_numpy(tensors[k]) for k in ("intercept", "mean", "scale")))
        return probe


@dataclass
class SweepResult:
    """Output of `sweep`: `rows` (one dict per site/layer, then one per baseline), `confusion[(site, layer)]`
    (true x predicted, out-of-fold counts, order `classes`), `probes[(site, layer)]` (fitted on all rows).

    A baseline's row has site = its name, layer None and baseline True (a layer's: baseline False), and
    is keyed (name, None); `best()` and `layer_rows` leave baselines out, `baseline(name)` reads one.
    Every row has `margin` (accuracy_mean - max(chance, control_accuracy_mean)); a layer's row also has
    `over_<name>` (accuracy_mean - baseline <name>'s accuracy_mean) for each baseline.
    label_column: the store column the labels came from (None when labels were passed). grouping: what
    the folds kept apart ("rows": each row its own group; a table column such as "prompt" or "seed";
    "given": groups passed per row); folds: how many folds ran; n_groups: how many groups there were.
    """
    rows: list[dict]
    classes: np.ndarray
    confusion: dict = field(default_factory=dict)
    probes: dict = field(default_factory=dict)
    label_column: str | None = None
    grouping: str = "rows"
    folds: int | None = None
    n_groups: int | None = None

    @property
    def layer_rows(self) -> list[dict]:
        return [r for r in self.rows if not r.get("baseline")]

    @property
    def baselines(self) -> dict[str, dict]:
        """{baseline name: its row}, in the order given to `sweep`."""
        return {r["site"]: r for r in self.rows if r.get("baseline")}

    def baseline(self, name: str) -> dict:
        """The row of baseline `name` (e.g. `result.baseline("input")["accuracy_mean"]`)."""
        if name not in self.baselines:
            have = ", ".join(map(repr, self.baselines)) or "none"
            raise ProbeInputError(f"no baseline {name!r} in this sweep (it has {have}): pass "
                                  f"baselines={{{name!r}: X}} to sweep")
        return self.baselines[name]

    def best(self, metric: str = "accuracy_mean") -> dict:
        """The best layer's row (baselines are never the best layer)."""
        return max(self.layer_rows, key=lambda r: r[metric])

    def column(self, name: str, site: str | None = None) -> list:
        """Values of `name` per layer row, or per row of `site` (a baseline's name gives its one value)."""
        return [r[name] for r in self.layer_rows if site is None] + [r[name] for r in self.rows if r["site"] == site]

    def __repr__(self) -> str:
        lines = [f"{'site':>6} {'layer':>5} {'acc':>6} {'±':>5} {'F1':>6} {'ctrl':>6} {'margin':>6}"]
        for r in self.rows:
            layer = "base" if r.get("baseline") else r["layer"]
            lines.append(f"{r['site']:>6} {layer:>5} {r['accuracy_mean']:6.3f} {r['accuracy_std']:5.3f} "
                         f"{r['macro_f1']:6.3f} {r.get('control_accuracy_mean', float('nan')):6.3f} "
                         f"{r.get('margin', float('nan')):+6.3f}")
        first = self.rows[0] if self.rows else {}
        chance = [f"chance (majority class) {first['chance']:.3f}"] if "chance" in first else []
        grouped = "each row its own group" if self.grouping == "rows" else f"grouped by {self.grouping}"
        folds = [f"{self.folds} folds, {grouped} ({self.n_groups} groups)"] if self.folds else []
        return "\n".join(lines + chance + folds)


def _iter_sources(source, layers, sites):
    """Yield ((site, layer), array) from a dict of arrays or an ActivationStore."""
    # an ActivationStore-like has .keys() of (site, layer) and .array(site, layer)
    get = source.__getitem__ if isinstance(source, dict) else (lambda key: source.array(*key))
    for site, layer in list(source if isinstance(source, dict) else source.keys()):
        if (layers is None or layer in layers) and (sites is None or site in sites):
            yield (site, layer), get((site, layer))


def _sweep_config(config, probe_kwargs: dict) -> SweepConfig:
    """`sweep`'s config (default `SweepConfig()`); a fitting setting passed as a probe setting is refused."""
    misplaced = sorted(set(probe_kwargs) & set(_SWEEP_CONFIG_FIELDS))
    if misplaced:
        shown = ", ".join(f"{name}={probe_kwargs[name]!r}" for name in misplaced)
        raise ProbeInputError(f"{', '.join(misplaced)} belong to the sweep's config: pass config=SweepConfig({shown})")
    unknown = sorted(set(probe_kwargs) - set(LinearProbe().get_params()))
    if unknown:
        raise ProbeInputError(f"sweep got unknown argument(s) {unknown}: pass the probe's settings "
                              f"({', '.join(sorted(LinearProbe().get_params()))}) or config=SweepConfig(...)")
    return validation.config_object(config, SweepConfig, "config", "config=SweepConfig(folds=5, seed=0)",
                                    error=ProbeInputError)


def _store_labels(source, label: str | None) -> tuple[list, str]:
    """The labels of an ActivationStore's table column `label` (default "label")."""
    column = label or "label"
    if isinstance(source, dict):
        raise LabelMismatchError(f"pass labels=... (one per row) when sweeping a dict of arrays; label={column!r} "
                                 "names a column of an ActivationStore's table")
    table = source.table
    labels = [row.get(column) for row in table]
    missing = sum(v is None for v in labels)
    if missing:
        columns = sorted({k for row in table for k in row} - {"row", "id"})
        where = "no row has" if missing == len(labels) else f"{missing} of {len(labels)} rows have no"
        raise LabelMismatchError(f"{where} a {column!r} label: the store's table has columns {columns}; pass "
                                 "label=<one of them>, or labels=... (one per row)")
    return labels, column


def _checked_baselines(baselines, labels, source) -> dict:
    """{name: (N, W) array} checked before any fit: one row per label, names apart from the source's sites."""
    if baselines is None:
        return {}
    if not isinstance(baselines, dict) or not all(isinstance(k, str) and k for k in baselines):
        raise ProbeInputError("baselines must be a dict of name -> (N, W) array, e.g. {'input': X_input}")
    taken = sorted(set(baselines) & {site for site, _ in (source if isinstance(source, dict) else source.keys())})
    if taken:
        raise ProbeInputError(f"baseline name(s) {taken} are also sites of the source: rename them (e.g. 'input')")
    return {name: check_inputs(X, labels, what=f"baseline {name!r} features")[0] for name, X in baselines.items()}


def _groups_of(source, groups, n: int) -> tuple[list | None, str]:
    """(a group key per row or None, what they are) for `sweep`'s `groups=`."""
    if isinstance(groups, str) and groups == "auto":
        if isinstance(source, dict):
            return None, "rows"  # a dict of arrays has no table to say what rows share
        return table_groups(source.table)
    if groups is None:
        return None, "rows"
    if isinstance(groups, str):
        if isinstance(source, dict):
            raise LabelMismatchError(f"groups={groups!r} names a column of an ActivationStore's table: for a dict of "
                                     "arrays pass one group per row (e.g. each row's prompt), or groups=None")
        values = [row.get(groups) for row in source.table]
        if any(v is None for v in values):
            columns = sorted({k for row in source.table for k in row} - {"row"})
            raise LabelMismatchError(f"{sum(v is None for v in values)} of {n} rows have no {groups!r}: the store's "
                                     f"table has columns {columns}; pass groups=<one of them>, or one group per row")
        return values, groups
    return list(groups), "given"


@dataclass(frozen=True)
class SweepConfig:
    """How `sweep` fits: folds, seed, the shuffled-label control, memory per fitted group, threads.

    folds: the most folds (the sweep runs `min(folds, groups in the smallest class)`). control: refit on the
    same folds with labels permuted once (the selectivity baseline). group_bytes: layers are fitted together in
    groups of about this many bytes. threads: torch intra-op threads for the fit (None: unchanged; on a CPU
    shared with other busy processes 1 thread was 3x faster than 2, which spin-wait).

        >>> SweepConfig(folds=3, seed=1).folds
        3
        >>> SweepConfig(folds=1)
        Traceback (most recent call last):
        ...
        workbench.analysis.solvers.ProbeInputError: folds=1: cross-validation needs folds >= 2 (e.g. folds=5)
    """

    folds: int = 5
    seed: int = 0
    control: bool = True
    group_bytes: int = 512 * 2**20
    threads: int | None = None

    def __post_init__(self):
        if isinstance(self.folds, bool) or not isinstance(self.folds, numbers.Integral) or self.folds < 2:
            raise ProbeInputError(f"folds={self.folds!r}: cross-validation needs folds >= 2 (e.g. folds=5)")
        object.__setattr__(self, "folds", int(self.folds))
        object.__setattr__(self, "seed", validation.integer(self.seed, "seed"))
        object.__setattr__(self, "control", validation.flag(self.control, "control"))
        object.__setattr__(self, "group_bytes", validation.positive_int(self.group_bytes, "group_bytes"))
        if self.threads is not None:
            object.__setattr__(self, "threads", validation.positive_int(self.threads, "threads"))


_SWEEP_CONFIG_FIELDS = ("folds", "seed", "control", "group_bytes", "threads")


def sweep(source, labels=None, config: SweepConfig | None = None, *, label: str | None = None, layers=None,
          sites=None, groups="auto", baselines: dict | None = None, **probe_kwargs) -> SweepResult:
    """Cross-validated probe accuracy per (site, layer), with a shuffled-label control and baselines.

    source: dict[(site, layer)] -> (N, H) array, or an ActivationStore (labels then default to its
    table's column `label`, default "label": `sweep(store, label="mode")`). config: a `SweepConfig` (folds,
    seed, control, group_bytes, threads; default `SweepConfig()`). probe_kwargs: the probe's settings
    (`LinearProbe`'s kind, C, alpha, standardize, max_iter), e.g. ``kind="ridge"``.
    groups: what rows share, kept on one side of every split: "auto" (default; for a store the first of
    its table's "source" (windows of one clip), "prompt", "seed" columns that groups rows, see
    `solvers.table_groups`; for a dict of arrays each row its own group), a column name of the store's
    table, one key per row, or None (each row its own group: row-wise folds).
    config.folds: the most folds; the sweep runs `min(folds, groups in the smallest class)` and refuses
    (TooFewGroupsError, naming the fix) when that is under 2. Folds are stratified where the groups
    allow and seeded; the control refits on the same folds with labels permuted once over the rows.
    `result.grouping` and `result.folds` say what ran. Each row's `margin` is accuracy_mean minus the
    stronger of chance (the majority-class rate) and the control; layer rows get `over_<baseline>`.
    baselines: {name: (N, W) array}, e.g. `{"input": input_embeddings(...), "prompt": prompt_embeddings(...)}`
    (`workbench.analysis.baselines`), fitted with the same probe, folds, seed and control; their rows
    come after the layers' (site = name, layer None, baseline True) and `best()` leaves them out.
    Returns a SweepResult; `print(result)` shows the table.

        >>> import numpy as np
        >>> y = np.repeat([0, 1], 20); X = np.random.default_rng(1).normal(size=(40, 8)) + y[:, None]
        >>> noise = np.random.default_rng(2).normal(size=(40, 4))
        >>> result = sweep({("resid", 3): X}, y, baselines={"input": noise})
        >>> result.best()["layer"], result.baseline("input")["accuracy_mean"] < 0.7
        (3, True)
        >>> clips = np.repeat(np.arange(10), 4)  # 4 windows of each of 10 clips: keep a clip's windows together
        >>> grouped = sweep({("resid", 3): X}, y, groups=clips)
        >>> grouped.grouping, grouped.folds, "margin" in grouped.rows[0]
        ('given', 5, True)
    """
    config = _sweep_config(config, probe_kwargs)
    label_column = None
    if labels is None:
        labels, label_column = _store_labels(source, label)
    elif label is not None:
        raise LabelMismatchError("pass labels=... or label=... (a column of the store's table), not both")
    labels = np.asarray(labels)
    probe = LinearProbe(**probe_kwargs)
    _check_params(probe)
    _, labels = check_inputs(np.zeros((len(labels), 1)), labels)
    baselines = _checked_baselines(baselines, labels, source)
    classes, codes = np.unique(labels, return_inverse=True)
    group_keys, grouping = _groups_of(source, groups, len(labels))
    plan = FoldPlan.make(codes, config.folds, config.seed, config.control, groups=group_keys, grouping=grouping)
    group_bytes = config.group_bytes

    threads_before = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        result = _sweep_groups(_iter_sources(source, layers, sites), labels, probe, plan, group_bytes,
                               SweepResult(rows=[], classes=classes, grouping=plan.grouping, folds=plan.folds,
                                           n_groups=plan.n_groups))
        if not result.rows:
            raise ProbeInputError(f"no activations matched layers={layers} sites={sites}")
        for name, X in baselines.items():
            _sweep_groups([((name, None), X)], labels, probe, plan, group_bytes, result, baseline=True)
    finally:
        torch.set_num_threads(threads_before)
    for name, base in result.baselines.items():  # each baseline beside every layer, in the layer's own row
        for row in result.layer_rows:
            row[f"over_{name}"] = row["accuracy_mean"] - base["accuracy_mean"]
    result.label_column = label_column
    return result


def _sweep_groups(keyed_arrays, labels, probe, plan: FoldPlan, group_bytes, result: SweepResult,
                  baseline: bool = False) -> SweepResult:
    group, group_size = [], 0
    for key, X in keyed_arrays:
        what = f"baseline {key[0]!r} features" if baseline else f"activations at {key[0]} layer {key[1]}"
        X, _ = check_inputs(X, labels, what=what)
        spread = float(np.ptp(X[: 4096], axis=0).max())
        if spread <= 1e-5 * (1.0 + float(np.abs(X[:1]).max())):
            warnings.warn(f"{what} are the same for every row: the probe can only guess (did every input encode "
                          "to the same codes, e.g. through a random codec?)", stacklevel=3)
        if group and (group_size + X.nbytes > group_bytes or X.shape != group[0][1].shape):
            _sweep_group(group, probe, plan, result, baseline)
            group, group_size = [], 0
        group.append((key, X))
        group_size += X.nbytes
    if group:
        _sweep_group(group, probe, plan, result, baseline)
    return result


def _sweep_group(group, probe, plan: FoldPlan, result: SweepResult, baseline: bool) -> None:
    """Fit every fold/control/full fit of a group of same-shaped arrays together; append to result."""
    buf = np.empty((len(group), *group[0][1].shape), dtype=np.float32)  # one copy, also of read-only memmaps
    for i, (_, x) in enumerate(group):
        buf[i] = x
    coef, intercept, mean, scale, pred = fit_layers(torch.from_numpy(buf), plan.Y, plan.M, _check_params(probe))
    for i, ((site, layer), _) in enumerate(group):
        accs, ctrl, conf = plan.scores(pred[i])
        layer = None if baseline else int(layer)
        row = dict(site=site, layer=layer, baseline=baseline, accuracy_mean=float(np.mean(accs)),
                   accuracy_std=float(np.std(accs)), macro_f1=macro_f1(conf), n=len(plan.codes), chance=plan.chance)
        if ctrl:
            row["control_accuracy_mean"] = float(np.mean(ctrl))
            row["selectivity"] = row["accuracy_mean"] - row["control_accuracy_mean"]
        row["margin"] = row["accuracy_mean"] - max(plan.chance, row.get("control_accuracy_mean", plan.chance))
        row.update(folds=plan.folds, grouping=plan.grouping)
        result.rows.append(row)
        result.confusion[(site, layer)] = conf
        full = LinearProbe(**probe.get_params())
        full.classes_ = result.classes
        full._set_state(coef[i, -1], intercept[i, -1], mean[i, -1], scale[i, -1])
        result.probes[(site, layer)] = full
