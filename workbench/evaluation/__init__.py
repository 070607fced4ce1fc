"""``workbench.evaluation`` is `workbench.analysis.evaluation` (the same names): grids, trade-offs, FAD.

``python -m workbench.evaluation report --json PATH`` runs the evaluation protocol on the teaching model.

    >>> import workbench.evaluation as we, workbench.analysis.evaluation as wae
    >>> we.run_grid is wae.run_grid
    True
"""
from workbench.analysis.evaluation import *  # noqa: F401,F403
from workbench.analysis.evaluation import __all__  # noqa: F401
