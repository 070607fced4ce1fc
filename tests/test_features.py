"""Feature discovery: frame streaming, SAEs (TopK, ReLU), their SAELens layout, training, metrics, labels."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch

from workbench.analysis.features import (
    FeatureTable,
    FrameStream,
    SparseAutoencoder,
    TrainConfig,
    TrainRun,
    auroc,
    label_features,
    sae_metrics,
    spliced_loss,
    train_sae,
)
from workbench.analysis.features.training import CHECKPOINT_FILENAME
from workbench.data.store import ActivationStore, StoreIdentity
from workbench.errors import BadInputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_store(path, n_rows=8, hidden=8, frames=(20, 30), dtype="float32", shards=2, seed=0, labels=("a", "b")):
    """A store with per-step frames: row i's frames are noise + 4 x (label index) on dim 0, tempo on dim 1."""
    rng = np.random.default_rng(seed)
    s = ActivationStore.create(path, StoreIdentity("m", "k", keys=[("resid", 1)], per_step_keys=[("resid", 1)]))
    per = n_rows // shards
    for sh in range(shards):
        rows, steps = [], []
        for i in range(sh * per, (sh + 1) * per):
            length = frames[i % len(frames)]
            x = rng.normal(size=(length, hidden)) * 0.3
            x[:, 0] += 4 * (i % len(labels))
            x[:, 1] += 0.02 * (60 + 10 * i)
            steps.append(x.astype(dtype))
            rows.append(dict(id=f"r{i}", label=labels[i % len(labels)], tempo_bpm=60 + 10 * i, seed=i))
        s.append({("resid", 1): np.zeros((per, hidden))}, rows, steps={("resid", 1): steps}, steps_dtype=dtype)
    return s


# ----- frames ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_frame_stream_shuffles_every_frame_once_with_its_clip_and_time(tmp_path, dtype):
    s = make_store(tmp_path, dtype=dtype)
    fs = FrameStream(s, "resid", 1, batch_size=16, seed=3)
    assert fs.dtype == np.dtype(dtype) and all(isinstance(m, np.memmap) for m in fs._maps)
    assert fs.n_frames == 4 * 20 + 4 * 30 and fs.nbytes == fs.n_frames * 8 * np.dtype(dtype).itemsize
    seen = []
    for b in fs.batches(epoch=0):
        assert b.x.dtype == np.float32
        for x, row, step in zip(b.x, b.rows, b.steps):
            np.testing.assert_array_equal(x, s.steps("resid", 1, int(row))[step].astype(np.float32))
        seen += list(zip(b.rows.tolist(), b.steps.tolist()))
        np.testing.assert_allclose(b.times_s, b.steps / 50.0)
    assert len(seen) == len(set(seen)) == fs.n_frames  # each frame once per epoch
    order0, order1 = fs.order(0), fs.order(1)
    assert not np.array_equal(order0, order1) and np.array_equal(order0, FrameStream(s, "resid", 1, seed=3).order(0))


def test_frame_stream_rows_subset_and_resume_start(tmp_path):
    s = make_store(tmp_path)
    fs = FrameStream(s, "resid", 1, batch_size=10, rows=[1, 6])
    assert set(fs.rows.tolist()) == {1, 6} and fs.n_frames == 30 + 20
    all_batches = list(fs.batches(2))
    resumed = list(fs.batches(2, start=3))
    assert len(resumed) == len(all_batches) - 3
    np.testing.assert_array_equal(resumed[0].x, all_batches[3].x)
    np.testing.assert_array_equal(fs.clip(6), s.steps("resid", 1, 6))


def test_frame_stream_refuses_what_it_cannot_stream(tmp_path):
    s = make_store(tmp_path)
    with pytest.raises(BadInputError, match=r"per_step_layers=\(2,\)"):
        FrameStream(s, "resid", 2)
    with pytest.raises(BadInputError, match="rows must lie in"):
        FrameStream(s, "resid", 1, rows=[99])
    with pytest.raises(BadInputError, match="steps_dtype"):
        s.append({("resid", 1): np.zeros((1, 8))}, [{"id": "z"}], steps={("resid", 1): [np.zeros((2, 8))]},
                 steps_dtype="int8")


# ----- the SAE and its SAELens layout ---------------------------------------------------------------
def test_topk_and_relu_follow_saelens_formulas():
    torch.manual_seed(0)
    x = torch.randn(7, 8)
    for arch in ("topk", "standard"):
        sae = SparseAutoencoder(8, 24, arch, k=5, seed=1)
        with torch.no_grad():
            sae.b_enc.normal_()
            sae.b_dec.normal_()
        pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
        if arch == "standard":
            expected = torch.relu(pre)
        else:
            values, index = pre.topk(5, dim=-1)
            expected = torch.zeros_like(pre).scatter(-1, index, torch.relu(values))
        torch.testing.assert_close(sae.encode(x), expected)
        torch.testing.assert_close(sae(x), expected @ sae.W_dec + sae.b_dec)


