"""Reproduction of the experiments of Section 7 of Bah, Rauhut, Terstiege, Westdickenberg (2019).

* :mod:`linrank.experiments.starts` -- the paper's starts, starts inside / near the boundary of /
  outside condition (47), the special start for any depth, non-balanced starts, and
  :func:`condition_47`.
* :mod:`linrank.experiments.limits` -- closed forms (the Figure 3 limit from the conserved D, the
  special start's exact solution) and fitted rates / escape times.
* :mod:`linrank.experiments.paper` -- set-up, one run (:func:`run_spec`) with its stopping rule.
* :mod:`linrank.experiments.plan` -- the list of runs, Corollary 8, the strict-saddle table.
* :mod:`linrank.experiments.driver` -- runs many specs over seeds (cache, processes, Ctrl-C).
* :mod:`linrank.experiments.verdicts` -- one verdict per claim, resting on a stated run list.
* :mod:`linrank.experiments.figures` -- fig1.png ... fig5.png.
* :mod:`linrank.experiments.report` -- summary.json, details.json, report.md.
* :mod:`linrank.experiments.outputs` -- output-directory lock, ownership and atomic writes.
* :func:`reproduce` -- all of it into one directory (the ``linrank reproduce`` command).
"""

from __future__ import annotations

from .reproduce.app import ReproductionResult, reproduce  # noqa: E402
from .reproduce.paper import RunRecord, RunSpec, Settings, run_spec
from .reproduce.plan import default_specs, perturbation_specs

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
