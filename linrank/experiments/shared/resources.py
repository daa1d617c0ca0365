"""What this machine can hold: sizes are refused before any work, not after it ran out."""

from __future__ import annotations

import os

__all__ = ["physical_memory", "check_memory", "watch_parent", "executor"]


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine, or None where the OS does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(need: int, what: str) -> None:
    """Raise ValueError ``"{what} needs about X GiB, more than half of this machine's Y GiB"``
    when ``need`` bytes exceed half the physical memory (the rest is for everything else)."""
    mem = physical_memory()
    if mem is not None and need > mem // 2:
        raise ValueError(f"{what} needs about {need / 2**30:.3g} GiB, more than half of this "
                         f"machine's {mem / 2**30:.3g} GiB")


_WATCHED: set[int] = set()


def watch_parent(parent_pid: int | None, interval: float = 0.25) -> None:
    """End this worker process within ``interval`` seconds once ``parent_pid`` is gone.

    A worker of a pool (multiprocessing, joblib/loky) calls it with its parent's pid: a daemon
    thread polls ``os.getppid()``, which changes when the parent dies and the worker is
    re-parented, also when the parent was SIGKILLed and could clean nothing up; the worker
    then exits at once (``os._exit``) and releases the pipes it holds; at once too if the
    parent is already gone when it is called (a worker still starting up when the parent was
    killed). Only for local pool workers (not Dask workers, whose parent is their nanny).
    No-op for None, in the parent itself, and after the first call in a process.
    """
    import threading
    import time

    pid = os.getpid()
    if parent_pid is None or parent_pid == pid or pid in _WATCHED:
        return
    if os.getppid() != parent_pid:
        os._exit(1)
    _WATCHED.add(pid)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="linrank-parent-watchdog", daemon=True).start()


def executor(n_jobs: int, scheduler: object, error: type[Exception]):
    """(joblib ``parallel_config`` context, Dask client to close or None) for the runs of an
    application: ``n_jobs`` local processes (loky; each worker ends with this process, also when
    it is SIGKILLed: :func:`watch_parent` runs as the worker starts, before any task), in this
    process for ``n_jobs == 1``, or the Dask cluster of ``scheduler`` (an address or a
    ``distributed.Client``). Failures to reach Dask raise ``error`` with one line."""
    from joblib import parallel_config

    if scheduler is None:
        if n_jobs == 1:
            return parallel_config(backend="sequential"), None
        return parallel_config(backend="loky", initializer=watch_parent,
                               initargs=(os.getpid(),)), None
    try:
        from distributed import Client
    except ImportError:
        raise error("--scheduler needs dask.distributed: pip install 'linrank[dask]'") from None
    if isinstance(scheduler, Client):
        return parallel_config(backend="dask"), None
    try:
        client = Client(scheduler, timeout="20s")
    except Exception as exc:  # noqa: BLE001 - any failure to connect is reported in one line
        raise error(f"cannot connect to the Dask scheduler at {scheduler!r}: {exc}") from None
    return parallel_config(backend="dask"), client
