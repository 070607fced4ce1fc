"""The batched solvers under `LinearProbe` and `sweep`, and the cross-validation folds they run on.

Folds are grouped: rows that share something that could carry their label (the prompt text, the
synthesiser seed, the source clip of a window) never sit on both sides of a split, and the number of
folds is `min(folds, groups in the smallest class)` (`fold_count`). Rows with no group are each
their own group (`fold_ids`, the row-wise stratified folds).

Every fold (and the shuffled-label control, and the final fit on all rows) of a group of
same-shaped layers is one batch: logistic regression shares each L-BFGS step's `X @ W` across the
fits, ridge solves each fit's normal equations from one Gram matrix. A fit is described by a mask
over the rows (its training rows) and one-hot targets, so folds differ only in which rows count.

    >>> import numpy as np, torch
    >>> codes = np.repeat([0, 1], 10)
    >>> fold_of = fold_ids(codes, folds=2, seed=0)
    >>> np.bincount(fold_of).tolist()
    [10, 10]
    >>> X = torch.as_tensor(np.random.default_rng(0).normal(size=(1, 20, 3)) + codes[:, None], dtype=torch.float32)
    >>> masks = torch.as_tensor(np.stack([fold_of != 0, fold_of != 1]), dtype=torch.float32)
    >>> Y = torch.nn.functional.one_hot(torch.as_tensor(codes), 2).float()[:, None].expand(20, 2, 2)
    >>> coef, intercept, mean, scale, pred = fit_layers(X, Y, masks, ProbeParams("logistic", C=1.0))
    >>> coef.shape, pred.shape  # (layers, fits, features, classes), (layers, rows, fits)
    (torch.Size([1, 2, 3, 2]), (1, 20, 2))
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import torch

from workbench.errors import BadInputError, NotFiniteError

__all__ = ["KINDS", "ProbeParams", "standardize_stats", "fit_logistic", "fit_ridge", "fit_batch", "fit_layers",
           "fold_ids",
           "grouped_fold_ids", "fold_count", "table_groups", "GROUP_COLUMNS", "macro_f1", "FoldPlan", "check_inputs",
           "ProbeInputError", "OneClassError", "TooFewSamplesError", "TooFewGroupsError", "NonFiniteActivationsError",
           "LabelMismatchError"]

# Table columns that two rows can share, coarsest sharing first: the windows of one source clip, the
# seeds of one prompt, the clips of one synthesiser seed. `table_groups` groups by the first that applies.
GROUP_COLUMNS = ("source", "prompt", "seed")


class ProbeInputError(BadInputError):
    """Activations or labels that a probe cannot be fitted on."""


class OneClassError(ProbeInputError):
    pass


class TooFewSamplesError(ProbeInputError):
    pass


class TooFewGroupsError(TooFewSamplesError):
    """A class with fewer than two groups: no fold could test it on a group it was not trained on."""


class NonFiniteActivationsError(ProbeInputError, NotFiniteError):
    pass


class LabelMismatchError(ProbeInputError):
    pass


def check_inputs(X, y=None, *, folds: int | None = None, what: str = "activations"):
    """X as a 2-D finite array and y as one label per row of at least two classes (each with `folds` rows)."""
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


KINDS = ("logistic", "ridge")


@dataclass(frozen=True)
class ProbeParams:
    """A linear probe's hyper-parameters, checked when made (what every solver here reads).

    kind: "logistic" (multinomial, L-BFGS) or "ridge" (one-hot targets). C: inverse L2 strength for logistic
    (scikit-learn's convention); alpha: ridge strength on standardised features; max_iter: L-BFGS steps.

        >>> ProbeParams("ridge", alpha=0.5).alpha
        0.5
        >>> ProbeParams("lasso")
        Traceback (most recent call last):
        ...
        workbench.analysis.solvers.ProbeInputError: kind='lasso': use 'logistic' or 'ridge'
    """

    kind: str = "logistic"
    C: float = 1.0
    alpha: float = 1.0
    standardize: bool = True
    max_iter: int = 100

    def __post_init__(self):
        if not isinstance(self.kind, str) or self.kind not in KINDS:
            raise ProbeInputError(f"kind={self.kind!r}: use 'logistic' or 'ridge'")
        for name, low, low_ok in (("C", 0.0, False), ("alpha", 0.0, True)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) \
                    or value < low or (value == low and not low_ok):
                bound = ">= 0" if low_ok else "> 0"
                raise ProbeInputError(f"{name}={value!r}: pass a finite number {bound} (e.g. {name}=1.0)")
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, numbers.Integral) or self.max_iter < 1:
            raise ProbeInputError(f"max_iter={self.max_iter!r}: pass a whole number >= 1 (e.g. max_iter=100)")
        if not isinstance(self.standardize, (bool, np.bool_)):
            raise ProbeInputError(f"standardize={self.standardize!r}: pass True or False")


def standardize_stats(X: torch.Tensor, masks: torch.Tensor, standardize: bool):
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


def fit_logistic(X, Y, masks, C, standardize, max_iter=100, tol=1e-4, info: dict | None = None):
    """Fit L x F multinomial logistic regressions at once.

    X: (L, n, d) activations of L layers; Y: one-hot targets (n, F, K); masks: training rows (F, n).
    Returns coef (L, F, d, K) in activation space, intercept (L, F, K), mean, scale (L, F, d).
    Objective per fit (scikit-learn's): mean cross-entropy over its training rows + |W|^2 / (2 C n_train).
    Folds differ only in which rows count, so one batched X @ W per step serves every fit.
    info: if given, receives "n_iter" (L-BFGS iterations run).
    """
    (F, n), (L, _, d), K = masks.shape, X.shape, Y.shape[2]
    mean, scale = standardize_stats(X, masks, standardize)
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


def fit_ridge(X, Y, masks, alpha, standardize):
    """Fit F ridge regressions on one-hot targets Y (n, F, K) in closed form (intercept not penalised)."""
    mean, scale = standardize_stats(X, masks, standardize)
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


def fit_batch(params: ProbeParams, X, Y, masks, info=None):
    """F fits of one layer X (n, d); Y: one-hot targets (n, F, K), masks: training rows (F, n)."""
    if params.kind == "logistic":
        with torch.enable_grad():
            return [t[0] for t in fit_logistic(X[None], Y, masks, params.C, params.standardize,
                                               max_iter=params.max_iter, info=info)]
    with torch.no_grad():
        return fit_ridge(X, Y, masks, params.alpha, params.standardize)


def fit_layers(X, Y, masks, params: ProbeParams):
    """F fits of each of L same-shaped layers X (L, n, d): (coef, intercept, mean, scale, predicted class
    (L, n, F) as a numpy array), every row predicted by every fit (out-of-fold where its mask is 0)."""
    if params.kind == "logistic":
        with torch.enable_grad():
            coef, intercept, mean, scale = fit_logistic(X, Y, masks, params.C, params.standardize,
                                                        max_iter=params.max_iter)
    else:
        with torch.no_grad():
            fits = [fit_ridge(x, Y, masks, params.alpha, params.standardize) for x in X]
            coef, intercept, mean, scale = (torch.stack(t) for t in zip(*fits))
    with torch.no_grad():
        pred = (torch.einsum("lnd,lfdk->lnfk", X, coef) + intercept[:, None]).argmax(-1).numpy()
    return coef, intercept, mean, scale, pred


def fold_ids(codes: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Stratified fold index per row (each class dealt round-robin after a seeded shuffle)."""
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(codes), dtype=np.int64)
    start = 0
    for c in np.unique(codes):
        idx = rng.permutation(np.flatnonzero(codes == c))
        fold_of[idx] = (np.arange(len(idx)) + start) % folds
        start += len(idx)  # rotate so small classes don't all land in fold 0
    return fold_of


def group_codes(groups, n: int) -> np.ndarray:
    """One integer per row for any per-row group keys (strings, numbers, tuples)."""
    keys = list(groups)
    if len(keys) != n:
        raise LabelMismatchError(f"got {len(keys)} groups for {n} rows: pass one group per row, in the rows' order "
                                 "(e.g. each row's prompt or source clip id), or groups=None for one group per row")
    if any(k is None or (isinstance(k, float) and np.isnan(k)) for k in keys):
        bad = sum(k is None or (isinstance(k, float) and np.isnan(k)) for k in keys)
        raise LabelMismatchError(f"{bad} of {n} rows have no group (None or NaN): give every row one")
    index: dict = {}
    return np.array([index.setdefault(_hashable(k), len(index)) for k in keys], dtype=np.int64)


def _hashable(key):
    if isinstance(key, np.generic):
        return key.item()
    if isinstance(key, (list, np.ndarray)):
        return tuple(_hashable(k) for k in key)
    if isinstance(key, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in key.items()))
    return key


