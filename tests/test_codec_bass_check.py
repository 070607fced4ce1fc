"""scripts/codec_bass_check.py's band figures: a slow wander under 20 Hz (what the teaching codecs add to a clip,
session 26) is counted as infrasound and kept out of the 20-90 Hz band, which reads only what is there."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

SR = 32000
_spec = importlib.util.spec_from_file_location("codec_bass_check",
                                               Path(__file__).resolve().parents[1] / "scripts/codec_bass_check.py")
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)


def _tone(hz: float, amplitude: float, seconds: float = 4.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return amplitude * np.sin(2 * np.pi * hz * t + 0.3)


def test_a_wander_under_20_hz_is_infrasound_not_bass():
    music = _tone(440.0, 0.3) + _tone(660.0, 0.2)  # nothing under 130 Hz
    wander = 0.5 * np.sin(2 * np.pi * 3.1 * np.arange(4 * SR) / SR) + 0.2  # a slow drift with an offset
    assert check.low_band_db(music) < -80
    assert check.low_band_db(music + wander) < -40  # the window keeps the 3 Hz drift out of 20-90 Hz
    assert check.infrasound_share(music) < 0.01
    assert check.infrasound_share(music + wander) == pytest.approx(0.5 / np.sqrt(0.5 ** 2 + 0.3 ** 2 + 0.2 ** 2),
                                                                   abs=0.02)  # the offset is removed first
    bass = music + _tone(55.0, 0.3)  # a bass note in the band reads as one
    assert check.low_band_db(bass) > -5
    assert check.infrasound_share(bass) < 0.01
    assert check.infrasound_share(np.zeros(SR)) == 0.0
