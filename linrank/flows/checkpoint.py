"""Checkpoint files of the flows: the run's fingerprint and atomic .npz writes and reads.

A checkpoint holds the integrator's whole state (time, step size, counters, the state vector of
the system, every record so far) so that a resumed run ends bit-identical to an uninterrupted
one. It is written to ``<path>.tmp-<pid>.npz`` and renamed over ``path`` (never a half-written
file). The fingerprint (sha256) covers what defines the run; a checkpoint with another
fingerprint is refused.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

import numpy as np

from .options import FlowOptions

__all__ = ["CHECKPOINT_VERSION", "fingerprint", "read_checkpoint", "rows", "write_checkpoint"]

CHECKPOINT_VERSION = 2  # 2: shapes, data form and system in the fingerprint


def fingerprint(kind: str, arrays: Sequence[np.ndarray], opts: FlowOptions, extra: tuple) -> str:
    """sha256 of the system kind, the arrays (shape and bytes), the options and ``extra``."""
    h = hashlib.sha256()
    h.update(kind.encode())
    for a in arrays:
        a = np.ascontiguousarray(a, dtype=float)
        h.update(str(a.shape).encode())
        h.update(memoryview(a).cast("B"))  # no copy of the data
    te = None if opts.t_eval is None else opts.t_eval.tobytes().hex()
    h.update(repr((opts.method, opts.rtol, opts.atol, opts.step, opts.first_step, opts.max_step,
                   opts.max_steps, te, opts.trajectory, opts.gtol, extra)).encode())
    return h.hexdigest()


def rows(items: list) -> np.ndarray:
    """A list of numbers or of equal-length 1-d arrays as an array (shape (0, 0) when empty)."""
    return np.array(items, dtype=float) if items else np.zeros((0, 0))


def write_checkpoint(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` atomically (temporary file in the same directory, rename)."""
    tmp = f"{path}.tmp-{os.getpid()}.npz"
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)


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
            f"checkpoint {path!r} belongs to a different run (data, start, depth or options "
            "differ); delete it, choose another path or pass resume=False"
        )
    return data
