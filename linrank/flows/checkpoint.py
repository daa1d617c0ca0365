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

__all__ = ["CHECKPOINT_VERSION", "check_checkpoint_path", "fingerprint", "is_checkpoint",
           "read_checkpoint", "rows", "write_checkpoint"]

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
            f"checkpoint {path!r} belongs to a different run (data, start, depth or options "
            "differ); delete it, choose another path or pass resume=False"
        )
    return data
