"""Run many tasks of the reproduction: a cache of finished ones, worker processes, Ctrl-C.

A task is a run (:class:`~linrank.experiments.reproduce.paper.RunSpec` and a seed) or a side study
(``"manifold"``: Corollary 8, ``"saddles"``: Proposition 30) for a seed. :func:`run_tasks`

* loads finished tasks from the cache directory; each cache file is sealed with the identity
  of its task (kind, run spec, seed, settings, code version) and a checksum
  (:mod:`.sealed`), so a foreign (another task's file under this name), stale, cut-off or
  edited file is reported by name (``notice``) and recomputed, never used;
* computes the others, in ``jobs`` worker processes (spawned; each ignores SIGINT, so Ctrl-C
  reaches only the parent, which terminates the workers at once and re-raises
  KeyboardInterrupt) or in this process for ``jobs == 1``;
* stores a task in the cache as soon as it is finished. A run is finished when
  :func:`~linrank.experiments.reproduce.paper.run_spec` returned it: an interrupted flow raises, so a
  cut-off run is never stored.

Results do not depend on ``jobs`` or on the order of completion.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from .paper import CACHE_VERSION, RunRecord, RunSpec, Settings, run_spec
from .plan import manifold_comparison, saddle_table

__all__ = ["Task", "run_tasks"]

Task = tuple[str, Any, int]  # (kind, spec or None, seed); kind in "run", "manifold", "saddles"


def _key(task: Task, settings: Settings) -> str:
    kind, spec, seed = task
    payload = [kind, spec.to_json() if spec is not None else None, seed, asdict(settings),
               CACHE_VERSION]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _path(cache_dir: str, task: Task, settings: Settings) -> str:
    kind, spec, seed = task
    name = (f"s{seed}-fig{spec.figure}-N{spec.depth}-d{spec.d}-{spec.init}" if kind == "run"
            else f"s{seed}-{kind}")
    return os.path.join(cache_dir, f"{name}-{_key(task, settings)}.cache")


def _compute(task: Task, settings: Settings) -> Any:
    kind, spec, seed = task
    if kind == "run":
        return run_spec(spec, settings, seed)
    if kind == "manifold":
        return manifold_comparison(settings, seed)
    if kind == "saddles":
        return saddle_table(settings, seed)
    raise ValueError(f"unknown task kind {kind!r}")


def _identity(task: Task, settings: Settings) -> dict:
    """What a cached task stands for: its kind, run spec, seed, settings and the code version
    (the data and starts are functions of these)."""
    from ... import __version__

    kind, spec, seed = task
    return {"kind": f"linrank reproduce {kind}", "spec": spec.to_json() if spec is not None
            else None, "seed": int(seed), "settings": asdict(settings),
            "version": [CACHE_VERSION, __version__]}


def _load(path: str, task: Task, settings: Settings) -> Any:
    """The cached result at ``path``; ValueError naming the file if it is not exactly this
    task's (foreign, stale, cut off, changed or unreadable: see :mod:`.sealed`)."""
    import io

    from ..shared.sealed import CacheMismatch, read_sealed

    payload = read_sealed(path, _identity(task, settings))
    try:
        if task[0] == "run":
            return RunRecord.from_npz(io.BytesIO(payload))
        return json.loads(payload)["result"]
    except Exception as exc:  # noqa: BLE001 - any damage of a sealed payload is one message
        raise CacheMismatch(path, "unreadable", f"{type(exc).__name__}: {exc}") from None


def _store(path: str, task: Task, settings: Settings, result: Any) -> None:
    import tempfile

    from ..shared.sealed import write_sealed

    if task[0] == "run":
        with tempfile.TemporaryDirectory(dir=os.path.dirname(path)) as tmp:
            name = os.path.join(tmp, "run.npz")
            result.to_npz(name)
            with open(name, "rb") as fh:
                payload = fh.read()
    else:
        payload = json.dumps({"version": CACHE_VERSION, "result": result}).encode()
    write_sealed(path, _identity(task, settings), payload)


def _cost(task: Task) -> float:
    kind, spec, _ = task
    if kind != "run":
        return 5e4
    return float(spec.d ** 2 * spec.depth * spec.rank)


def _init_worker(parent: int) -> None:
    from ..shared.resources import watch_parent

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch_parent(parent)  # ends with the parent, also when it was SIGKILLed


def _work(args: tuple[int, Task, Settings]) -> tuple[int, Any]:
    i, task, settings = args
    return i, _compute(task, settings)


def run_tasks(tasks: Sequence[Task], settings: Settings, cache_dir: str | None = None,
              jobs: int = 1, progress: Callable[[str], None] | None = None,
              notice: Callable[[str], None] | None = None,
              stats: dict | None = None) -> list[Any]:
    """Results of ``tasks`` in order (RunRecord for runs, dicts/lists for side studies).

    ``progress(label)`` after each task (cached or computed), ``notice(message)`` for damaged
    cache files; ``stats`` (a dict) receives the counts ``cached`` and ``computed``.
    KeyboardInterrupt stops at once; finished tasks stay cached.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    results: list[Any] = [None] * len(tasks)
    done = [False] * len(tasks)
    paths: list[str | None] = [None] * len(tasks)
    if cache_dir is not None:
        os.makedirs(cache_dir, exist_ok=True)
    for i, task in enumerate(tasks):
        if cache_dir is None:
            continue
        paths[i] = _path(cache_dir, task, settings)
        if os.path.exists(paths[i]):
            try:
                results[i] = _load(paths[i], task, settings)
                done[i] = True
            except IsADirectoryError:
                raise
            except (OSError, ValueError) as exc:
                if notice is not None:
                    notice(f"{exc}; recomputing it")
                os.remove(paths[i])
            if done[i] and progress is not None:
                progress(_label(task))
    todo = sorted((i for i in range(len(tasks)) if not done[i]), key=lambda i: -_cost(tasks[i]))
    if stats is not None:
        stats.update(cached=len(tasks) - len(todo), computed=len(todo))

    def finish(i: int, result: Any) -> None:
        results[i] = result
        if paths[i] is not None:
            _store(paths[i], tasks[i], settings, result)
        if progress is not None:
            progress(_label(tasks[i]))

    if jobs == 1 or len(todo) <= 1:
        for i in todo:
            finish(i, _compute(tasks[i], settings))
        return results
    ctx = multiprocessing.get_context("spawn")
    saved = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                              "MKL_NUM_THREADS")}
    os.environ.update({k: "1" for k in saved})  # one BLAS thread per worker (inherited)
    try:
        pool = ctx.Pool(min(jobs, len(todo)), initializer=_init_worker,
                        initargs=(os.getpid(),))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    try:
        for i, result in pool.imap_unordered(_work, [(i, tasks[i], settings) for i in todo]):
            finish(i, result)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
    return results


def _label(task: Task) -> str:
    kind, spec, seed = task
    return f"seed {seed}: " + (spec.label if kind == "run" else kind)


def spec_task(spec: RunSpec, seed: int) -> Task:
    """The task of one run."""
    return ("run", spec, seed)
