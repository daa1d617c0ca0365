"""Pieces that two or more applications use; no application is imported from here.

* :mod:`~linrank.experiments.shared.outputs` -- owned, locked output directories (lock file,
  manifest of the files linrank wrote), atomic writes, the ``--out`` parent rule.
* :mod:`~linrank.experiments.shared.sealed` -- cache files sealed with their identity and a
  checksum (a foreign, stale or cut-off file is named and recomputed).
* :mod:`~linrank.experiments.shared.resources` -- memory checks before work, one joblib/Dask
  executor, workers that end with their parent.
* :mod:`~linrank.experiments.shared.starts` -- the paper's starts and condition (47).
* :mod:`~linrank.experiments.shared.families` -- counterexample families, hypothesis predicates
  and the certificates that decide a run.
* :mod:`~linrank.experiments.shared.hypotheses` -- the named hypotheses on W(0) with margins.
* :mod:`~linrank.experiments.shared.startfile` -- files of starts in the eigenbasis (written by
  the search, read by the sweep).

The modules are imported by their full names; this package imports nothing itself.
"""
