"""Does the teaching model's decoder hold a tempo it hears? Continuations of clean clips at two tempos.

Clean synthesiser clips (`synth_v2`, 4 genres x 4 seeds from 500) rendered at 80 and at 145 BPM, 6 s long. The
decoder continues each clip's first 2 s for 4 s (prompt "GENRE music", guidance 3); the clean tempo reader
(`workbench.toy.clean_readers`) reads the continuation's 4 s. Controls, read the same way: the clean clips' last
4 s (the reader), their codec round trips (what the codec keeps), free generations from the same prompts and seeds
(what the decoder does without hearing a tempo: its own tempo distribution) and from "slow GENRE music" / "fast
GENRE music" (the words). A decoder that holds the tempo it hears reads near the source; one that ignores it
reads like the free generations. Per row: median BPM per source tempo (and per genre), the correlation with the
source BPM and the share of clips within 10% of it.

    python scripts/tempo_hold.py                 # the shipped teaching model
    python scripts/tempo_hold.py WEIGHTS_DIR     # another teaching model folder
    python scripts/tempo_hold.py --top-k 20      # every generation sampled from the 20 likeliest codes (default 250)
"""
from __future__ import annotations

import sys
import time

SOURCE_BPM = (80.0, 145.0)
PROMPT_S = 2.0
CONTINUATION_S = 4.0


def tempo_hold(weights=None, seeds=tuple(range(500, 504)), **sampling) -> dict:
    """{row name: {"bpm": per clip, "source_bpm": per clip, "genre": per clip}} (see the module docstring).

    sampling: `GenerationSettings` fields for every generation (temperature, top_k, guidance_scale).
    """
    import numpy as np
    import torch

    import workbench as wb
    from workbench.analysis.teaching.evaluate import _round_trip
    from workbench.runtime.settings import GenerationSettings
    from workbench.toy.clean_readers import read_values
    from workbench.toy.synth_v2 import GENRES, SAMPLE_RATE_HZ, synth_clip

    torch.set_num_threads(1)
    sr = SAMPLE_RATE_HZ
    handle = wb.load_model(weights, device="cpu")
    rows = [(g, s, bpm) for bpm in SOURCE_BPM for g in GENRES for s in seeds]
    clips = [synth_clip(g, s, tempo_bpm=bpm, duration_s=PROMPT_S + CONTINUATION_S) for g, s, bpm in rows]
    tail = int(CONTINUATION_S * sr)
    settings = GenerationSettings(duration_s=CONTINUATION_S, seeds=tuple(s for _, s, _ in rows),
                                  **{"guidance_scale": 3.0, **sampling})
    prompts = [f"{g} music" for g, _, _ in rows]
    cont = wb.generate(handle, prompts, settings, audio_prompt=[c[:int(PROMPT_S * sr)] for c in clips],
                       audio_prompt_sample_rate_hz=sr)
    free = wb.generate(handle, prompts, settings)
    words = wb.generate(handle, [f"{'slow' if bpm < 110 else 'fast'} {g} music" for g, _, bpm in rows], settings)
    out_sr = cont.clips[0].sample_rate_hz
    clean_tail = np.stack([c[-tail:] for c in clips]).astype(np.float32)
    readings = {
        "clean clips (last 4 s)": read_values("tempo", list(clean_tail), sr),
        "codec round trips": read_values("tempo", list(_round_trip(handle.model, clean_tail)[0]), sr),
        "continuations of their first 2 s": read_values("tempo", [c.mono[-int(CONTINUATION_S * out_sr):]
                                                                   for c in cont.clips], out_sr),
        "free generations, 'GENRE music'": read_values("tempo", [c.mono for c in free.clips], out_sr),
        "free generations, 'slow/fast GENRE music'": read_values("tempo", [c.mono for c in words.clips], out_sr),
    }
    return {name: dict(bpm=[float(b) for b in v], source_bpm=[r[2] for r in rows], genre=[r[0] for r in rows])
            for name, v in readings.items()}


def report(result: dict) -> str:
    import numpy as np

    lines = []
    for name, r in result.items():
        bpm, src, genre = np.array(r["bpm"]), np.array(r["source_bpm"]), np.array(r["genre"])
        lines.append(f"{name}: corr with the source BPM {np.corrcoef(bpm, src)[0, 1]:+.2f}, within 10% of it "
                     f"{np.mean(np.abs(bpm / src - 1) < 0.1):.2f}")
        for s in SOURCE_BPM:
            by_genre = " ".join(f"{g} {np.median(bpm[(src == s) & (genre == g)]):.0f}" for g in dict.fromkeys(genre))
            lines.append(f"    source {s:.0f} BPM: median {np.median(bpm[src == s]):.1f} ({by_genre})")
    return "\n".join(lines)


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("weights", nargs="?", help="a teaching model folder (default: the shipped one)")
    parser.add_argument("--top-k", type=int, help="sample every generation from this many likeliest codes")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    t0 = time.time()
    sampling = {} if args.top_k is None else dict(top_k=args.top_k)
    print(report(tempo_hold(args.weights, **sampling)))
    print(f"{time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
