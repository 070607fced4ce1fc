"""``python -m workbench.features report --json PATH``: the feature-discovery protocol (see its report module)."""
import sys

from workbench.analysis.features.report import main

if __name__ == "__main__":
    sys.exit(main())
