"""Optimizers on the fixed-rank manifold compared on a set of problems (``linrank compare``).

* :mod:`~linrank.experiments.compare.problems` -- the problems and sizes (:func:`register_problem`
  adds one);
* :mod:`~linrank.experiments.compare.solvers` -- the solvers; :mod:`~.record` -- budgets and the
  per-iterate record;
* :mod:`~linrank.experiments.compare.report` -- results.csv, history.csv, report.md, figures;
* :func:`compare` (:mod:`~linrank.experiments.compare.app`) -- every solver on every problem into
  one directory, cached per run.
"""

from __future__ import annotations

from .app import (
    DEFAULT_DEPTHS,
    CompareResult,
    OutputDirError,
    compare,
    default_budget,
    parse_problems,
)
from .problems import register_problem
from .record import Budget

__all__ = ["compare", "CompareResult", "DEFAULT_DEPTHS", "default_budget", "parse_problems",
           "OutputDirError", "register_problem", "Budget"]
