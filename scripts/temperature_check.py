"""The same weights sampled at other temperatures: code diversity, the clean-fitted genre reader and the comb.

For each temperature, a copy of the model folder with that temperature in its `generation_config.json`
goes through `python -m workbench.toy evaluate --no-concepts` (the judge, round trips, 48 generations
from the evaluation prompts, probes per layer); one line per temperature gives what the generations
are against the codec's round trips of clean clips.

    python scripts/temperature_check.py                      # the shipped weights at 0.8 and 1.0
    python scripts/temperature_check.py WEIGHTS 0.8 0.9 1.0

Bar (issue 30): distinct codes per codebook and repeat rate of generations within 20% of the round trips'.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path


def main(argv=None) -> int:
    import torch

    from workbench.analysis.teaching.evaluate import evaluate
    from workbench.toy import WEIGHTS_DIR

    argv = list(sys.argv[1:] if argv is None else argv)
    source = Path(argv[0]) if argv else WEIGHTS_DIR
    temperatures = [float(t) for t in argv[1:]] or [0.8, 1.0]
    torch.set_num_threads(1)
    print("temperature  distinct codes (round trips)  repeat rate (round trips)  clean genre reader  comb share")
    for temperature in temperatures:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "weights"
            shutil.copytree(source, folder)
            config_path = folder / "generation_config.json"
            config = json.loads(config_path.read_text())
            config["temperature"] = temperature
            config_path.write_text(json.dumps(config, indent=2))
            m = evaluate(folder, seed=0, progress=False, device="cpu", concepts=False)
        distinct = f"{m['distinct_codes_generated_median']:6.1f} ({m['distinct_codes_reconstructed_median']:.1f})"
        repeats = f"{m['repeat_rate_generated_median']:.3f} ({m['repeat_rate_reconstructed_median']:.3f})"
        print(f"{temperature:11.2f}  {distinct:28s}  {repeats:25s}  {m['clean_reader_genre_generated']:18.3f}  "
              f"{m['comb_share_generated_median']:10.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
