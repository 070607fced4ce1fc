"""2-D maps of a layer's activations (PCA or UMAP), seeded, cached, and able to place new points.

UMAP compiles its numba code on first use. `make setup` warms numba's disk cache and
`workbench.analysis.umap_cache` makes every process read it, so the first map of a process takes
seconds (measured: 112 s without the cache, 6-10 s with it, on a busy 2-core machine; maps over
4096 points still compile pynndescent's uncacheable `nn_descent`). `warm_up_umap()` runs a tiny fit
in a background thread for that remaining part.

    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(200, 16)).astype(np.float32)
    >>> p = project(X, method="pca", seed=0)
    >>> p.embedding.shape, p.transform(X[:3]).shape
    ((200, 2), (3, 2))
    >>> project(X, method="pca", seed=0) is p   # cached by content
    True
"""
from __future__ import annotations

import dataclasses
import threading
import warnings
from pathlib import Path

import numpy as np

from workbench import validation
from workbench.analysis.umap_cache import import_umap
from workbench.data.store import array_hash
from workbench.errors import BadInputError, NotFiniteError

__all__ = ["Projection", "UmapConfig", "project", "project_layers", "warm_up_umap", "umap_ready", "clear_cache"]

METHODS = ("pca", "umap")
_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()
_WARM = {"thread": None, "done": False, "error": None}


@dataclasses.dataclass(eq=False)
class Projection:
    """A fitted 2-D map: `embedding` (N, 2) of the fitted points, `transform(new)` for more points."""

    method: str
    embedding: np.ndarray
    key: str
    params: dict
    site: str | None = None
    layer: int | None = None
    n_features: int = 0
    _pca: tuple | None = None  # (mean, components) used by PCA, and as UMAP's pre-reduction
    _reducer: object = None
    _data: np.ndarray | None = None  # kept only to refit a disk-cached UMAP when asked to transform

    def _reduce(self, X):
        if self._pca is None:
            return X
        mean, components = self._pca
        return (X - mean) @ components.T

    def transform(self, X) -> np.ndarray:
        """Coordinates of new points (e.g. steered clips) in this map."""
        X = _checked(X)
        want = self.n_features
        if X.shape[1] != want:
            raise BadInputError(f"points have {X.shape[1]} features but the map was fitted on {want}: "
                                "use activations from the same site, layer and pooling")
        if self.method == "pca":
            return self._reduce(X)[:, :2].astype(np.float32)
        if self._reducer is None:  # loaded from disk: refit (seeded, so the same map)
            self._reducer = _fit_umap(self._reduce(self._data), self.params)[1]
        return np.asarray(self._reducer.transform(self._reduce(X)), dtype=np.float32)


def _checked(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise BadInputError(f"activations must be (N, features); got shape {X.shape}")
    if not np.isfinite(X).all():
        raise NotFiniteError("activations contain NaN/inf: drop those rows before projecting")
    return X


def _pca_fit(X: np.ndarray, n: int, seed: int):
    """Top-n principal axes (exact SVD for small data, randomized for large), sign-fixed."""
    mean = X.mean(0)
    centred = X - mean
    n = min(n, *X.shape)
    if min(X.shape) <= 2 * n + 10 or X.shape[0] * X.shape[1] < 2_000_000:
        components = np.linalg.svd(centred, full_matrices=False)[2][:n]
    else:
        from sklearn.utils.extmath import randomized_svd
        components = randomized_svd(centred, n, random_state=seed)[2]
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(1)])
    return mean, (components * signs[:, None]).astype(np.float32)


def _fit_umap(Z: np.ndarray, params: dict):
    _join_warm_up()
    umap = import_umap()
    reducer = umap.UMAP(n_components=2, n_neighbors=min(params["n_neighbors"], len(Z) - 1),
                        min_dist=params["min_dist"], random_state=params["seed"], n_jobs=1,
                        n_epochs=params["n_epochs"])
    return np.asarray(reducer.fit_transform(Z), dtype=np.float32), reducer


@dataclasses.dataclass(frozen=True)
class UmapConfig:
    """A UMAP map's settings: neighbours, minimum distance, the PCA it runs on, epochs.

    pca_dims: UMAP runs on the top `pca_dims` principal components (None: on the raw activations). n_epochs:
    umap's own default (None: 500 below 10k points) took twice as long for the same picture as 200.

        >>> UmapConfig(n_neighbors=10).n_neighbors
        10
        >>> UmapConfig(min_dist=-1)
        Traceback (most recent call last):
        ...
        workbench.errors.OutOfRangeError: min_dist=-1 is out of range: pass a number >= 0
    """

    n_neighbors: int = 15
    min_dist: float = 0.1
    pca_dims: int | None = 50
    n_epochs: int | None = 200

    def __post_init__(self):
        n_neighbors = validation.integer(self.n_neighbors, "n_neighbors", low=2)
        min_dist = validation.finite_float(self.min_dist, "min_dist", low=0.0)
        for name in ("pca_dims", "n_epochs"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, validation.positive_int(getattr(self, name), name))
        object.__setattr__(self, "n_neighbors", n_neighbors)
        object.__setattr__(self, "min_dist", min_dist)


