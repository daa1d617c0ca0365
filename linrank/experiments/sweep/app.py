r"""Sweeps: thousands of flow runs over a grid, on local processes or a Dask cluster.

:func:`sweep` expands a grid (:mod:`linrank.experiments.sweep.grid`), runs every run that the
output directory does not hold yet (:func:`linrank.experiments.sweep.run.run_safe`) and appends
one CSV row per finished run to ``OUT/runs.csv`` as runs finish (written, flushed and fsync'ed
one at a time by the parent process). Local processes (joblib, "loky") by default; with
``scheduler`` (an address or a ``distributed.Client``) the same ``joblib.Parallel`` call runs on
a Dask cluster through joblib's "dask" backend: one code path.

Guarantees
----------
* A row is written only for a run that finished (status converged, budget or collapsed) or
  failed (status "error", with the exception's type and message); an interrupted run (Ctrl-C,
  a killed worker or parent) leaves no row and is redone on resume.
* A row counts as finished only if it is complete and its ``check`` column (the last; sha256
  of the format and every other value as written) matches: a line cut by a kill, cut and
  re-saved by an editor, or changed by hand is named on resume, dropped from the file and its
  run is redone; :func:`read_rows` (the report) refuses a file holding such a row.
* Resume: rerunning the same grid into the same OUT skips the runs it holds (failed ones too,
  unless ``retry_failed``). When every run is done, runs.csv is rewritten sorted by run_id
  (atomically), so an interrupted-and-resumed sweep ends with the same file as an uninterrupted
  one, up to the timing columns (:data:`~linrank.experiments.sweep.run.TIMING_COLUMNS`).
* Reproducible: each run depends only on its row's spec and seed (BLAS limited to one thread
  inside a run), so the same grid gives the same numbers row for row locally and on a cluster,
  and :func:`rerun` recomputes any row alone.
* OUT is linrank's: a lock (``OUT/.lock``, flock) stops a second sweep from writing it; a
  directory holding files that linrank did not write, a sweep of another grid or one written by
  another version of linrank (``sweep.json`` records it) is refused.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..shared.resources import executor
from .grid import MAX_GRID_RUNS, Grid, GridError, RunSpec, load_grid
from .run import COLUMNS, TIMING_COLUMNS, run

__all__ = ["SweepError", "SweepResult", "RerunResult", "sweep", "rerun", "read_rows",
           "OUT_FILES", "FILE_COLUMNS", "row_check"]

MANIFEST = "sweep.json"
RESULTS = "runs.csv"
LOCK = ".lock"
#: every name linrank writes into a sweep directory (the report's figures are in figures/)
OUT_FILES = frozenset({MANIFEST, RESULTS, LOCK, "grid.toml", "report.md", "cells.csv",
                       "figures", RESULTS + ".tmp"})
_FORMAT = 2  # 2: rows end with a checksum column
#: the columns of runs.csv: a run's row (sweep_run.COLUMNS), then its checksum
FILE_COLUMNS = COLUMNS + ["check"]


class SweepError(RuntimeError):
    """A sweep that cannot start or go on (output directory, lock, results of another grid)."""


@dataclass
class SweepResult:
    """What a call of :func:`sweep` did."""

    out: str
    total: int
    done_before: int
    ran: int
    counts: dict = field(default_factory=dict)
    complete: bool = False
    elapsed: float = 0.0


@dataclass
class RerunResult:
    """A row recomputed alone: the stored row, the new one, and the columns that differ."""

    stored: dict
    new: dict
    differences: list
    intact: bool = True  #: the stored row's checksum matches (it was not changed since)

    @property
    def same(self) -> bool:
        return not self.differences and self.intact


# ---------------------------------------------------------------------- files
def _fmt(v: Any) -> str:
    return v if isinstance(v, str) else repr(v) if isinstance(v, float) else str(v)


def _check_dir(out: str) -> dict | None:
    """The manifest of an existing sweep directory, None for a new or empty one; refuses others."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise SweepError(f"{out} exists and is not a directory")
    if not os.path.isdir(out):
        return None
    names = set(os.listdir(out))
    if not names or names == {LOCK}:
        return None
    if MANIFEST not in names:
        raise SweepError(f"{out} is not empty and holds no linrank sweep ({MANIFEST} missing): "
                         "choose a new or empty directory")
    foreign = sorted(names - OUT_FILES)
    if foreign:
        raise SweepError(f"{out} holds files that linrank did not write ({', '.join(foreign)}): "
                         "choose a new or empty directory")
    try:
        with open(os.path.join(out, MANIFEST)) as fh:
            man = json.load(fh)
    except (OSError, ValueError) as exc:
        raise SweepError(f"{out}/{MANIFEST} is unreadable ({exc})") from None
    if not isinstance(man, dict) or "grid_hash" not in man or "format" not in man:
        raise SweepError(f"{out}/{MANIFEST} is not a linrank sweep manifest")
    if man["format"] != _FORMAT:
        raise SweepError(f"{out} was written by another version of linrank sweep (format "
                         f"{man['format']!r}, this one writes {_FORMAT}: rows without "
                         "checksums); run the grid into a new --out")
    return man


