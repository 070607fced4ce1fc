"""Teacher forcing reproduces what the decoder saw while generating."""
import numpy as np
import pytest

import workbench as wb
from workbench.errors import BadInputError, EmptyInputError

PROMPTS = ["rock guitar", "smooth jazz"]


@pytest.mark.parametrize("rows,guidance", [("cond", 1.0), ("both", 3.0)])
def test_teacher_forced_codes_match_generation_steps(tiny, rows, guidance):
    spec = wb.CaptureSpec(pooling="none", rows=rows, sites=("resid", "attn", "mlp"))
    gen = wb.generate(tiny, PROMPTS, duration_s=0.2, seeds=[1, 2], capture=spec, guidance_scale=guidance)
    forced = wb.teacher_force(tiny, gen.clips, prompts=PROMPTS, capture=spec)
    for key, steps in gen.activations.items():
        assert len(forced[key]) == len(steps)
        for a, b in zip(steps, forced[key]):
            assert a.shape == b.shape and np.allclose(a, b, atol=1e-5), key


def test_raw_audio_is_encoded_and_order_kept_across_lengths(tiny):
    rng = np.random.RandomState(0)
    audio = [rng.randn(6400).astype(np.float32) * 0.1, rng.randn(3200).astype(np.float32) * 0.1,
             rng.randn(6400).astype(np.float32) * 0.1]
    spec = wb.CaptureSpec(layers=(1,), pooling="mean")
    together = wb.teacher_force(tiny, audio, 32000, capture=spec, batch_size=2)[("resid", 1)]
    alone = np.concatenate([wb.teacher_force(tiny, [a], 32000, capture=spec)[("resid", 1)] for a in audio])
    assert together.shape == (3, tiny.hidden_size)
    assert np.allclose(together, alone, atol=1e-5)


def test_teacher_force_bad_input(tiny):
    with pytest.raises(EmptyInputError):
        wb.teacher_force(tiny, [], 32000)
    with pytest.raises(BadInputError, match="resample"):
        wb.teacher_force(tiny, [np.zeros(4800, np.float32)], 24000)
    with pytest.raises(BadInputError, match="NaN"):
        wb.teacher_force(tiny, [np.full(6400, np.nan, np.float32)], 32000)
    with pytest.raises(BadInputError, match="one per clip"):
        wb.teacher_force(tiny, [np.zeros(6400, np.float32)], 32000, prompts=["a", "b"])
