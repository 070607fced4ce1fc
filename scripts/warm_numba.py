"""Warm numba's on-disk cache for umap-learn and pynndescent, so that the first UMAP map in a new
process takes seconds instead of about a minute.

Run at the end of `make setup` (and by `make warm-numba`). It fits tiny UMAPs with the parameters
`workbench.analysis.projections.project` passes (float32 PCA-reduced input, n_components=2,
n_neighbors=15, min_dist=0.1, a seed, n_jobs=1, n_epochs=200, then `transform` of new points), on
both neighbour paths (exact below 4096 points, pynndescent above), so the same specialisations
compile and land in the cache (`__pycache__` next to the packages' sources, or $NUMBA_CACHE_DIR).

Only functions whose cache is on are read back later. pynndescent marks most of its own
`cache=True`; umap-learn's (smooth_knn_dist, fast_knn_indices, compute_membership_strengths, the
layout epoch, submatrix: ~20 s of compiling) are not, so this script turns the cache on for every
umap/pynndescent dispatcher (`workbench.analysis.umap_cache.enable_umap_numba_cache`), and a process only gets
those from the cache if it does the same right after `import umap` (`projections` does).

    python scripts/warm_numba.py            # warm (about 1 min on 2 cores the first time, seconds after)
    python scripts/warm_numba.py --check    # then time a first UMAP in a fresh process
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from workbench.analysis.umap_cache import enable_umap_numba_cache  # noqa: E402  (torch-free)


def cache_location() -> tuple[str, bool]:
    """Where numba keeps umap's cache, and whether this process can write there."""
    import umap.layouts
    path = umap.layouts.rdist._cache._cache_path  # rdist is cache=True in umap-learn
    return path, os.access(path, os.W_OK)


def _workbench_like_input(n_points: int, n_features: int, pca_dims: int = 50, seed: int = 0):
    """float32 (n_points, <=pca_dims) C-contiguous, made the way projections._pca_fit/_reduce make it."""
    import numpy as np
    X = np.random.default_rng(seed).normal(size=(n_points, n_features)).astype(np.float32)
    mean = X.mean(0)
    components = np.linalg.svd(X - mean, full_matrices=False)[2][:min(pca_dims, *X.shape)]
    reduce = lambda A: (A - mean) @ components.astype(np.float32).T  # noqa: E731
    return reduce(X), reduce(X[:5] + np.float32(0.01))


def warm() -> None:
    import umap
    Z, Z_new = _workbench_like_input(300, 64)
    n_neighbors = min(15, len(Z) - 1)
    common = dict(n_components=2, n_neighbors=n_neighbors, min_dist=0.1, random_state=0, n_jobs=1, n_epochs=200)
    for approximate in (False, True):  # exact neighbours (< 4096 points) and pynndescent (larger maps)
        reducer = umap.UMAP(**common, force_approximation_algorithm=approximate)
        reducer.fit_transform(Z)
        reducer.transform(Z_new)  # Projection.transform: steered clips placed in the map


_CHECK = """
import time; t = time.time()
import numpy as np, umap
sys_path = __import__("sys").path.insert(0, {here!r})
from warm_numba import _workbench_like_input
from workbench.analysis.umap_cache import enable_umap_numba_cache
enable_umap_numba_cache()
Z, Z_new = _workbench_like_input(300, 64, seed=1)
t1 = time.time()
r = umap.UMAP(n_components=2, n_neighbors=15, min_dist=0.1, random_state=0, n_jobs=1, n_epochs=200)
r.fit_transform(Z); r.transform(Z_new)
print(f"fresh process: import {{t1 - t:.1f}} s, first UMAP fit + transform {{time.time() - t1:.1f}} s")
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="afterwards, time a first UMAP in a fresh process")
    args = parser.parse_args(argv)
    start = time.monotonic()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # umap's "n_jobs overridden by random_state" and the like
            enabled = enable_umap_numba_cache()
            path, writable = cache_location()
            warm()
    except Exception as exc:  # an optimisation: never fail the setup over it
        print(f"warm_numba: numba cache NOT warmed ({type(exc).__name__}: {exc}); the first UMAP map in "
              "each new process will take about a minute", file=sys.stderr)
        return 0
    print(f"warm_numba: numba cache for umap-learn/pynndescent warm in {time.monotonic() - start:.0f} s "
          f"({enabled} functions cache-enabled; cache at {path}{'' if writable else ' - NOT writable'})")
    if args.check:
        here = os.path.dirname(os.path.abspath(__file__))
        subprocess.run([sys.executable, "-c", _CHECK.format(here=here)], check=True, timeout=600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
