"""The features surface (SAE config, training, loading, metrics, labelling, steering, report) as a hostile user
tries it: every bad input is a workbench error that names the fix, nothing non-finite is trained on or kept,
a damaged file is a CorruptFileError naming it, and an SAE is refused where its model, layer or width differ."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from workbench.analysis.features import (
    FeatureTable,
    FrameStream,
    SparseAutoencoder,
    TrainConfig,
    TrainRun,
    auroc,
    label_columns,
    label_features,
    sae_metrics,
    steer_summary,
    train_sae,
)
from workbench.analysis.features.report import ReportPlan, bars, format_report, main
from workbench.analysis.features.sae import default_d_sae, read_sparsity
from workbench.analysis.features.training import CHECKPOINT_FILENAME
from workbench.data.store import ActivationStore, StoreIdentity
from workbench.errors import (
    BadInputError,
    CorruptFileError,
    DirectionMismatchError,
    NotFiniteError,
    OutOfRangeError,
    WorkbenchError,
    WrongTypeError,
)
from workbench.runtime.settings import GenerationSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ROOT = Path(__file__).resolve().parents[1]
SAMPLED = 20_000  # train_sae estimates the data mean from this many frames


def make_store(path, n_rows=6, hidden=8, length=30, layers=(1,), model_id="m", poison=None, seed=0):
    """A store of per-step frames; poison: {(row, step): value} written into layer layers[0]'s frames."""
    rng = np.random.default_rng(seed)
    keys = [("resid", layer) for layer in layers]
    s = ActivationStore.create(path, StoreIdentity(model_id, spec_key="k", keys=keys, per_step_keys=keys))
    steps = {k: [] for k in keys}
    for i in range(n_rows):
        for k in keys:
            x = (rng.normal(size=(length, hidden)) * 0.3).astype(np.float32)
            x[:, 0] += 4 * (i % 2)
            steps[k].append(x)
    for (row, step), value in (poison or {}).items():
        steps[keys[0]][row][step, 2] = value
    s.append({k: np.zeros((n_rows, hidden)) for k in keys},
             [dict(id=f"r{i}", label="ab"[i % 2], tempo_bpm=60 + 10 * i) for i in range(n_rows)], steps=steps)
    return s


def unsampled_frame(n_frames: int, seed: int = 0) -> int:
    """A frame index that train_sae's mean estimate does not read (so the per-batch check must find it)."""
    sampled = np.random.default_rng(seed).choice(n_frames, size=min(n_frames, SAMPLED), replace=False)
    return int(np.setdiff1d(np.arange(n_frames), sampled)[0])


def checkpoint_tensors(folder) -> dict:
    with safe_open(str(Path(folder) / CHECKPOINT_FILENAME), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118


def checkpoint_step(folder) -> int:
    with safe_open(str(Path(folder) / CHECKPOINT_FILENAME), framework="pt") as f:
        return json.loads(f.metadata()["workbench"])["step"]


# ----- settings ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("settings", [
    dict(lr=float("inf")), dict(lr=float("nan")), dict(lr="1e-3"), dict(lr=0), dict(lr=-1e-3), dict(lr=5.0),
    dict(d_sae=0), dict(d_sae=-8), dict(d_sae="64"), dict(d_sae=64.5), dict(d_sae=10 ** 15), dict(d_sae=True),
    dict(k=0), dict(k="8"), dict(k=float("nan")), dict(k=None), dict(d_sae=16, k=32),
    dict(epochs=0), dict(epochs=2.5), dict(epochs="3"), dict(architecture="TopK"), dict(architecture=None),
    dict(l1_coefficient=-1), dict(l1_coefficient=float("nan")), dict(decay_fraction=2), dict(warmup_steps=-1),
    dict(seed="0"), dict(seed=-1),
])
def test_train_config_refuses_bad_settings_with_workbench_errors(settings):
    with pytest.raises(BadInputError) as e:
        TrainConfig(**settings)
    name = next(iter(settings)) if len(settings) == 1 else "k"
    assert name in str(e.value)


def test_k_larger_than_the_dictionary_is_refused_not_clamped(tmp_path):
    with pytest.raises(OutOfRangeError, match=r"k=32 is larger than the dictionary \(d_sae=16\)"):
        TrainConfig(d_sae=16, k=32)
    s = make_store(tmp_path)  # hidden 8: the default d_sae is 64
    with pytest.raises(OutOfRangeError, match="larger than the dictionary"):
        train_sae(FrameStream(s, "resid", 1), TrainConfig(k=100, epochs=1), progress=False)
    with pytest.raises(OutOfRangeError, match="larger than the dictionary"):
        SparseAutoencoder(8, 16, "topk", k=17)
    # the asked k is the k used and the k saved
    sae = train_sae(FrameStream(s, "resid", 1, batch_size=64), TrainConfig(d_sae=16, k=16, epochs=1),
                    progress=False).sae
    cfg = json.loads((sae.save(tmp_path / "sae") / "cfg.json").read_text())
    assert sae.k == cfg["k"] == cfg["metadata"]["train"]["k"] == 16


