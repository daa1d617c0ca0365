"""Checkpoint files of the flows: the run's fingerprint and atomic .npz writes and reads.

A checkpoint holds the integrator's whole state (time, step size, counters, the state vector of
the system, every record so far) so that a resumed run ends bit-identical to an uninterrupted
one. It is written to ``<path>.tmp-<pid>.npz`` and renamed over ``path`` (never a half-written
file). The fingerprint (sha256) covers what defines the run; a checkpoint with another
fingerprint is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from .options import FlowOptions

__all__ = ["CHECKPOINT_VERSION", "check_checkpoint_path", "fingerprint", "is_checkpoint",
           "read_checkpoint", "restore_run", "rows", "run_arrays", "write_checkpoint"]

CHECKPOINT_VERSION = 3  # 2: shapes, data form and system in the fingerprint; 3: stop rules,
#                          events, records, the problem's probe values (see fingerprint)


def fingerprint(kind: str, arrays: Sequence[np.ndarray], opts: FlowOptions, extra: tuple) -> str:
    """sha256 of the system kind, the arrays (shape and bytes), the options and ``extra``.

    Of the options, the stop rules (``gtol``, ``ftol``, ``rdtol``, ``rdwindow``), the events'
    count, ``terminal`` and ``direction`` and the names of the ``record`` callables are covered;
    the callables themselves cannot be hashed: a resumed run trusts that callables of the same
    names compute what they computed before (their values up to the checkpoint are kept from
    it). The system's ``arrays`` and ``extra`` say what defines the run
    (:meth:`linrank.flows.system.FlowSystem.identity`).
    """
    h = hashlib.sha256()
    h.update(kind.encode())
    for a in arrays:
        a = np.ascontiguousarray(a, dtype=float)
        h.update(str(a.shape).encode())
        h.update(memoryview(a).cast("B"))  # no copy of the data
    te = None if opts.t_eval is None else opts.t_eval.tobytes().hex()
    events = tuple((bool(getattr(ev, "terminal", False)) if isinstance(
        getattr(ev, "terminal", False), bool) else int(ev.terminal),
        float(getattr(ev, "direction", 0))) for ev in opts.events)
    h.update(repr((opts.method, opts.rtol, opts.atol, opts.step, opts.first_step, opts.max_step,
                   opts.max_steps, te, opts.trajectory, opts.gtol, extra, opts.ftol, opts.rdtol,
                   opts.rdwindow, events, tuple(opts.record))).encode())
    return h.hexdigest()


def rows(items: list) -> np.ndarray:
    """A list of numbers or of equal-length 1-d arrays as an array (shape (0, 0) when empty)."""
    return np.array(items, dtype=float) if items else np.zeros((0, 0))


def _temp_name(path: str) -> str:
    return f"{path}.tmp-{os.getpid()}.npz"


def is_checkpoint(path: str) -> bool:
    """True if ``path`` is a readable .npz file written by :func:`write_checkpoint`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return "version" in z.files and "fingerprint" in z.files
    except Exception:
        return False


def check_checkpoint_path(path: str, resume: bool) -> None:
    """Check before integrating that ``path`` can be written: its directory exists, it is not a
    directory, the directory accepts the temporary file the saves use, and an existing file
    there is a linrank checkpoint (no other file is overwritten; with ``resume`` an existing
    checkpoint is read later and must belong to the run).

    Raises
    ------
    ValueError
        Missing directory, a directory at ``path``, an existing file that is not a checkpoint
        (with ``resume=False``).
    OSError
        The directory refuses a new file (read-only, permissions); the message names ``path``.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError(f"checkpoint {path!r}: the directory {directory!r} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"checkpoint {path!r} is a directory, not a file")
    if os.path.exists(path) and not resume and not is_checkpoint(path):
        raise ValueError(f"checkpoint {path!r} exists and is not a linrank checkpoint: refusing "
                         "to overwrite it (choose another path)")
    tmp = _temp_name(path)
    try:
        with open(tmp, "wb"):
            pass
    except OSError as exc:
        raise OSError(exc.errno, f"checkpoint {path!r} cannot be written in {directory!r}: "
                                 f"{exc.strerror}") from exc
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_checkpoint(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` atomically (temporary file in the same directory, rename).

    Raises OSError naming ``path`` (not the temporary file) if that fails; the temporary file
    is removed and an earlier checkpoint at ``path`` stays intact.
    """
    tmp = _temp_name(path)
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise OSError(exc.errno, f"checkpoint {path!r} could not be written: "
                                 f"{exc.strerror or exc}") from exc


