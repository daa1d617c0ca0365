r"""Files of starts in the data's eigenbasis, as ``linrank search`` writes them (``worst.csv``).

Shared by the search (which writes them) and the sweep (which takes them as a start kind,
``start = "search:DIR"``). A start is stored as the d x d matrix
:math:`B = E^T W(0) E` in the eigenbasis :math:`E = (u_1, \dots, u_d)` of :math:`XX^T`
(eigenvalues descending), so it can be carried to other data of the same size: there
:math:`W(0) = E' B E'^T` keeps what the search found (the signs of :math:`u_i^TW(0)u_i`, the
determinant of the top block, the weight off span U_r), whatever the data.

Every row carries a checksum (sha256 over the search's configuration key and the row's other
values): a row that was cut off, edited, or copied from another search does not verify and is
named by :func:`read_rows`, never used.
"""

from __future__ import annotations

import csv
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
           "eigenbasis", "eigenbasis_start"]

RESULTS = "worst.csv"
MANIFEST = "search.json"

#: the columns of worst.csv, in file order (the last one is the row's checksum)
COLUMNS = [
    "unit", "index", "of", "kind", "hypothesis", "d", "rank", "depth", "seed",
    "objective", "inside", "hyp_margin", "condition_47", "margin_47", "det_r", "off_subspace",
    "status", "t_converge", "t_final", "nsteps", "final_distance", "final_loss_gap",
    "critical_J", "critical_distance", "critical_loss_gap", "certificate", "params", "B",
    "checksum",
]


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


def row_checksum(row: dict, key: str) -> str:
    """16 hex digits of sha256 over ``key`` and the row's values (all columns but the last)."""
    text = "\x1f".join([key, *(format_value(row.get(c, "")) for c in COLUMNS[:-1])])
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


def read_rows(path: str | os.PathLike, key: str) -> tuple[list[dict], list[str]]:
    """The verified rows of a worst.csv and the problems met (one line each, naming the row).

    A row is used only if its checksum matches ``key`` and its values; a last line without its
    newline (cut by a kill), a row with the wrong number of fields or a bad checksum is reported
    in ``problems`` and left out. A header other than :data:`COLUMNS` raises StartFileError.
    """
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
        if row_checksum(row, key) != row["checksum"]:
            problems.append(f"{path} line {line_no} (unit {row['unit']}, row {row['index']}): "
                            "checksum does not match (edited, cut or from another search): "
                            "dropped")
            continue
        rows.append(row)
    return rows, problems


def search_starts(directory: str | os.PathLike, d: int, rank: int) -> list[np.ndarray]:
    """The eigenbasis matrices B of a search's starts inside its hypothesis, worst first.

    Sorted by objective (descending), then unit and index; each B once. Raises StartFileError
    if the directory holds no search, or one of another d or rank, or no usable start.
    """
    directory = os.fspath(directory)
    man = read_config(directory)
    cfg = man["config"]
    if int(cfg.get("d", -1)) != d or int(cfg.get("rank", -1)) != rank:
        raise StartFileError(f"the search in {directory} has d = {cfg.get('d')}, rank = "
                             f"{cfg.get('rank')}; this run needs d = {d}, rank = {rank}")
    rows, _ = read_rows(os.path.join(directory, RESULTS), man["key"])
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

    From the SVD of X (as :func:`linrank.experiments.starts.top_eigenbasis`); the sign of each
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
