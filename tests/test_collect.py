import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import workbench as wb
from workbench.data import collect as collect_mod
from workbench.data import collect_plan
from workbench.data.collect import collect
from workbench.data.collect_plan import CollectOptions
from workbench.data.datasets import PromptSet
from workbench.data.store import ActivationStore, StoreMismatchError
from workbench.errors import BadInputError
from workbench.runtime.settings import GenerationSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")


SPEC = dict(layers=(0, 2), pooling="mean")
GEN = GenerationSettings(duration_s=0.2, guidance_scale=3.0)


def prompts(n_seeds=4):
    return PromptSet(["jazz", "rock"], templates=["{label}", "some {label}"], seeds=range(n_seeds))


@pytest.fixture
def counted(monkeypatch):
    """Record the ids of every row that is actually computed."""
    calls = []
    original = collect_plan._run_batch

    def run(handle, inputs, indices, run_spec, settings):
        calls.extend(inputs.rows[i]["id"] for i in indices)
        return original(handle, inputs, indices, run_spec, settings)

    monkeypatch.setattr(collect_plan, "_run_batch", run)
    return calls


def by_id(store, key):
    arr = store.array(*key)
    return {r["id"]: arr[r["row"]] for r in store.table}


def test_collect_text_rows_audio_and_labels(tiny, tmp_path, counted):
    store = collect(tiny, prompts(2), wb.CaptureSpec(**SPEC), tmp_path / "s", GEN.replace(batch_size=3),
                    progress=False)
    assert len(store) == 8 and store.keys() == [("resid", 0), ("resid", 2)]
    assert store.array("resid", 2).shape == (8, tiny.hidden_size)
    assert store.labels() == ["jazz"] * 4 + ["rock"] * 4 and store.table[1]["prompt"] == "jazz"
    direct = wb.generate(tiny, ["jazz"], GEN.replace(seeds=1), capture=wb.CaptureSpec(**SPEC))
    np.testing.assert_allclose(store.array("resid", 2)[1], direct.activations[("resid", 2)][0], atol=1e-5)
    np.testing.assert_allclose(store.audio(1), direct.clips[0].waveform, atol=1e-5)
    assert len(counted) == 8
    again = collect(tiny, prompts(2), wb.CaptureSpec(**SPEC), tmp_path / "s", GEN, progress=False)
    assert len(counted) == 8 and len(again) == 8  # complete store: nothing recomputed


def test_store_refuses_other_model_spec_or_settings(tiny, tmp_path):
    collect(tiny, prompts(1), wb.CaptureSpec(**SPEC), tmp_path / "s", GEN, progress=False)
    with pytest.raises(StoreMismatchError, match="capture spec"):
        collect(tiny, prompts(1), wb.CaptureSpec(layers=(1,)), tmp_path / "s", GEN, progress=False)
    with pytest.raises(StoreMismatchError, match="capture spec"):
        collect(tiny, prompts(1), wb.CaptureSpec(**SPEC), tmp_path / "s", GenerationSettings(duration_s=0.4),
                progress=False)
    other = wb.random_model("tiny", seed=1)
    with pytest.raises(StoreMismatchError, match="not 'random/tiny@seed1'"):
        collect(other, prompts(1), wb.CaptureSpec(**SPEC), tmp_path / "s", GEN, progress=False)


def test_per_step_capture_and_both_rows(tiny, tmp_path):
    spec = wb.CaptureSpec(layers=(0, 2), pooling="mean_std", rows="both")
    store = collect(tiny, prompts(1), spec, tmp_path / "s", GEN.replace(batch_size=2), per_step_layers=(2,),
                    progress=False)
    assert store.array("resid", 0).shape == (4, 2, 2 * tiny.hidden_size)
    assert store.array("resid", 0, cfg_row="uncond").shape == (4, 2 * tiny.hidden_size)
    steps = store.steps("resid", 2, 3)
    assert steps.ndim == 2 and steps.shape[1] == tiny.hidden_size
    plain = collect(tiny, prompts(1), spec, tmp_path / "plain", GEN.replace(batch_size=2), progress=False)
    np.testing.assert_allclose(store.array("resid", 2), plain.array("resid", 2), atol=1e-4)
    mean = steps.mean(0)
    np.testing.assert_allclose(store.array("resid", 2, cfg_row="cond")[3, :tiny.hidden_size], mean, atol=1e-5)