def test_saved_folder_has_saelens_names_and_loads_back(tmp_path):
    sae = SparseAutoencoder(8, 32, "topk", k=4, seed=2)
    folder = sae.save(tmp_path / "sae", sparsity=np.linspace(0, 0.5, 32), model_id="m", site="resid", layer=1,
                      hook_name="decoder.model.decoder.layers.1")
    assert sorted(p.name for p in folder.iterdir()) == ["cfg.json", "sae_weights.safetensors", "sparsity.safetensors"]
    cfg = json.loads((folder / "cfg.json").read_text())
    # SAELens 6's SAEConfig fields (sae_lens/saes/sae.py) and TopKSAEConfig's k
    assert {"architecture", "d_in", "d_sae", "dtype", "device", "apply_b_dec_to_input", "normalize_activations",
            "reshape_activations", "metadata", "k"} <= set(cfg)
    assert (cfg["architecture"], cfg["d_in"], cfg["d_sae"], cfg["k"], cfg["normalize_activations"]) == (
        "topk", 8, 32, 4, "none")
    assert cfg["metadata"]["sae_lens_version"] >= "6" and cfg["metadata"]["hook_name"].endswith("layers.1")
    from safetensors.torch import load_file
    tensors = load_file(str(folder / "sae_weights.safetensors"))
    assert {k: tuple(v.shape) for k, v in tensors.items()} == {"W_enc": (8, 32), "b_enc": (32,), "W_dec": (32, 8),
                                                               "b_dec": (8,)}
    back = SparseAutoencoder.load(folder, expect_model_id="m")
    x = torch.randn(5, 8)
    torch.testing.assert_close(back(x), sae(x))
    with pytest.raises(BadInputError, match="trained on 'm'"):
        SparseAutoencoder.load(folder, expect_model_id="other")
    with pytest.raises(BadInputError, match="not an SAE folder"):
        SparseAutoencoder.load(tmp_path)


def test_loads_a_saelens_standard_sae_without_b_dec_on_input(tmp_path):
    """An SAELens-written folder (architecture "standard", apply_b_dec_to_input False) computes as SAELens does."""
    from safetensors.torch import save_file
    g = torch.Generator().manual_seed(0)
    t = {"W_enc": torch.randn(6, 10, generator=g), "b_enc": torch.randn(10, generator=g),
         "W_dec": torch.randn(10, 6, generator=g), "b_dec": torch.randn(6, generator=g)}
    (tmp_path / "cfg.json").write_text(json.dumps(dict(architecture="standard", d_in=6, d_sae=10, dtype="float32",
                                                       device="cpu", apply_b_dec_to_input=False,
                                                       normalize_activations="none",
                                                       metadata=dict(sae_lens_version="6.5.0", model_name="gpt2"))))
    save_file(t, str(tmp_path / "sae_weights.safetensors"))
    sae = SparseAutoencoder.load(tmp_path)
    x = torch.randn(4, 6, generator=g)
    torch.testing.assert_close(sae(x), torch.relu(x @ t["W_enc"] + t["b_enc"]) @ t["W_dec"] + t["b_dec"])


def test_saelens_itself_loads_our_folder(tmp_path):
    # `make test` installs the `test` extra, so in CI this runs (a missing sae-lens fails there, never skips)
    if os.environ.get("CI"):
        import sae_lens
    else:
        sae_lens = pytest.importorskip("sae_lens")  # pip install -e '.[test]'
    sae = SparseAutoencoder(8, 32, "topk", k=4, seed=2)
    folder = sae.save(tmp_path / "sae", model_id="m", site="resid", layer=1, hook_name="decoder.model.decoder.layers.1")
    theirs = sae_lens.SAE.load_from_disk(str(folder))
    x = torch.randn(5, 8)
    torch.testing.assert_close(theirs.decode(theirs.encode(x)), sae(x))
    # and back: an SAE that SAELens saved loads here and computes the same
    from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig
    made = StandardSAE(StandardSAEConfig(d_in=8, d_sae=16))
    with torch.no_grad():
        for p in made.parameters():
            p.normal_()
    made.save_model(tmp_path / "theirs")
    ours = SparseAutoencoder.load(tmp_path / "theirs")
    assert ours.architecture == "standard"
    torch.testing.assert_close(ours(x), made.decode(made.encode(x)))


