"""Evaluate a trained agent: ``python evaluate.py RUN_DIR --help``."""

import sys

from agents.cli import evaluate_main

if __name__ == "__main__":
    sys.exit(evaluate_main())