def test_collect_audio_by_teacher_forcing(tiny, tmp_path):
    rng = np.random.default_rng(0)
    items = [dict(id=f"c{i}", label="ab"[i % 2], audio=rng.normal(0, 0.1, 6400).astype(np.float32),
                  sample_rate_hz=tiny.sample_rate_hz) for i in range(3)]
    store = collect(tiny, items, wb.CaptureSpec(layers=(1,)), tmp_path / "s", GenerationSettings(batch_size=2),
                    progress=False)
    direct = wb.teacher_force(tiny, [it["audio"] for it in items], tiny.sample_rate_hz,
                              capture=wb.CaptureSpec(layers=(1,)))
    np.testing.assert_allclose(store.array("resid", 1), direct[("resid", 1)], atol=1e-5)
    np.testing.assert_array_equal(store.audio(2)[0], items[2]["audio"])


CHILD = textwrap.dedent("""
    import os, sys, time
    import torch
    torch.set_num_threads(1)
    import workbench as wb
    from workbench.data import collect as cm, collect_plan as cp, store as sm
    from workbench.data.datasets import PromptSet
    from workbench.runtime.settings import GenerationSettings
    log = open(sys.argv[2], "a")
    original_run, original_save = cp._run_batch, sm._save_npy
    def run(handle, inputs, indices, spec, kw):
        out = original_run(handle, inputs, indices, spec, kw)
        log.write("".join(inputs.rows[i]["id"] + "\\n" for i in indices)); log.flush(); os.fsync(log.fileno())
        return out
    def slow_save(*a):
        time.sleep(0.03)  # widen the window in which a kill lands mid-shard
        return original_save(*a)
    cp._run_batch, sm._save_npy = run, slow_save
    h = wb.random_model("tiny", seed=0)
    ps = PromptSet(["jazz", "rock"], templates=["{label}", "some {label}"], seeds=range(4))
    cm.collect(h, ps, wb.CaptureSpec(layers=(0, 2), pooling="mean"), sys.argv[1],
               GenerationSettings(duration_s=0.2, guidance_scale=3.0, batch_size=2), progress=False)
""")


@pytest.mark.timeout(300)
def test_kill_9_then_resume(tiny, tmp_path, counted):
    store_dir, log = tmp_path / "killed", tmp_path / "computed.log"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=str(Path(wb.__file__).parent.parent))
    proc = subprocess.Popen([sys.executable, str(script), str(store_dir), str(log)], env=env)
    deadline = time.time() + 240
    while time.time() < deadline and (not log.exists() or len(log.read_text().split()) < 5):
        assert proc.poll() is None, "collection finished or crashed before it could be killed"
        time.sleep(0.02)
    time.sleep(np.random.default_rng().uniform(0, 0.3))  # land anywhere in a batch or a shard write
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed = ActivationStore(store_dir)
    committed = killed.ids()
    assert 0 < len(committed) < 16
    for key in killed.keys():  # every listed shard is complete and readable
        assert killed.array(*key).shape[0] == len(committed)

    store = collect(tiny, prompts(), wb.CaptureSpec(**SPEC), store_dir, GEN.replace(batch_size=2), progress=False)
    assert not set(counted) & committed, "rows stored before the kill were computed again"
    assert len(counted) == 16 - len(committed)
    ids = [r["id"] for r in store.table]
    assert len(ids) == len(set(ids)) == 16
    assert sorted(p.name for p in (store_dir / "shards").iterdir()) == [store.manifest["shards"][0]["name"]]

    clean = collect(tiny, prompts(), wb.CaptureSpec(**SPEC), tmp_path / "clean", GEN.replace(batch_size=2),
                    progress=False)
    assert ids == [r["id"] for r in clean.table]
    for key in clean.keys():
        a, b = by_id(store, key), by_id(clean, key)
        for i in ids:
            np.testing.assert_allclose(a[i], b[i], atol=1e-5)
    np.testing.assert_allclose(store.audio(5), clean.audio(5), atol=1e-5)


