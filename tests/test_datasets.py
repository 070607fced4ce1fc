import numpy as np
import pytest

from workbench.data.datasets import AudioSet, PromptSet, SynthSet, resample
from workbench.errors import BadInputError


def test_prompt_set_grid():
    ps = PromptSet(["jazz", "rock"], templates=["{label} music", "a {label} song"], seeds=range(3),
                   label_text={"rock": "loud rock"})
    assert len(ps) == 12 and ps.labels().count("jazz") == 6
    assert {r["prompt"] for r in ps if r["label"] == "rock"} == {"loud rock music", "a loud rock song"}
    assert len({r["id"] for r in ps}) == 12
    with pytest.raises(BadInputError, match="slot"):
        PromptSet(["jazz"], templates=["no slot"])


def test_resample_keeps_a_tone_and_length():
    sr_in, sr_out = 44100, 32000
    t = np.arange(sr_in) / sr_in
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    out = resample(tone, sr_in, sr_out)
    assert out.shape == (sr_out,) and out.dtype == np.float32
    expected = np.sin(2 * np.pi * 440 * np.arange(sr_out) / sr_out)
    assert np.abs(out[200:-200] - expected[200:-200]).max() < 1e-2
    # above the new Nyquist: removed, not aliased
    high = np.sin(2 * np.pi * 18000 * t).astype(np.float32)
    assert np.abs(resample(high, sr_in, sr_out)[200:-200]).max() < 0.05
    assert resample(tone, sr_in, sr_in) is not None and resample(np.ones((2, 441)), 441, 320).shape == (2, 320)


def write_folder(root, sr=16000):
    import soundfile as sf
    for label in ("jazz", "rock"):
        (root / label).mkdir(parents=True)
        for k in range(2):
            sf.write(str(root / label / f"{k}.wav"), np.full(sr // 4, 0.1 * (k + 1), np.float32), sr)


def test_audio_set_from_subfolders_and_csv(tmp_path):
    write_folder(tmp_path / "a")
    aset = AudioSet(tmp_path / "a", sample_rate_hz=32000, duration_s=0.3)
    assert aset.labels() == ["jazz", "jazz", "rock", "rock"] and aset.rows[0]["id"] == "jazz/0.wav"
    wave = aset.audio(1)
    assert wave.shape == (9600,) and abs(wave[1000] - 0.2) < 1e-3 and wave[-1] == 0  # resampled, padded
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\njazz/0.wav,calm\nrock/1.wav,loud\n")
    assert AudioSet(tmp_path / "a", labels_csv=csv).labels() == ["calm", "loud"]
    csv.write_text("path,label\nmissing.wav,x\n")
    with pytest.raises(BadInputError, match="relative to the folder"):
        AudioSet(tmp_path / "a", labels_csv=csv)
    (tmp_path / "a" / "loose.wav").write_bytes(b"")
    with pytest.raises(BadInputError, match="subfolder per label"):
        AudioSet(tmp_path / "a")


def test_synth_set():
    synth = pytest.importorskip("workbench.toy.synth")
    ss = SynthSet(genres=synth.GENRES[:2], n_per_genre=2, duration_s=0.25, sample_rate_hz=16000)
    assert len(ss) == 4 and ss.labels()[0] == synth.GENRES[0]
    wave = ss.audio(0)
    assert wave.shape == (4000,) and wave.dtype == np.float32
    np.testing.assert_array_equal(wave, ss.audio(0))  # seeded
    with pytest.raises(BadInputError, match="unknown genres"):
        SynthSet(genres=["polka"])