def test_make_test_installs_saelens_and_make_lab_does_not():
    """sae-lens lives in the `test` extra: `make test` installs it (so the round trip above runs in CI), a
    classroom `make lab` does not."""
    root = Path(__file__).resolve().parents[1]
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(r.startswith("sae-lens") for r in extras["test"])
    assert not any(r.startswith("sae-lens") for name, reqs in extras.items() if name != "test" for r in reqs)
    makefile = (root / "Makefile").read_text()
    prerequisites = {m.group(1): m.group(2).split() for m in re.finditer(r"^([\w$().-]+):\s*(.*)$", makefile, re.M)}
    assert "$(TEST_STAMP)" in prerequisites["test"] and "$(TEST_STAMP)" not in prerequisites["lab"]
    assert re.search(r'^\$\(TEST_STAMP\):.*\n\t\$\(PIP\) -e "\.\[[a-z,]*\btest\]"', makefile, re.M)


# ----- training --------------------------------------------------------------------------------------
def test_training_learns_and_resumes_to_the_same_weights(tmp_path):
    s = make_store(tmp_path / "store", n_rows=8, frames=(40, 60))
    cfg = TrainConfig(d_sae=32, k=4, epochs=3, lr=3e-3)
    straight = train_sae(FrameStream(s, "resid", 1, batch_size=32), cfg, progress=False)
    stopped = train_sae(FrameStream(s, "resid", 1, batch_size=32), cfg, progress=False,
                        checkpoint_dir=tmp_path / "ckpt", run=TrainRun(checkpoint_every=4, max_steps=7))
    assert not stopped.completed and stopped.steps == 7 and (tmp_path / "ckpt" / CHECKPOINT_FILENAME).is_file()
    resumed = train_sae(FrameStream(s, "resid", 1, batch_size=32), cfg, progress=False,
                        checkpoint_dir=tmp_path / "ckpt")
    assert resumed.completed and resumed.resumed_from == 7 and resumed.steps == straight.steps
    for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
        torch.testing.assert_close(getattr(resumed.sae, name), getattr(straight.sae, name), rtol=1e-5, atol=1e-6)
    with pytest.raises(BadInputError, match="other settings"):
        train_sae(FrameStream(s, "resid", 1, batch_size=32), TrainConfig(d_sae=32, k=8, epochs=3), progress=False,
                  checkpoint_dir=tmp_path / "ckpt")
    frames = [b.x for b in FrameStream(s, "resid", 1).sequential()]
    m, untrained = sae_metrics(straight.sae, frames), sae_metrics(SparseAutoencoder(8, 32, "topk", k=4), frames)
    assert m["explained_variance"] > max(0.5, untrained["explained_variance"] + 0.2) and m["l0"] <= 4


def test_relu_sae_l1_buys_sparsity():
    rng = np.random.default_rng(0)
    atoms = rng.normal(size=(24, 8))
    codes = (rng.random((2000, 24)) < 0.1) * rng.random((2000, 24)) * 3
    x = (codes @ atoms).astype(np.float32)

    def fit(l1):
        import tempfile
        s = ActivationStore.create(tempfile.mkdtemp(), StoreIdentity("m", "k", keys=[("resid", 0)],
                                                                     per_step_keys=[("resid", 0)]))
        s.append({("resid", 0): np.zeros((1, 8))}, [{"id": "x"}], steps={("resid", 0): [x]})
        sae = train_sae(FrameStream(s, "resid", 0, batch_size=128), TrainConfig("standard", d_sae=48,
                        l1_coefficient=l1, epochs=20, lr=1e-2), progress=False).sae
        return sae_metrics(sae, [x])
    dense, sparse = fit(0.0), fit(0.3)
    assert sparse["l0"] < 0.7 * dense["l0"] and sparse["explained_variance"] > 0.8