def test_continuation_mode_and_content_ids(tiny, tmp_path):
    rng = np.random.default_rng(1)
    waves = [rng.normal(0, 0.1, 3200).astype(np.float32) for _ in range(2)]
    items = [dict(prompt="jazz", label="a", audio=w, sample_rate_hz=tiny.sample_rate_hz, seed=np.int64(i))
             for i, w in enumerate(waves)]
    store = collect(tiny, items, wb.CaptureSpec(layers=(1,)), tmp_path / "s", GenerationSettings(duration_s=0.2),
                    progress=False, options=CollectOptions(mode="continuation"))
    assert len(store) == 2 and len(set(store.column("id"))) == 2  # same label/prompt, different audio
    assert store.column("seed") == [0, 1]  # numpy scalars kept as plain numbers
    assert store.audio(0).shape[-1] > len(waves[0])  # the prompt audio plus its continuation


def test_settings_seeds_apply_to_a_list_of_prompts_and_options_are_checked(tiny, tmp_path):
    spec = wb.CaptureSpec(layers=(1,))
    store = collect(tiny, ["jazz", "rock"], spec, tmp_path / "s", GenerationSettings(duration_s=0.2, seeds=(5, 6)),
                    progress=False)
    assert store.column("seed") == [5, 6]
    direct = wb.generate(tiny, ["rock"], GenerationSettings(duration_s=0.2, seeds=6), capture=spec)
    np.testing.assert_allclose(store.array("resid", 1)[1], direct.activations[("resid", 1)][0], atol=1e-5)
    with pytest.raises(BadInputError, match=r"seeds=\(5, 6\): these inputs carry their own seeds"):
        collect(tiny, prompts(1), spec, tmp_path / "p", GenerationSettings(duration_s=0.2, seeds=(5, 6)))
    with pytest.raises(BadInputError, match="got 3 seeds for 2"):
        collect(tiny, ["jazz", "rock"], spec, tmp_path / "q", GenerationSettings(duration_s=0.2, seeds=(1, 2, 3)))
    with pytest.raises(BadInputError, match="not a CollectOptions: pass e.g. options=CollectOptions"):
        collect(tiny, ["jazz"], spec, tmp_path / "r", GEN, options={"compact": False})
    with pytest.raises(BadInputError, match="not a GenerationSettings"):
        collect(tiny, ["jazz"], spec, tmp_path / "r", {"duration_s": 0.2})
    with pytest.raises(BadInputError, match=r"mode='video': use one of"):
        CollectOptions(mode="video")
    with pytest.raises(BadInputError, match="engine='spark'"):
        CollectOptions(engine="spark")
    assert not (tmp_path / "p").exists() and not (tmp_path / "r").exists()  # refused before any store is made


def test_passing_a_default_equals_omitting_it(tiny, tmp_path, counted):
    spec = wb.CaptureSpec(**SPEC)
    collect(tiny, prompts(1), spec, tmp_path / "s", GenerationSettings(duration_s=0.2), progress=False)
    for explicit in (dict(guidance_scale=3.0), dict(guidance_scale=3), dict(top_k=250, temperature=1)):
        again = collect(tiny, prompts(1), spec, tmp_path / "s", GenerationSettings(duration_s=0.2, **explicit),
                        progress=False)
        assert len(again) == 4
    assert len(counted) == 4  # the same effective settings: nothing recomputed
    with pytest.raises(StoreMismatchError, match="capture spec"):
        collect(tiny, prompts(1), spec, tmp_path / "s", GenerationSettings(duration_s=0.2, guidance_scale=4.0),
                progress=False)


def test_a_run_that_failed_before_its_first_row_leaves_no_spec_behind(tiny, tmp_path):
    with pytest.raises(ValueError):
        collect(tiny, prompts(1), wb.CaptureSpec(**SPEC), tmp_path / "s", GenerationSettings(duration_s=10_000),
                progress=False)
    store = collect(tiny, prompts(1), wb.CaptureSpec(**SPEC), tmp_path / "s", GenerationSettings(duration_s=0.2),
                    progress=False)
    assert len(store) == 4 and store.spec["generation"]["duration_s"] == 0.2