class _Lock:
    """An exclusive advisory lock on OUT/.lock, released when the process ends (flock)."""

    def __init__(self, out: str):
        self.path = os.path.join(out, LOCK)
        self.fh = None

    def __enter__(self) -> _Lock:
        self.fh = open(self.path, "a+")
        try:
            import fcntl

            fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - not POSIX: best effort by exclusive creation
            pass
        except OSError:
            self.fh.close()
            raise SweepError(f"another linrank sweep is writing {os.path.dirname(self.path)} "
                             "(its lock is held); wait for it or choose another --out") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fh is not None:
            self.fh.close()


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def row_check(values: dict) -> str:
    """The checksum of a row: sha256 over the format and every column as written (16 hex)."""
    import hashlib

    text = "\x1f".join([f"linrank sweep row {_FORMAT}"] + [values[c] for c in COLUMNS])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _file_row(row: dict) -> dict:
    """A run's row as written to runs.csv: every value formatted, then its checksum."""
    out = {c: _fmt(row.get(c, "")) for c in COLUMNS}
    out["check"] = row_check(out)
    return out


def _scan(path: str, keep_changed: bool = False) -> tuple[dict[int, dict], list[str]]:
    """(rows by run_id that are complete and checked, one message per rejected line).

    ``keep_changed``: complete rows whose checksum fails are kept too (for :func:`rerun`).
    """
    with open(path, newline="") as fh:
        text = fh.read()
    bad: list[str] = []
    lines = text.split("\n")
    if text and not text.endswith("\n"):
        bad.append(f"{path} line {len(lines)}: cut off (no end of line)")
        text = text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is not None and list(reader.fieldnames) != FILE_COLUMNS:
        old = list(reader.fieldnames) == COLUMNS
        raise SweepError(f"{path} has other columns than this version of linrank writes"
                         + (" (no row checksums: written by an older version; run the grid "
                            "into a new --out)" if old else " (its header line is missing or "
                            "changed)"))
    rows: dict[int, dict] = {}
    for row in reader:
        where = f"{path} line {reader.line_num}"
        rid = row.get("run_id")
        what = f"{where} (run_id {rid})" if rid else where
        if None in row or any(v is None for v in row.values()):
            n = sum(1 for k, v in row.items() if k is not None and v is not None)
            extra = len(row[None]) if None in row else 0
            bad.append(f"{what}: " + (f"incomplete ({n} of {len(FILE_COLUMNS)} columns)"
                                      if not extra else f"malformed ({n + extra} columns, "
                                      f"expected {len(FILE_COLUMNS)})"))
            continue
        if row_check(row) != row["check"]:
            bad.append(f"{what}: changed after it was written (checksum does not match)")
            if not keep_changed:
                continue
        rows[int(row["run_id"])] = row
    return rows, bad


def read_rows(out: str, strict: bool = True) -> list[dict]:
    """The rows of OUT/runs.csv as dicts of strings (the last row of each run_id wins).

    Only complete rows whose checksum matches are rows. ``strict`` (default): a file holding
    any other line (cut off, incomplete, changed) is refused with a SweepError naming the first
    one (resuming the sweep drops them and redoes their runs); ``strict=False``: they are
    skipped.
    """
    path = os.path.join(out, RESULTS)
    if not os.path.exists(path):
        return []
    rows, bad = _scan(path)
    if bad and strict:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise SweepError(f"{bad[0]}{more}; resume the sweep (the same linrank sweep --grid "
                         "command) to redo these runs")
    return [rows[k] for k in sorted(rows)]


