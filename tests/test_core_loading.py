"""load_model: local folders, Hub ids offline, and the errors that say what to do."""
import json

import numpy as np
import pytest

import workbench as wb
from workbench.errors import ModelNotAvailableError, NotAMusicGenError
from workbench.runtime.capture import PooledAccumulator


def test_local_folder_round_trip(tiny, tmp_path):
    tiny.model.save_pretrained(tmp_path / "m")
    tiny.processor.save_pretrained(tmp_path / "m")
    loaded = wb.load_model(tmp_path / "m")
    assert (loaded.n_layers, loaded.hidden_size) == (tiny.n_layers, tiny.hidden_size)
    a = wb.generate(tiny, "jazz", duration_s=0.2, seeds=1).clips[0].codes
    b = wb.generate(loaded, "jazz", duration_s=0.2, seeds=1).clips[0].codes
    assert np.array_equal(a, b)


def test_folder_that_is_not_a_musicgen(tmp_path):
    with pytest.raises(NotAMusicGenError, match="no config.json"):
        wb.load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(NotAMusicGenError, match="'bert'"):
        wb.load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "musicgen_melody"}))
    with pytest.raises(NotAMusicGenError, match="Melody"):
        wb.load_model(tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(NotAMusicGenError, match="folder"):
        wb.load_model(tmp_path / "weights.bin")


def test_hub_id_offline_and_not_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelNotAvailableError, match="huggingface-cli download facebook/musicgen-small"):
        wb.load_model("facebook/musicgen-small")


def test_handle_facts(tiny):
    assert tiny.sample_rate_hz == 32000 and tiny.frame_rate_hz == 50 and tiny.delay_steps == 3
    assert tiny.site_path("attn", 0).endswith("layers.0.self_attn")
    assert "layers=3" in repr(tiny)


def test_pooled_capture_memory_does_not_grow_with_steps():
    import torch
    acc = PooledAccumulator("mean_std")
    for _ in range(500):
        acc.offer(torch.randn(2, 1, 8), replace=False)
    assert acc.steps == [] and acc.total.shape == (2, 8) and acc.result().shape == (2, 16)


def test_teaching_model_loads_without_transformers_noise(capfd):
    from transformers.utils import logging as hf_logging

    import workbench as wb

    before = hf_logging.get_verbosity()
    wb.load_model()
    err = capfd.readouterr().err
    assert "pad_token_id" not in err and "Loading weights" not in err
    assert hf_logging.get_verbosity() == before  # restored for the user's own loads


def test_a_direction_from_teaching_model_v2_does_not_load_on_v3(tmp_path):
    """The teaching model's id names its version: a direction (or store) made on v2's weights, whose id was
    "workbench/teaching-model", is refused on v3 instead of steering a model it was not fitted on."""
    from workbench.analysis.directions import Direction
    from workbench.errors import DirectionMismatchError

    h = wb.load_model()
    assert h.model_id == "workbench/teaching-model-v3"
    path = Direction(np.ones(h.hidden_size, np.float32), model_id="workbench/teaching-model", layer=3).save(
        tmp_path / "rock.safetensors")
    with pytest.raises(DirectionMismatchError, match="teaching-model"):
        Direction.load(path, expect_model_id=h.model_id)
