r"""Products of a large dense matrix with a thin one, in the faster of two memory orientations.

The products :math:`A B` and :math:`A^T B` with a large dense A (e.g. a covariance
:math:`XX^T` or a dense Euclidean gradient G) and a thin B (k or 2k columns) are the data
products of the gradient and of the flows: every pass reads all of A. The same product can be
handed to BLAS in two orientations:

* ``"direct"``: ``A @ B`` (``A.T @ B``);
* ``"flipped"``: ``(B.T @ A.T).T`` (``(B.T @ A).T``), the transpose of the product of the thin
  matrix's transpose with A.

They compute the same sums in (possibly) another order, so the results agree to rounding
(relative differences of a few units of roundoff times the length of the sums; not always
bit-identical), but their speed can differ by a factor of 2-4 depending on the BLAS build, the
CPU, the number of BLAS threads and the load. Measured on a 2-core AMD EPYC VM with OpenBLAS
(C 2000 x 2000, B 2000 x 10): one thread, ``"flipped"`` 1.6-2.8x faster; two threads on a
loaded machine, ``"direct"`` up to 4x faster. So the choice is made by measurement, not by a
rule of thumb.

Rule (:func:`orientation_for`)
------------------------------
1. An explicit ``orientation`` argument wins ("direct" or "flipped").
2. Otherwise the environment variable ``LINRANK_PRODUCT_ORIENTATION``: "direct", "flipped" or
   "measure" (the default when unset).
3. "measure": a product is *eligible* when A is a C- or F-contiguous float64 array with at least
   :data:`MIN_ELEMENTS` entries and B has at most :data:`MAX_THIN` columns; an ineligible
   product is always "direct". For an eligible product the first call of its *shape class*
   (whether A is transposed, A's memory order, the powers of two above A's two dimensions and
   above B's column count) times both orientations on a scratch B of the same shape,
   interleaved, :data:`MEASURE_ROUNDS` rounds (one round when a product takes longer than
   0.1 s), and keeps "flipped" only when its median time is below 0.9x that of "direct".
   The choice is kept for the rest of the process (:func:`orientation_cache`,
   :func:`clear_orientation_cache`).

So two processes may choose differently, and results may then differ at the level of rounding.
Computations that promise bit-identical results across processes (the flows' checkpoints) pin
the orientation once and store it (see :mod:`linrank.flows`); pass ``orientation`` or set the
environment variable for reproducible runs elsewhere.

This module is the lowest layer of linrank (numpy only).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

__all__ = [
    "ORIENTATIONS",
    "ENV_VAR",
    "MIN_ELEMENTS",
    "MAX_THIN",
    "MEASURE_ROUNDS",
    "thin_product",
    "orientation_for",
    "is_eligible",
    "orientation_cache",
    "clear_orientation_cache",
]

#: The two orientations of a product (see the module docstring).
ORIENTATIONS: tuple[str, ...] = ("direct", "flipped")

#: Environment variable overriding the choice: "direct", "flipped" or "measure" (default).
ENV_VAR = "LINRANK_PRODUCT_ORIENTATION"

#: Smallest number of entries of A for which the orientation is measured (512 x 512).
MIN_ELEMENTS = 512 * 512

#: Largest number of columns of B for which the orientation is measured.
MAX_THIN = 64

#: Interleaved timing rounds per orientation when a shape class is first met.
MEASURE_ROUNDS = 5

_CACHE: dict[tuple, str] = {}


def _check_orientation(value: Any, source: str) -> str:
    if value not in ORIENTATIONS:
        raise ValueError(f"{source} must be 'direct' or 'flipped', got {value!r}")
    return value


def _env_choice() -> str | None:
    val = os.environ.get(ENV_VAR)
    if val is None or val.strip() == "" or val.strip().lower() == "measure":
        return None
    return _check_orientation(val.strip().lower(), f"environment variable {ENV_VAR}")


def is_eligible(A: Any, ncols: int) -> bool:
    """Whether the orientation of products of A with ``ncols`` columns is measured (rule 3)."""
    return (isinstance(A, np.ndarray) and A.ndim == 2 and A.dtype == np.float64
            and (A.flags.c_contiguous or A.flags.f_contiguous)
            and A.size >= MIN_ELEMENTS and 1 <= ncols <= MAX_THIN)


def _class_key(A: np.ndarray, ncols: int, transpose: bool) -> tuple:
    def up(x: int) -> int:
        return int(x - 1).bit_length()

    order = "C" if A.flags.c_contiguous else "F"
    return (bool(transpose), order, up(A.shape[0]), up(A.shape[1]), up(ncols))


def _compute(A: np.ndarray, B: np.ndarray, transpose: bool, orientation: str) -> np.ndarray:
    if orientation == "direct":
        return A.T @ B if transpose else A @ B
    return (B.T @ A).T if transpose else (B.T @ A.T).T


def _measure(A: np.ndarray, ncols: int, transpose: bool) -> str:
    rows = A.shape[0] if transpose else A.shape[1]
    B = np.random.default_rng(0).standard_normal((rows, ncols))
    times: dict[str, list[float]] = {o: [] for o in ORIENTATIONS}
    for r in range(MEASURE_ROUNDS):
        for o in ORIENTATIONS:
            t0 = time.perf_counter()
            _compute(A, B, transpose, o)
            times[o].append(time.perf_counter() - t0)
        if r == 0 and max(times["direct"][0], times["flipped"][0]) > 0.1:
            break
    direct, flipped = (float(np.median(times[o])) for o in ORIENTATIONS)
    return "flipped" if flipped < 0.9 * direct else "direct"


def orientation_for(A: Any, ncols: int, transpose: bool = False,
                    orientation: str | None = None) -> str:
    """The orientation of ``A @ B`` (``A.T @ B`` with ``transpose``) for a B with ``ncols`` columns.

    Follows the rule of the module docstring (argument, environment variable, measurement once
    per process and shape class). The first call of a shape class costs ``2 *``
    :data:`MEASURE_ROUNDS` products of that size.

    Raises
    ------
    ValueError
        If ``orientation`` or the environment variable is not one of the accepted names.
    """
    if orientation is not None:
        return _check_orientation(orientation, "orientation")
    env = _env_choice()
    if env is not None:
        return env
    if not is_eligible(A, ncols):
        return "direct"
    key = _class_key(A, ncols, transpose)
    choice = _CACHE.get(key)
    if choice is None:
        choice = _measure(A, ncols, transpose)
        _CACHE[key] = choice
    return choice


def thin_product(A: Any, B: np.ndarray, transpose: bool = False,
                 orientation: str | None = None) -> np.ndarray:
    r""":math:`A B` (or :math:`A^T B` with ``transpose``) for a dense A and a thin B.

    Computed in the orientation of :func:`orientation_for`; the two orientations agree to
    rounding (relative error of each entry a few eps times the length of the sums, as any
    product). The result may be a transposed (Fortran-ordered) view.

    Parameters
    ----------
    A : (p, q) array (anything supporting ``@`` with B is accepted and multiplied directly
        when not eligible for measurement).
    B : (q, r) array (``(p, r)`` with ``transpose``).
    transpose : compute ``A.T @ B``.
    orientation : "direct", "flipped" or None (rule of the module docstring).
    """
    o = orientation_for(A, B.shape[1] if np.ndim(B) == 2 else 0, transpose, orientation)
    if o == "flipped" and np.ndim(B) != 2:
        o = "direct"  # a vector: nothing to flip
    return _compute(A, B, transpose, o)


def orientation_cache() -> dict[tuple, str]:
    """A copy of the measured choices, keyed by shape class (see the module docstring)."""
    return dict(_CACHE)


def clear_orientation_cache() -> None:
    """Forget the measured choices (the next product of each class measures again)."""
    _CACHE.clear()
