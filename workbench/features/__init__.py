"""``workbench.features`` is `workbench.analysis.features` (the same names): SAEs, labels, steering.

``python -m workbench.features report --json PATH`` runs the feature-discovery protocol.

    >>> import workbench.features as wf, workbench.analysis.features as waf
    >>> wf.SparseAutoencoder is waf.SparseAutoencoder
    True
"""
from workbench.analysis.features import *  # noqa: F401,F403
from workbench.analysis.features import __all__  # noqa: F401
