r"""Files of starts in the data's eigenbasis, as ``linrank search`` writes them (``worst.csv``).

Shared by the search (which writes them) and the sweep (which takes them as a start kind,
``start = "search:DIR"``). A start is stored as the d x d matrix
:math:`B = E^T W(0) E` in the eigenbasis :math:`E = (u_1, \dots, u_d)` of :math:`XX^T`
(eigenvalues descending), so it can be carried to other data of the same size: there
:math:`W(0) = E' B E'^T` keeps what the search found (the signs of :math:`u_i^TW(0)u_i`, the
determinant of the top block, the weight off span U_r), whatever the data.

Every row carries the identity of what computed it -- ``config`` (the key of the search's
configuration: hypothesis, sizes, seed, optimizer and flow settings) and ``code`` (the key of
:func:`code_identity`: linrank's version, a sha256 over the source of every linrank module the
search runs, and the versions of numpy, scipy and cma) -- and a checksum over all its values.
:func:`read_rows` names and drops a row that was cut off or edited (*changed*), one of another
search (*foreign*) and one computed by other code (*stale*); none of them is ever used.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import math
import os
from collections.abc import Sequence

import numpy as np

from ...network import balanced_factors

__all__ = ["COLUMNS", "RESULTS", "MANIFEST", "StartFileError", "format_value", "format_matrix",
           "parse_matrix", "row_checksum", "read_rows", "read_config", "search_starts",
           "eigenbasis", "eigenbasis_start", "code_identity", "code_key"]

RESULTS = "worst.csv"
MANIFEST = "search.json"

#: the columns of worst.csv, in file order (the last one is the row's checksum)
COLUMNS = [
    "unit", "index", "of", "kind", "hypothesis", "d", "rank", "depth", "seed",
    "objective", "inside", "hyp_margin", "condition_47", "margin_47", "det_r", "off_subspace",
    "status", "t_converge", "t_final", "nsteps", "final_distance", "final_loss_gap",
    "critical_J", "critical_distance", "critical_loss_gap", "certificate", "params", "B",
    "config", "code", "checksum",
]

#: the module whose transitive linrank imports make up the code that computes a row
CODE_ROOT = "linrank.experiments.search"


class StartFileError(ValueError):
    """A file of starts that is not linrank's or cannot be used; one line naming the path."""


def format_value(v: object) -> str:
    """A value as written to the CSV: floats by ``repr`` (round-trips exactly), None as ""."""
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return str(v)


def format_matrix(A: np.ndarray) -> str:
    """A matrix (or vector) row-major as space-separated exact floats."""
    return " ".join(repr(float(x)) for x in np.ravel(A))


