r"""The grid of a sweep: TOML file -> list of :class:`RunSpec`, one per run, with one-line errors.

A grid file has an optional ``[sweep]`` table of defaults and one or more ``[[grid]]`` blocks.
Every key of a block is a scalar or a list; a block expands to the Cartesian product of its
lists (in the order of :data:`CELL_KEYS`), each product a *cell*, and each cell to one run per
seed. Keys missing from a block come from ``[sweep]``, then from :data:`DEFAULTS`::

    [sweep]
    seeds = 5            # runs per cell: seeds 0..4 (or a list of seeds, e.g. [0, 7, 9])
    tol = 1e-6           # converged when ||W - W*||_F <= tol ||W*||_F
    t_max = 1000.0       # budget in flow time; max_steps: budget in integrator steps

    [[grid]]
    start = ["balanced_inside", "nonbalanced", "special"]
    depth = [2, 3, 4]
    d = 10
    rank = 2
    data = ["autoencoder", "regression"]

Cell keys (:data:`CELL_KEYS`):

* ``data``: "autoencoder" (Y = X) or "regression" (Y = T X + noise Z/sqrt(d), T = A B / d with A
  (d x t_rank) and B (t_rank x d) standard normal, Z standard normal; a stated model with
  ``t_rank`` and ``noise``). X is d x samples with i.i.d. N(0, 1/d) entries, samples = 3 d by
  default (Section 7). Y is d x samples (the starts of :mod:`linrank.experiments.shared.starts` are
  square).
* ``d``, ``samples``, ``t_rank`` (default d), ``noise``.
* ``rank`` r, ``depth`` N >= 2, ``hidden`` (width of every hidden layer, >= r; default r).
* ``start`` (:data:`START_KINDS`, or ``"search:DIR"``: the starts a ``linrank search`` wrote
  into DIR, worst first, seed s taking the (s mod n)-th, carried to the run's data through the
  eigenbasis; balanced, autoencoder only), ``imbalance`` (scale of the non-balanced start), ``eps``
  (margin of the near-boundary start).
* Budget and tolerances: ``tol``, ``t_max``, ``max_steps``, ``rtol``, ``atol``, ``plateau``
  (a saddle plateau is where the gradient norm is below ``plateau * sigma_1^2 ||W*||_F``).

Every run's spec holds all of these and its seed, so any row of the result can be rerun alone.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from ..shared.resources import check_memory

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["GridError", "RunSpec", "Grid", "load_grid", "START_KINDS", "CELL_KEYS", "DEFAULTS",
           "MAX_GRID_RUNS", "run_memory"]

#: kinds of start: balanced (manifold flow) or not (layer-wise flow)
START_KINDS = {
    "paper": "balanced, the paper's Section 7 start (condition (47) recorded, not imposed)",
    "balanced_inside": "balanced, drawn to satisfy condition (47) (Conjecture 32)",
    "balanced_outside": "balanced, drawn to violate condition (47)",
    "near_boundary": "balanced, (47) holds with margin ~ eps (W(0) ~ U_r (eps I + K) U_r^T)",
    "nonbalanced": "non-balanced factors with a stated imbalance scale (layer-wise flow)",
    "special": "W(0) = -U_r U_r^T, balanced (Remark 33); layer-wise flow, escapes by rounding",
    "gaussian": "every factor i.i.d. N(0, 1/d) (Figure 3): imbalance of order 1",
    "family_a": "balanced, W(0) = U_r M U_r^T, diag M > 0, det M < 0: inside (47), cannot converge "
                "(docs/theory.rst); layer-wise flow",
    "family_b": "balanced, family A plus eps (the eta of docs/theory.rst) off span U_r; "
                "layer-wise flow",
    "amended": "balanced, symmetric part of U_r^T W(0) U_r positive definite plus a part off "
               "span U_r (the amended hypothesis); layer-wise flow",
}
BALANCED = frozenset({"paper", "balanced_inside", "balanced_outside", "near_boundary"})
AUTOENCODER_ONLY = frozenset({"balanced_inside", "balanced_outside", "near_boundary", "special",
                              "family_a", "family_b", "amended"})

#: the keys of a cell, in the order in which a block's lists are expanded
CELL_KEYS = ("data", "d", "samples", "t_rank", "noise", "rank", "depth", "hidden",
             "start", "imbalance", "eps", "tol", "t_max", "max_steps", "rtol", "atol", "plateau")

#: defaults of every key (None: derived from other keys, see RunSpec)
DEFAULTS: dict[str, Any] = {
    "data": "autoencoder", "d": 10, "samples": None, "t_rank": None,
    "noise": 0.1, "rank": 2, "depth": 2, "hidden": None, "start": "paper", "imbalance": 1.0,
    "eps": 0.05, "tol": 1e-6, "t_max": 1000.0, "max_steps": 200_000, "rtol": 1e-8,
    "atol": 1e-12, "plateau": 1e-2,
}
_SWEEP_ONLY = ("seeds",)
_INT_KEYS = {"d": 1, "samples": 1, "t_rank": 1, "rank": 1, "depth": 2, "hidden": 1,
             "max_steps": 1}
_POS_KEYS = ("tol", "t_max", "rtol", "atol", "plateau", "imbalance", "eps")


class GridError(ValueError):
    """A grid that cannot be run; the message is one line saying where and what."""


@dataclass(frozen=True)
class RunSpec:
    """Everything one run depends on: its cell, its seed and its position ``run_id`` in the grid.

    ``samples`` (default 3d), ``t_rank`` (default d) and
    ``hidden`` (default rank) are resolved when the grid is expanded, so a spec is complete.
    """

    run_id: int
    seed: int
    data: str
    d: int
    samples: int
    t_rank: int
    noise: float
    rank: int
    depth: int
    hidden: int
    start: str
    imbalance: float
    eps: float
    tol: float
    t_max: float
    max_steps: int
    rtol: float
    atol: float
    plateau: float

    @property
    def balanced(self) -> bool:
        """True for the balanced kinds of start (integrated by the manifold flow)."""
        return self.start in BALANCED or self.start.startswith("search:")

    def cell(self) -> str:
        """The cell as a string: every parameter but the seed and run_id, in CELL_KEYS order."""
        return ",".join(f"{k}={getattr(self, k)}" for k in CELL_KEYS)

    def data_key(self) -> tuple:
        """What the data depend on (with the seed): runs of one seed share their data."""
        return (self.data, self.d, self.samples, self.t_rank, self.noise)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> RunSpec:
        """The spec of a result row (values may be strings, as read from the CSV)."""
        kw = {}
        for f in fields(cls):
            if f.name not in row:
                raise GridError(f"the row has no column {f.name!r}: not a linrank sweep row")
            v = row[f.name]
            kw[f.name] = v if f.type == "str" else (int(float(v)) if f.type == "int" else float(v))
        return cls(**kw)


@dataclass
class Grid:
    """An expanded grid: the runs, the canonical text of the grid and its hash."""

    runs: list[RunSpec]
    blocks: list[dict]
    source: str
    #: sha256 of the starts each ``search:DIR`` gives ("DIR d rank" -> digest): part of the
    #: grid's identity, so a search directory that changed since a sweep began (other rows, other
    #: order) makes its output directory another grid's, refused on resume, never reported
    search_digests: dict[str, str] = field(default_factory=dict)

    @property
    def canonical(self) -> str:
        if self.search_digests:
            return json.dumps({"blocks": self.blocks, "search_starts": self.search_digests},
                              sort_keys=True)
        return json.dumps(self.blocks, sort_keys=True)

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.canonical.encode()).hexdigest()[:16]

    def cells(self) -> list[str]:
        seen: dict[str, None] = {}
        for r in self.runs:
            seen.setdefault(r.cell(), None)
        return list(seen)


def _fail(where: str, msg: str) -> GridError:
    return GridError(f"{where}: {msg}")


def _check_value(where: str, key: str, v: Any) -> Any:
    if key in _INT_KEYS:
        if isinstance(v, bool) or not isinstance(v, int) or v < _INT_KEYS[key]:
            raise _fail(where, f"{key} must be an integer >= {_INT_KEYS[key]}, got {v!r}")
        return v
    if key in _POS_KEYS or key == "noise":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _fail(where, f"{key} must be a number, got {v!r}")
        v = float(v)
        lowest_ok = v >= 0 if key == "noise" else v > 0
        if not (lowest_ok and v < float("inf")):
            what = "finite and >= 0" if key == "noise" else "finite and > 0"
            raise _fail(where, f"{key} must be {what}, got {v!r}")
        return v
    if key in ("data", "start") and not isinstance(v, str):
        raise _fail(where, f"{key} must be a string or a list of strings, got {v!r}")
    if key == "data":
        if v not in ("autoencoder", "regression"):
            raise _fail(where, f"data must be 'autoencoder' or 'regression', got {v!r}")
        return v
    if key == "start":
        if v not in START_KINDS and not (isinstance(v, str) and v.startswith("search:")
                                         and len(v) > 7):
            raise _fail(where, f"start must be one of {', '.join(START_KINDS)} or search:DIR; "
                               f"got {v!r}")
        return v
    raise _fail(where, f"unknown key {key!r}")  # pragma: no cover - keys are checked before


def _values(where: str, key: str, raw: Any) -> list:
    vals = raw if isinstance(raw, list) else [raw]
    if not vals:
        raise _fail(where, f"{key} is an empty list")
    if key in ("samples", "t_rank", "hidden") and raw == "auto":
        return [None]
    out = [None if (key in ("samples", "t_rank", "hidden") and v == "auto")
           else _check_value(where, key, v) for v in vals]
    if len(set(map(repr, out))) != len(out):
        raise _fail(where, f"{key} lists a value twice: {vals!r}")
    return out


def _resolve(where: str, cell: dict) -> dict:
    c = dict(cell)
    d = c["d"]
    auto = c["data"] == "autoencoder"
    if c["samples"] is None:
        c["samples"] = 3 * d
    if c["samples"] < d:
        raise _fail(where, f"samples = {c['samples']} < d = {d}: X X^T would be singular")
    if c["t_rank"] is None:
        c["t_rank"] = d
    if c["t_rank"] > d:
        raise _fail(where, f"t_rank = {c['t_rank']} exceeds d = {d}")
    if c["rank"] > d:
        raise _fail(where, f"rank = {c['rank']} exceeds d = {d}")
    if c["hidden"] is None:
        c["hidden"] = c["rank"]
    if c["hidden"] < c["rank"]:
        raise _fail(where, f"hidden = {c['hidden']} is below rank = {c['rank']}: the product "
                           "cannot have rank r")
    search = c["start"].startswith("search:")
    if search:
        from ..shared.startfile import search_starts

        try:
            search_starts(c["start"][7:], d, c["rank"])
        except (ValueError, OSError) as exc:
            raise _fail(where, f"start = {c['start']!r}: {exc}") from None
    if (c["start"] in AUTOENCODER_ONLY or search) and not auto:
        raise _fail(where, f"start = {c['start']!r} is defined for the autoencoder (Y = X) only "
                           "(condition (47) and the special start use the eigenvectors of XX^T)")
    if c["start"] in ("family_a", "family_b") and not 2 <= c["rank"] < d + (c["start"] == "family_a"):
        raise _fail(where, f"start = {c['start']!r} needs 2 <= rank" + (" <= d" if c["start"] ==
                                                                        "family_a" else " < d"))
    if c["start"] in ("nonbalanced", "gaussian") and c["hidden"] != c["rank"]:
        raise _fail(where, "a non-balanced start needs hidden = rank (with wider layers the "
                           "product's rank is the smallest width, not r)")
    if c["rtol"] < 1e-13:
        raise _fail(where, f"rtol must be >= 1e-13, got {c['rtol']}")
    try:
        check_memory(run_memory(c), f"a run with d = {d}, samples = {c['samples']}, depth = "
                                    f"{c['depth']}, hidden = {c['hidden']}")
    except ValueError as exc:
        raise _fail(where, str(exc)) from None
    return c


def run_memory(cell: Mapping[str, Any]) -> int:
    """Bytes one run of ``cell`` needs at least (a lower bound, checked before any work).

    The data X, Y and a noise draw (d x samples each), about eight d x d matrices (covariances,
    the landscape's factors, W*), and the layers: depth - 2 hidden x hidden matrices and two
    d x hidden ones, each with about 200 bytes of array overhead.
    """
    d, n, N, h = (int(cell[k]) for k in ("d", "samples", "depth", "hidden"))
    return 8 * (3 * d * n + 8 * d * d + max(N - 2, 0) * h * h + 2 * d * h) + 200 * N



def _seeds(where: str, raw: Any) -> range | list[int]:
    if isinstance(raw, bool):
        raise _fail(where, f"seeds must be a count >= 1 or a list of integers >= 0, got {raw!r}")
    if isinstance(raw, int):
        if raw < 1:
            raise _fail(where, f"seeds must be a count >= 1 or a list of integers, got {raw}")
        return range(raw)  # not expanded: counted before the grid is
    if isinstance(raw, list) and raw and all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in raw
    ):
        if len(set(raw)) != len(raw):
            raise _fail(where, f"seeds lists a seed twice: {raw!r}")
        return list(raw)
    raise _fail(where, f"seeds must be a count >= 1 or a list of integers >= 0, got {raw!r}")


#: the most runs a grid may have unless the caller raises the limit (``max_runs``)
MAX_GRID_RUNS = 1_000_000


def load_grid(source: object, name: str | None = None,
              max_runs: int | None = MAX_GRID_RUNS) -> Grid:
    """Parse and expand a grid: a path to a TOML file, TOML text, or the parsed mapping.

    The runs are counted before the grid is expanded: a grid of more than ``max_runs`` runs
    (default :data:`MAX_GRID_RUNS`; None: no limit) is refused before any work, and so is a cell
    whose run needs more than half of this machine's memory (:func:`run_memory`).

    Raises
    ------
    GridError
        (a ValueError) with one line naming the file, the block and the key: unreadable file,
        TOML syntax, unknown keys, values of the wrong type or range, inconsistent cells
        (rank above d, hidden below rank, a start kind that needs Y = X on regression data,
        ...), no runs, a run listed twice, more runs than ``max_runs`` or a run too large
        for this machine.
    """
    if max_runs is not None and (isinstance(max_runs, bool) or not isinstance(max_runs, int)
                                 or max_runs < 1):
        raise ValueError(f"max_runs must be a positive integer or None, got {max_runs!r}")
    if isinstance(source, Mapping):
        doc, label, text = dict(source), name or "grid", json.dumps(source, sort_keys=True,
                                                                    default=str)
    elif isinstance(source, (str, os.PathLike)) and (
        isinstance(source, os.PathLike) or "\n" not in source and source.endswith(".toml")
    ):
        label = name or os.fspath(source)
        try:
            with open(source, "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            raise GridError(f"{label}: cannot read the grid file ({exc.strerror})") from None
        text = raw.decode("utf-8", errors="replace")
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise GridError(f"{label}: not valid TOML: {exc}") from None
    elif isinstance(source, str):
        label, text = name or "grid", source
        try:
            doc = tomllib.loads(source)
        except tomllib.TOMLDecodeError as exc:
            raise GridError(f"{label}: not valid TOML: {exc}") from None
    else:
        raise TypeError(f"grid must be a path, TOML text or a mapping, got {type(source).__name__}")
    unknown = set(doc) - {"sweep", "grid"}
    if unknown:
        raise GridError(f"{label}: unknown top-level key(s) {sorted(unknown)}; expected [sweep] "
                        "and [[grid]]")
    top = doc.get("sweep", {})
    if not isinstance(top, Mapping):
        raise GridError(f"{label}: [sweep] must be a table")
    blocks = doc.get("grid")
    if isinstance(blocks, Mapping):
        blocks = [blocks]
    if not blocks or not isinstance(blocks, list) or not all(isinstance(b, Mapping)
                                                             for b in blocks):
        raise GridError(f"{label}: no [[grid]] block (a grid needs at least one)")
    allowed = set(CELL_KEYS) | set(_SWEEP_ONLY)
    bad = set(top) - allowed
    if bad:
        raise GridError(f"{label}: [sweep]: unknown key(s) {sorted(bad)}; allowed: "
                        f"{', '.join(sorted(allowed))}")
    parsed = []
    total = 0
    for b_i, block in enumerate(blocks, start=1):
        where = f"{label}: [[grid]] {b_i}"
        bad = set(block) - allowed
        if bad:
            raise _fail(where, f"unknown key(s) {sorted(bad)}; allowed: "
                               f"{', '.join(sorted(allowed))}")
        merged = {**DEFAULTS, **top, **block}
        seeds = _seeds(where, merged.get("seeds", 1))
        lists = {k: _values(where, k, merged[k]) if merged[k] is not None else [None]
                 for k in CELL_KEYS}
        n_cells = math.prod(len(v) for v in lists.values())
        total += n_cells * len(seeds)
        if max_runs is not None and total > max_runs:
            raise _fail(where, f"the grid has at least {total:,} runs ({n_cells:,} cells x "
                               f"{len(seeds):,} seeds in this block), more than the limit of "
                               f"{max_runs:,}; split the grid or raise the limit "
                               "(linrank sweep --grid-limit N)")
        parsed.append((where, seeds, lists))
    runs: list[RunSpec] = []
    norm_blocks: list[dict] = []
    seen: set[tuple] = set()
    for where, seeds, lists in parsed:
        seeds = list(seeds)
        norm_blocks.append({**{k: lists[k] for k in CELL_KEYS}, "seeds": seeds})
        for combo in itertools.product(*(lists[k] for k in CELL_KEYS)):
            cell = _resolve(where, dict(zip(CELL_KEYS, combo)))
            for seed in seeds:
                spec = RunSpec(run_id=len(runs), seed=seed, **cell)
                key = (spec.cell(), seed)
                if key in seen:
                    raise _fail(where, f"run {spec.cell()} seed {seed} is already in an "
                                       "earlier block")
                seen.add(key)
                runs.append(spec)
    return Grid(runs=runs, blocks=norm_blocks, source=text, search_digests=_search_digests(runs))


def _search_digests(runs: list[RunSpec]) -> dict[str, str]:
    """The digest of the start list of every ``search:DIR`` start of the runs (see :class:`Grid`)."""
    from ..shared.startfile import search_starts

    out: dict[str, str] = {}
    for spec in runs:
        if spec.start.startswith("search:"):
            key = f"{spec.start[7:]} {spec.d} {spec.rank}"
            if key not in out:
                h = hashlib.sha256()
                for B in search_starts(spec.start[7:], spec.d, spec.rank):
                    h.update(np.ascontiguousarray(B, dtype=float).tobytes())
                out[key] = h.hexdigest()[:16]
    return out
