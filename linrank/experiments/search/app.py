r"""``linrank search``: adversarial starts inside a hypothesis, by a derivative-free optimizer.

:func:`search` maximizes the objective of :mod:`linrank.experiments.search.objective` (time to
converge relative to the horizon, or 1 + the distance to :math:`U_rU_r^T` at the horizon) over
the parametrization of the start described there, by a derivative-free optimizer
(:mod:`linrank.experiments.search.optim`: CMA-ES by default, or scipy's Nelder-Mead) from random
starts inside the hypothesis, with restarts. Work comes in *units*:

* ``random-NNNN`` -- one random start inside the hypothesis (the baseline whose median time to
  converge the report compares with), ``config.random`` of them;
* ``restart-NNNN`` -- one run of the optimizer (``config.optimizer``) of at most
  ``config.evals`` flow evaluations from its own random start; one row per distinct candidate
  it evaluated.

Each unit depends only on the configuration and its name (its random numbers come from
``SeedSequence([seed, unit number, kind])``, BLAS is held to one thread), so it gives the same
rows in any process, locally or on a Dask cluster. Restarts are started while the budget (wall
seconds) lasts and until ``restarts`` (a total) is reached; a restart that has started runs to
its end.

Files (``DIR``): ``search.json`` (the configuration and its key), ``worst.csv`` (one row per
candidate, columns :data:`linrank.experiments.shared.startfile.COLUMNS`, sorted by objective, worst
first, when the search returns), ``report.md``. Guarantees, as for the sweep:

* Rows are appended (flushed, fsync'ed) when a unit ends; an interrupted unit leaves no row.
* Every row carries the identity of what computed it (``config``: the configuration's key;
  ``code``: :func:`linrank.experiments.shared.startfile.code_key`, linrank's version, the source of the
  modules the search runs and the numerical libraries' versions) and a checksum over all its
  values, and is verified on reading: a cut-off or edited (*changed*), *foreign* (another
  configuration) or *stale* (other code) row is named (``SearchResult.problems``, and on stderr
  by the command) and its unit is recomputed; so is a unit that lacks rows. A directory written
  by an older file format of the search has all its rows named stale and recomputed. Rerunning
  the same call resumes, and a search that was interrupted and resumed ends with the same
  worst.csv as one that was not. Rows that come back from a worker running other code (a Dask
  cluster with another linrank) stop the search with a SearchError.
* ``DIR`` is linrank's: locked while a search writes it (:class:`.outputs.OutputDir`); a
  directory holding other files, or a search of another configuration, is refused.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..shared.outputs import CACHE, LOCK, MANIFEST, OutputDir, OutputError, atomic_write_text
from ..shared.resources import executor
from ..shared.startfile import (
    COLUMNS,
    RESULTS,
    code_identity,
    code_key,
    format_value,
    read_rows,
    row_checksum,
)
from ..shared.startfile import MANIFEST as CONFIG
from .objective import SearchConfig, SearchProblem
from .optim import run_optimizer

__all__ = ["SearchError", "SearchResult", "search", "run_unit", "config_key"]

_FORMAT = 2  # 2: rows carry config and code
_ALLOWED = {CONFIG, RESULTS, "report.md", LOCK, MANIFEST, CACHE}


class SearchError(RuntimeError):
    """A search that cannot start or go on (directory, lock, another configuration)."""


@dataclass
class SearchResult:
    """What a call of :func:`search` did, and what the directory holds now."""

    out: str
    config: SearchConfig
    rows: list = field(default_factory=list)
    units_before: int = 0
    units_run: int = 0
    problems: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def worst(self) -> dict | None:
        """The row of highest objective inside the hypothesis (None if there is none)."""
        inside = [r for r in self.rows if r["inside"] == "True"]
        return max(inside, key=lambda r: float(r["objective"])) if inside else None


def config_key(cfg: SearchConfig) -> str:
    """The key of a configuration (what each row's checksum covers)."""
    import hashlib

    text = json.dumps({"format": _FORMAT, **cfg.to_dict()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------- one unit
def _rng(cfg: SearchConfig, unit: str) -> np.random.Generator:
    kind, number = unit.split("-")
    return np.random.default_rng(np.random.SeedSequence(
        [cfg.seed, int(number), 0 if kind == "random" else 1]))


def run_unit(cfg: SearchConfig, unit: str) -> list[dict]:
    """The rows of one unit (``random-NNNN`` or ``restart-NNNN``), checksummed; see the module
    docstring. KeyboardInterrupt passes through (no partial unit is ever returned)."""
    from threadpoolctl import threadpool_limits

    key, code = config_key(cfg), code_key()
    with threadpool_limits(limits=1):
        prob = SearchProblem(cfg)
        rng = _rng(cfg, unit)
        x0 = prob.random_params(rng)
        if unit.startswith("random-"):
            found = [("random", prob.evaluate(x0))]
        else:
            found = [("search", row) for row in run_optimizer(prob, x0, rng)]
    rows = []
    for i, (kind, row) in enumerate(found):
        full = {c: "" for c in COLUMNS}
        full.update({k: format_value(v) for k, v in row.items()})
        full.update(unit=unit, index=str(i), of=str(len(found)), kind=kind, config=key,
                    code=code)
        full["checksum"] = row_checksum(full)
        rows.append(full)
    return rows


# ---------------------------------------------------------------------- the directory
def _manifest(cfg: SearchConfig) -> str:
    return json.dumps({"writer": "linrank search", "format": _FORMAT, "key": config_key(cfg),
                       "config": cfg.to_dict(), "code": code_identity(),
                       "code_key": code_key()}, indent=1)


def _open_dir(out: str, cfg: SearchConfig, problems: list[str]) -> OutputDir:
    od = OutputDir(out)
    od.__enter__()
    try:
        foreign = sorted(set(os.listdir(od.path)) - _ALLOWED)
        foreign = [n for n in foreign if not n.startswith(f".{RESULTS}.")]
        if foreign:
            raise OutputError(f"{out} holds files that linrank search did not write "
                              f"({', '.join(foreign)}): choose a new or empty directory")
        cpath = os.path.join(od.path, CONFIG)
        if os.path.exists(cpath):
            try:
                with open(cpath) as fh:
                    man = json.load(fh)
            except (OSError, ValueError) as exc:
                raise OutputError(f"{cpath} is unreadable ({exc})") from None
            if not isinstance(man, dict) or man.get("writer") != "linrank search":
                raise OutputError(f"{cpath} is not a linrank search manifest")
            had, now = man.get("config") or {}, cfg.to_dict()
            if man.get("format") != _FORMAT and isinstance(had, dict) and all(
                    had[k] == now[k] for k in set(had) & set(now)):
                # an older file format of the same search: its rows cannot prove their code
                rpath = os.path.join(od.path, RESULTS)
                n = 0
                if os.path.exists(rpath):
                    with open(rpath, newline="") as fh:
                        n = max(sum(1 for _ in fh) - 1, 0)
                    atomic_write_text(rpath, ",".join(COLUMNS) + "\n")
                problems.append(f"{rpath}: {n} rows of file format {man.get('format')} of "
                                "linrank search (no code identity): stale, recomputed")
            elif man.get("key") != config_key(cfg):
                raise OutputError(f"{out} holds a search of another configuration "
                                  f"({man.get('config')}): choose another --out")
        elif os.path.exists(os.path.join(od.path, RESULTS)):
            raise OutputError(f"{out}/{RESULTS} exists without {CONFIG}: not a linrank search")
        od.write_text(CONFIG, _manifest(cfg))
    except BaseException:
        od.__exit__(None, None, None)
        raise
    return od


def _write_rows(path: str, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    text = buf.getvalue()
    if os.path.exists(path):
        with open(path, newline="") as fh:
            if fh.read() == text:
                return
    atomic_write_text(path, text)


def _complete_units(rows: list[dict], problems: list[str]) -> dict[str, list[dict]]:
    units: dict[str, list[dict]] = {}
    for r in rows:
        units.setdefault(r["unit"], []).append(r)
    done = {}
    for unit, rs in units.items():
        of = {r["of"] for r in rs}
        idx = sorted(int(r["index"]) for r in rs)
        if len(of) == 1 and idx == list(range(int(next(iter(of))))):
            done[unit] = sorted(rs, key=lambda r: int(r["index"]))
        else:
            problems.append(f"unit {unit}: {len(rs)} verified rows of "
                            f"{'/'.join(sorted(of))}: recomputed")
    return done


def _sorted_rows(units: dict[str, list[dict]]) -> list[dict]:
    rows = [r for rs in units.values() for r in rs]
    return sorted(rows, key=lambda r: (-float(r["objective"]), r["unit"], int(r["index"])))


def _executor(n_jobs: int, scheduler: object):
    """(parallel_config context, client to close or None): :func:`.resources.executor`."""
    return executor(n_jobs, scheduler, SearchError)


# ---------------------------------------------------------------------- the search
def search(hypothesis: str, d: int, rank: int, depth: int, out: str | os.PathLike, *,
           budget: float | None = None, restarts: int | None = None, seed: int = 0,
           horizon: float = 200.0, evals: int = 120, random: int = 16, tol: float = 1e-6,
           optimizer: str = "cma",
           scale: float | None = None, rtol: float = 1e-8, atol: float = 1e-12,
           max_steps: int = 200_000, n_jobs: int = 2, scheduler: object = None,
           report: bool = True) -> SearchResult:
    """Search for starts inside ``hypothesis`` that converge slowest or not at all.

    Parameters
    ----------
    hypothesis : "theorem31", "conjecture32", "amended" or "amended_det"
        (:data:`linrank.experiments.shared.hypotheses.HYPOTHESES`)
        (:data:`linrank.experiments.shared.hypotheses.HYPOTHESES`).
    d, rank, depth : data dimension, rank r <= d, depth N >= 2.
    out : output directory (created; resumed if it holds this search).
    budget : wall seconds during which new restarts are started (None: no limit, or 60 s when
        ``restarts`` is None too). The baseline units always run, and so does one restart when
        ``restarts`` is None.
    restarts : the total number of restarts to hold (None: as many as the budget allows).
    seed : the data (``gaussian_data(d, seed=seed)``) and every random draw.
    horizon : flow time of each evaluation; evals : flow evaluations per restart;
    random : random starts of the baseline; tol : convergence when
        ``||W - U_rU_r^T||_F <= tol ||U_rU_r^T||_F``; scale : ``||W(0)||_F`` (default sqrt(r));
    optimizer : "cma" (CMA-ES, default) or "nelder-mead" (:mod:`.optim`).
    rtol, atol, max_steps : of each flow (RK45).
    n_jobs : local worker processes (ignored with a scheduler).
    scheduler : None, a Dask scheduler address or a ``distributed.Client``.
    report : write ``report.md`` at the end.

    Returns
    -------
    SearchResult (``rows``: every verified row, worst first; ``problems``: the rows and units
    that did not verify and were recomputed).

    Raises
    ------
    ValueError
        A bad argument (naming it). OutputError (a ValueError) or SearchError for the directory.
    KeyboardInterrupt
        After the finished units are on disk (resume with the same call).
    """
    t0 = time.monotonic()
    cfg = SearchConfig(hypothesis=hypothesis, d=d, rank=rank, depth=depth, seed=seed,
                       horizon=horizon, tol=tol, scale=scale, evals=evals, random=random,
                       optimizer=optimizer,
                       rtol=rtol, atol=atol, max_steps=max_steps)
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float))
                               or not budget >= 0):
        raise ValueError(f"budget must be a number of seconds >= 0 or None, got {budget!r}")
    if restarts is not None and (isinstance(restarts, bool) or not isinstance(restarts, int)
                                 or restarts < 0):
        raise ValueError(f"restarts must be an integer >= 0 or None, got {restarts!r}")
    if budget is None and restarts is None:
        budget = 60.0
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer, got {n_jobs!r}")
    out = os.fspath(out)
    key = config_key(cfg)
    problems: list[str] = []
    od = _open_dir(out, cfg, problems)
    try:
        path = os.path.join(od.path, RESULTS)
        rows, bad = read_rows(path, key)
        problems += bad
        units = _complete_units(rows, problems)
        before = len(units)
        _write_rows(path, _sorted_rows(units))  # drops what did not verify
        ran = _run_units(cfg, units, path, t0, budget, restarts, n_jobs, scheduler)
        final = _sorted_rows(units)
        _write_rows(path, final)
        result = SearchResult(out=out, config=cfg, rows=final, units_before=before,
                              units_run=ran, problems=problems,
                              counts=dict(Counter(r["status"] for r in final)),
                              elapsed=time.monotonic() - t0)
        if report:
            from .report import report_text

            od.write_text("report.md", report_text(result))
        return result
    finally:
        od.__exit__(None, None, None)


def _run_units(cfg: SearchConfig, units: dict[str, list[dict]], path: str, t0: float,
               budget: float | None, restarts: int | None, n_jobs: int,
               scheduler: object) -> int:
    from joblib import Parallel, delayed

    def tasks():
        for i in range(cfg.random):
            if f"random-{i:04d}" not in units:
                yield delayed(run_unit)(cfg, f"random-{i:04d}")
        k = 0
        while restarts is None or k < restarts:
            if budget is not None and time.monotonic() - t0 >= budget and (
                    restarts is not None or k > 0):
                return  # without a count, one restart always runs
            if f"restart-{k:04d}" not in units:
                yield delayed(run_unit)(cfg, f"restart-{k:04d}")
            k += 1

    ctx, client = _executor(n_jobs, scheduler)
    code = code_key()
    ran = 0
    try:
        with ctx, open(path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
            jobs = -1 if scheduler is not None else n_jobs
            for unit_rows in Parallel(n_jobs=jobs, return_as="generator_unordered",
                                      batch_size=1, pre_dispatch="n_jobs")(tasks()):
                other = {r["code"] for r in unit_rows} - {code}
                if other:
                    raise SearchError(f"unit {unit_rows[0]['unit']} came back from a worker "
                                      f"running other code ({', '.join(sorted(other))}; this "
                                      f"is {code}): install the same linrank on the workers")
                for r in unit_rows:
                    writer.writerow(r)
                fh.flush()
                os.fsync(fh.fileno())
                units[unit_rows[0]["unit"]] = unit_rows
                ran += 1
    finally:
        if client is not None:
            client.close()
    return ran