def test_d_sae_zero_is_refused_not_replaced_by_the_default():
    with pytest.raises(OutOfRangeError, match="d_sae=0"):
        TrainConfig(d_sae=0)
    assert TrainConfig(d_sae=None).d_sae is None and default_d_sae(8) == 64
    assert TrainConfig(d_sae=np.int64(32), k=8.0, lr=np.float32(1e-3)).d_sae == 32  # numpy / whole numbers fine


@pytest.mark.parametrize("args", [
    dict(d_in=8, d_sae=10 ** 12), dict(d_in=10 ** 9, d_sae=8), dict(d_in=4096, d_sae=2 ** 20), dict(d_in="8", d_sae=8),
    dict(d_in=8, d_sae=0), dict(d_in=float("nan"), d_sae=8), dict(d_in=8, d_sae=8, architecture=3),
    dict(d_in=8, d_sae=8, k=None), dict(d_in=8, d_sae=8, seed="s"), dict(d_in=8, d_sae=8, meta=[1]),
    dict(d_in=8.5, d_sae=8), dict(d_in=8, d_sae=8, k=2.5), dict(d_in=8, d_sae=8, k=True),
])
def test_sae_sizes_are_bounded_before_anything_is_allocated(args):
    with pytest.raises(BadInputError):
        SparseAutoencoder(**dict(dict(k=4), **args))


def test_sae_methods_refuse_inputs_of_another_width_or_kind(tmp_path):
    sae = SparseAutoencoder(8, 16, "topk", k=4)
    with pytest.raises(DirectionMismatchError, match="width is 8"):
        sae.encode(torch.randn(3, 9))
    with pytest.raises(DirectionMismatchError):
        sae(torch.randn(3, 4))
    with pytest.raises(DirectionMismatchError, match="width is 16"):
        sae.decode(torch.randn(3, 8))
    with pytest.raises(WrongTypeError):
        sae.encode("x")
    assert sae.encode(np.zeros((2, 8), np.float32)).shape == (2, 16)  # numpy is fine
    for feature in ("3", 1.5, -1, 16, None, True):
        with pytest.raises(BadInputError):
            sae.decoder_row(feature)
    with pytest.raises(DirectionMismatchError):
        sae.save(tmp_path / "sae", sparsity=np.zeros(3))
    with torch.no_grad():
        sae.W_dec[0, 0] = float("nan")
    with pytest.raises(BadInputError, match="NaN"):
        sae.save(tmp_path / "sae")
    assert not (tmp_path / "sae").exists()  # refused before anything was written


# ----- training on non-finite data ------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_frame_stops_training_naming_its_store_row(tmp_path, value):
    s = make_store(tmp_path / "store", poison={(4, 7): value})
    with pytest.raises(NotFiniteError, match=r"store row 4 \(id 'r4'\), decoder step 7") as e:
        train_sae(FrameStream(s, "resid", 1, batch_size=32), TrainConfig(d_sae=16, k=4, epochs=2), progress=False,
                  checkpoint_dir=tmp_path / "ckpt")
    assert "repair" in str(e.value) and "rows=" in str(e.value)  # the fix
    assert not (tmp_path / "ckpt" / CHECKPOINT_FILENAME).exists()  # nothing trained, nothing saved


def test_a_non_finite_frame_mid_run_keeps_the_last_good_checkpoint(tmp_path):
    n_rows, length = 4, 5_100  # 20,400 frames: some are not in the mean's sample, so a batch meets the NaN first
    bad = unsampled_frame(n_rows * length)
    row, step = divmod(bad, length)
    s = make_store(tmp_path / "store", n_rows=n_rows, hidden=4, length=length, poison={(row, step): float("nan")})
    stream = FrameStream(s, "resid", 1, batch_size=1024)
    position = int(np.flatnonzero(stream.order(0) == bad)[0]) // 1024 + 1  # the step whose batch holds it
    with pytest.raises(NotFiniteError, match=rf"step {position} .*store row {row} .*decoder step {step}\b"):
        train_sae(stream, TrainConfig(d_sae=8, k=2, epochs=1), progress=False, checkpoint_dir=tmp_path / "ckpt",
                  run=TrainRun(checkpoint_every=1000))
    assert position > 1  # (batch 2 here) the state before the bad batch was checkpointed, and it is finite
    assert checkpoint_step(tmp_path / "ckpt") == position - 1
    assert all(bool(torch.isfinite(t).all()) for t in checkpoint_tensors(tmp_path / "ckpt").values())