def parse_matrix(text: str, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of :func:`format_matrix` (ValueError if the count or a value is wrong)."""
    vals = np.array([float(x) for x in text.split()])
    if vals.size != math.prod(shape) or not np.all(np.isfinite(vals)):
        raise ValueError(f"expected {math.prod(shape)} finite numbers, got {vals.size}")
    return vals.reshape(shape)


def row_checksum(row: dict) -> str:
    """16 hex digits of sha256 over the row's values (all columns but the last, the identity
    columns ``config`` and ``code`` among them)."""
    text = "\x1f".join(["linrank search row", *(format_value(row.get(c, ""))
                                                 for c in COLUMNS[:-1])])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def code_identity() -> dict:
    """What computes a search's rows, as far as it can change their numbers.

    ``linrank`` (the package version), ``source`` (sha256, 24 hex digits, over the path and
    bytes of every linrank module that :data:`CODE_ROOT` imports, transitively, found by the
    import graph of :func:`linrank.devtools.layout.scan`: any edit there, even of a comment,
    makes earlier rows stale), and the versions of numpy, scipy and cma (None if absent).
    Computed once per process (about a second: it parses the package).
    """
    from importlib import metadata

    from ... import __version__
    from ...devtools.layout import scan

    layout = scan()
    graph = layout.graph()
    seen, stack = set(), [CODE_ROOT]
    while stack:
        mod = stack.pop()
        if mod not in seen:
            seen.add(mod)
            stack.extend(graph.get(mod, ()))
    h = hashlib.sha256()
    root = layout.root
    for mod in sorted(seen):
        parts = mod.split(".")[1:]
        path = root.joinpath(*parts).with_suffix(".py")
        if not path.exists():
            path = root.joinpath(*parts, "__init__.py")
        rel = path.relative_to(root.parent).as_posix()
        h.update(f"{rel}\0".encode())
        h.update(path.read_bytes())
        h.update(b"\0")

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {"linrank": __version__, "source": h.hexdigest()[:24], "modules": len(seen),
            "numpy": np.__version__, "scipy": version("scipy"), "cma": version("cma")}


def code_key() -> str:
    """16 hex digits of sha256 over :func:`code_identity` (the ``code`` column of a row)."""
    text = json.dumps(code_identity(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_config(directory: str | os.PathLike) -> dict:
    """The configuration of a search directory (its ``search.json``), with its ``key``."""
    path = os.path.join(os.fspath(directory), MANIFEST)
    try:
        with open(path) as fh:
            man = json.load(fh)
    except FileNotFoundError:
        raise StartFileError(f"{os.fspath(directory)} holds no linrank search ({MANIFEST} "
                             "missing)") from None
    except (OSError, ValueError) as exc:
        raise StartFileError(f"{path} is unreadable ({exc})") from None
    if (not isinstance(man, dict) or man.get("writer") != "linrank search"
            or not isinstance(man.get("config"), dict) or not isinstance(man.get("key"), str)):
        raise StartFileError(f"{path} is not a linrank search manifest")
    return man


def read_rows(path: str | os.PathLike, key: str, code: str | None = None, *,
              any_code: bool = False) -> tuple[list[dict], list[str]]:
    """The verified rows of a worst.csv and the problems met (one line each, naming the row).

    A row is used only if its checksum matches its values, its ``config`` is ``key`` and its
    ``code`` is ``code`` (default :func:`code_key`, the code running now). Left out and reported
    in ``problems``: a last line without its newline (cut by a kill), a row with the wrong number
    of fields, a changed row (bad checksum), a foreign row (another configuration) and a stale
    row (other code). A header other than :data:`COLUMNS` raises StartFileError. With
    ``any_code=True`` rows of other code are kept (for their starts, which do not depend on the
    code; their objectives do).
    """
    code = None if any_code else (code_key() if code is None else code)
    path = os.fspath(path)
    if not os.path.exists(path):
        return [], []
    with open(path, newline="") as fh:
        text = fh.read()
    problems: list[str] = []
    if text and not text.endswith("\n"):
        cut = text.rfind("\n") + 1
        problems.append(f"{path} line {text.count(chr(10)) + 1}: cut off (no newline), dropped")
        text = text[:cut]
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        return [], problems
    if header != COLUMNS:
        raise StartFileError(f"{path} has other columns than linrank search writes: not its file")
    rows = []
    for line_no, fields in enumerate(reader, start=2):
        if len(fields) != len(COLUMNS):
            problems.append(f"{path} line {line_no}: {len(fields)} fields, expected "
                            f"{len(COLUMNS)}: dropped")
            continue
        row = dict(zip(COLUMNS, fields))
        where = f"{path} line {line_no} (unit {row['unit']}, row {row['index']})"
        if row_checksum(row) != row["checksum"]:
            problems.append(f"{where}: changed (its checksum does not match its values: edited "
                            "or damaged): dropped")
        elif row["config"] != key:
            problems.append(f"{where}: foreign (computed for another search, configuration "
                            f"{row['config']}, this one {key}): dropped")
        elif code is not None and row["code"] != code:
            problems.append(f"{where}: stale (computed by other code, {row['code']}; this code "
                            f"is {code}): dropped")
        else:
            rows.append(row)
    return rows, problems


def search_starts(directory: str | os.PathLike, d: int, rank: int) -> list[np.ndarray]:
    """The eigenbasis matrices B of a search's starts inside its hypothesis, worst first.

    Sorted by objective (descending), then unit and index; each B once. A start is its matrix B
    in the eigenbasis of the data, whatever code computed its row: rows of other code (stale for
    a resumed search) are used too, ranked by the objective that code measured; cut, changed
    and foreign rows are not. Raises StartFileError if the directory holds no search, or one of
    another d or rank, or no usable start.
    """
    directory = os.fspath(directory)
    man = read_config(directory)
    cfg = man["config"]
    if int(cfg.get("d", -1)) != d or int(cfg.get("rank", -1)) != rank:
        raise StartFileError(f"the search in {directory} has d = {cfg.get('d')}, rank = "
                             f"{cfg.get('rank')}; this run needs d = {d}, rank = {rank}")
    rows, problems = read_rows(os.path.join(directory, RESULTS), man["key"], any_code=True)
    if problems and not rows:
        raise StartFileError(f"{directory}/{RESULTS} has no row that verifies ({problems[0]}"
                             + (f"; and {len(problems) - 1} more" if len(problems) > 1 else "")
                             + "): run the same linrank search again to recompute them")
    rows = [r for r in rows if r["inside"] == "True" and r["B"]]
    rows.sort(key=lambda r: (-float(r["objective"]), r["unit"], int(r["index"])))
    out: list[np.ndarray] = []
    seen: set[str] = set()
    for r in rows:
        if r["B"] not in seen:
            seen.add(r["B"])
            out.append(parse_matrix(r["B"], (d, d)))
    if not out:
        raise StartFileError(f"{directory}/{RESULTS} has no verified start inside the hypothesis")
    return out


def eigenbasis(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""``(lam, E)``: eigenvalues of :math:`XX^T` (descending) and orthonormal eigenvectors.

    From the SVD of X (as :func:`linrank.experiments.shared.starts.top_eigenbasis`); the sign of each
    eigenvector is fixed by making its entry of largest modulus positive, so E is a function of
    X alone.
    """
    U, s, _ = np.linalg.svd(np.asarray(X, dtype=float), full_matrices=True)
    lam = np.zeros(U.shape[0])
    lam[: s.size] = s * s
    idx = np.argmax(np.abs(U), axis=0)
    U = U * np.sign(U[idx, np.arange(U.shape[1])])
    return lam, U


def eigenbasis_start(X: np.ndarray, B: np.ndarray, rank: int, depth: int,
                     rng: np.random.Generator,
                     hidden_widths: Sequence[int] | None = None) -> list[np.ndarray]:
    r"""Balanced factors of :math:`W(0) = E B E^T` (E from :func:`eigenbasis`) of rank ``rank``.

    ``hidden_widths`` default to the rank (the paper's set-up); the hidden frames are Haar from
    ``rng`` (:func:`linrank.network.balanced_factors`).
    """
    _, E = eigenbasis(X)
    B = np.asarray(B, dtype=float)
    d = E.shape[0]
    if B.shape != (d, d):
        raise ValueError(f"B must be {d} x {d}, got shape {B.shape}")
    hw = [rank] * (depth - 1) if hidden_widths is None else list(hidden_widths)
    return balanced_factors(E @ B @ E.T, [d, *hw, d], seed=rng, rank=rank)
