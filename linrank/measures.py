r"""Measures of a learned matrix that implicit-regularization studies report.

* :func:`effective_rank`: the effective rank of Roy and Vetterli (2007),
  :math:`\operatorname{erank}(W) = \exp(H(p))`, :math:`p_i = \sigma_i / \sum_j \sigma_j`,
  :math:`H(p) = -\sum_i p_i \log p_i` (the measure of the deep matrix factorization literature,
  e.g. Arora, Cohen, Hu and Luo 2019).
* :func:`unobserved_error`: the relative Frobenius error on the entries outside an observed set,
  :math:`\|P_{\Omega^c}(W - M)\|_F / \|P_{\Omega^c}(M)\|_F`, from dense matrices or from factors
  without forming an m x n matrix.

Matrices are given as dense 2-d arrays or as factors ``(left, s, right_t)`` meaning
``left @ diag(s) @ right_t`` (a thin SVD ``(u, s, vt)`` of linrank's points, or any factors: a
planted ``A @ B.T`` is ``(A, np.ones(r), B.T)``; orthonormality is not required).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .fixedrank import real_array

__all__ = ["effective_rank", "unobserved_error"]

#: The Gram form is used when its estimated relative error, _GRAM_EPS * (sum of the magnitudes
#: of its terms) / result, is at most _GRAM_TOL (else the exact blockwise sum).
_GRAM_EPS = 1e-14
_GRAM_TOL = 1e-8

#: Rows per block of the exact (blockwise) sum over the unobserved entries.
_ROW_BLOCK_ENTRIES = 1 << 20


def real_float_array(name: str, x: Any) -> np.ndarray:
    """``x`` as a float array; complex, string and object input refused naming ``name``."""
    return np.asarray(real_array(name, x), dtype=float)


def _factors(name: str, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(left, s, right_t)`` of a factored matrix, or None for a dense one."""
    if isinstance(X, (tuple, list)) and len(X) == 3 and np.ndim(X[1]) == 1:
        a, s, b = (real_float_array(f"{name}[{i}]", x) for i, x in enumerate(X))
        r = s.size
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != r or b.shape[0] != r:
            raise ValueError(
                f"{name} = (left, s, right_t) must have shapes (m, r), (r,), (r, n); got "
                f"{a.shape}, {s.shape}, {b.shape}"
            )
        for part, arr in (("left", a), ("s", s), ("right_t", b)):
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name}: {part} must be finite")
        return a, s, b
    return None


def _dense(name: str, X: Any) -> np.ndarray:
    arr = real_float_array(name, X)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array or factors (left, s, right_t), got shape "
                         f"{arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr


def effective_rank(W: Any) -> float:
    r"""The effective rank of Roy and Vetterli (2007): :math:`\exp(H(p))`.

    .. math::

        \operatorname{erank}(W) = \exp\Big(-\sum_i p_i \log p_i\Big),\qquad
        p_i = \frac{\sigma_i}{\sum_j \sigma_j},

    over the singular values :math:`\sigma_i` of W, with :math:`0 \log 0 = 0`. It lies in
    [1, rank W], equals r for r equal nonzero singular values, is invariant under scaling of W,
    and is the measure used for deep matrix factorization (Arora, Cohen, Hu and Luo 2019).

    Parameters
    ----------
    W : a dense 2-d array (its singular values are computed, O(m n min(m, n))), factors
        ``(u, s, vt)`` of a point (then ``s`` are taken as the singular values: u and vt must
        have orthonormal columns and rows, not checked), or a 1-d array of singular values
        (non-negative). A 2-d array of singular values over time (e.g.
        ``FlowResult.singular_values``) is a matrix here: pass the rows one at a time.

    Returns
    -------
    float in [1, number of nonzero singular values]. Computed from ``s / max(s)`` (no overflow
    or underflow at any scale); relative error about ``r eps log r`` (r values).

    Raises
    ------
    TypeError : complex or non-numeric input.
    ValueError : non-finite or negative singular values; all singular values zero (the effective
        rank of the zero matrix is undefined).
    """
    if isinstance(W, (tuple, list)) and len(W) == 3 and np.ndim(W[1]) == 1:
        s = real_float_array("W[1] (the singular values s)", W[1])
    else:
        arr = real_float_array("W", W)
        if arr.ndim == 1:
            s = arr
        elif arr.ndim == 2:
            if not np.all(np.isfinite(arr)):
                raise ValueError("W must be finite")
            s = np.linalg.svd(arr, compute_uv=False) if arr.size else np.zeros(0)
        else:
            raise ValueError(f"W must be a matrix, a point (u, s, vt) or a 1-d array of singular "
                             f"values, got shape {arr.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("the singular values must be finite")
    if np.any(s < 0):
        raise ValueError(f"singular values must be non-negative, got min {float(np.min(s))}")
    top = float(np.max(s, initial=0.0))
    if top == 0.0:
        raise ValueError("the effective rank of the zero matrix (all singular values 0) is "
                         "undefined")
    q = s[s > 0] / top
    p = q / np.sum(q)
    return float(np.exp(-np.sum(p * np.log(p))))


def _observed_set(rows: Any, cols: Any, m: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    out = []
    for name, a, size in (("rows", rows, m), ("cols", cols, n)):
        arr = np.asarray(a)
        if arr.ndim != 1:
            raise ValueError(f"{name} must be a 1-d array of indices, got shape {arr.shape}")
        if arr.size == 0:
            arr = arr.astype(np.int64)
        if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= size):
            raise ValueError(f"{name} must lie in [0, {size}), got values in "
                             f"[{int(arr.min())}, {int(arr.max())}]")
        out.append(arr.astype(np.int64))
    if out[0].size != out[1].size:
        raise ValueError(f"rows and cols must have equal lengths, got {out[0].size}, "
                         f"{out[1].size}")
    lin = np.unique(out[0] * n + out[1])  # duplicates count once: a set of entries
    return np.divmod(lin, n)


def _entries(X: Any, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """X[rows, cols] of a dense or factored (left, s, right_t) matrix (O(len k))."""
    if isinstance(X, np.ndarray):
        return X[rows, cols]
    a, s, b = X
    out = np.empty(rows.size)
    step = 1 << 16
    for i in range(0, rows.size, step):
        j = min(i + step, rows.size)
        out[i:j] = np.einsum("ij,ij->i", a[rows[i:j]] * s, b[:, cols[i:j]].T)
    return out


def _rows(X: Any, lo: int, hi: int) -> np.ndarray:
    if isinstance(X, np.ndarray):
        return X[lo:hi]
    a, s, b = X
    return (a[lo:hi] * s) @ b


def _gram_sq(X: Any) -> tuple[float, float]:
    """(||X||_F^2, the sum of the magnitudes of its terms) of a factored matrix without forming
    it: sum((L^T L) o (R R^T)), L = a diag(s); the second value bounds the cancellation."""
    a, s, b = X
    top = float(np.max(np.abs(s), initial=0.0))
    if top == 0.0:
        return 0.0, 0.0
    L = a * (s / top)
    T = (L.T @ L) * (b @ b.T)
    return top * top * float(np.sum(T)), top * top * float(np.sum(np.abs(T)))


def unobserved_error(W: Any, M: Any, rows: Any, cols: Any, *, relative: bool = True) -> float:
    r"""The error of W against M on the entries outside the observed set :math:`\Omega`.

    .. math::

        e = \frac{\|P_{\Omega^c}(W - M)\|_F}{\|P_{\Omega^c}(M)\|_F},\qquad
        \Omega = \{(\mathrm{rows}_l, \mathrm{cols}_l)\},

    (``relative=False``: the numerator alone). The generalization error of matrix completion
    (Arora, Cohen, Hu and Luo 2019 report it as "test error").

    Parameters
    ----------
    W, M : m x n matrices, each a dense 2-d array or factors ``(left, s, right_t)`` meaning
        ``left @ diag(s) @ right_t`` (e.g. ``FlowResult.point``, or ``(A, np.ones(r), B.T)`` for
        a planted ``A @ B.T``).
    rows, cols : the observed entries (integer arrays of equal length; an entry given twice
        counts once).
    relative : divide by :math:`\|P_{\Omega^c}(M)\|_F` (default) or not.

    Returns
    -------
    float. When both W and M are factored (ranks r_W, r_M) the squares are computed as
    :math:`\|X\|_F^2 - \|P_\Omega X\|_F^2` for X = W - M and X = M, from the r x r Gram matrices
    of the factors and the entries on :math:`\Omega`:
    :math:`O((m + n)(r_W + r_M)^2 + |\Omega| (r_W + r_M))` flops, O((m + n) r) memory, no m x n
    matrix; this is used only when its estimated
    relative error (1e-14 times the sum of the magnitudes of the terms, over the result) is at
    most 1e-8: when W is close to M (cancellation in W - M) or the unobserved part is small
    against the observed one, and always for dense input, the unobserved entries are summed
    exactly in blocks of rows instead (O(m n (r_W + r_M)) flops for factors, memory 2^20
    entries per block). Accuracy: relative error about 1e-12 in the blockwise sum (a few eps
    times the factors' rank), 1e-8 at worst (squares: 2e-8) in the Gram form.

    Raises
    ------
    TypeError : complex or non-numeric input; non-integer indices.
    ValueError : shapes that differ; non-finite entries; indices out of range; every entry
        observed, or (``relative=True``) M zero on the unobserved entries: the relative error is
        undefined there (use ``relative=False``).
    """
    Wf, Mf = _factors("W", W), _factors("M", M)
    Wd = Wf if Wf is not None else _dense("W", W)
    Md = Mf if Mf is not None else _dense("M", M)
    shape_w = (Wd[0].shape[0], Wd[2].shape[1]) if Wf is not None else Wd.shape
    shape_m = (Md[0].shape[0], Md[2].shape[1]) if Mf is not None else Md.shape
    if shape_w != shape_m:
        raise ValueError(f"W and M must have the same shape, got {shape_w} and {shape_m}")
    m, n = shape_w
    r, c = _observed_set(rows, cols, m, n)
    if r.size == m * n:
        raise ValueError("every entry is observed: there are no unobserved entries to measure")
    num = den = None
    if Wf is not None and Mf is not None:
        # X = W - M as factors (concatenated); ||P_Oc X||^2 = ||X||^2 - ||P_O X||^2
        X = (np.hstack((Wf[0], Mf[0])), np.concatenate((Wf[1], -Mf[1])),
             np.vstack((Wf[2], Mf[2])))
        pairs = []
        for F in (X, Mf):
            total, scale = _gram_sq(F)
            obs = _entries(F, r, c)
            top = float(np.max(np.abs(obs), initial=0.0))
            on = top * top * float(np.sum((obs / top) ** 2)) if top > 0 else 0.0
            pairs.append((total, scale + on, on))
        ok = all(t - o > 0 and _GRAM_EPS * sc / (t - o) <= _GRAM_TOL
                 for t, sc, o in pairs[: 1 + relative])
        if ok:
            num = np.sqrt(pairs[0][0] - pairs[0][2])
            den = np.sqrt(pairs[1][0] - pairs[1][2]) if relative else 1.0
    if num is None:
        num, den = _blockwise(Wd, Md, r, c, m, n, relative)
    if not relative:
        return float(num)
    if not den > 0:
        raise ValueError("M is zero on every unobserved entry: the relative error is undefined "
                         "(use relative=False)")
    return float(num / den)


def _blockwise(W: Any, M: Any, r: np.ndarray, c: np.ndarray, m: int, n: int,
               relative: bool) -> tuple[float, float]:
    """Norms of P_Oc(W - M) and P_Oc(M) by an exact sum over blocks of rows (scaled: no
    overflow of the squares)."""
    rows_per = max(1, _ROW_BLOCK_ENTRIES // max(n, 1))
    starts = np.searchsorted(r, np.arange(0, m + rows_per, rows_per))  # r is sorted (np.unique)
    acc = {"num": [0.0, 0.0], "den": [0.0, 0.0]}  # (scale, sum of squares / scale^2)

    def add(key: str, block: np.ndarray) -> None:
        top = float(np.max(np.abs(block), initial=0.0))
        if top == 0.0:
            return
        sc, ss = acc[key]
        if top > sc:
            ss = ss * (sc / top) ** 2
            sc = top
        acc[key] = [sc, ss + float(np.sum((block / sc) ** 2))]

    for b, lo in enumerate(range(0, m, rows_per)):
        hi = min(lo + rows_per, m)
        Mb = _rows(M, lo, hi)
        Db = _rows(W, lo, hi) - Mb
        i0, i1 = starts[b], starts[b + 1]
        Db[r[i0:i1] - lo, c[i0:i1]] = 0.0
        add("num", Db)
        if relative:
            Mb = np.array(Mb, dtype=float)
            Mb[r[i0:i1] - lo, c[i0:i1]] = 0.0
            add("den", Mb)
    num = acc["num"][0] * np.sqrt(acc["num"][1])
    den = acc["den"][0] * np.sqrt(acc["den"][1])
    return float(num), float(den)
