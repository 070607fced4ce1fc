"""Steering recipes as evaluation presets: ``workbench.recipes.paper_2506_10225`` and the workbench default.

The code lives in `workbench.analysis.evaluation.recipes`; this module gives it a short address.

    >>> import workbench.recipes as r
    >>> r.paper_2506_10225.__module__, r.PAPER_STRENGTHS[-1]
    ('workbench.analysis.evaluation.recipes', 4.0)
"""
from workbench.analysis.evaluation.recipes import (  # noqa: F401
    DEFAULT_STRENGTHS,
    PAPER_STRENGTHS,
    PaperProbe,
    logistic_probe,
    paper_2506_10225,
    paper_layer_sweep,
    workbench_default,
)

__all__ = ["DEFAULT_STRENGTHS", "PAPER_STRENGTHS", "PaperProbe", "logistic_probe", "paper_2506_10225",
           "paper_layer_sweep", "workbench_default"]
