"""The reproduction of Section 7 of Bah, Rauhut, Terstiege, Westdickenberg (2019)
(``linrank reproduce``).

* :mod:`~linrank.experiments.reproduce.paper` -- set-up and one run (:func:`run_spec`) with its
  stopping rule; :mod:`~linrank.experiments.reproduce.limits` -- closed forms and fitted rates.
* :mod:`~linrank.experiments.reproduce.plan` -- the list of runs, Corollary 8, the saddle table.
* :mod:`~linrank.experiments.reproduce.driver` -- runs many specs over seeds (cache, processes).
* :mod:`~linrank.experiments.reproduce.verdicts` -- one verdict per claim.
* :mod:`~linrank.experiments.reproduce.figures`, :mod:`~linrank.experiments.reproduce.report` --
  fig1.png ..., summary.json, details.json, report.md.
* :mod:`~linrank.experiments.reproduce.amended` -- adversarial tests of the amended
  Conjecture 32.
* :func:`reproduce` (:mod:`~linrank.experiments.reproduce.app`) -- all of it into one directory.
"""

from __future__ import annotations

from .app import MAX_SEEDS, OUTPUT_FILES, ReproductionResult, reproduce
from .paper import RunRecord, RunSpec, Settings, run_spec
from .plan import default_specs, perturbation_specs

__all__ = ["reproduce", "ReproductionResult", "OUTPUT_FILES", "MAX_SEEDS", "RunRecord", "RunSpec",
           "Settings", "run_spec", "default_specs", "perturbation_specs"]
