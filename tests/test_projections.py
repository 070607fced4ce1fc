import numpy as np
import pytest

from workbench.analysis import projections as P
from workbench.errors import BadInputError, NotFiniteError


def clusters(n=120, d=24, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    return (rng.normal(size=(n, d)) + 6 * rng.normal(size=(3, d))[y]).astype(np.float32), y


def test_pca_is_seeded_cached_and_transforms():
    X, y = clusters()
    P.clear_cache()
    p = P.project(X, "pca", site="resid", layer=2)
    assert p.embedding.shape == (120, 2) and (p.site, p.layer) == ("resid", 2)
    assert P.project(X, "pca") is p and P.project(X + 1, "pca") is not p
    np.testing.assert_allclose(p.transform(X), p.embedding, atol=1e-4)
    centred = X - X.mean(0)
    top = np.linalg.svd(centred, full_matrices=False)[2][0]
    assert abs(abs(np.corrcoef(p.embedding[:, 0], centred @ top)[0, 1]) - 1) < 1e-5
    # clusters stay apart in the map
    means = np.stack([p.embedding[y == k].mean(0) for k in range(3)])
    assert np.linalg.norm(means[0] - means[1]) > 3 * p.embedding[y == 0].std()


def test_disk_cache(tmp_path):
    X, _ = clusters()
    P.clear_cache()
    first = P.project(X, "pca", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("projection-*.npz"))) == 1
    P.clear_cache()
    again = P.project(X, "pca", cache_dir=tmp_path)
    assert again is not first
    np.testing.assert_array_equal(again.embedding, first.embedding)


def test_project_layers_and_bad_input():
    X, _ = clusters()
    maps = P.project_layers({("resid", 0): X, ("resid", 1): X[:, ::-1].copy()}, "pca", layers=[1])
    assert list(maps) == [("resid", 1)]
    with pytest.raises(BadInputError, match="use one of"):
        P.project(X, "tsne")
    bad = X.copy()
    bad[0, 0] = np.inf
    with pytest.raises(NotFiniteError):
        P.project(bad, "pca")
    with pytest.raises(BadInputError, match="fitted on 24"):
        P.project(X, "pca").transform(X[:, :5])
    with pytest.raises(BadInputError, match="n_neighbors=1 is out of range: pass an int >= 2"):
        P.UmapConfig(n_neighbors=1)
    with pytest.raises(BadInputError, match="not a UmapConfig: pass e.g. umap=UmapConfig"):
        P.project(X, "umap", umap={"n_neighbors": 10})


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_umap_seeded_with_background_warm_up(tmp_path):
    thread = P.warm_up_umap(background=True)
    X, y = clusters(n=90)
    P.clear_cache()
    # waits for the warm-up
    a = P.project(X, "umap", seed=3, umap=P.UmapConfig(n_neighbors=10), cache_dir=tmp_path)
    assert P.umap_ready() and (thread is None or not thread.is_alive())
    P.clear_cache()
    b = P.project(X, "umap", seed=3, umap=P.UmapConfig(n_neighbors=10))
    np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-4)  # seeded
    placed = b.transform(X[y == 0][:5])
    centre0 = b.embedding[y == 0].mean(0)
    others = [b.embedding[y == k].mean(0) for k in (1, 2)]
    assert all(np.linalg.norm(placed.mean(0) - centre0) < np.linalg.norm(placed.mean(0) - o) for o in others)
    P.clear_cache()
    from_disk = P.project(X, "umap", seed=3, umap=P.UmapConfig(n_neighbors=10), cache_dir=tmp_path)
    assert from_disk.transform(X[:2]).shape == (2, 2)  # refits the seeded map on demand


def test_a_failed_background_warm_up_is_redone_in_the_foreground(monkeypatch):
    """A warm-up that fails in its thread is not lost: the fit that joins the thread compiles in its own
    thread instead, with a warning that names the failure, and the warm-up counts as done."""
    calls = []

    def flaky():
        calls.append(P.threading.current_thread().name)
        if len(calls) == 1:
            raise RuntimeError("a compile that fails once")
        P._WARM["done"] = True

    monkeypatch.setattr(P, "_WARM", {"thread": None, "done": False, "error": None})
    monkeypatch.setattr(P, "_warm_up", flaky)
    thread = P.warm_up_umap(background=True)
    thread.join()
    assert not P.umap_ready() and isinstance(P._WARM["error"], RuntimeError)
    with pytest.warns(RuntimeWarning, match="background warm-up failed"):
        P._join_warm_up()
    assert P.umap_ready() and calls == ["umap-warm-up", P.threading.current_thread().name]
