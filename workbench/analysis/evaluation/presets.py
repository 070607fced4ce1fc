"""Steering presets (`Method` factories): arXiv 2506.10225's published method and the workbench's own.

- `paper_2506_10225`: the paper's code. A linear probe *without bias* on L2-normalised last-token
  residuals, trained with MSE on one-hot genre targets (`PaperProbe(loss="mse")`: the least-squares
  solution, the minimum-norm one when the system is under-determined, which is where gradient descent
  from zero converges); the target class's weight row, at unit length, is the direction; applied as
  ``(h + a|h|v) / (1 + a)`` (mode ``norm_relative``) on the conditional CFG rows every 25th decoder
  step (``Schedule("pulse", every=25, width=1)``); the layer is the one where that probe reads genre
  best in a cross-validated sweep (`paper_layer_sweep`). Strengths are the paper's alpha.
- `workbench_default`: what the teaching model's steering bars measure (`workbench.analysis.teaching.evaluate`): the
  unit difference of class means (target minus the other genres) of mean-pooled conditional residuals,
  added at every step (mode ``add``) with strength s x the layer's mean residual norm (the workbench's
  one unit, `workbench.analysis.strength`: pass ``handle=`` so it is measured on the model).
- `logistic_probe`: `workbench.analysis.directions.from_probe` on a `LinearProbe(kind="logistic")`,
  steered like the default.
- ``paper_2506_10225(..., loss="logistic")`` swaps only the probe's loss (cross-entropy on the same
  features, no bias): the regression-vs-classification comparison the paper claims.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0); y = np.repeat(["jazz", "rock"], 30)
    >>> X = rng.normal(size=(60, 8)) + 3 * np.where(y == "rock", 1, -1)[:, None] * np.eye(8)[0]
    >>> m = paper_2506_10225({3: X}, y, layers=(3,))
    >>> m.mode, m.schedule["every"], int(np.argmax(m.direction("rock", 3)))
    ('norm_relative', 25, 0)
    >>> PaperProbe().fit(X, y).score(X, y) > 0.9
    True
"""
from __future__ import annotations

import warnings

import numpy as np

from workbench.analysis.directions import from_probe
from workbench.analysis.evaluation.methods import Method
from workbench.analysis.strength import mean_residual_norm
from workbench.errors import BadInputError, UnknownOptionError

__all__ = ["PaperProbe", "paper_2506_10225", "paper_layer_sweep", "workbench_default", "logistic_probe",
           "strength_units", "PAPER_STRENGTHS", "DEFAULT_STRENGTHS"]

PAPER_STRENGTHS = (0.0, 0.5, 1.0, 2.0, 4.0)      # alpha of (h + a|h|v) / (1 + a)
DEFAULT_STRENGTHS = (0.0, 0.125, 0.25, 0.5, 1.0)  # x the layer's mean residual norm
_LOSSES = ("mse", "logistic")


