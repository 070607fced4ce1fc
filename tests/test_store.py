import json

import numpy as np
import pytest
from store_helpers import KEYS, shard

from workbench.data.store import ActivationStore, StoreError, StoreIdentity, StoreMismatchError, array_hash
from workbench.errors import BadInputError


def make(tmp_path, **kw):
    args = dict(model_id="random/tiny@seed0", spec={"pooling": "mean"}, spec_key="k1", keys=KEYS,
                per_step_keys=[("resid", 2)], sample_rate_hz=8000)
    args.update(kw)
    return ActivationStore.create(tmp_path / "s", StoreIdentity(**args))


def test_append_read_and_compact(tmp_path):
    store = make(tmp_path)
    store.append(*shard(0, 3))
    store.append(*shard(3, 2))
    reopened = ActivationStore(tmp_path / "s", model_id="random/tiny@seed0", spec_key="k1")
    assert len(reopened) == 5 and reopened.labels() == ["a", "b", "a", "b", "a"]
    np.testing.assert_array_equal(reopened.array("resid", 2)[:, 0], np.arange(5) + 2)
    assert reopened.steps("resid", 2, 4).shape == (3, 4) and reopened.steps("resid", 2, 3)[0, 0] == 3
    assert reopened.audio(4).shape == (1, 14) and reopened.clip(4).sample_rate_hz == 8000
    assert reopened.table[3]["row"] == 3 and reopened.column("seed") == [0, 1, 2, 3, 4]
    reopened.compact()
    assert len(reopened.manifest["shards"]) == 1 and len(list((tmp_path / "s/shards").iterdir())) == 1
    arr = ActivationStore(tmp_path / "s").array("resid", 0)
    assert isinstance(arr, np.memmap)  # one file per layer once compacted
    np.testing.assert_array_equal(arr[:, 0], np.arange(5))
    assert ActivationStore(tmp_path / "s").audio(2)[0, 0] == 2
    assert set(reopened.arrays()) == set(KEYS)


def test_uncommitted_shards_are_never_read(tmp_path, monkeypatch):
    store = make(tmp_path)
    store.append(*shard(0, 2))
    # leftovers of a killed writer: a temp folder, a renamed shard the manifest never listed, a temp manifest
    (tmp_path / "s/shards/.tmp-0123456789ab").mkdir()
    with monkeypatch.context() as m:
        m.setattr(ActivationStore, "_commit", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            store.append(*shard(2, 3))  # killed between the shard's rename and the manifest commit
    assert len(list((tmp_path / "s/shards").iterdir())) == 3
    (tmp_path / "s/.manifest.json.0123abcd.tmp").write_text("{half")
    reopened = ActivationStore(tmp_path / "s")
    assert len(reopened) == 2 and reopened.array("resid", 0).shape == (2, 4)
    removed = reopened.sweep_leftovers()
    assert len(removed) == 3
    assert sorted(p.name for p in (tmp_path / "s/shards").iterdir()) == [reopened.manifest["shards"][0]["name"]]
    assert not list((tmp_path / "s").glob(".manifest*"))


def test_mismatch_and_bad_use(tmp_path):
    store = make(tmp_path)
    store.append(*shard(0, 2))
    with pytest.raises(StoreMismatchError, match="random/tiny@seed0"):
        make(tmp_path, model_id="facebook/musicgen-small")
    with pytest.raises(StoreMismatchError, match="capture spec"):
        make(tmp_path, spec_key="other")
    with pytest.raises(BadInputError, match="not a StoreIdentity: pass e.g. StoreIdentity"):
        ActivationStore.create(tmp_path / "t", {"model_id": "m", "spec_key": "k", "keys": KEYS})
    with pytest.raises(BadInputError, match="site 'resid/x' cannot name a file"):
        StoreIdentity("m", "k", keys=[("resid/x", 0)])
    with pytest.raises(BadInputError, match=r"keys holds 'resid': pass \(site, layer\) pairs"):
        StoreIdentity("m", "k", keys=["resid"])
    with pytest.raises(StoreError, match="already in the store"):
        store.append(*shard(1, 2))
    with pytest.raises(StoreError, match="no activation store"):
        ActivationStore(tmp_path / "nothing")
    with pytest.raises(ValueError, match="not in this store"):
        store.array("mlp", 0)
    with pytest.raises(ValueError, match="per_step_layers"):
        store.steps("resid", 0, 0)
    assert issubclass(StoreMismatchError, ValueError)


def test_manifest_is_json_and_hash_is_content_based(tmp_path):
    store = make(tmp_path)
    store.append(*shard(0, 1))
    manifest = json.loads((tmp_path / "s/manifest.json").read_text())
    assert manifest["model_id"] == "random/tiny@seed0" and manifest["shards"][0]["ids"] == ["r0"]
    a = np.arange(6, dtype=np.float32)
    assert array_hash(a) == array_hash(a.copy()) != array_hash(a + 1) != array_hash(a.reshape(2, 3))


def test_docstring_examples():
    import doctest

    from workbench.data import store as store_mod
    assert doctest.testmod(store_mod).failed == 0
