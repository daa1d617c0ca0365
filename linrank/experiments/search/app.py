r"""``linrank search``: adversarial starts inside a hypothesis, by a derivative-free optimizer.

:func:`search` maximizes the objective of :mod:`linrank.experiments.search_objective` (time to
converge relative to the horizon, or 1 + the distance to :math:`U_rU_r^T` at the horizon) over
the parametrization of the start described there, by scipy's Nelder-Mead (adaptive, Gao and Han
2012) from random starts inside the hypothesis, with restarts. Work comes in *units*:

* ``random-NNNN`` -- one random start inside the hypothesis (the baseline whose median time to
  converge the report compares with), ``config.random`` of them;
* ``restart-NNNN`` -- a Nelder-Mead search of at most ``config.evals`` flow evaluations from its
  own random start; one row per distinct candidate it evaluated. For r < d it first moves the
  two weights off span U_r alone (a scan of the common exponent a over -9, -6, -3, 3, 6, 9, then a
  2-d Nelder-Mead from the best, at most a quarter of the evaluations in all: in 2dr + 2
  dimensions the full simplex alone would use up the budget), then every parameter.

Each unit depends only on the configuration and its name (its random numbers come from
``SeedSequence([seed, unit number, kind])``, BLAS is held to one thread), so it gives the same
rows in any process, locally or on a Dask cluster. Restarts are started while the budget (wall
seconds) lasts and until ``restarts`` (a total) is reached; a restart that has started runs to
its end.

Files (``DIR``): ``search.json`` (the configuration and its key), ``worst.csv`` (one row per
candidate, columns :data:`linrank.experiments.startfile.COLUMNS`, sorted by objective, worst
first, when the search returns), ``report.md``. Guarantees, as for the sweep:

* Rows are appended (flushed, fsync'ed) when a unit ends; an interrupted unit leaves no row.
* Every row is verified on reading (its checksum covers the configuration key and its values):
  a cut, edited or foreign row is named (``SearchResult.problems``, and on stderr by the command)
  and its unit is recomputed; so is a unit that lacks rows. Rerunning the same call resumes, and
  a search that was interrupted and resumed ends with the same worst.csv as one that was not.
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
from ..shared.startfile import COLUMNS, RESULTS, format_value, read_rows, row_checksum
from ..shared.startfile import MANIFEST as CONFIG
from .objective import SearchConfig, SearchProblem

__all__ = ["SearchError", "SearchResult", "search", "run_unit", "config_key"]

_FORMAT = 1
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
    from scipy.optimize import minimize
    from threadpoolctl import threadpool_limits

    key = config_key(cfg)
    with threadpool_limits(limits=1):
        prob = SearchProblem(cfg)
        rng = _rng(cfg, unit)
        x0 = prob.random_params(rng)
        if unit.startswith("random-"):
            found = [("random", prob.evaluate(x0))]
        else:
            cache: dict[bytes, float] = {}
            found = []

            def f(x: np.ndarray) -> float:
                k = np.asarray(x, dtype=float).tobytes()
                if k not in cache:
                    row = prob.evaluate(x)
                    found.append(("search", row))
                    cache[k] = -float(row["objective"])
                return cache[k]

            n, m = x0.size, 2 * cfg.d * cfg.rank
            opts = dict(adaptive=True, xatol=1e-8, fatol=1e-10)
            if n > m:  # first the two weights off span U_r alone (a 2-d search)
                def g(ab: np.ndarray) -> float:
                    return f(np.concatenate([x0[:m], ab]))

                # a coarse scan of the common weight in both directions, then Nelder-Mead
                scan = [x0[m:]] + [np.array([a, 0.0]) for a in (-9.0, -6.0, -3.0, 3.0, 6.0, 9.0)]
                ab0 = min(scan, key=g)
                res = minimize(g, ab0, method="Nelder-Mead",
                               options=dict(opts, maxfev=cfg.evals // 4,
                                            initial_simplex=np.vstack([ab0, ab0 + np.eye(2)])))
                x0 = np.concatenate([x0[:m], res.x])
            left = cfg.evals - len(found)
            if left > 0:
                minimize(f, x0, method="Nelder-Mead",
                         options=dict(opts, maxfev=left,
                                      initial_simplex=np.vstack([x0, x0 + np.eye(n)])))
    rows = []
    for i, (kind, row) in enumerate(found):
        full = {c: "" for c in COLUMNS}
        full.update({k: format_value(v) for k, v in row.items()})
        full.update(unit=unit, index=str(i), of=str(len(found)), kind=kind)
        full["checksum"] = row_checksum(full, key)
        rows.append(full)
    return rows


# ---------------------------------------------------------------------- the directory
def _open_dir(out: str, cfg: SearchConfig) -> OutputDir:
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
            if not isinstance(man, dict) or man.get("key") != config_key(cfg):
                raise OutputError(f"{out} holds a search of another configuration "
                                  f"({man.get('config') if isinstance(man, dict) else '?'}): "
                                  "choose another --out")
        elif os.path.exists(os.path.join(od.path, RESULTS)):
            raise OutputError(f"{out}/{RESULTS} exists without {CONFIG}: not a linrank search")
        else:
            od.write_text(CONFIG, json.dumps({"writer": "linrank search", "format": _FORMAT,
                                              "key": config_key(cfg),
                                              "config": cfg.to_dict()}, indent=1))
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
           scale: float | None = None, rtol: float = 1e-8, atol: float = 1e-12,
           max_steps: int = 200_000, n_jobs: int = 2, scheduler: object = None,
           report: bool = True) -> SearchResult:
    """Search for starts inside ``hypothesis`` that converge slowest or not at all.

    Parameters
    ----------
    hypothesis : "theorem31", "conjecture32", "amended" or "amended_det"
        (:data:`linrank.experiments.hypotheses.HYPOTHESES`)
        (:data:`linrank.experiments.hypotheses.HYPOTHESES`).
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
    od = _open_dir(out, cfg)
    try:
        path = os.path.join(od.path, RESULTS)
        rows, problems = read_rows(path, key)
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
    ran = 0
    try:
        with ctx, open(path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
            jobs = -1 if scheduler is not None else n_jobs
            for unit_rows in Parallel(n_jobs=jobs, return_as="generator_unordered",
                                      batch_size=1, pre_dispatch="n_jobs")(tasks()):
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