def _drop_bad_rows(path: str, notice: Callable[[str], None]) -> dict[int, dict]:
    """Checked rows of ``path``; lines that are not are named and removed from the file."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return {}
    rows, bad = _scan(path)
    if bad:
        for msg in bad:
            notice(f"{msg}; its run is redone")
        _write_rows(path, rows, sort=False)
    return rows


def _write_rows(path: str, rows: dict[int, dict], sort: bool = True) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FILE_COLUMNS, lineterminator="\n")
    w.writeheader()
    for rid in (sorted(rows) if sort else rows):
        w.writerow(rows[rid])
    _write_atomic(path, buf.getvalue())


def _same_spec(row: dict, spec: RunSpec) -> bool:
    d = spec.to_dict()
    return all(row.get(k) == _fmt(v) for k, v in d.items())


# ---------------------------------------------------------------------- execution
def _executor(n_jobs: int, scheduler: object):
    """(parallel_config context, client to close or None): :func:`.resources.executor`."""
    return executor(n_jobs, scheduler, SweepError)


def sweep(grid: object, out: str | os.PathLike, *, n_jobs: int = 2, scheduler: object = None,
          progress: bool = True, retry_failed: bool = False,
          max_runs: int | None = None,
          notice: Callable[[str], None] | None = None,
          grid_limit: int | None = MAX_GRID_RUNS) -> SweepResult:
    """Run a grid into ``out``, resuming whatever ``out`` already holds.

    Parameters
    ----------
    grid : a grid file path, TOML text, a mapping, or a :class:`~.sweep_grid.Grid`.
    out : the output directory (created; its parent must exist; see the module docstring for
        what it accepts).
    n_jobs : local worker processes (joblib/loky; 1 runs in this process). Ignored with a
        scheduler, where the cluster's workers run the runs.
    scheduler : None (local) or the address of a Dask scheduler ("tcp://host:8786") or a
        ``distributed.Client`` already connected.
    progress : a tqdm bar with the running counts of each status.
    retry_failed : redo the runs recorded with status "error".
    max_runs : run at most this many of the missing runs, then stop: the sweep is then
        incomplete and a later call resumes it. Runs are started seed by seed (every cell's
        first seed, then every cell's second, ...), so a partial sweep covers all cells.
    grid_limit : the most runs the grid may have (counted before it is expanded; None: no
        limit); a larger grid is refused with a GridError before any work.
    notice : called with one line per row of ``out/runs.csv`` that is cut off, incomplete or
        changed (it is dropped and its run redone); default: printed to stderr.

    Returns
    -------
    SweepResult (counts of the statuses over all rows in ``out``, ``complete`` when every run of
    the grid has a row).

    Raises
    ------
    GridError, SweepError
        A bad grid; an output directory that is not a linrank sweep of this grid, or locked.
    KeyboardInterrupt
        Passed on after the finished rows are on disk (resume with the same call).
    """
    t0 = time.perf_counter()
    g = grid if isinstance(grid, Grid) else load_grid(grid, max_runs=grid_limit)
    if not g.runs:
        raise GridError("the grid has no runs")
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer, got {n_jobs!r}")
    out = os.fspath(out)
    man = _check_dir(out)
    from ... import __version__

    if man is not None and man.get("linrank") != __version__:
        raise SweepError(f"{out} holds a sweep by linrank {man.get('linrank')}, this is linrank "
                         f"{__version__} (rows of two versions may differ): choose another --out")
    if man is not None and man["grid_hash"] != g.hash:
        raise SweepError(f"{out} holds a sweep of another grid (hash {man['grid_hash']}, this "
                         f"grid {g.hash}): choose another --out")
    from ..shared.outputs import OutputError, check_out_parent

    try:
        check_out_parent(out)
    except OutputError as exc:
        raise SweepError(str(exc)) from None
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, RESULTS)
    with _Lock(out):
        if man is None:
            _write_atomic(os.path.join(out, "grid.toml"), g.source)
            _write_atomic(os.path.join(out, MANIFEST), json.dumps(
                {"format": _FORMAT, "linrank": __version__, "grid_hash": g.hash,
                 "runs": len(g.runs),
                 "grid": g.blocks, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
                indent=1, default=str))
        rows = _drop_bad_rows(path, notice or _print_notice)
        by_id = {s.run_id: s for s in g.runs}
        for rid, row in rows.items():
            if rid not in by_id or not _same_spec(row, by_id[rid]):
                raise SweepError(f"{path}: row run_id {rid} does not match the grid")
        done = {rid for rid, r in rows.items() if not (retry_failed and r["status"] == "error")}
        # seed-major order: a sweep stopped early has covered every cell about equally
        todo = sorted((s for s in g.runs if s.run_id not in done),
                      key=lambda s: (s.seed, s.run_id))
        if max_runs is not None:
            todo = todo[:max_runs]
        counts = Counter(r["status"] for rid, r in rows.items() if rid in done)
        new_file = not os.path.exists(path) or os.path.getsize(path) == 0
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(g.runs), initial=len(done), unit="run", desc="sweep",
                       dynamic_ncols=True)
            bar.set_postfix(counts, refresh=False)
        ran = 0
        try:
            with open(path, "a", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=FILE_COLUMNS, lineterminator="\n")
                if new_file:
                    writer.writeheader()
                    fh.flush()
                if todo:
                    ran = _execute(todo, n_jobs, scheduler, writer, fh, counts, bar)
        finally:
            if bar is not None:
                bar.close()
        rows = {int(r["run_id"]): r for r in read_rows(out)}
        complete = len(rows) == len(g.runs)
        if complete:
            _canonicalize(path, rows)
    counts = Counter(r["status"] for r in rows.values())
    return SweepResult(out=out, total=len(g.runs), done_before=len(done), ran=ran,
                       counts=dict(counts), complete=complete,
                       elapsed=time.perf_counter() - t0)


def _execute(todo: list[RunSpec], n_jobs: int, scheduler: object, writer: csv.DictWriter,
             fh: Any, counts: Counter, bar: Any) -> int:
    from joblib import Parallel, delayed

    from .run import run_safe

    ctx, client = _executor(n_jobs, scheduler)
    ran = 0
    try:
        with ctx:
            jobs = -1 if scheduler is not None else n_jobs
            results = Parallel(n_jobs=jobs, return_as="generator_unordered", batch_size=1)(
                delayed(run_safe)(s) for s in todo)
            for row in results:
                writer.writerow(_file_row(row))
                fh.flush()
                os.fsync(fh.fileno())
                ran += 1
                counts[row["status"]] += 1
                if bar is not None:
                    bar.set_postfix(counts, refresh=False)
                    bar.update(1)
    finally:
        if client is not None:
            client.close()
    return ran


def _canonicalize(path: str, rows: dict[int, dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FILE_COLUMNS, lineterminator="\n")
    w.writeheader()
    for rid in sorted(rows):
        w.writerow(rows[rid])
    text = buf.getvalue()
    with open(path, newline="") as fh:
        if fh.read() == text:
            return
    _write_atomic(path, text)


def _print_notice(message: str) -> None:
    import sys

    print(f"linrank sweep: {message}", file=sys.stderr)


def rerun(out: str | os.PathLike, run_id: int) -> RerunResult:
    """Recompute row ``run_id`` of a sweep alone and compare it with the stored row.

    Every column but the timing ones must agree exactly (as written to the CSV), and the stored
    row must pass its checksum (``intact``).

    Raises
    ------
    SweepError
        ``out`` is not a sweep directory or holds no row ``run_id``.
    """
    out = os.fspath(out)
    if _check_dir(out) is None:
        raise SweepError(f"{out} holds no linrank sweep")
    path = os.path.join(out, RESULTS)
    rows = _scan(path, keep_changed=True)[0] if os.path.exists(path) else {}
    if run_id not in rows:
        raise SweepError(f"{out} has no row with run_id {run_id} (it has {len(rows)} complete "
                         "rows)")
    stored = rows[run_id]
    spec = RunSpec.from_dict(stored)
    try:
        new = run(spec)
    except Exception as exc:  # noqa: BLE001 - a failed run reruns as a failed run
        from .run import error_row

        new = error_row(spec, exc)
    new_s = {c: _fmt(new.get(c, "")) for c in COLUMNS}
    diffs = [c for c in COLUMNS if c not in TIMING_COLUMNS and new_s[c] != stored[c]]
    return RerunResult(stored=stored, new=new_s, differences=diffs,
                       intact=row_check(stored) == stored["check"])
