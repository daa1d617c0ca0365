"""Adversarial starts inside a hypothesis, found by a derivative-free optimizer
(``linrank search``).

* :mod:`~linrank.experiments.search.objective` -- the start's parametrization and the objective
  (:class:`SearchConfig`, :class:`SearchProblem`);
* :mod:`~linrank.experiments.search.report` -- report.md;
* :func:`search` (:mod:`~linrank.experiments.search.app`) -- the search into a directory,
  resumably; the starts it writes are read by the sweep through
  :mod:`linrank.experiments.shared.startfile`.
"""

from __future__ import annotations

from .app import SearchError, SearchResult, config_key, run_unit, search
from .objective import SearchConfig, SearchProblem

__all__ = ["SearchError", "SearchResult", "search", "run_unit", "config_key", "SearchConfig",
           "SearchProblem"]