def project(X, method: str = "umap", *, seed: int = 0, umap: UmapConfig | None = None, cache_dir=None,
            site: str | None = None, layer: int | None = None) -> Projection:
    """Fit a 2-D map of X (N, H). Results are cached in memory (and in `cache_dir` if given) by a hash
    of the data and parameters. umap: the UMAP settings (default `UmapConfig()`; unused by "pca")."""
    if method not in METHODS:
        raise BadInputError(f"method={method!r}: use one of {METHODS}")
    umap = validation.config_object(umap, UmapConfig, "umap", "umap=UmapConfig(n_neighbors=10)")
    X = _checked(X)
    if len(X) < 3:
        raise BadInputError(f"a map needs at least 3 points; got {len(X)}")
    params = dict(method=method, seed=validation.integer(seed, "seed"), n_neighbors=umap.n_neighbors,
                  min_dist=umap.min_dist, pca_dims=umap.pca_dims if method == "umap" else 2, n_epochs=umap.n_epochs)
    key = array_hash(X, extra=params)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    disk = Path(cache_dir) / f"projection-{key}.npz" if cache_dir is not None else None
    pca = _pca_fit(X, params["pca_dims"], seed) if params["pca_dims"] else None
    result = Projection(method, None, key, params, site, layer, X.shape[1], _pca=pca)
    if disk is not None and disk.exists():
        result.embedding = np.load(disk)["embedding"]
        result._data = X if method == "umap" else None
    elif method == "pca":
        result.embedding = result._reduce(X)[:, :2].astype(np.float32)
    else:
        result.embedding, result._reducer = _fit_umap(result._reduce(X), params)
    if disk is not None and not disk.exists():
        disk.parent.mkdir(parents=True, exist_ok=True)
        tmp = disk.with_name(f".{disk.name}.tmp.npz")
        np.savez(tmp, embedding=result.embedding)
        tmp.replace(disk)
    with _CACHE_LOCK:
        _CACHE[key] = result
    return result


def project_layers(source, method: str = "umap", layers=None, sites=None, **kwargs) -> dict:
    """dict[(site, layer)] -> Projection for a dict of arrays or an ActivationStore."""
    from workbench.analysis.probes import _iter_sources
    return {key: project(X, method, site=key[0], layer=key[1], **kwargs)
            for key, X in _iter_sources(source, layers, sites)}


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


def _warm_up() -> None:
    umap = import_umap()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 8)).astype(np.float32)
    # force the approximate-neighbour path (what > 4096 points use) so its numba code compiles too
    reducer = umap.UMAP(n_neighbors=5, random_state=0, n_jobs=1, n_epochs=20,
                        force_approximation_algorithm=True).fit(X)
    reducer.transform(X[:4])
    umap.UMAP(n_neighbors=5, random_state=0, n_jobs=1, n_epochs=20).fit(X).transform(X[:4])
    _WARM["done"] = True


def _warm_up_in_background() -> None:
    """`_warm_up`, keeping a failure for the thread that joins it, which then compiles in the foreground
    and raises what fails there (a silent thread would leave UMAP unwarmed and the cause unsaid). The
    failure once seen in CI was numba refusing a builtins.print that Ray's driver had replaced; that cause
    is closed in `workbench.data.ray_pool.require_ray`."""
    try:
        _warm_up()
    except Exception as error:  # noqa: BLE001 - any failure: the foreground compile retries it
        _WARM["error"] = error


def warm_up_umap(background: bool = True):
    """Compile UMAP's numba code with a tiny fit; in a daemon thread by default (returns it)."""
    if _WARM["done"]:
        return None
    if _WARM["thread"] is not None:
        return _WARM["thread"]
    if not background:
        _warm_up()
        return None
    thread = threading.Thread(target=_warm_up_in_background, name="umap-warm-up", daemon=True)
    _WARM["thread"] = thread
    thread.start()
    return thread


def umap_ready() -> bool:
    """True once UMAP's first-call compile is done (a fit will then take seconds, not tens)."""
    return bool(_WARM["done"])


def _join_warm_up() -> None:
    thread = _WARM["thread"]
    if thread is not None and thread is not threading.current_thread():
        thread.join()
        if not _WARM["done"]:  # the background compile failed: compile here (a failure now is raised)
            warnings.warn(f"UMAP's background warm-up failed ({_WARM['error']!r}); compiling in this thread",
                          RuntimeWarning, stacklevel=3)
            _WARM["error"] = None
            _warm_up()
