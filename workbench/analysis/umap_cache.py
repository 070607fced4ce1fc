"""Numba's on-disk cache for umap-learn and pynndescent: the first UMAP map of a process in seconds.

umap-learn leaves its main numba functions (smooth_knn_dist, fast_knn_indices,
compute_membership_strengths, the layout epoch, submatrix) uncached, so every new process compiled
them again (about 20 s of CPU, 40-100 s of wall time on a busy 2-core machine). `import_umap` turns
the cache on for every umap/pynndescent dispatcher right after import; `make setup` warms that cache
(scripts/warm_numba.py). This touches numba internals (`Dispatcher._cache`, `NullCache`): it is an
optimisation only, and any failure leaves plain compilation.

Example:
    >>> umap = import_umap()
    >>> hasattr(umap, "UMAP")
    True
"""
from __future__ import annotations

import sys
import threading

PACKAGES = ("umap", "pynndescent")
# numba refuses to cache these ("uses dynamic globals") and would warn on every first big map
UNCACHEABLE = {"nn_descent", "nn_descent_internal"}
_LOCK = threading.Lock()
_MODULE: list = []


def enable_umap_numba_cache() -> int:
    """Turn numba's on-disk cache on for every not-yet-cached umap/pynndescent function; returns how many.

    Call after `import umap` and before the first fit. Functions already compiled at import (explicit
    signatures, ~0.5 s in umap.utils) are not affected.
    """
    import umap  # noqa: F401  (imports pynndescent too)
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    enabled = 0
    for name, module in list(sys.modules.items()):
        if module is None or name.partition(".")[0] not in PACKAGES:
            continue
        for obj in list(vars(module).values()):
            if (isinstance(obj, Dispatcher) and isinstance(obj._cache, NullCache)
                    and getattr(obj.py_func, "__module__", None) == name and obj.__name__ not in UNCACHEABLE):
                try:
                    obj.enable_caching()
                    enabled += 1
                except Exception:  # no writable cache location for that file: it just compiles each time
                    pass
    return enabled


def import_umap():
    """``import umap`` with numba's disk cache on for its functions (once per process)."""
    with _LOCK:
        if not _MODULE:
            import umap
            try:
                enable_umap_numba_cache()
            except Exception:  # numba internals moved: compile as before
                pass
            _MODULE.append(umap)
    return _MODULE[0]