def test_sae_metrics_match_their_definitions():
    sae = SparseAutoencoder(8, 16, "topk", k=3, seed=0)
    x = np.random.default_rng(1).normal(size=(300, 8)).astype(np.float32)
    m = sae_metrics(sae, [x[:100], x[100:]], dense_threshold=0.2)
    with torch.no_grad():
        f = sae.encode(torch.from_numpy(x)).numpy()
        x_hat = sae(torch.from_numpy(x)).numpy()
    ev = 1 - ((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    freq = (f > 0).mean(0)
    assert m["explained_variance"] == pytest.approx(ev, rel=1e-5) and m["l0"] == pytest.approx(3.0)
    assert m["dead_fraction"] == pytest.approx((freq == 0).mean()) and m["dense_fraction"] == pytest.approx(
        (freq > 0.2).mean())


# ----- the spliced loss --------------------------------------------------------------------------------
def identity_sae(d):
    """relu(x) - relu(-x) = x: a lossless "SAE" (2d ReLU features)."""
    sae = SparseAutoencoder(d, 2 * d, "standard")
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], 1))
        sae.W_dec.copy_(torch.cat([eye, -eye], 0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def test_spliced_loss_is_clean_for_a_lossless_sae_and_zero_for_a_null_one():
    import workbench as wb
    h = wb.random_model("tiny")
    codes = torch.randint(0, h.config.decoder.vocab_size, (2, h.n_codebooks, 12))
    lossless = spliced_loss(h, identity_sae(h.hidden_size), codes, "resid", 1)
    assert lossless["spliced"] == pytest.approx(lossless["clean"], abs=1e-5)
    assert lossless["zero"] != pytest.approx(lossless["clean"])
    # a random model may even do better without the layer: recovery is defined only when zeroing costs something
    gap = lossless["zero"] - lossless["clean"]
    assert lossless["recovery"] == pytest.approx(1, abs=1e-4) if gap > 0 else np.isnan(lossless["recovery"])
    null = SparseAutoencoder(h.hidden_size, 4, "standard")
    with torch.no_grad():
        for p in null.parameters():
            p.zero_()
    dead = spliced_loss(h, null, codes, "resid", 1)
    assert dead["spliced"] == pytest.approx(dead["zero"], abs=1e-5)
    # by hand: mean cross-entropy of every codebook's next code, start/pad positions excluded
    from workbench.runtime.teacher_forcing import delayed_decoder_inputs, text_states
    ids = delayed_decoder_inputs(h, codes)
    states, mask = text_states(h, None, 2)
    with torch.no_grad():
        logits = h.model(encoder_outputs=(states,), attention_mask=mask, decoder_input_ids=ids, use_cache=False).logits
    bos = h.model.generation_config.decoder_start_token_id
    keep = ids[:, 1:] != bos
    ce = torch.nn.functional.cross_entropy(logits[:, :-1][keep], ids[:, 1:][keep])
    assert lossless["clean"] == pytest.approx(float(ce), rel=1e-5)


# ----- labelling --------------------------------------------------------------------------------------
def test_labels_find_the_planted_feature_its_clips_and_spans(tmp_path):
    s = make_store(tmp_path, n_rows=8, frames=(20,))
    sae = SparseAutoencoder(8, 4, "standard")
    with torch.no_grad():  # feature 0 reads dim 0 (4 on label "b"), feature 1 reads dim 1 (tempo), 2-3 dead
        sae.W_enc.zero_()
        sae.W_enc[0, 0] = 1.0
        sae.W_enc[1, 1] = 1.0
        sae.b_enc.copy_(torch.tensor([-2.0, 0.0, -100.0, -100.0]))
    labels = label_features(sae, FrameStream(s, "resid", 1))
    assert labels.categorical == ["label"] and labels.numeric == ["tempo_bpm"]
    rows = labels.table.rows
    assert rows[0]["label"] == "label=b" and rows[0]["auroc:label=b"] == 1.0 and rows[0]["auroc:label=a"] == 0.0
    assert rows[1]["label"] == "tempo_bpm (+)" and rows[1]["corr:tempo_bpm"] > 0.9
    assert rows[2]["frequency"] == 0 and rows[2]["label"] is None
    assert [r["feature"] for r in labels.table.search("label=b")] == [0]
    top = labels.top_clips(0, n=3)
    assert [c["label"] for c in top] == ["b"] * 3 and all(c["start_s"] <= c["peak_s"] < c["end_s"] for c in top)
    times, acts = labels.trace(top[0]["row"], 0)
    assert acts.max() == pytest.approx(top[0]["peak"]) and times[1] == pytest.approx(0.02)
    edges, counts = labels.histogram(0)
    assert counts.sum() == round(labels.frequency[0] * labels.stream.n_frames) > 0 and len(edges) == len(counts) + 1
    d = labels.direction(0, "m")
    assert d.method == "sae_feature" and d.layer == 1 and d.norm == pytest.approx(1.0)
    assert d.provenance["label"] == "label=b"


def test_auroc_matches_scikit_learn():
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(0)
    scores, y = rng.normal(size=(50, 3)), rng.random(50) < 0.4
    scores[:, 1] = np.round(scores[:, 1])  # ties
    np.testing.assert_allclose(auroc(scores, y), [roc_auc_score(y, scores[:, j]) for j in range(3)])


def test_feature_table_filters_sorts_and_refuses_unknown_columns():
    t = FeatureTable([dict(feature=i, frequency=f, label=lab, label_score=sc) for i, (f, lab, sc) in
                      enumerate([(0.3, "label=rock", 0.95), (0.01, "label=jazz", 0.99), (0.0, None, None)])])
    assert t.filter(min_score=0.9).features == [0, 1] and t.filter(max_frequency=0.05).features == [1, 2]
    assert t.sort("label_score").features == [1, 0, 2] and t.search("ROCK").features == [0]
    assert "<table>" in t._repr_html_()
    frame = t.to_pandas()
    assert list(frame["feature"]) == [0, 1, 2] and frame.loc[frame["label"].str.contains("jazz", na=False),
                                                             "feature"].tolist() == [1]
    with pytest.raises(BadInputError, match="no column"):
        t.sort("nope")