def test_a_loss_that_overflows_stops_naming_the_step_and_never_completes(tmp_path):
    """Finite but huge frames (flipped exponent bits) overflow the squared error: stop, name the step and row."""
    n_rows, length = 4, 5_100
    bad = unsampled_frame(n_rows * length)
    row, step = divmod(bad, length)
    s = make_store(tmp_path / "store", n_rows=n_rows, hidden=4, length=length, poison={(row, step): 3e37})
    where = rf"store row {row} \(id 'r{row}'\), decoder step {step}\b"
    with pytest.raises(NotFiniteError, match=rf"loss became .* at step \d+.*{where}"):
        train_sae(FrameStream(s, "resid", 1, batch_size=1024), TrainConfig(d_sae=8, k=2, epochs=1), progress=False,
                  checkpoint_dir=tmp_path / "ckpt", run=TrainRun(checkpoint_every=1))
    assert all(bool(torch.isfinite(t).all()) for t in checkpoint_tensors(tmp_path / "ckpt").values())


def test_weights_that_diverge_are_never_returned_or_checkpointed(tmp_path, monkeypatch):
    """If an update makes the weights NaN (a diverging optimiser), no completed result and no NaN checkpoint."""
    s = make_store(tmp_path / "store")
    real_step = torch.optim.Adam.step
    calls = []

    def poisoned_step(self, *args, **kwargs):
        out = real_step(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 5:
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("nan"))
        return out
    monkeypatch.setattr(torch.optim.Adam, "step", poisoned_step)
    with pytest.raises(NotFiniteError):
        train_sae(FrameStream(s, "resid", 1, batch_size=32), TrainConfig(d_sae=16, k=4, epochs=3), progress=False,
                  checkpoint_dir=tmp_path / "ckpt", run=TrainRun(checkpoint_every=2))
    assert checkpoint_step(tmp_path / "ckpt") == 4
    assert all(bool(torch.isfinite(t).all()) for t in checkpoint_tensors(tmp_path / "ckpt").values())
    calls.clear()
    with pytest.raises(NotFiniteError):  # the last step diverging: still no completed=True
        train_sae(FrameStream(s, "resid", 1, batch_size=180), TrainConfig(d_sae=16, k=4, epochs=5), progress=False)


def test_flipped_bytes_in_streamed_frames_are_found_before_training(tmp_path):
    s = make_store(tmp_path / "store")
    frames = next((tmp_path / "store" / "shards").iterdir()) / "steps.resid.1.npy"
    data = bytearray(frames.read_bytes())
    data[-3] ^= 0x01  # a low mantissa bit: still a finite number, but not what was collected
    frames.write_bytes(bytes(data))
    s = ActivationStore(tmp_path / "store")
    with pytest.raises(CorruptFileError, match=r"steps\.resid\.1\.npy.*sha256.*repair") as e:
        train_sae(FrameStream(s, "resid", 1), TrainConfig(d_sae=16, k=4, epochs=1), progress=False)
    assert e.value.path == str(frames)
    train_sae(FrameStream(s, "resid", 1), TrainConfig(d_sae=16, k=4, epochs=1), TrainRun(verify=False), progress=False)


@pytest.mark.parametrize("kwargs", [
    dict(checkpoint_every=0), dict(log_every="5"), dict(max_steps=-1), dict(verify="yes"), dict(stop="no"),
    dict(device="banana"), dict(device=3), dict(checkpoint_dir=5), dict(config=dict(k=4)), dict(config="topk"),
    dict(run=dict(max_steps=3)), dict(run=TrainConfig()),
])
def test_train_sae_refuses_bad_arguments(tmp_path, kwargs):
    s = make_store(tmp_path / "store")
    kwargs = dict(dict(config=TrainConfig(d_sae=16, k=4, epochs=1)), **kwargs)
    with pytest.raises(BadInputError):
        run = {name: kwargs.pop(name) for name in list(kwargs) if name in ("checkpoint_every", "log_every",
                                                                           "max_steps", "verify")}
        train_sae(FrameStream(s, "resid", 1), progress=False, **(dict(run=TrainRun(**run)) if run else {}), **kwargs)