def table_groups(table: list[dict], columns=GROUP_COLUMNS) -> tuple[np.ndarray | None, str]:
    """(group per row, the column grouped by) from a store's table, or (None, "rows") when no column applies.

    A column applies when every row has it, it takes at least two values (a value every row shares,
    like a default seed of 0, tells no row apart) and some value repeats (one value per row would be
    row-wise anyway). The first in `columns` that applies wins: GROUP_COLUMNS lists the coarsest first.

        >>> rows = [dict(prompt=p, seed=s) for p in ("jazz music", "a jazz song") for s in (0, 1)]
        >>> table_groups(rows)[1], table_groups(rows)[0].tolist()
        ('prompt', [0, 0, 1, 1])
    """
    for column in columns:
        values = [row.get(column) for row in table]
        if any(v is None for v in values):
            continue
        codes = group_codes(values, len(values))
        if 2 <= codes.max() + 1 < len(codes):
            return codes, column
    return None, "rows"


def fold_count(codes: np.ndarray, group_of: np.ndarray | None, folds: int = 5, grouping: str = "rows") -> int:
    """`min(folds, groups in the smallest class)`; TooFewGroupsError, naming the fix, when that is under 2.

    group_of: a group per row (None: each row its own group). grouping: what the groups are, for the message.

        >>> fold_count(np.array([0, 0, 0, 1, 1, 1]), np.array([0, 0, 1, 2, 3, 4]))
        2
    """
    group_of = np.arange(len(codes)) if group_of is None else np.asarray(group_of)
    per_class = {c: len(np.unique(group_of[codes == c])) for c in np.unique(codes)}
    smallest = min(per_class.values())
    if smallest >= 2:
        return int(min(folds, smallest))
    low = [c for c, k in per_class.items() if k < 2]
    if grouping == "rows":
        raise TooFewGroupsError(f"{len(low)} class(es) have a single row: cross-validation needs at least 2 rows "
                                "per class. Collect more clips of those labels.")
    unit = "group" if grouping == "given" else grouping
    fix = ("collect at least 2 wordings per class (e.g. PromptSet(..., templates=('{label} music', "
           "'a {label} song')))" if grouping == "prompt" else f"collect rows of at least 2 {unit}s per class")
    raise TooFewGroupsError(
        f"{len(low)} class(es) have rows of a single {unit} (no {unit} may be in both a training and a test fold): "
        f"the probe could read the {unit} instead of the label. To fix it, {fix}, or pass groups=None to fold rows "
        f"one by one (rows sharing a {unit} may then be in both training and test folds).")


