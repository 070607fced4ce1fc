"""A command, not a module to import: ``python -m workbench.evaluation report --json PATH`` runs the
evaluation protocol on the teaching model (`workbench.analysis.evaluation.report`). The grids, trade-offs
and FAD are imported from `workbench.analysis.evaluation`."""
