r"""``linrank.compare``: optimizers on the fixed-rank manifold, and the effect of the depth metric.

Runs every solver of :mod:`~linrank.experiments.compare.solvers` on every problem of
:mod:`~linrank.experiments.compare.problems` from the same starts, and writes into a directory:

* ``results.csv``: one row per run (problem, size, solver, depth, seed, status and reason,
  iterations, wall and CPU time, cost and gradient evaluations, Hessian-vector products, final
  cost, the reference minimum and where it comes from, the gap and relative gap, the distance to
  the optimum, time/iterations/evaluations to the target gap, layer-gd's step);
* ``history.csv``: every recorded iterate of every run (time, iteration, cost, gap, distance,
  evaluations);
* ``report.md`` and ``fig-<problem>-<size>.png`` (see :mod:`~linrank.experiments.compare.report`).

Finished runs are cached in ``DIR/.runs`` (one file per run, written atomically after the run
ended), so an interrupted comparison resumes where it stopped and a cut-off run is never stored.
A lock file keeps two comparisons out of one directory, and a directory holding files that
``linrank compare`` did not write is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from .problems import SIZES, ProblemInstance, build_problem, problem_names
from .record import HISTORY_KEYS, Budget, RunResult
from .report import relative_gap, write_outputs
from .solvers import DEPTH_FREE, SOLVERS, run_solver

__all__ = ["compare", "CompareResult", "DEFAULT_DEPTHS", "default_budget", "parse_problems",
           "OutputDirError"]

DEFAULT_DEPTHS = (1, 2, 3, 4, 100)
_CACHE_VERSION = 2
_MARKER = ".linrank-compare"
_OWN = {"results.csv", "history.csv", "report.md", ".runs", ".lock", _MARKER}


class OutputDirError(ValueError):
    """The output directory cannot be used (foreign files, or locked by another run)."""


def default_budget(size: str) -> Budget:
    """The per-run budget of each size (seconds of CPU time, iterations, target gap)."""
    return {
        "quick": Budget(max_time=1.0, max_iterations=3000, target_gap=1e-8),
        "small": Budget(max_time=2.0, max_iterations=5000, target_gap=1e-8),
        "large": Budget(max_time=4.0, max_iterations=2000, target_gap=1e-8,
                        search_iterations=20),
    }[size]


def parse_problems(spec: str | Sequence) -> list[tuple[str, str]]:
    """(name, size) pairs from "name", "name:size", "all" or sequences of them / of pairs.

    A bare name means its sizes "small" and "large". Raises ValueError naming the choices.
    """
    if isinstance(spec, str):
        items: list = [s.strip() for s in spec.split(",") if s.strip()]
    elif isinstance(spec, Iterable):
        items = list(spec)
    else:
        raise TypeError(f"problem_spec must be a string or a sequence, got {spec!r}")
    if not items:
        raise ValueError(f"no problem given; choices: {', '.join(problem_names())}")
    out: list[tuple[str, str]] = []
    for it in items:
        if isinstance(it, tuple) and len(it) == 2:
            name, size = it
            sizes = [size]
        elif isinstance(it, str):
            name, _, size = it.partition(":")
            if name == "all":
                out += [(p, s) for p in problem_names() for s in ([size] if size else
                                                                   ["small", "large"])]
                continue
            sizes = [size] if size else ["small", "large"]
        else:
            raise TypeError(f"a problem is 'name' or 'name:size' or (name, size), got {it!r}")
        if name not in problem_names():
            raise ValueError(f"unknown problem {name!r}; choices: {', '.join(problem_names())}")
        for s in sizes:
            if s not in SIZES:
                raise ValueError(f"unknown size {s!r} in {it!r}; choices: {', '.join(SIZES)}")
            out.append((name, s))
    return list(dict.fromkeys(out))


def _check_lists(solvers, depths, seeds) -> tuple[list[str], list[int], list[int]]:
    solvers = list(SOLVERS) if solvers is None else (
        [s.strip() for s in solvers.split(",")] if isinstance(solvers, str) else list(solvers))
    bad = [s for s in solvers if s not in SOLVERS]
    if bad or not solvers:
        raise ValueError(f"unknown solver {bad[0] if bad else ''!r}; choices: "
                         f"{', '.join(SOLVERS)}")
    depths = list(depths)
    for d in depths:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
            raise ValueError(f"depths must be positive integers, got {d!r}")
    if not depths:
        raise ValueError("depths must be a non-empty list of positive integers")
    seeds = list(seeds)
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"seeds must be non-negative integers, got {s!r}")
    if not seeds:
        raise ValueError("seeds must be a non-empty list of non-negative integers")
    return (list(dict.fromkeys(solvers)), [int(d) for d in dict.fromkeys(depths)],
            [int(s) for s in dict.fromkeys(seeds)])


def _check_sizes(problems: list[tuple[str, str]], solvers: list[str], depths: list[int]) -> None:
    """Refuse, before any work, depths whose layers do not fit in memory.

    Only layer-gd holds the layers: depth - 2 k x k matrices and two end layers, each with its
    gradient and two trial copies in the step search (4 copies, ~200 bytes of overhead each).
    The manifold solvers and the flow take the depth as a number (any depth works).
    """
    if "layer-gd" not in solvers:
        return
    from ..shared.resources import check_memory

    for name, size in problems:
        d, k = SIZES[size]
        for N in depths:
            try:
                check_memory(4 * (N * (8 * k * k + 200) + 16 * d * k),
                             f"layer-gd at depth {N} on {name}:{size} ({N:,} layers)")
            except ValueError as exc:
                raise ValueError(f"--depths: {exc}; use smaller depths or leave layer-gd out "
                                 "(--solvers)") from None


# ---------------------------------------------------------------------- output directory
def _own_name(name: str) -> bool:
    return name in _OWN or (name.startswith("fig-") and name.endswith(".png")) or (
        name.startswith(".") and name.endswith(".tmp"))


def claim_output_dir(out_dir: str) -> str:
    """Create or reuse ``out_dir`` for a comparison and take its lock; returns the lock path.

    Its parent must exist (linrank creates the output directory, not its parents).

    Refused (OutputDirError) when the directory holds a file linrank compare did not write or
    another live process holds the lock.
    """
    from ..shared.outputs import OutputError, check_out_parent

    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise OutputDirError(f"--out {out_dir!r} exists and is not a directory")
    try:
        check_out_parent(out_dir)
    except OutputError as exc:
        raise OutputDirError(str(exc)) from None
    os.makedirs(out_dir, exist_ok=True)
    entries = os.listdir(out_dir)
    foreign = sorted(e for e in entries if not _own_name(e))
    if entries and (_MARKER not in entries or foreign):
        shown = ", ".join((foreign or sorted(entries))[:3])
        raise OutputDirError(
            f"--out {out_dir!r} holds files linrank compare did not write ({shown}); "
            "choose a new or empty directory")
    lock = os.path.join(out_dir, ".lock")
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                with open(lock) as fh:
                    pid = int(fh.read().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and pid != os.getpid() and _alive(pid):
                raise OutputDirError(
                    f"--out {out_dir!r} is in use by another linrank compare (pid {pid})") from None
            os.remove(lock)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(str(os.getpid()))
        break
    with open(os.path.join(out_dir, _MARKER), "w") as fh:
        fh.write("written by linrank compare; files here are regenerated\n")
    return lock


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------------- cache
def _key(problem: str, size: str, solver: str, depth: int, seed: int, budget: Budget) -> str:
    raw = json.dumps([problem, size, solver, depth, seed, asdict(budget), _CACHE_VERSION])
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def instance_fingerprint(inst: ProblemInstance) -> str:
    """What a cached run's numbers depend on in its problem: sizes, optimum, f*, the data.

    The data enter through the cost at a fixed probe point (drawn from seed 20190101), which
    every problem has, and the least-squares data where the problem has them.
    """
    from ..shared.sealed import fingerprint

    rng = np.random.default_rng(20190101)
    A = rng.standard_normal((inst.m, inst.k))
    Bt = rng.standard_normal((inst.k, inst.n))
    probe = float(inst.cost(A, Bt))
    opt = inst.optimum if inst.optimum is not None else (None,)
    data = inst.data
    arrays = ([getattr(data, a, None) for a in ("X", "Y", "Cxx", "Cyx")] if data is not None
              else [None])
    return fingerprint(np.array([inst.m, inst.n, inst.k], dtype=np.int64),
                       np.array([probe, np.nan if inst.f_star is None else inst.f_star,
                                 inst.scale], dtype=float), *opt, *arrays)


def _identity(problem: str, size: str, solver: str, depth: int, seed: int, budget: Budget,
              data: str) -> dict:
    from ... import __version__

    return {"kind": "linrank compare run", "problem": problem, "size": size, "solver": solver,
            "depth": int(depth), "seed": int(seed), "budget": asdict(budget), "data": data,
            "version": [_CACHE_VERSION, __version__]}


def _save_run(path: str, res: RunResult, identity: dict) -> None:
    import io

    from ..shared.sealed import write_sealed

    meta = json.dumps({"scalars": res.scalars(), "info": res.info}, default=float)
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(meta), **{f"h_{k}": v for k, v in res.history.items()})
    write_sealed(path, identity, buf.getvalue())


def _load_run(path: str, identity: dict) -> RunResult:
    """The cached run at ``path``; CacheMismatch (a ValueError naming the file) if it is not
    exactly the run of ``identity``, complete and unchanged."""
    import io

    from ..shared.sealed import CacheMismatch, read_sealed

    payload = read_sealed(path, identity)
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            hist = {k: np.array(z[f"h_{k}"]) for k in HISTORY_KEYS}
        return RunResult(**meta["scalars"], history=hist, info=meta["info"])
    except Exception as exc:  # noqa: BLE001 - any damage of a sealed payload is one message
        raise CacheMismatch(path, "unreadable", f"{type(exc).__name__}: {exc}") from None


# ---------------------------------------------------------------------- driver
@dataclass
class Run:
    """One finished run with its coordinates."""

    problem: str
    size: str
    solver: str
    depth: int
    seed: int
    result: RunResult
    cached: bool = False


@dataclass
class CompareResult:
    """What :func:`compare` ran and wrote."""

    out_dir: str | None
    runs: list[Run]
    instances: dict
    references: dict
    rows: list[dict]
    budgets: dict
    elapsed: float
    cpu: float
    files: list[str] = field(default_factory=list)
    analysis: dict = field(default_factory=dict)


def _notice(message: str, bar: object = None) -> None:
    import sys

    text = f"linrank compare: {message}"
    if bar is not None and hasattr(bar, "write"):
        bar.write(text, file=sys.stderr)
    else:
        print(text, file=sys.stderr)


def _planned(problems, solvers, depths, seeds):
    for name, size in problems:
        for solver in solvers:
            for depth in ([DEPTH_FREE[solver]] if solver in DEPTH_FREE else depths):
                for seed in seeds:
                    yield name, size, solver, depth, seed


def compare(
    problem_spec: str | Sequence = "all",
    solvers: Sequence[str] | str | None = None,
    depths: Sequence[int] = DEFAULT_DEPTHS,
    seeds: Sequence[int] = (0, 1, 2),
    budget: Budget | dict | None = None,
    out_dir: str | None = None,
    *,
    progress: bool = True,
    use_cache: bool = True,
    large_seeds: Sequence[int] | None = None,
) -> CompareResult:
    """Run every solver at every depth and seed on every problem; write the results.

    Parameters
    ----------
    problem_spec : "all", "name", "name:size" (comma-separated) or a sequence of those or of
        (name, size) pairs; a bare name means sizes "small" and "large".
    solvers : names from :data:`~linrank.experiments.compare.solvers.SOLVERS` (default all).
    depths : positive integers N of DeepLinearFixedRank / the flow / layer-gd (default
        1, 2, 3, 4, 100). pymanopt's FixedRankEmbedded and the direct answer run once.
    seeds : seeds of the random starts (the same start for every solver and depth).
    budget : a :class:`Budget` for every size, a dict size -> Budget, or None for
        :func:`default_budget`.
    out_dir : where to write results.csv, history.csv, report.md and the figures (None: nothing
        written, nothing cached).
    progress : a tqdm bar over the runs.
    use_cache : reuse finished runs from ``out_dir/.runs``.
    large_seeds : seeds for the size "large" (default: the first of ``seeds``; a large run
        costs up to the time budget).

    Returns
    -------
    CompareResult. Raises ValueError (listing the choices) on unknown problem or solver names
    and on depths or seeds that are not positive / non-negative integers; OutputDirError when
    ``out_dir`` is locked or holds foreign files. KeyboardInterrupt propagates after the lock is
    released; finished runs stay cached.
    """
    from tqdm.auto import tqdm

    problems = parse_problems(problem_spec)
    solvers, depths, seeds = _check_lists(solvers, depths, seeds)
    _check_sizes(problems, solvers, depths)
    lseeds = [seeds[0]] if large_seeds is None else _check_lists(None, [1], large_seeds)[2]
    budgets = {}
    for _, size in problems:
        b = budget.get(size, default_budget(size)) if isinstance(budget, dict) else budget
        budgets[size] = default_budget(size) if b is None else b
        if not isinstance(budgets[size], Budget):
            raise TypeError(f"budget must be a Budget or a dict of them, got {b!r}")
    t0, c0 = time.perf_counter(), time.process_time()
    lock = claim_output_dir(out_dir) if out_dir is not None else None
    try:
        cache = None
        if out_dir is not None and use_cache:
            cache = os.path.join(out_dir, ".runs")
            os.makedirs(cache, exist_ok=True)
        plan = []
        for name, size in problems:
            sd = lseeds if size == "large" else seeds
            plan += list(_planned([(name, size)], solvers, depths, sd))
        runs: list[Run] = []
        instances: dict[tuple[str, str], ProblemInstance] = {}
        prints: dict[tuple[str, str], str] = {}
        bar = tqdm(total=len(plan), desc="compare", unit="run", disable=not progress)
        try:
            for name, size, solver, depth, seed in plan:
                bar.set_postfix_str(f"{name}:{size} {solver} N={depth} seed {seed}")
                path = res = None
                if (name, size) not in instances:
                    instances[(name, size)] = build_problem(name, size)
                if cache is not None:
                    if (name, size) not in prints:
                        prints[(name, size)] = instance_fingerprint(instances[(name, size)])
                    ident = _identity(name, size, solver, depth, seed, budgets[size],
                                      prints[(name, size)])
                    key = _key(name, size, solver, depth, seed, budgets[size])
                    path = os.path.join(cache, f"{name}-{size}-{solver}-N{depth}-s{seed}-{key}.run")
                    if os.path.exists(path):
                        try:
                            res = _load_run(path, ident)
                        except IsADirectoryError:
                            raise
                        except (OSError, ValueError) as exc:
                            _notice(f"{exc}; recomputing it", bar)
                cached = res is not None
                if res is None:
                    res = run_solver(solver, instances[(name, size)], depth, seed, budgets[size])
                    if path is not None:
                        _save_run(path, res, ident)
                runs.append(Run(name, size, solver, depth, seed, res, cached))
                bar.update(1)
        finally:
            bar.close()
        for name, size in problems:  # needed for the references and the report
            if (name, size) not in instances:
                instances[(name, size)] = build_problem(name, size)
        references = _references(runs, instances)
        rows = [_row(r, instances[(r.problem, r.size)], references[(r.problem, r.size)],
                     budgets[r.size]) for r in runs]
        result = CompareResult(out_dir, runs, instances, references, rows, budgets,
                               time.perf_counter() - t0, time.process_time() - c0)
        if out_dir is not None:
            write_outputs(result)
            result.elapsed = time.perf_counter() - t0
            result.cpu = time.process_time() - c0
    finally:
        if lock is not None and os.path.exists(lock):
            os.remove(lock)
    return result


# ---------------------------------------------------------------------- rows
def _references(runs: list[Run], instances: dict) -> dict:
    """Per problem: (f_ref, source). The closed-form minimum where the problem has one; else
    the lowest cost any run recorded ("best found")."""
    refs = {}
    for key, inst in instances.items():
        if inst.f_star is not None:
            refs[key] = (float(inst.f_star), inst.optimum_source)
            continue
        best = [float(np.nanmin(r.result.history["cost"])) for r in runs
                if (r.problem, r.size) == key and len(r.result.history["cost"])
                and np.any(np.isfinite(r.result.history["cost"]))]
        refs[key] = (min(best), "best found by any solver") if best else (float("nan"), "none")
    return refs


def _row(run: Run, inst: ProblemInstance, ref: tuple[float, str], budget: Budget) -> dict:
    res = run.result
    f_ref, source = ref
    f0 = float(res.info.get("f0", np.nan))
    h = res.history
    rel = relative_gap(h["cost"], f_ref, f0)
    hit = np.nonzero(rel <= budget.target_gap)[0]
    wstar = float(inst.optimum[1] @ inst.optimum[1]) ** 0.5 if inst.optimum is not None else np.nan
    row = {
        "problem": run.problem, "size": run.size, "m": inst.m, "n": inst.n, "k": inst.k,
        "solver": run.solver, "depth": run.depth, "seed": run.seed,
        "status": res.status, "reason": res.reason, "iterations": res.iterations,
        "wall_time": res.wall_time, "cpu_time": res.cpu_time, "cost_evals": res.cost_evals,
        "grad_evals": res.grad_evals, "hvp": res.hvp, "initial_cost": f0,
        "final_cost": res.final_cost, "f_ref": f_ref, "optimum": source,
        "gap": res.final_cost - f_ref,
        "rel_gap": float(relative_gap(res.final_cost, f_ref, f0)),
        "distance": res.distance, "rel_distance": res.distance / wstar,
        "target_gap": budget.target_gap,
        "time_to_target": float(h["time"][hit[0]]) if hit.size else np.nan,
        "cpu_to_target": float(h["cpu_time"][hit[0]]) if hit.size else np.nan,
        "iterations_to_target": int(h["iteration"][hit[0]]) if hit.size else "",
        "evals_to_target": int(h["evaluations"][hit[0]]) if hit.size else "",
        "step": res.info.get("step", ""),
        "step_search_time": res.info.get("step_search_time", ""),
        "steps_tried": res.info.get("steps_tried", ""),
        "cached": run.cached,
    }
    return row
