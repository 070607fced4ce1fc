"""A command, not a module to import: ``python -m workbench.features report --json PATH`` runs the
feature-discovery protocol (`workbench.analysis.features.report`). The SAEs, labels and feature steering
are imported from `workbench.analysis.features`."""
