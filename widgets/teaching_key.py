"""The teacher's answer key for notebook 04 (the teaching lab): not shown in the notebook.

The key is whatever the lab's graders accept on a run of the notebook, so this file runs the notebook
headless (nbclient, the same cells a student runs) and prints what each question accepts. The
answers depend on the run's sizes: the key printed at full size is the one for a class running the
notebook as shipped; ``--fast`` gives the key at the size CI runs (WORKBENCH_FAST=1).

    python -m widgets.teaching_key            # full size: several minutes on a laptop CPU
    python -m widgets.teaching_key --fast     # CI size: under a minute
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

__all__ = ["KEY_MARK", "NOTEBOOK", "answer_key", "compute_key", "main"]

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "04_teaching_lab.ipynb"
KEY_MARK = "ANSWER_KEY:"
_KEY_CELL = ("from widgets.teaching_key import answer_key as _answer_key, KEY_MARK as _KEY_MARK\n"
             "import json as _json\nprint(_KEY_MARK + _json.dumps(_answer_key(lab)))")


def answer_key(lab) -> list[dict]:
    """One row per question of a `widgets.teaching.Lab`: question, prompt, accepts (what counts, from the
    run) and answer (one answer `lab.check` takes)."""
    # the teacher's file reads the lab's graders directly: the notebook has no call that shows them
    return [dict(question=q.key, prompt=q.prompt, **q.kind.key()) for q in lab._questions.values()]


def compute_key(notebook: Path = NOTEBOOK, fast: bool = False, timeout_s: float = 1800,
                extra_cells: tuple[str, ...] = ()) -> tuple[list[dict], object]:
    """Run `notebook` headless and return (its answer key, the executed notebook).

    extra_cells: code run after the key cell in the same kernel (a test's checks of the lab).
    """
    import nbformat
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell

    nb = nbformat.read(notebook, as_version=4)
    nb.cells += [new_code_cell(_KEY_CELL), *(new_code_cell(code) for code in extra_cells)]
    env = dict(os.environ, HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1"),
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    env["WORKBENCH_FAST"] = "1" if fast else "0"
    repo = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH", "")) if p)
    client = NotebookClient(nb, timeout=timeout_s, kernel_name="python3", store_widget_state=False,
                            resources={"metadata": {"path": str(Path(notebook).parent)}})
    client.execute(env=env)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines() if output.get("output_type") == "stream" else ():
                if line.startswith(KEY_MARK):
                    return json.loads(line[len(KEY_MARK):]), nb
    raise RuntimeError(f"{notebook} ran but printed no answer key: does it still make a `lab`?")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m widgets.teaching_key", description=__doc__.split("\n")[0])
    parser.add_argument("--fast", action="store_true", help="the size CI runs (WORKBENCH_FAST=1)")
    parser.add_argument("--notebook", type=Path, default=NOTEBOOK)
    parser.add_argument("--json", action="store_true", help="print the key as JSON")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print(f"running {args.notebook.name} headless ({'CI size' if args.fast else 'full size'})…", file=sys.stderr)
    key, _ = compute_key(args.notebook, fast=args.fast)
    if args.json:
        print(json.dumps(key, indent=1))
    else:
        for row in key:
            print(f"{row['question']}: {row['prompt']}\n    accepts: {' | '.join(row['accepts'])}")
    print(f"(computed from a run of {time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
