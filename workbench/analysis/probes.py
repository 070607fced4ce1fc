"""Linear probes on activations: a scikit-learn-style `LinearProbe` and a cross-validated `sweep`.

Both run on one batched torch solver: every fold (and the shuffled-label control) of a layer is
fitted in the same pass over the activations, which is what makes 24 layers x 5 folds fast on a CPU.

    >>> import numpy as np
    >>> from workbench.analysis.probes import LinearProbe, sweep
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(["jazz", "rock"], 50)
    >>> X = rng.normal(size=(100, 16)).astype(np.float32) + (y == "rock")[:, None]
    >>> LinearProbe().fit(X, y).score(X, y) > 0.9
    True
    >>> result = sweep({("resid", 0): X}, y, folds=5)
    >>> sorted(result.rows[0])[:3]
    ['accuracy_mean', 'accuracy_std', 'control_accuracy_mean']
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

from workbench.analysis.directions import read_saved, save_paths
from workbench.errors import BadInputError, CorruptFileError, NotFiniteError

__all__ = ["LinearProbe", "SweepResult", "sweep", "KINDS", "ProbeInputError", "OneClassError",
           "TooFewSamplesError", "NonFiniteActivationsError", "LabelMismatchError", "ProbeNotFittedError"]


class ProbeInputError(BadInputError):
    """Activations or labels that a probe cannot be fitted on."""


class OneClassError(ProbeInputError):
    pass


class TooFewSamplesError(ProbeInputError):
    pass


class NonFiniteActivationsError(ProbeInputError, NotFiniteError):
    pass


class LabelMismatchError(ProbeInputError):
    pass


def _check_inputs(X, y=None, *, folds: int | None = None, what: str = "activations"):
    X = np.asarray(X)
    if X.ndim != 2:
        hint = ("for a store collected with rows='both' pass store.arrays(cfg_row='cond')" if X.ndim == 3
                else "Reshape your data: X.reshape(1, -1) for one clip, X.reshape(-1, 1) for one feature"
                if X.ndim == 1 else "pool per-step captures first (e.g. mean over time)")
        raise ProbeInputError(f"{what} must be 2-D (clips, features); got shape {X.shape}: {hint}")
    if not np.isfinite(X).all():
        bad = int((~np.isfinite(X).all(axis=1)).sum())
        raise NonFiniteActivationsError(
            f"{what} contain NaN/inf in {bad} of {len(X)} rows: drop those rows (e.g. "
            "`keep = np.isfinite(X).all(1)`) or re-collect them; a model run in float16 can overflow, "
            "try dtype=torch.float32.")
    if y is None:
        return X, None
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(X):
        raise LabelMismatchError(f"got {len(y)} labels for {len(X)} rows of {what}: pass one label "
                                 "per row, in the same order (a store's `table` column keeps them aligned).")
    if len(y) == 0:
        raise TooFewSamplesError(f"no rows of {what}: collect some clips first")
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise OneClassError(f"all {len(y)} labels are {classes[0].item()!r} (one class): a probe needs at least "
                            "two classes; add clips of another label.")
    if folds is not None and counts.min() < folds:
        low = ", ".join(f"{c.item()!r}: {k}" for c, k in zip(classes, counts) if k < folds)
        fewer = f" or pass folds={int(counts.min())}" if counts.min() >= 2 else ""
        raise TooFewSamplesError(f"{folds}-fold cross-validation needs at least {folds} clips per class; "
                                 f"have {low}. Collect more clips of those labels{fewer}.")
    return X, y


def _standardize_stats(X: torch.Tensor, masks: torch.Tensor, standardize: bool):
    """Per-fit mean and scale from the training rows: X (..., n, d), masks (F, n) -> (..., F, d)."""
    n_f = masks.sum(1, keepdim=True)
    if not standardize:
        shape = (*X.shape[:-2], len(masks), X.shape[-1])
        return torch.zeros(shape), torch.ones(shape)
    shift = X.mean(-2, keepdim=True)  # centre first: E[x^2] - E[x]^2 cancels badly on large offsets
    centred = X - shift
    mean = masks @ centred / n_f
    var = (masks @ (centred * centred)) / n_f - mean * mean
    scale = var.clamp_min(0).sqrt()
    return mean + shift, torch.where(scale > 1e-6 * (1 + shift.abs()), scale, torch.ones_like(scale))


def _fit_logistic(X, Y, masks, C, standardize, max_iter=100, tol=1e-4, info: dict | None = None):
    """Fit L x F multinomial logistic regressions at once.

    X: (L, n, d) activations of L layers; Y: one-hot targets (n, F, K); masks: training rows (F, n).
    Returns coef (L, F, d, K) in activation space, intercept (L, F, K), mean, scale (L, F, d).
    Objective per fit (scikit-learn's): mean cross-entropy over its training rows + |W|^2 / (2 C n_train).
    Folds differ only in which rows count, so one batched X @ W per step serves every fit.
    info: if given, receives "n_iter" (L-BFGS iterations run).
    """
    (F, n), (L, _, d), K = masks.shape, X.shape, Y.shape[2]
    mean, scale = _standardize_stats(X, masks, standardize)
    shift = X.mean(1, keepdim=True)  # fit on centred rows so large activation offsets don't cancel in float32
    X, mean_c = X - shift, mean - shift
    n_f = masks.sum(1)
    weights = torch.zeros(L, F, d, K, requires_grad=True)
    bias = torch.zeros(L, F, K, requires_grad=True)
    opt = torch.optim.LBFGS([weights, bias], lr=1, max_iter=max_iter, history_size=10,
                            tolerance_grad=tol, tolerance_change=1e-9, line_search_fn="strong_wolfe")
    row_w = (masks / n_f[:, None]).T  # (n, F): each training row's weight in its fit's mean

    def to_raw(centre):  # fold the standardisation into the weights: activation-space coef and intercept
        raw = weights / scale[..., None]
        return raw, bias - torch.einsum("lfd,lfdk->lfk", centre, raw)

    target = Y.argmax(-1).expand(L, n, F)[..., None]  # (L, n, F, 1) class index per row and fit

    def closure():
        opt.zero_grad()
        raw, offset = to_raw(mean_c)
        logits = torch.baddbmm(offset.reshape(L, 1, F * K), X,
                               raw.permute(0, 2, 1, 3).reshape(L, d, F * K)).view(L, n, F, K)
        ce = torch.logsumexp(logits, -1) - logits.gather(-1, target)[..., 0]  # (L, n, F)
        loss = (ce * row_w).sum() + ((weights ** 2).sum(-1).sum(-1) / (2 * C * n_f)).sum()
        loss.backward()
        return loss

    opt.step(closure)
    if info is not None:
        info["n_iter"] = int(opt.state[weights].get("n_iter", 1))
    with torch.no_grad():
        return (*[t.detach() for t in to_raw(mean)], mean, scale)


def _fit_ridge(X, Y, masks, alpha, standardize):
    """Fit F ridge regressions on one-hot targets Y (n, F, K) in closed form (intercept not penalised)."""
    mean, scale = _standardize_stats(X, masks, standardize)
    n_f = masks.sum(1)
    gram_all = X.T @ X
    coefs, intercepts = [], []
    for f in range(len(masks)):
        m = masks[f].bool()
        if m.all():
            gram = gram_all
        else:
            rest = X[~m]
            gram = gram_all - rest.T @ rest
        # Centred Gram of the standardised training rows, without materialising them.
        cov = (gram - n_f[f] * torch.outer(mean[f], mean[f])) / torch.outer(scale[f], scale[f])
        y_mean = Y[m, f].mean(0)
        xty = (X[m].T @ (Y[m, f] - y_mean)) / scale[f][:, None]
        v = torch.linalg.solve(cov + alpha * torch.eye(len(cov)), xty)
        raw = v / scale[f][:, None]
        coefs.append(raw)
        intercepts.append(y_mean - mean[f] @ raw)
    return torch.stack(coefs), torch.stack(intercepts), mean, scale


def _fit_batch(kind, X, Y, masks, C, alpha, standardize, max_iter, info=None):
    """Dispatch to the solver; Y: one-hot targets (n, F, K), masks: training rows (F, n)."""
    if kind == "logistic":
        with torch.enable_grad():
            return [t[0] for t in _fit_logistic(X[None], Y, masks, C, standardize, max_iter=max_iter, info=info)]
    with torch.no_grad():
        return _fit_ridge(X, Y, masks, alpha, standardize)


KINDS = ("logistic", "ridge")


class ProbeNotFittedError(ProbeInputError, NotFittedError):
    """predict / score / save on a probe that was never fitted."""


def _check_params(probe) -> None:
    """Validate the hyper-parameters (scikit-learn's rule: stored by __init__, checked by fit)."""
    if probe.kind not in KINDS:
        raise ProbeInputError(f"kind={probe.kind!r}: use 'logistic' or 'ridge'")
    for name, low, low_ok in (("C", 0.0, False), ("alpha", 0.0, True)):
        value = getattr(probe, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) \
                or value < low or (value == low and not low_ok):
            bound = ">= 0" if low_ok else "> 0"
            raise ProbeInputError(f"{name}={value!r}: pass a finite number {bound} (e.g. {name}=1.0)")
    if isinstance(probe.max_iter, bool) or not isinstance(probe.max_iter, numbers.Integral) or probe.max_iter < 1:
        raise ProbeInputError(f"max_iter={probe.max_iter!r}: pass a whole number >= 1 (e.g. max_iter=100)")
    if not isinstance(probe.standardize, (bool, np.bool_)):
        raise ProbeInputError(f"standardize={probe.standardize!r}: pass True or False")


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
        array, _ = _check_inputs(array)
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
        X, y = _check_inputs(X, y)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        Xt = torch.from_numpy(np.array(X, dtype=np.float32))
        Y = torch.nn.functional.one_hot(torch.as_tensor(codes), len(self.classes_)).float()
        info: dict = {}
        coef, intercept, mean, scale = _fit_batch(self.kind, Xt, Y[:, None], torch.ones(1, len(Xt)),
                                                  self.C, self.alpha, self.standardize, self.max_iter, info)
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
    """Output of `sweep`: `rows` (one dict per site/layer), `confusion[(site, layer)]` (true x predicted,
    out-of-fold counts, order `classes`), `probes[(site, layer)]` (fitted on all rows)."""
    rows: list[dict]
    classes: np.ndarray
    confusion: dict = field(default_factory=dict)
    probes: dict = field(default_factory=dict)

    def best(self, metric: str = "accuracy_mean") -> dict:
        return max(self.rows, key=lambda r: r[metric])

    def column(self, name: str, site: str | None = None) -> list:
        return [r[name] for r in self.rows if site is None or r["site"] == site]

    def __repr__(self) -> str:
        head = f"{'site':>6} {'layer':>5} {'acc':>6} {'±':>5} {'F1':>6} {'ctrl':>6}"
        lines = [head] + [f"{r['site']:>6} {r['layer']:>5} {r['accuracy_mean']:6.3f} {r['accuracy_std']:5.3f} "
                          f"{r['macro_f1']:6.3f} {r.get('control_accuracy_mean', float('nan')):6.3f}"
                          for r in self.rows]
        return "\n".join(lines)


def _macro_f1(conf: np.ndarray) -> float:
    tp = np.diag(conf).astype(float)
    denom = conf.sum(0) + conf.sum(1)
    return float(np.mean(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)))


def _fold_ids(codes: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Stratified fold index per row (each class dealt round-robin after a seeded shuffle)."""
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(codes), dtype=np.int64)
    start = 0
    for c in np.unique(codes):
        idx = rng.permutation(np.flatnonzero(codes == c))
        fold_of[idx] = (np.arange(len(idx)) + start) % folds
        start += len(idx)  # rotate so small classes don't all land in fold 0
    return fold_of


def _iter_sources(source, layers, sites):
    """Yield ((site, layer), array) from a dict of arrays or an ActivationStore."""
    if isinstance(source, dict):
        keys = list(source)
        get = source.__getitem__
    else:  # ActivationStore-like: .keys() of (site, layer), .array(site, layer)
        keys = list(source.keys())
        get = lambda k: source.array(*k)  # noqa: E731
    for site, layer in keys:
        if (layers is None or layer in layers) and (sites is None or site in sites):
            yield (site, layer), get((site, layer))


def sweep(source, labels=None, *, layers=None, sites=None, folds: int = 5, control: bool = True,
          kind: str = "logistic", seed: int = 0, label_column: str = "label",
          group_bytes: int = 512 * 2**20, threads: int | None = None, **probe_kwargs) -> SweepResult:
    """Cross-validated probe accuracy per (site, layer), with a shuffled-label control.

    source: dict[(site, layer)] -> (N, H) array, or an ActivationStore (labels then default to its
    table's `label_column`). Folds are stratified and seeded; the control refits on the same folds
    with labels permuted once. Layers are fitted together in groups of about `group_bytes`.
    threads: torch intra-op threads for the fit (None: unchanged; on a CPU shared with other busy
    processes 1 thread was 3x faster than 2, which spin-wait).
    Returns a SweepResult; `print(result)` shows the table.

        >>> import numpy as np
        >>> y = np.repeat([0, 1], 20); X = np.random.default_rng(1).normal(size=(40, 8)) + y[:, None]
        >>> sweep({("resid", 3): X}, y).best()["layer"]
        3
    """
    if labels is None:
        if isinstance(source, dict):
            raise LabelMismatchError("pass labels=... (one per row) when sweeping a dict of arrays")
        labels = [row.get(label_column) for row in source.table]
    labels = np.asarray(labels)
    probe = LinearProbe(kind=kind, **probe_kwargs)
    _check_params(probe)
    if folds < 2:
        raise ProbeInputError(f"folds={folds}: cross-validation needs folds >= 2")
    _, labels = _check_inputs(np.zeros((len(labels), 1)), labels, folds=folds)
    classes, codes = np.unique(labels, return_inverse=True)
    K = len(classes)
    fold_of = _fold_ids(codes, folds, seed)
    shuffled = np.random.default_rng(seed + 1).permutation(codes)
    masks = [fold_of != k for k in range(folds)]
    fit_codes = [codes] * folds + ([shuffled] * folds if control else []) + [codes]
    M = torch.as_tensor(np.stack(masks + (masks if control else []) + [np.ones(len(codes), bool)]),
                        dtype=torch.float32)
    Y = torch.stack([torch.nn.functional.one_hot(torch.as_tensor(c), K).float() for c in fit_codes], 1)

    threads_before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        return _sweep_groups(source, labels, layers, sites, Y, M, probe, fold_of, codes, shuffled, folds,
                             control, classes, group_bytes)
    finally:
        torch.set_num_threads(threads_before)


def _sweep_groups(source, labels, layers, sites, Y, M, probe, fold_of, codes, shuffled, folds, control,
                  classes, group_bytes):
    result = SweepResult(rows=[], classes=classes)
    group, group_size = [], 0
    for key, X in _iter_sources(source, layers, sites):
        X, _ = _check_inputs(X, labels, what=f"activations at {key[0]} layer {key[1]}")
        spread = float(np.ptp(X[: 4096], axis=0).max())
        if spread <= 1e-5 * (1.0 + float(np.abs(X[:1]).max())):
            warnings.warn(f"activations at {key[0]} layer {key[1]} are the same for every row: the probe can only "
                          "guess (did every input encode to the same codes, e.g. through a random codec?)",
                          stacklevel=2)
        if group and (group_size + X.nbytes > group_bytes or X.shape != group[0][1].shape):
            _sweep_group(group, Y, M, probe, fold_of, codes, shuffled, folds, control, result)
            group, group_size = [], 0
        group.append((key, X))
        group_size += X.nbytes
    if group:
        _sweep_group(group, Y, M, probe, fold_of, codes, shuffled, folds, control, result)
    if not result.rows:
        raise ProbeInputError(f"no activations matched layers={layers} sites={sites}")
    return result


def _sweep_group(group, Y, M, probe, fold_of, codes, shuffled, folds, control, result):
    """Fit every fold/control/full fit of a group of same-shaped layers together; append to result."""
    buf = np.empty((len(group), *group[0][1].shape), dtype=np.float32)  # one copy, also of read-only memmaps
    for i, (_, x) in enumerate(group):
        buf[i] = x
    X = torch.from_numpy(buf)
    if probe.kind == "logistic":
        with torch.enable_grad():
            coef, intercept, mean, scale = _fit_logistic(X, Y, M, probe.C, probe.standardize,
                                                         max_iter=probe.max_iter)
    else:
        with torch.no_grad():
            fits = [_fit_ridge(x, Y, M, probe.alpha, probe.standardize) for x in X]
            coef, intercept, mean, scale = (torch.stack(t) for t in zip(*fits))
    with torch.no_grad():
        pred = (torch.einsum("lnd,lfdk->lnfk", X, coef) + intercept[:, None]).argmax(-1).numpy()
    K = coef.shape[-1]
    for i, ((site, layer), _) in enumerate(group):
        accs, ctrl, conf = [], [], np.zeros((K, K), dtype=np.int64)
        for k in range(folds):
            test = fold_of == k
            accs.append(float((pred[i, test, k] == codes[test]).mean()))
            np.add.at(conf, (codes[test], pred[i, test, k]), 1)
            if control:
                ctrl.append(float((pred[i, test, folds + k] == shuffled[test]).mean()))
        row = dict(site=site, layer=int(layer), accuracy_mean=float(np.mean(accs)),
                   accuracy_std=float(np.std(accs)), macro_f1=_macro_f1(conf), n=len(codes))
        if control:
            row["control_accuracy_mean"] = float(np.mean(ctrl))
            row["selectivity"] = row["accuracy_mean"] - row["control_accuracy_mean"]
        result.rows.append(row)
        result.confusion[(site, layer)] = conf
        full = LinearProbe(**probe.get_params())
        full.classes_ = result.classes
        full._set_state(coef[i, -1], intercept[i, -1], mean[i, -1], scale[i, -1])
        result.probes[(site, layer)] = full
