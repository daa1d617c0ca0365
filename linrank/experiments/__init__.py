"""The applications built on the core, and the pieces they share.

Each application is a package with a small API in its ``__init__`` and its entry function in
``app.py``; ``linrank.commands.<name>`` is its command line. Applications import the core and
:mod:`linrank.experiments.shared`, never each other (``python -m linrank.devtools.layout``
checks it).

* :mod:`linrank.experiments.reproduce` -- the reproduction of Section 7 of Bah, Rauhut,
  Terstiege, Westdickenberg (2019): starts, runs, verdicts, figures, report
  (:func:`reproduce`, ``linrank reproduce``).
* :mod:`linrank.experiments.compare` -- optimizers on the fixed-rank manifold compared
  (``linrank compare``).
* :mod:`linrank.experiments.sweep` -- flow runs over a grid, locally or on Dask
  (``linrank sweep``).
* :mod:`linrank.experiments.search` -- adversarial starts inside a hypothesis
  (``linrank search``).
* :mod:`linrank.experiments.shared` -- output directories (locks, manifests, atomic writes),
  sealed caches, resources, the paper's starts, counterexample families, hypotheses, start files.

The old module paths (``linrank.experiments.starts``, ``.families``, ``.sweep_grid``, ...) work
for one more version with a DeprecationWarning (:mod:`linrank.experiments.deprecated`).
"""

from __future__ import annotations

from .deprecated import install as _install_old_paths
from .reproduce import (
    ReproductionResult,
    RunRecord,
    RunSpec,
    Settings,
    default_specs,
    perturbation_specs,
    reproduce,
    run_spec,
)

_install_old_paths()

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