def _l2_rows(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or not np.isfinite(X).all():
        raise BadInputError(f"activations must be a finite (N, hidden) array, got shape {X.shape}")
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


class PaperProbe:
    """Linear probe without bias on L2-normalised rows: loss "mse" (one-hot least squares) or "logistic".

    l2: weight decay of the logistic loss (the MSE solution is the exact minimum-norm least squares).
    `coef_` (n_classes, n_features), `classes_`.
    """

    def __init__(self, loss: str = "mse", l2: float = 1e-3, max_iter: int = 500):
        if loss not in _LOSSES:
            raise UnknownOptionError(f"loss={loss!r}: use 'mse' (the paper's) or 'logistic'")
        self.loss, self.l2, self.max_iter = loss, float(l2), int(max_iter)

    def fit(self, X, y) -> PaperProbe:
        Xn = _l2_rows(X)
        y = np.asarray(y)
        if len(y) != len(Xn):
            raise BadInputError(f"got {len(y)} labels for {len(Xn)} rows: pass one label per row")
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise BadInputError("a probe needs at least two classes in y")
        Y = np.eye(len(self.classes_))[codes]
        if self.loss == "mse":
            self.coef_ = np.linalg.lstsq(Xn, Y, rcond=None)[0].T
        else:
            self.coef_ = self._fit_logistic(Xn, Y)
        return self

    def _fit_logistic(self, Xn, Y) -> np.ndarray:
        from scipy.optimize import minimize
        n, d = Xn.shape
        k = Y.shape[1]

        def loss_grad(w):
            W = w.reshape(k, d)
            z = Xn @ W.T
            z -= z.max(1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(1, keepdims=True)
            loss = -np.sum(Y * np.log(p + 1e-12)) / n + 0.5 * self.l2 * np.sum(W * W)
            return loss, ((p - Y).T @ Xn / n + self.l2 * W).ravel()

        res = minimize(loss_grad, np.zeros(k * d), jac=True, method="L-BFGS-B", options=dict(maxiter=self.max_iter))
        return res.x.reshape(k, d)

    def decision_function(self, X) -> np.ndarray:
        return _l2_rows(X) @ self.coef_.T

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.decision_function(X).argmax(1)]

    def score(self, X, y) -> float:
        return float(np.mean(self.predict(X) == np.asarray(y)))


def paper_layer_sweep(last_by_layer: dict, labels, *, loss: str = "mse", folds: int = 5, seed: int = 0) -> dict:
    """{layer: cross-validated accuracy of `PaperProbe(loss)`} (stratified folds, seeded)."""
    from workbench.analysis.solvers import fold_ids
    labels = np.asarray(labels)
    _, codes = np.unique(labels, return_inverse=True)
    fold = np.asarray(fold_ids(codes, folds, seed))
    out = {}
    for layer, X in sorted(last_by_layer.items()):
        X = np.asarray(X)
        hits = [PaperProbe(loss).fit(X[fold != f], labels[fold != f]).predict(X[fold == f]) == labels[fold == f]
                for f in range(folds) if (fold == f).any()]
        out[int(layer)] = float(np.mean(np.concatenate(hits)))
    return out


def _targets(labels, targets):
    classes = [c.item() if hasattr(c, "item") else c for c in np.unique(np.asarray(labels))]
    targets = classes if targets is None else list(targets)
    missing = [t for t in targets if t not in classes]
    if missing:
        raise BadInputError(f"targets {missing} are not among the labels {classes}")
    return targets


def paper_2506_10225(last_by_layer: dict, labels, *, layers=None, targets=None, loss: str = "mse",
                     name: str | None = None, strengths=PAPER_STRENGTHS) -> Method:
    """The paper's method from last-token residuals {layer: (N, hidden)}; layers None: its sweep's best."""
    if layers is None:
        accuracy = paper_layer_sweep(last_by_layer, labels, loss=loss)
        layers = (max(accuracy, key=accuracy.get),)
    targets = _targets(labels, targets)
    directions = {}
    for layer in layers:
        if layer not in last_by_layer:
            raise BadInputError(f"no last-token activations for layer {layer}: have {sorted(last_by_layer)}")
        probe = PaperProbe(loss).fit(last_by_layer[layer], labels)
        classes = list(probe.classes_)
        for target in targets:
            directions[(target, int(layer))] = probe.coef_[classes.index(target)]
    return Method(name or ("paper_2506_10225" if loss == "mse" else "paper_2506_10225_logistic"), directions,
                  mode="norm_relative", rows="cond", schedule=dict(kind="pulse", every=25, width=1),
                  strengths=strengths,
                  description=f"arXiv 2506.10225: no-bias {loss} probe on L2-normalised last-token residuals, "
                              "(h + a|h|v)/(1+a) on conditional rows every 25th step")


def strength_units(handle, layers, mean_by_layer=None, site: str = "resid") -> dict:
    """{layer: the workbench's strength unit} (`workbench.analysis.strength.mean_residual_norm`).

    Without a handle the unit cannot be measured: the pooled activations' mean norm stands in, with a
    FutureWarning (it is about half the per-step norm, so the same strength is a weaker push).
    """
    if handle is not None:
        return {int(layer): mean_residual_norm(handle, int(layer), site) for layer in layers}
    warnings.warn("a preset without handle=... measures its strength unit on pooled activations, not the workbench's "
                  "unit (the mean residual norm over every step of unsteered generation): pass handle=the model",
                  FutureWarning, stacklevel=3)
    if mean_by_layer is None:
        raise BadInputError("pass handle=the model, so the strength unit can be measured")
    return {int(layer): float(np.linalg.norm(np.asarray(mean_by_layer[layer], np.float64), axis=1).mean())
            for layer in layers}


def workbench_default(mean_by_layer: dict, labels, *, layers, targets=None, name: str = "class_means",
                      strengths=DEFAULT_STRENGTHS, handle=None) -> Method:
    """Class-mean directions (target minus the rest) of mean-pooled residuals, added x the layer's mean
    residual norm (`strength_units`: measured on `handle`)."""
    targets = _targets(labels, targets)
    labels = np.asarray(labels)
    directions = {}
    for layer in layers:
        X = np.asarray(mean_by_layer[layer], np.float64)
        for target in targets:
            directions[(target, int(layer))] = X[labels == target].mean(0) - X[labels != target].mean(0)
    unit = strength_units(handle, layers, mean_by_layer)
    return Method(name, directions, mode="add", rows="cond", strength_unit=unit,
                  strengths=strengths, description="unit mean(target) - mean(rest), h + s x mean|h| x v at every step")


def logistic_probe(mean_by_layer: dict, labels, *, layers, targets=None, name: str = "logistic_probe",
                   strengths=DEFAULT_STRENGTHS, handle=None, **probe_kwargs) -> Method:
    """Directions from a logistic `LinearProbe` (class minus the classes' mean weight), steered like the default."""
    from workbench.analysis.probes import LinearProbe
    targets = _targets(labels, targets)
    directions = {}
    for layer in layers:
        probe = LinearProbe(kind="logistic", **probe_kwargs).fit(mean_by_layer[layer], labels)
        for target in targets:
            directions[(target, int(layer))] = from_probe(probe, target, model_id="any", layer=int(layer)).vector
    unit = strength_units(handle, layers, mean_by_layer)
    return Method(name, directions, mode="add", rows="cond", strength_unit=unit,
                  strengths=strengths, description="logistic probe weights (target minus mean), steered like the "
                                                   "default")