def test_train_sae_refuses_what_is_not_a_frame_stream_and_a_checkpoint_dir_that_is_a_file(tmp_path):
    with pytest.raises(WrongTypeError, match="FrameStream"):
        train_sae(np.zeros((10, 8)), TrainConfig(d_sae=16, k=4))
    s = make_store(tmp_path / "store")
    (tmp_path / "file").write_text("x")
    with pytest.raises(BadInputError, match="checkpoint_dir"):
        train_sae(FrameStream(s, "resid", 1), TrainConfig(d_sae=16, k=4, epochs=1), checkpoint_dir=tmp_path / "file",
                  progress=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_train_sae_on_a_missing_gpu_says_so(tmp_path):
    s = make_store(tmp_path / "store")
    with pytest.raises(BadInputError, match="cpu"):
        train_sae(FrameStream(s, "resid", 1), TrainConfig(d_sae=16, k=4, epochs=1), device="cuda", progress=False)


# ----- checkpoints: damaged, and killed mid-run ------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "nan", "no_meta"])
def test_a_damaged_checkpoint_is_a_corrupt_file_error_naming_it(tmp_path, damage):
    s = make_store(tmp_path / "store")
    cfg = TrainConfig(d_sae=16, k=4, epochs=3)
    ckpt = tmp_path / "ckpt"
    train_sae(FrameStream(s, "resid", 1, batch_size=32), cfg, TrainRun(max_steps=3), progress=False,
              checkpoint_dir=ckpt)
    path = ckpt / CHECKPOINT_FILENAME
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:-100])
    elif damage == "garbage":
        path.write_bytes(b"\x00\x01not a safetensors file" * 10)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        tensors = checkpoint_tensors(ckpt)
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
        if damage == "nan":
            tensors["sae.W_enc"][0, 0] = float("nan")
        else:
            meta = {}
        save_file(tensors, str(path), metadata=meta)
    with pytest.raises(CorruptFileError, match=f"delete {CHECKPOINT_FILENAME}") as e:
        train_sae(FrameStream(s, "resid", 1, batch_size=32), cfg, progress=False, checkpoint_dir=ckpt)
    assert e.value.path == str(path)


KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    import torch
    torch.set_num_threads(1)
    import workbench.analysis.features.training as training
    from workbench.analysis.features import FrameStream, TrainConfig, TrainRun, train_sae
    from workbench.data.store import ActivationStore
    mode, kill_at = sys.argv[3], int(sys.argv[4])
    real_save, saves = training.save_file, []

    def save(tensors, path, metadata=None):
        saves.append(1)
        if mode == "mid-write" and len(saves) == kill_at:  # half a file on disk, then SIGKILL
            real_save(tensors, path, metadata=metadata)
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)
            os.kill(os.getpid(), signal.SIGKILL)
        real_save(tensors, path, metadata=metadata)
        if mode == "before-rename" and len(saves) == kill_at:  # the new file written, not yet renamed into place
            os.kill(os.getpid(), signal.SIGKILL)
    training.save_file = save
    polls = []

    def stop():  # polled before each step: killed in the middle of the run, between checkpoints
        polls.append(1)
        if mode == "between-steps" and len(polls) == 2 * kill_at + 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return False
    stream = FrameStream(ActivationStore(sys.argv[1]), "resid", 1, batch_size=32)
    train_sae(stream, TrainConfig(d_sae=16, k=4, epochs=3, lr=3e-3), TrainRun(checkpoint_every=2), progress=False,
              checkpoint_dir=sys.argv[2], stop=stop)
