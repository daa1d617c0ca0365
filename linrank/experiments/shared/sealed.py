"""Cache files that prove on reading what they stand for.

A sealed file is one line of JSON (the header) followed by the payload bytes::

    {"linrank_sealed": 1, "identity": {...}, "size": N, "sha256": "..."}\\n<N bytes>

``identity`` says what the payload is (the run's coordinates, the problem and its data, the
options, the version of the code where it changes numbers); ``sha256`` is taken over the
identity (as canonical JSON) and the payload together. :func:`read_sealed` returns the payload
only if the file is complete, unchanged and the identity is exactly the one the reader expects;
otherwise it raises :class:`CacheMismatch` (a ValueError) naming the file and saying which of
these it is:

* *foreign*: a file of another run (copied or renamed over this one's name);
* *stale*: written for another version of the code or of the cache format;
* *cut off*: shorter than its header says (a truncated copy or a full disk);
* *changed*: the checksum does not match (edited by hand, or damaged);
* *unreadable*: no header at all.

Callers name the file and recompute the unit; nothing read from a rejected file is reported.
Files are written atomically (a temporary file in the same directory, then ``os.replace``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any

__all__ = ["CacheMismatch", "write_sealed", "read_sealed", "canonical", "fingerprint"]

_FORMAT = 1
_MAX_HEADER = 1 << 20  # a header longer than 1 MiB is not ours


class CacheMismatch(ValueError):
    """A sealed file that is not what its reader expects (the message names file and reason)."""

    def __init__(self, path: str, kind: str, detail: str):
        super().__init__(f"cache file {path} is {kind}: {detail}")
        self.path = path
        self.kind = kind


def canonical(obj: Any) -> str:
    """Canonical JSON of an identity (sorted keys, no spaces, floats by repr)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_default)


def _default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    raise TypeError(f"not JSON-serialisable in a cache identity: {type(obj).__name__}")


def fingerprint(*arrays: Any) -> str:
    """sha256 (hex, 24 digits) of arrays' dtypes, shapes and bytes (None allowed)."""
    import numpy as np

    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none;")
            continue
        arr = np.ascontiguousarray(a)
        h.update(f"{arr.dtype.str}{arr.shape};".encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:24]


def _digest(identity_json: str, payload: bytes) -> str:
    h = hashlib.sha256()
    h.update(identity_json.encode())
    h.update(b"\0")
    h.update(payload)
    return h.hexdigest()


def write_sealed(path: str, identity: dict, payload: bytes) -> None:
    """Write ``payload`` sealed with ``identity`` to ``path`` atomically."""
    ident = canonical(identity)
    header = json.dumps({"linrank_sealed": _FORMAT, "identity": json.loads(ident),
                         "size": len(payload), "sha256": _digest(ident, payload)},
                        sort_keys=True, separators=(",", ":"))
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(header.encode() + b"\n")
            fh.write(payload)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _differences(found: Any, expected: Any, prefix: str = "") -> list[str]:
    if isinstance(found, dict) and isinstance(expected, dict):
        out = []
        for k in sorted(set(found) | set(expected)):
            out += _differences(found.get(k), expected.get(k), f"{prefix}{k}.")
        return out
    return [] if found == expected else [f"{prefix[:-1] or 'identity'}={found!r} "
                                         f"(expected {expected!r})"]


def read_sealed(path: str, identity: dict, stale_keys: tuple[str, ...] = ("version",)) -> bytes:
    """The payload of ``path`` if it is complete, unchanged and sealed with ``identity``.

    ``stale_keys``: identity keys whose difference means "written by another version" (stale)
    rather than "another run's file" (foreign). Raises :class:`CacheMismatch`, IsADirectoryError
    for a directory in the file's place (callers refuse it: it cannot be replaced), or OSError if
    the file cannot be opened.
    """
    if os.path.isdir(path):
        raise IsADirectoryError(21, "a directory is where a cache file belongs (move it away)",
                                path)
    with open(path, "rb") as fh:
        line = fh.readline(_MAX_HEADER)
        rest = fh.read()
    try:
        head = json.loads(line)
        if not isinstance(head, dict) or head.get("linrank_sealed") != _FORMAT:
            raise ValueError
        found, size, digest = head["identity"], int(head["size"]), str(head["sha256"])
    except (ValueError, KeyError, TypeError):
        raise CacheMismatch(path, "unreadable", "no linrank cache header (an older cache "
                            "format, or not a linrank file)") from None
    expected = json.loads(canonical(identity))
    if found != expected:
        diffs = _differences(found, expected)
        stale = isinstance(found, dict) and any(found.get(k) != expected.get(k)
                                                for k in stale_keys)
        raise CacheMismatch(path, "stale" if stale else "foreign",
                            ("written by another version: " if stale else
                             "it belongs to another run: ") + "; ".join(diffs[:3]))
    if len(rest) < size:
        raise CacheMismatch(path, "cut off", f"{len(rest)} of {size} payload bytes")
    if len(rest) > size:
        raise CacheMismatch(path, "changed", f"{len(rest)} payload bytes where its header says "
                            f"{size}")
    if _digest(canonical(found), rest) != digest:
        raise CacheMismatch(path, "changed", "its checksum does not match its content "
                            "(edited or damaged)")
    return rest
