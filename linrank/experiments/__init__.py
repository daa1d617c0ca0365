"""Reproduction of the experiments of Section 7 of Bah, Rauhut, Terstiege, Westdickenberg (2019).

* :mod:`linrank.experiments.starts` -- the paper's starts, starts inside / near the boundary of /
  outside condition (47), the special start for any depth, non-balanced starts, and
  :func:`condition_47`.
* :mod:`linrank.experiments.paper` -- set-up, starts, runs (:func:`run_spec`, :func:`run_all`),
  side studies (Euler against RK45, Corollary 8, the strict-saddle table of Proposition 30).
* :mod:`linrank.experiments.figures` -- fig1.png ... fig4.png.
* :mod:`linrank.experiments.report` -- summary.json, details.json, report.md with verdicts.
* :func:`reproduce` -- all of it into one directory (the ``linrank reproduce`` command).
"""

from __future__ import annotations

from .paper import RunRecord, RunSpec, Settings, default_specs, perturbation_specs, run_spec
from .reproduce import ReproductionResult, reproduce

__all__ = [
    "RunRecord",
    "RunSpec",
    "Settings",
    "default_specs",
    "perturbation_specs",
    "run_spec",
    "ReproductionResult",
    "reproduce",
]