def test_a_store_keyed_the_earlier_way_resumes(tiny, tmp_path, counted):
    store = collect(tiny, prompts(1), wb.CaptureSpec(**SPEC), tmp_path / "s", GEN, progress=False)
    # the earlier workbench keyed a store by the keywords it was given: here duration_s=0.2 (the rest defaults)
    described, key, legacy = collect_plan._store_spec(wb.CaptureSpec(**SPEC), "text", [], GEN)
    assert legacy == collect_plan._spec_key(wb.CaptureSpec(**SPEC).key, dict(described, generation={"duration_s": 0.2}))
    manifest = json.loads((tmp_path / "s/manifest.json").read_text())
    (tmp_path / "s/manifest.json").write_text(json.dumps(dict(manifest, spec_key=legacy)))
    again = collect(tiny, prompts(1), wb.CaptureSpec(**SPEC), tmp_path / "s", GEN, progress=False)
    assert len(counted) == 4 and again.spec_key == key == store.spec_key != legacy


def test_a_lost_manifest_is_rebuilt_and_nothing_is_deleted(tiny, tmp_path, counted):
    collect(tiny, prompts(1), wb.CaptureSpec(**SPEC), tmp_path / "s", GEN.replace(batch_size=2), progress=False,
            options=CollectOptions(compact=False))
    (tmp_path / "s/manifest.json").unlink()
    notes = tmp_path / "s/shards/my_notes/notes.txt"
    notes.parent.mkdir()
    notes.write_text("mine")
    with pytest.warns(UserWarning, match="rebuilt it from the shard.json of 2 shards"):
        store = collect(tiny, prompts(1), wb.CaptureSpec(**SPEC), tmp_path / "s", GEN.replace(batch_size=2),
                        progress=False)
    assert len(counted) == 4 and len(store) == 4 and notes.read_text() == "mine"


COLLECTOR = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    import workbench as wb
    from workbench.data import collect as cm, store as sm
    from workbench.data.datasets import PromptSet
    from workbench.runtime.settings import GenerationSettings
    h = wb.random_model("tiny", seed=0)
    ps = PromptSet(["jazz", "rock"], templates=["{label}", "some {label}"], seeds=range(4))
    print("ready", flush=True)
    while not Path(sys.argv[2]).exists():
        time.sleep(0.002)
    try:
        cm.collect(h, ps, wb.CaptureSpec(layers=(0, 2), pooling="mean"), sys.argv[1],
                   GenerationSettings(duration_s=0.2, guidance_scale=3.0, batch_size=2), progress=False)
    except sm.StoreLockedError as e:
        print(e)
        sys.exit(3)
""")


@pytest.mark.slow  # two fresh processes import torch: ~10 s alone, 50 s on a busy 2-core machine
@pytest.mark.timeout(300)
def test_two_collections_at_once_one_is_refused(tiny, tmp_path, counted):
    store_dir, go = tmp_path / "s", tmp_path / "go"
    env = dict(os.environ, PYTHONPATH=str(Path(wb.__file__).parent.parent))
    runs = [subprocess.Popen([sys.executable, "-c", COLLECTOR, str(store_dir), str(go)], env=env, text=True,
                             stdout=subprocess.PIPE) for _ in range(2)]
    assert [r.stdout.readline().strip() for r in runs] == ["ready", "ready"]
    go.touch()
    outputs = [r.communicate(timeout=240)[0] for r in runs]
    codes = [r.returncode for r in runs]
    assert sorted(codes) == [0, 3], outputs
    refused, winner = (0, 1) if codes[0] == 3 else (1, 0)
    assert f"pid {runs[winner].pid}" in outputs[refused] and "lock_timeout_s" in outputs[refused]
    store = ActivationStore(store_dir, verify="full")
    ids = [r["id"] for r in store.table]
    assert len(ids) == len(set(ids)) == 16 and store.verify().sound
    again = collect(tiny, prompts(), wb.CaptureSpec(**SPEC), store_dir, GEN.replace(batch_size=2), progress=False)
    assert len(again) == 16 and not counted


def test_docstring_example():
    import doctest
    assert doctest.testmod(collect_mod).failed == 0
    assert doctest.testmod(collect_plan).failed == 0
