"""``python -m workbench.evaluation report --json PATH``: the evaluation protocol (see its report module)."""
import sys

from workbench.analysis.evaluation.report import main

if __name__ == "__main__":
    sys.exit(main())