def grouped_fold_ids(codes: np.ndarray, group_of: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold index per row, every group in one fold, classes stratified where the groups allow
    (scikit-learn's StratifiedGroupKFold, seeded); one group per row gives `fold_ids`' folds."""
    group_of = np.asarray(group_of)
    if len(np.unique(group_of)) == len(group_of):
        return fold_ids(codes, folds, seed)
    from sklearn.model_selection import StratifiedGroupKFold  # sklearn is imported by the probes anyway

    fold_of = np.empty(len(codes), dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(splitter.split(np.zeros((len(codes), 1)), codes, group_of)):
        fold_of[test] = k
    return np.unique(fold_of, return_inverse=True)[1]  # a fold left empty would read NaN: number the rest


def macro_f1(conf: np.ndarray) -> float:
    tp = np.diag(conf).astype(float)
    denom = conf.sum(0) + conf.sum(1)
    return float(np.mean(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)))


@dataclass(frozen=True)
class FoldPlan:
    """The fits of a cross-validated sweep: the folds, then (with a control) the same folds on labels
    permuted once, then one fit on all rows. Y: one-hot targets (n, F, K); M: training rows (F, n).
    group_of: the group of each row (None: each row its own); grouping: what the groups are."""
    codes: np.ndarray
    fold_of: np.ndarray
    folds: int
    shuffled: np.ndarray | None
    Y: torch.Tensor
    M: torch.Tensor
    group_of: np.ndarray | None = None
    grouping: str = "rows"

    @classmethod
    def make(cls, codes: np.ndarray, folds: int, seed: int, control: bool, groups=None,
             grouping: str | None = None) -> FoldPlan:
        """folds: the most folds; the plan has `fold_count(codes, groups, folds)`. groups: one key per row
        (None: each row its own group, the row-wise stratified folds of `fold_ids`)."""
        group_of = None if groups is None else group_codes(groups, len(codes))
        grouping = grouping or ("rows" if group_of is None else "groups")
        folds = fold_count(codes, group_of, folds, grouping)
        fold_of = fold_ids(codes, folds, seed) if group_of is None else grouped_fold_ids(codes, group_of, folds, seed)
        folds = int(fold_of.max()) + 1
        # the control permutes labels over rows, so it reads chance whenever the folds keep groups apart
        shuffled = np.random.default_rng(seed + 1).permutation(codes) if control else None
        masks = [fold_of != k for k in range(folds)] * (2 if control else 1) + [np.ones(len(codes), bool)]
        fit_codes = [codes] * folds + ([shuffled] * folds if control else []) + [codes]
        n_classes = int(codes.max()) + 1
        Y = torch.stack([torch.nn.functional.one_hot(torch.as_tensor(c), n_classes).float() for c in fit_codes], 1)
        return cls(codes, fold_of, folds, shuffled, Y, torch.as_tensor(np.stack(masks), dtype=torch.float32),
                   group_of, grouping)

    @property
    def chance(self) -> float:
        """The accuracy of always answering the most common class."""
        return float(np.bincount(self.codes).max() / len(self.codes))

    @property
    def n_groups(self) -> int:
        return len(self.codes) if self.group_of is None else len(np.unique(self.group_of))

    def scores(self, pred: np.ndarray):
        """(fold accuracies, control accuracies or [], confusion (true x predicted, out-of-fold counts)) of
        one array's predictions pred (n, F)."""
        n_classes = self.Y.shape[-1]
        accs, ctrl, conf = [], [], np.zeros((n_classes, n_classes), dtype=np.int64)
        for k in range(self.folds):
            test = self.fold_of == k
            accs.append(float((pred[test, k] == self.codes[test]).mean()))
            np.add.at(conf, (self.codes[test], pred[test, k]), 1)
            if self.shuffled is not None:
                ctrl.append(float((pred[test, self.folds + k] == self.shuffled[test]).mean()))
        return accs, ctrl, conf