def read_checkpoint(path: str, fp: str) -> dict[str, np.ndarray]:
    """The arrays of the checkpoint at ``path``; ValueError if it is not a readable linrank
    checkpoint of this version or belongs to a run with another fingerprint."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {key: z[key] for key in z.files}
    except Exception as exc:
        raise ValueError(f"checkpoint {path!r} is not a readable linrank checkpoint: {exc}") \
            from exc
    if int(data.get("version", -1)) != CHECKPOINT_VERSION:
        raise ValueError(f"checkpoint {path!r} has an unknown format version")
    if str(data["fingerprint"]) != fp:
        raise ValueError(
            f"checkpoint {path!r} belongs to a different run (data or problem, start, depth or "
            "options differ); delete it, choose another path or pass resume=False"
        )
    return data


def run_arrays(run: Any) -> dict[str, np.ndarray]:
    """The arrays of a checkpoint of the :class:`linrank.flows.integrator.Integrator` ``run``."""
    names = list(run.rec)
    ev = run.events
    arrays = {
        "version": np.array(CHECKPOINT_VERSION),
        "fingerprint": np.array(run.fp),
        "scalars": np.array([run.t, run.h, run.loss0], dtype=float),
        "counters": np.array([run.nfev, run.nsteps, run.nrej, run.grid_i], dtype=np.int64),
        "status": np.array(run.status),
        "message": np.array(run.message),
        "y": run.sys.to_array(run.y),
        "rec_names": np.array(json.dumps(names)),
        "collapse": np.array(json.dumps(run.collapse)),
        "pinned": np.array(json.dumps(run.sys.pinned())),
        "run_state": np.array(json.dumps(run.sys.run_state)),
        "window": np.array(list(run.window), dtype=float).reshape(-1, 2),
        "t_events": np.array(json.dumps(ev.t_events)),
    }
    for j, key in enumerate(names):
        arrays[f"rec_{j}"] = rows(run.rec[key])
    for i, states in enumerate(ev.states):
        arrays[f"event_{i}"] = rows(states)
    return arrays


def restore_run(run: Any, data: dict[str, np.ndarray]) -> None:
    """Restore the integrator ``run`` from the checkpoint arrays ``data`` (bit for bit)."""
    run.t, run.h, run.loss0 = (float(x) for x in data["scalars"])
    run.nfev, run.nsteps, run.nrej, run.grid_i = (int(x) for x in data["counters"])
    run.status = str(data["status"])
    if run.status == "interrupted":
        run.status = "running"  # continue where the interrupted run stopped
    run.message = str(data["message"])
    run.sys.pin(json.loads(str(data["pinned"])))
    run.sys.run_state = json.loads(str(data["run_state"]))
    run.y = run.sys.from_array(np.array(data["y"], dtype=float))
    names = json.loads(str(data["rec_names"]))
    run.rec = {key: [x.copy() if x.ndim else float(x) for x in data[f"rec_{j}"]]
               for j, key in enumerate(names)}
    run.collapse = json.loads(str(data["collapse"]))
    run.window = deque((float(a), float(b)) for a, b in data["window"])
    ev = run.events
    ev.t_events = json.loads(str(data["t_events"]))
    ev.states = [[x.copy() for x in data[f"event_{i}"]] if ev.t_events[i] else []
                 for i in range(len(ev.t_events))]
