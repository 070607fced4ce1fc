"""`python -m workbench.features report`: the whole protocol on the teaching model, in a tiny run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.analysis.features import SparseAutoencoder
from workbench.analysis.features.report import BARS, bars, format_report

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("train_s", "explained_variance", "l0", "dead_fraction", "spliced_recovery", "genre_feature_auroc",
        "verdict", "feature_steer_share", "feature_steer_n_tried", "feature_steer_share_of_labelled")
VERDICT_KEYS = {"effect", "effect_ci", "random_p95", "p_value", "order_rate", "collapsed_share", "off_target",
                "beyond_random", "strength"}


@pytest.mark.slow
def test_report_runs_from_scratch_and_writes_every_figure(tmp_path):
    out, saved = tmp_path / "report.json", tmp_path / "saes"
    run = subprocess.run([sys.executable, "-m", "workbench.features", "report", "--quick", "--n-per-genre", "3",
                          "--epochs", "2", "--json", str(out), "--save", str(saved), "--store", str(tmp_path / "store"),
                          "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1"))
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert all(k in report for k in KEYS), [k for k in KEYS if k not in report]
    assert report["n_clips"] == 12 and report["l0"] == pytest.approx(32) and 0 <= report["dead_fraction"] <= 1
    assert sorted(report["genre_feature_auroc"]) == ["classical", "electronic", "jazz", "rock"]
    assert report["spliced_loss_clean"] < report["spliced_loss_zero"] and report["train_s"] > 0
    assert set(report["bars"]) == set(BARS) and "explained_variance" in run.stdout
    assert len(report["verdict"]) == report["feature_steer_n_tried"]
    for verdict in report["verdict"].values():  # each tried feature: its verdict against random directions
        assert VERDICT_KEYS <= set(verdict)
    sae = SparseAutoencoder.load(saved / "resid.3", expect_model_id=report["model_id"])
    assert sae.meta["layer"] == 3 and sae.k == 32


def test_bars_are_judged_against_the_issue_thresholds():
    figures = dict(explained_variance=0.81, l0=32.0, genre_feature_auroc={"rock": 0.95, "jazz": 0.89},
                   spliced_recovery=0.8, train_s=301.0)
    assert bars(figures) == dict(explained_variance=True, l0=True, genre_feature_auroc=False, spliced_recovery=True,
                                 train_s=False)
    assert bars({})["l0"] is False


def test_report_cli_refuses_unknown_commands(capsys):
    from workbench.analysis.features.report import main
    with pytest.raises(SystemExit) as stop:
        main(["nope"])
    assert stop.value.code == 2 and "report" in capsys.readouterr().err


def test_format_report_names_missed_bars():
    figures = dict(explained_variance=0.7, l0=32.0, genre_feature_auroc={"rock": 0.95}, genre_feature_id={"rock": 3},
                   spliced_recovery=0.9, train_s=10.0,
                   architecture="topk", d_in=96, d_sae=768, k=32, n_train_frames=10, n_train_clips=2, layer=3,
                   dead_fraction=0.0, dense_fraction=0.1, n_labelled=1, labelled_by_label={"label=rock": 1},
                   feature_steer_share=1.0, feature_steer_n_tried=1, seconds=1.0)
    text = format_report(dict(figures, bars=bars(figures)))
    assert "explained_variance" in text and "MISSED" in text.splitlines()[1] and "ok" in text.splitlines()[2]


def test_the_cli_leaves_the_sae_folder_unset_without_save(monkeypatch):
    """nnsight gives every object a .save(); argparse then found Namespace.save and never set --save's default,
    so `python -m workbench.features report --json F` passed a bound method as the SAEs' folder and crashed
    after the whole report had been computed."""
    import nnsight  # noqa: F401  (what mounts .save on every object)

    import workbench.analysis.features.report as report_module

    seen = {}

    def fake_run_report(plan, **kwargs):
        seen.update(kwargs)
        raise report_module.WorkbenchError("stop here")

    monkeypatch.setattr(report_module, "run_report", fake_run_report)
    assert report_module.main(["report", "--quick", "--no-progress"]) == 2
    assert seen["save_dir"] is None and seen["store_dir"] is None
    report_module.main(["report", "--quick", "--save", "saes"])
    assert seen["save_dir"] == Path("saes")
