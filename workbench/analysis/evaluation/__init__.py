"""Evaluate steering the way the field does: strength sweeps, alignment vs preservation, FAD, descriptors.

- `methods`: `Method` (a direction per target and layer, and how it is applied), `random_like`;
- `presets`: `paper_2506_10225` (arXiv 2506.10225's published method), `workbench_default`,
  `logistic_probe`, and `PaperProbe`;
- `grid`: `GridPlan`, `items_for`, `run_grid` (resumable, progress bar, stop);
- `results`: the folder format and `EvaluationResult` (a tidy table; clips decode for listening);
- `metrics`: code edit rate, multi-resolution mel distance, codec embeddings, Fréchet distance, descriptors;
- `summaries`: alignment vs strength, the trade-off curve and its AUC, descriptor shifts, FAD per cell;
- `listening`: blind A/B and A/B/X trials from a grid, a binomial test; `answers`: the answers in SQLite
  (one transaction per answer, resumable per participant, `merge_answers` for one database per machine);
- `collapse`: per clip, distinct codes, repeats, the frame-rate comb share; `verdicts`: the one
  steering-effect measurement, against random directions of equal norm (`SteeringBench`);
- `report`: ``python -m workbench.evaluation report --json PATH`` on the teaching model.

    >>> from workbench.analysis.evaluation import frontier_auc
    >>> frontier_auc([1.0, 0.5], [0.25, 1.0])
    0.8125
"""
from workbench.analysis.evaluation.answers import AnswerLog, merge_answers, read_answers
from workbench.analysis.evaluation.grid import GridPlan, Item, items_for, run_grid
from workbench.analysis.evaluation.methods import Method, random_like
from workbench.analysis.evaluation.metrics import (
    code_edit_rate,
    codec_embedding,
    descriptors,
    embedding_distance,
    frechet_distance,
    mel_distance,
)
from workbench.analysis.evaluation.presets import (
    PaperProbe,
    logistic_probe,
    paper_2506_10225,
    paper_layer_sweep,
    workbench_default,
)
from workbench.analysis.evaluation.results import EvaluationResult, GridMismatchError, GridReport, ResultsLog
from workbench.analysis.evaluation.summaries import (
    alignment_by_strength,
    auc_table,
    descriptor_shifts,
    fad_table,
    frontier_auc,
    reference_distance,
    tradeoff,
)

__all__ = ["AnswerLog", "EvaluationResult", "GridMismatchError", "GridPlan", "GridReport", "Item", "Method",
           "PaperProbe", "ResultsLog", "merge_answers", "read_answers",
           "alignment_by_strength", "auc_table", "code_edit_rate", "codec_embedding", "descriptor_shifts",
           "descriptors", "embedding_distance", "fad_table", "frechet_distance", "frontier_auc", "items_for",
           "logistic_probe", "mel_distance", "paper_2506_10225", "paper_layer_sweep", "random_like",
           "reference_distance", "run_grid", "tradeoff", "workbench_default"]