""")


@pytest.mark.parametrize("mode", ["between-steps", "before-rename", "mid-write"])
def test_kill_9_mid_training_resumes_to_the_same_weights(tmp_path, mode):
    s = make_store(tmp_path / "store")
    cfg = TrainConfig(d_sae=16, k=4, epochs=3, lr=3e-3)
    straight = train_sae(FrameStream(s, "resid", 1, batch_size=32), cfg, progress=False)
    run = subprocess.run([sys.executable, "-c", KILLED_RUN, str(tmp_path / "store"), str(tmp_path / "ckpt"), mode,
                          "3"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    # between-steps: killed at step 7, after the checkpoint of step 6; writing step 6's: step 4's is kept
    assert checkpoint_step(tmp_path / "ckpt") == (6 if mode == "between-steps" else 4)
    resumed = train_sae(FrameStream(s, "resid", 1, batch_size=32), cfg, progress=False,
                        checkpoint_dir=tmp_path / "ckpt")
    assert resumed.completed and resumed.steps == straight.steps and resumed.resumed_from in (4, 6)
    for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
        torch.testing.assert_close(getattr(resumed.sae, name), getattr(straight.sae, name), rtol=1e-5, atol=1e-6)


# ----- saved SAEs: damaged files, other models, layers and widths ------------------------------------------------
@pytest.fixture
def saved(tmp_path):
    sae = SparseAutoencoder(8, 32, "topk", k=4, seed=2)
    return sae.save(tmp_path / "sae", sparsity=np.linspace(0, 0.5, 32), model_id="m", site="resid", layer=1,
                    hook_name="decoder.model.decoder.layers.1")


def _edit_cfg(folder, **changes):
    path = folder / "cfg.json"
    cfg = json.loads(path.read_text())
    for key, value in changes.items():
        if value is KeyError:
            cfg.pop(key)
        else:
            cfg[key] = value
    path.write_text(json.dumps(cfg))


@pytest.mark.parametrize("changes", [
    dict(d_sae=10 ** 15), dict(d_sae=2 ** 40), dict(d_in=10 ** 12), dict(d_sae="32"), dict(d_sae=float("nan")),
    dict(d_sae=0), dict(d_sae=-32), dict(d_in=KeyError), dict(d_sae=None), dict(k=64), dict(k="4"), dict(k=0),
    dict(k=None), dict(metadata=[1, 2]), dict(metadata=dict(layer="one")), dict(architecture=7), dict(d_sae=16),
    dict(d_in=4),
])
def test_a_hand_edited_cfg_json_is_a_corrupt_file_error_before_any_allocation(saved, changes):
    _edit_cfg(saved, **changes)
    with pytest.raises(CorruptFileError) as e:
        SparseAutoencoder.load(saved)
    assert Path(e.value.path).name in ("cfg.json", "sae_weights.safetensors") and "re-save" in str(e.value)


@pytest.mark.parametrize("text", ["", "{", "[1, 2]", "null", "\xff\xfe garbage"])
def test_an_unreadable_cfg_json_is_a_corrupt_file_error(saved, text):
    (saved / "cfg.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(CorruptFileError, match="cfg.json"):
        SparseAutoencoder.load(saved)


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage", "nan", "int", "missing"])
def test_a_damaged_weights_file_is_a_corrupt_file_error_naming_it(saved, damage):
    path = saved / "sae_weights.safetensors"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:-50])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "garbage":
        path.write_bytes(os.urandom(200))
    else:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        if damage == "nan":
            tensors["W_dec"][3, 1] = float("inf")
        elif damage == "int":
            tensors["b_dec"] = tensors["b_dec"].to(torch.int32)
        else:
            tensors.pop("b_enc")
        save_file(tensors, str(path))
    with pytest.raises(CorruptFileError) as e:
        SparseAutoencoder.load(saved)
    assert e.value.path == str(path)


def test_a_damaged_sparsity_file_is_a_corrupt_file_error(saved):
    path = saved / "sparsity.safetensors"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(CorruptFileError, match="sparsity"):
        read_sparsity(saved)


def test_an_sae_of_another_model_layer_site_or_width_is_refused_on_load(saved):
    assert SparseAutoencoder.load(saved, expect_model_id="m", expect_layer=1, expect_site="resid", expect_d_in=8).k == 4
    for kwargs, words in [(dict(expect_model_id="other"), "trained on 'm'"),
                          (dict(expect_layer=2), "layer 1, not layer 2"), (dict(expect_site="mlp"), "site 'resid'"),
                          (dict(expect_d_in=16), "8-wide")]:
        with pytest.raises(DirectionMismatchError, match=words):
            SparseAutoencoder.load(saved, **kwargs)
    for folder in (None, 3, ""):
        with pytest.raises(WrongTypeError):
            SparseAutoencoder.load(folder)


def test_saving_is_atomic_and_leaves_no_temporary_files(saved):
    assert sorted(p.name for p in saved.iterdir()) == ["cfg.json", "sae_weights.safetensors", "sparsity.safetensors"]


def test_an_sae_is_refused_where_it_is_used_on_another_layer_model_or_width(tmp_path):
    s = make_store(tmp_path / "store", layers=(1, 2))
    trained = train_sae(FrameStream(s, "resid", 1, batch_size=64), TrainConfig(d_sae=16, k=4, epochs=1),
                        progress=False).sae
    assert (trained.meta["model_id"], trained.meta["layer"], trained.meta["site"]) == ("m", 1, "resid")
    label_features(trained, FrameStream(s, "resid", 1))  # its own layer: fine
    with pytest.raises(DirectionMismatchError, match="layer 1, not layer 2"):
        label_features(trained, FrameStream(s, "resid", 2))
    other = make_store(tmp_path / "other", model_id="another/model")
    with pytest.raises(DirectionMismatchError, match="trained on 'm', not 'another/model'"):
        label_features(trained, FrameStream(other, "resid", 1))
    with pytest.raises(DirectionMismatchError, match="16-wide"):
        label_features(SparseAutoencoder(16, 32, "topk", k=4), FrameStream(s, "resid", 1))
    with pytest.raises(DirectionMismatchError, match="SAE's d_in"):
        sae_metrics(trained, [np.zeros((4, 16), np.float32)])
    labels = label_features(trained, FrameStream(s, "resid", 1))
    with pytest.raises(DirectionMismatchError, match="trained on 'm'"):
        labels.direction(0, "another/model")


def test_spliced_loss_refuses_bad_codes_and_mismatched_saes():
    import workbench as wb
    from workbench.analysis.features import spliced_loss
    from workbench.errors import LayerOutOfRangeError, UnknownSiteError
    h = wb.random_model("tiny")
    codes = torch.randint(0, h.config.decoder.vocab_size, (2, h.n_codebooks, 12))
    sae = SparseAutoencoder(h.hidden_size, 2 * h.hidden_size, "topk", k=4,
                            meta=dict(model_id=h.model_id, site="resid", layer=1))
    cases = [
        (dict(layer=0), DirectionMismatchError), (dict(site="mlp"), DirectionMismatchError),
        (dict(sae=SparseAutoencoder(h.hidden_size + 1, 8, "topk", k=2)), DirectionMismatchError),
        (dict(sae=SparseAutoencoder(h.hidden_size, 8, "topk", k=2, meta=dict(model_id="x"))), DirectionMismatchError),
        (dict(codes=codes.float()), WrongTypeError), (dict(codes=codes[:, :1]), BadInputError),
        (dict(codes=codes + 10 ** 6), OutOfRangeError), (dict(codes=codes[:0]), BadInputError),
        (dict(codes="codes"), WrongTypeError), (dict(site="nope"), UnknownSiteError),
        (dict(layer=99), LayerOutOfRangeError), (dict(layer="1"), WrongTypeError),
        (dict(batch_size=0), OutOfRangeError),
        (dict(sae="sae"), WrongTypeError), (dict(handle=None), WrongTypeError),
    ]
    for change, error in cases:
        args = dict(dict(handle=h, sae=sae, codes=codes, site="resid", layer=1), **change)
        with pytest.raises(error):
            spliced_loss(args.pop("handle"), args.pop("sae"), args.pop("codes"), **args)
    assert math.isfinite(spliced_loss(h, sae, codes, "resid", 1)["spliced"])


# ----- metrics, labels, tables, steering, the report: bad input is a workbench error -----------------------------
def test_metrics_and_labelling_refuse_bad_input(tmp_path):
    s = make_store(tmp_path / "store")
    sae = SparseAutoencoder(8, 16, "topk", k=4)
    x = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)
    assert sae_metrics(sae, x)["n_frames"] == 20  # one array is taken as one chunk
    nan = x.copy()
    nan[5, 2] = float("nan")
    with pytest.raises(NotFiniteError, match="row 5"):
        sae_metrics(sae, [x, nan])
    for chunks in ("abc", None, 3, [np.zeros(8)], [[["a"] * 8]]):
        with pytest.raises(WrongTypeError):
            sae_metrics(sae, chunks)
    with pytest.raises(BadInputError):
        sae_metrics(sae, [x], dense_threshold="0.1")
    with pytest.raises(WrongTypeError):
        sae_metrics("sae", [x])
    stream = FrameStream(s, "resid", 1)
    for kwargs in (dict(rows=[99]), dict(rows="12"), dict(rows=[]), dict(bins=0), dict(bins=10 ** 9),
                   dict(categorical=["nope"]), dict(numeric=["label"]), dict(categorical="label", numeric=3)):
        with pytest.raises(BadInputError):
            label_features(sae, stream, **kwargs)
    with pytest.raises(WrongTypeError):
        label_features(sae, s)
    poisoned = make_store(tmp_path / "poisoned", poison={(3, 2): float("nan")})
    with pytest.raises(NotFiniteError, match="store row 3, decoder step 2"):
        label_features(sae, FrameStream(poisoned, "resid", 1))
    labels = label_features(sae, stream, rows=[0, 1, 2, 3])
    for call in (lambda: labels.histogram("a"), lambda: labels.histogram(16), lambda: labels.top_clips(0, n=0),
                 lambda: labels.top_clips(0, span_fraction=float("nan")), lambda: labels.trace(99, 0),
                 lambda: labels.trace("0", 0), lambda: labels.direction(0, None), lambda: labels.associations(-1)):
        with pytest.raises(BadInputError):
            call()


def test_tables_and_auroc_refuse_bad_input():
    t = FeatureTable([dict(feature=0, frequency=0.5, label="label=rock", label_score=0.9)])
    for call in (lambda: FeatureTable(None), lambda: FeatureTable([1, 2]), lambda: t.filter(min_frequency="a"),
                 lambda: t.filter(max_frequency=float("nan")), lambda: t.sort(3), lambda: t.head(-1),
                 lambda: t.search(None), lambda: t.filter(label=3), lambda: label_columns("abc"),
                 lambda: auroc(np.zeros((3, 2)), [True, False]), lambda: auroc([[np.nan], [1.0]], [True, False]),
                 lambda: auroc(np.zeros((2, 2)), "ab"), lambda: steer_summary("x"), lambda: steer_summary([{}])):
        with pytest.raises(BadInputError):
            call()


def test_feature_steering_checks_everything_before_generating(tmp_path, monkeypatch):
    import workbench as wb
    from workbench.analysis.features import feature_steering
    h = wb.random_model("tiny")
    monkeypatch.setattr(wb, "generate", lambda *a, **k: pytest.fail("generated before checking its arguments"))
    s = make_store(tmp_path / "store", hidden=h.hidden_size, model_id=h.model_id)
    sae = SparseAutoencoder(h.hidden_size, 16, "topk", k=4, meta=dict(model_id=h.model_id, site="resid", layer=1))
    labels = label_features(sae, FrameStream(s, "resid", 1))
    for kwargs in (dict(features="12"), dict(features=[99]), dict(features=["a"]), dict(strengths=()),
                   dict(strengths=(0.0,)), dict(strengths="1"), dict(strengths=[float("nan")]), dict(strengths=[-1]),
                   dict(seeds="12"), dict(seeds=[]), dict(settings={"duration_s": 4.0}), dict(settings="4"),
                   dict(strengths=(0.0, 1.0)), dict(reader="reader"),
                   dict(progress="yes")):
        with pytest.raises(BadInputError):
            feature_steering(h, labels, **dict(dict(features=[0]), **kwargs))
    with pytest.raises(WrongTypeError):
        feature_steering(h, "labels", [0])
    other = wb.random_model("tiny", seed=1)  # another model: its id differs
    with pytest.raises(DirectionMismatchError, match="trained on"):
        feature_steering(other, labels, [0])


@pytest.mark.parametrize("settings", [
    dict(layers="3"), dict(layers=()), dict(layers=(-1,)), dict(n_per_genre=0), dict(held_out=1.0),
    dict(held_out=float("nan")), dict(k="32"), dict(architecture="relu"), dict(strengths=(0.0,)),
    dict(steer_seeds="12"), dict(expansion=0), dict(epochs=1.5), dict(duration_s=float("inf")),
])
def test_report_plan_refuses_bad_settings(settings):
    with pytest.raises(BadInputError):
        ReportPlan(**settings)


def test_report_cli_prints_the_fix_not_a_traceback(capsys):
    assert main(["report", "--k", "0", "--no-progress"]) == 2
    assert "k=0" in capsys.readouterr().err
    with pytest.raises(WrongTypeError):
        bars(None)
    assert bars(dict(l0="32", explained_variance=float("nan")))["l0"] is False
    with pytest.raises(BadInputError, match="run_report"):
        format_report({})


@pytest.mark.parametrize("call", [
    lambda: default_d_sae("8"), lambda: default_d_sae(8, expansion=float("inf")), lambda: default_d_sae(0),
    lambda: read_sparsity(None),
])
def test_small_helpers_refuse_bad_input(call):
    with pytest.raises(WorkbenchError):
        call()


# ----- junk in every argument of every entry point -----------------------------------------------------------------
JUNK = [None, "x", "", 1.5, -1, 0, float("nan"), float("inf"), True, [], {}, [1, 2], np.zeros((2, 2)), object(),
        10 ** 18, -10 ** 18, b"x", torch.zeros(3), "12", [None], [[1]]]


def test_junk_in_any_argument_is_a_workbench_error_or_accepted(tmp_path, monkeypatch):
    """Each public entry point, each argument replaced by each junk value in turn: a WorkbenchError or a result,
    never a raw TypeError / ValueError / RuntimeError from deeper down."""
    monkeypatch.chdir(tmp_path)  # junk such as "x" or "12" is a valid relative folder to save into
    import workbench as wb
    from workbench.analysis.features import codes_of_rows, feature_steering, spliced_loss
    from workbench.analysis.features.sae import check_sae_size
    from workbench.analysis.features.steering import parse_genre
    from workbench.analysis.features.training import fraction_unexplained
    h = wb.random_model("tiny")
    s = make_store(tmp_path / "store", n_rows=4, hidden=h.hidden_size, length=10, model_id=h.model_id)
    stream = FrameStream(s, "resid", 1, batch_size=16)
    sae = SparseAutoencoder(h.hidden_size, 16, "topk", k=4, meta=dict(model_id=h.model_id, site="resid", layer=1))
    folder = sae.save(tmp_path / "sae", sparsity=np.full(16, 0.1))
    labels = label_features(sae, stream)
    codes = torch.randint(0, h.config.decoder.vocab_size, (1, h.n_codebooks, 6))
    x = torch.zeros(2, h.hidden_size)
    entry_points = [
        (SparseAutoencoder, dict(d_in=8, d_sae=16, architecture="topk", k=4, seed=0, meta=None)),
        (sae.encode, dict(x=x)), (sae.decode, dict(f=torch.zeros(2, 16))), (sae.forward, dict(x=x)),
        (sae.decoder_row, dict(feature=0)),
        (lambda **kw: SparseAutoencoder(8, 16, k=4).save(**kw), dict(folder=tmp_path / "s1", sparsity=None)),
        (lambda **kw: SparseAutoencoder(8, 16, k=4).save(tmp_path / "s2", **kw),
         dict(layer=1, site="resid", model_id="m", hook_name="h")),
        (SparseAutoencoder.load, dict(folder=folder, expect_model_id=None, expect_layer=None, expect_site=None,
                                      expect_d_in=None)),
        (read_sparsity, dict(folder=folder)), (default_d_sae, dict(d_in=8, expansion=8.0)),
        (check_sae_size, dict(d_in=8, d_sae=16, k=4, architecture="topk")),
        (TrainConfig, dict(architecture="topk", d_sae=16, k=4, l1_coefficient=0.3, lr=1e-3, epochs=1, warmup_steps=1,
                           decay_fraction=0.3, seed=0)),
        (TrainRun, dict(checkpoint_every=5, log_every=5, max_steps=None, verify=True)),
        (train_sae, dict(stream=stream, config=TrainConfig(d_sae=16, k=4, epochs=1),
                         run=TrainRun(checkpoint_every=5, log_every=5, max_steps=None, verify=True), device="cpu",
                         checkpoint_dir=None, progress=False, stop=None)),
        (fraction_unexplained, dict(x=np.ones((3, 2)), x_hat=np.ones((3, 2)))),
        (sae_metrics, dict(sae=sae, chunks=[np.zeros((3, h.hidden_size))], dense_threshold=0.1)),
        (codes_of_rows, dict(handle=h, store=s, rows=[0], batch_size=2)),
        (spliced_loss, dict(handle=h, sae=sae, codes=codes, site="resid", layer=1, batch_size=2)),
        (label_features, dict(sae=sae, stream=stream, rows=None, bins=5, categorical=None, numeric=None)),
        (auroc, dict(scores=np.zeros((4, 2)), positive=np.array([1, 0, 1, 0], bool))),
        (label_columns, dict(table=[dict(a="x")])),
        (FeatureTable, dict(rows=[dict(feature=0, frequency=0.1, label="x", label_score=0.5)])),
        (labels.table.search, dict(text="a")),
        (labels.table.filter, dict(min_frequency=0.0, max_frequency=1.0, min_score=None, label=None)),
        (labels.table.sort, dict(column="frequency", descending=True)), (labels.table.head, dict(n=3)),
        (labels.histogram, dict(feature=0)), (labels.trace, dict(row=0, feature=0)),
        (labels.top_clips, dict(feature=0, n=2, span_fraction=0.5)), (labels.associations, dict(feature=0)),
        (labels.direction, dict(feature=0, model_id=h.model_id)), (parse_genre, dict(label="label=rock")),
        (feature_steering, dict(handle=h, labels=labels, features=[], strengths=(1.0,), seeds=(1,),
                                settings=GenerationSettings(duration_s=1.0), reader=None, progress=False)),
        (steer_summary, dict(results=[])), (ReportPlan, dict(layers=(1,), n_per_genre=2)), (bars, dict(report={})),
        (format_report, dict(report={})),
    ]
    raw = []
    for function, good in entry_points:
        for name in good:
            for junk in JUNK:
                try:
                    function(**dict(good, **{name: junk}))
                except WorkbenchError:
                    pass
                except Exception as e:  # noqa: BLE001 - the point of the test
                    raw.append(f"{getattr(function, '__qualname__', function)}({name}={junk!r:.20}): "
                               f"{type(e).__name__}: {e}"[:200])
    assert not raw, "\n".join(raw)
