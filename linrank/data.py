r"""Training data of deep linear networks: the loss :math:`L^1`, its gradient from data products.

Notation (Bah, Rauhut, Terstiege, Westdickenberg 2019, Section 2): data X (d_x x n_samples),
labels Y (d_y x n_samples), end-to-end matrix W (d_y x d_x) and

.. math::

    L^1(W) = \tfrac12 \|Y - W X\|_F^2,\qquad \nabla L^1(W) = (W X - Y) X^T = W\,XX^T - YX^T .

API summary
-----------
* :class:`LinearData` -- the data, as samples (X, Y) or as covariances (XX^T, YX^T); chooses the
  cheaper form for products. Built by :func:`as_data`; ``LinearData.from_covariances``.
  Methods: ``loss(W)``, ``gradient(W)`` (dense), ``point_products(u, s, vt)`` (the products
  :math:`G v`, :math:`G^T u` and :math:`L^1` at a thin SVD, never an m x n matrix).
* Paper data: :func:`gaussian_data` (X with i.i.d. N(0, sigma^2) entries, sigma = 1/sqrt(d),
  n_samples = 3d, as in Section 7) and :func:`top_projector` (:math:`U_k U_k^T`, the global
  minimizer of the autoencoder loss on M_k, Proposition 29); :func:`rank_constrained_minimizer`
  (the same for regression, Y != X, by Eckart-Young after whitening).
* :func:`finite_real_matrix` -- the input check of data matrices (also used by
  :mod:`linrank.network` for factors).

The network (factors, balanced starts, conserved quantities) is in :mod:`linrank.network`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .fixedrank import all_finite, real_array
from .linalg import orientation_for, thin_product

__all__ = [
    "LinearData",
    "as_data",
    "gaussian_data",
    "top_projector",
    "rank_constrained_minimizer",
    "finite_real_matrix",
    "squared_norm",
]


def finite_real_matrix(name: str, A: object) -> np.ndarray:
    """``A`` as a finite, non-empty 2-d float array; errors name the argument ``name``.

    Raises
    ------
    TypeError
        Not an array of real numbers (strings, None, objects, complex numbers).
    ValueError
        Not 2-d, empty, or containing NaN or inf.
    """
    if isinstance(A, (str, bytes)) or A is None:
        raise TypeError(f"{name} must be a 2-d array of real numbers, got {type(A).__name__}")
    arr = real_array(name, A).astype(float, copy=False)  # no copy for float64 input
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must be non-empty, got shape {arr.shape}")
    if not all_finite(arr):  # by a sum first: no boolean temporary of the data's size
        raise ValueError(f"{name} must be finite (it contains NaN or inf)")
    return arr


def squared_norm(A: np.ndarray, chunk: int = 1 << 14) -> float:
    r""":math:`\|A\|_F^2` without a copy of A (no temporary of A's size).

    BLAS dots of consecutive pieces of ``chunk`` entries of A's buffer (a view when A is C- or
    Fortran-contiguous, else row blocks of about 4 MiB), the partial sums added exactly by
    ``math.fsum``: relative error at most ~ chunk * eps = 3.6e-12 (each dot's worst case; typically
    ~ sqrt(chunk) eps), independent of A's size.
    """
    if A.flags.c_contiguous or A.flags.f_contiguous:
        pieces = [A.ravel(order="K")]  # a view
    else:
        rows = max(1, (1 << 22) // max(1, A.itemsize * A.shape[1]))
        pieces = (np.ascontiguousarray(A[i : i + rows]).ravel() for i in range(0, A.shape[0], rows))
    partial = []
    for flat in pieces:
        for i in range(0, flat.size, chunk):
            part = flat[i : i + chunk]
            partial.append(float(np.dot(part, part)))
    return math.fsum(partial)


def _symmetrize_in_place(C: np.ndarray) -> None:
    """C <- (C + C^T) / 2 by row blocks: temporaries of about 1 MiB each, not d x d."""
    d = C.shape[0]
    block = max(16, (1 << 20) // (8 * d))
    for i0 in range(0, d, block):
        i1 = min(d, i0 + block)
        avg = 0.5 * (C[i0:i1, i0:] + C[i0:, i0:i1].T)
        C[i0:i1, i0:] = avg
        C[i0:, i0:i1] = avg.T


def _check_psd(name: str, C: np.ndarray) -> None:
    r"""Refuse a symmetric C that is not positive semi-definite (a covariance X X^T is).

    Tolerance: eigenvalues down to :math:`-\delta`, :math:`\delta = 10\, d\, \epsilon\,
    \operatorname{tr} C` (the rounding of a computed X X^T) pass. Test: the Cholesky factorization
    of :math:`C + \delta I` (d^3/3 flops), which fails if C has an eigenvalue below
    :math:`-\delta`; only then the smallest eigenvalue is computed for the message.
    """
    d = C.shape[0]
    diag = np.diag(C)
    if np.any(diag < 0):
        raise ValueError(
            f"{name} must be positive semi-definite (a covariance X X^T), but its diagonal has "
            f"the negative entry {diag.min():.3g}"
        )
    delta = 10.0 * d * np.finfo(float).eps * float(diag.sum()) + np.finfo(float).tiny
    try:
        np.linalg.cholesky(C + delta * np.eye(d))
    except np.linalg.LinAlgError:
        lo = float(np.linalg.eigvalsh(C)[0])
        raise ValueError(
            f"{name} must be positive semi-definite (a covariance X X^T), but its smallest "
            f"eigenvalue is {lo:.6g} (tolerance {-delta:.3g})"
        ) from None


@dataclass(frozen=True, eq=False)
class LinearData:
    r"""Training data of a linear network, as samples or as second moments.

    Exactly one of two forms is stored for products:

    * ``form == "samples"``: X (d_x x n), Y (d_y x n); products cost O(n (d_x + d_y) k);
    * ``form == "covariance"``: ``Cxx = X X^T`` (d_x x d_x), ``Cyx = Y X^T`` (d_y x d_x) and
      ``yy = ||Y||_F^2`` (None if unknown; then :math:`L^1` is reported without its constant
      :math:`\tfrac12\|Y\|_F^2`, i.e. as :math:`L^1 - \tfrac12\|Y\|_F^2`);
      products cost O(d_x (d_x + d_y) k). ``Cyx is Cxx`` for the autoencoder (Y = X).

    Use :func:`as_data` to build one.
    """

    form: str
    d_x: int
    d_y: int
    X: np.ndarray | None = None
    Y: np.ndarray | None = None
    Cxx: np.ndarray | None = None
    Cyx: np.ndarray | None = None
    yy: float | None = None
    autoencoder: bool = False

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_samples(cls, X: object, Y: object = None, form: str = "auto") -> LinearData:
        """Data from samples X (d_x x n) and Y (d_y x n); ``Y=None`` or ``Y is X``: autoencoder.

        ``form``: "samples", "covariance" or "auto" (covariance when d_x <= n, where a product
        with X X^T is cheaper than one with X and X^T).
        """
        if form not in ("auto", "samples", "covariance"):
            raise ValueError(f"form must be 'auto', 'samples' or 'covariance', got {form!r}")
        auto = Y is None or Y is X
        Xa = finite_real_matrix("X", X)
        Ya = Xa if auto else finite_real_matrix("Y", Y)
        if Ya.shape[1] != Xa.shape[1]:
            raise ValueError(
                f"X and Y must have the same number of samples (columns): X has {Xa.shape[1]}, "
                f"Y has {Ya.shape[1]}"
            )
        d_x, n = Xa.shape
        d_y = Ya.shape[0]
        if form == "auto":
            form = "covariance" if d_x <= n else "samples"
        yy = squared_norm(Ya)
        if form == "samples":
            return cls("samples", d_x, d_y, X=Xa, Y=Ya, yy=yy, autoencoder=auto)
        Cxx = Xa @ Xa.T
        _symmetrize_in_place(Cxx)  # (numpy's X @ X.T is symmetric already; this guarantees it)
        Cyx = Cxx if auto else Ya @ Xa.T
        return cls("covariance", d_x, d_y, Cxx=Cxx, Cyx=Cyx, yy=yy, autoencoder=auto)

    @classmethod
    def from_covariances(cls, XXt: object, YXt: object, yy: float | None = None) -> LinearData:
        """Data given by ``XXt = X X^T`` (symmetric PSD, d_x x d_x) and ``YXt = Y X^T`` (d_y x d_x).

        ``yy = ||Y||_F^2`` (optional) adds the constant to the loss. ``YXt is XXt`` (or YXt None)
        marks the autoencoder.
        """
        Cxx = finite_real_matrix("XX^T", XXt)
        if Cxx.shape[0] != Cxx.shape[1]:
            raise ValueError(f"XX^T must be square (d_x x d_x), got shape {Cxx.shape}")
        asym = np.max(np.abs(Cxx - Cxx.T))
        if asym > 1e-10 * max(np.max(np.abs(Cxx)), np.finfo(float).tiny):
            raise ValueError(f"XX^T must be symmetric, max |C - C^T| = {asym:.3e}")
        Cxx = 0.5 * (Cxx + Cxx.T)
        _check_psd("XX^T", Cxx)
        auto = YXt is None or YXt is XXt
        Cyx = Cxx if auto else finite_real_matrix("YX^T", YXt)
        if Cyx.shape[1] != Cxx.shape[0]:
            raise ValueError(
                f"YX^T must have d_x = {Cxx.shape[0]} columns (like XX^T), got shape {Cyx.shape}"
            )
        if yy is not None:
            yy = float(yy)
            if not np.isfinite(yy) or yy < 0:
                raise ValueError(f"yy = ||Y||_F^2 must be finite and >= 0, got {yy}")
        return cls(
            "covariance", Cxx.shape[0], Cyx.shape[0], Cxx=Cxx, Cyx=Cyx, yy=yy, autoencoder=auto
        )

    # ------------------------------------------------------------------ dense
    def _check_W(self, W: np.ndarray) -> np.ndarray:
        W = np.asarray(W, dtype=float)
        if W.shape != (self.d_y, self.d_x):
            raise ValueError(
                f"W must have shape (d_y, d_x) = {(self.d_y, self.d_x)}, got {W.shape}"
            )
        return W

    def loss(self, W: np.ndarray) -> float:
        r""":math:`L^1(W) = \tfrac12\|Y - WX\|_F^2` for a dense W.

        Samples: computed from the residual, relative error a few eps. Covariances:
        :math:`\tfrac12(\|Y\|^2 - 2\langle W, YX^T\rangle + \langle W XX^T, W\rangle)`, absolute
        error about eps (||Y||^2 + ||W X||^2).
        """
        W = self._check_W(W)
        if self.form == "samples":
            R = W @ self.X - self.Y
            return 0.5 * float(np.sum(R * R))
        c = 0.0 if self.yy is None else self.yy
        return 0.5 * (c - 2.0 * float(np.sum(W * self.Cyx)) + float(np.sum((W @ self.Cxx) * W)))

    def gradient(self, W: np.ndarray) -> np.ndarray:
        r"""Dense :math:`\nabla L^1(W) = W XX^T - YX^T` (d_y x d_x), O(d_y d_x min(d_x, n))."""
        W = self._check_W(W)
        if self.form == "samples":
            return (W @ self.X - self.Y) @ self.X.T
        return W @ self.Cxx - self.Cyx

    def loss_and_gradient(self, W: np.ndarray) -> tuple[float, np.ndarray]:
        """Both at once, sharing the products."""
        W = self._check_W(W)
        if self.form == "samples":
            R = W @ self.X - self.Y
            return 0.5 * float(np.sum(R * R)), R @ self.X.T
        WC = W @ self.Cxx
        c = 0.0 if self.yy is None else self.yy
        loss = 0.5 * (c - 2.0 * float(np.sum(W * self.Cyx)) + float(np.sum(WC * W)))
        return loss, WC - self.Cyx

    # ------------------------------------------------------------------ factored
    def product_orientations(self, k: int) -> dict[str, str]:
        """The orientation ("direct" or "flipped", :mod:`linrank.linalg`) of every data product
        :meth:`point_products` takes at rank k, by name: "Cxx", "Cyx", "CyxT" (covariances; the
        autoencoder needs "Cxx" with 2k columns only) or "X", "XT", "Y", "YT" (samples).
        Measured once per process and shape class unless overridden (see
        :func:`linrank.linalg.orientation_for`); callers that promise bit-identical reruns
        (the flows) pin this dict and pass it back to :meth:`point_products`."""
        if self.form == "samples":
            return {"XT": orientation_for(self.X, k, transpose=True),
                    "YT": orientation_for(self.Y, k, transpose=True),
                    "Y": orientation_for(self.Y, k), "X": orientation_for(self.X, k)}
        if self.autoencoder:
            return {"Cxx": orientation_for(self.Cxx, 2 * k)}
        return {"Cxx": orientation_for(self.Cxx, k), "Cyx": orientation_for(self.Cyx, k),
                "CyxT": orientation_for(self.Cyx, k, transpose=True)}

    def point_products(
        self, u: np.ndarray, s: np.ndarray, vt: np.ndarray, orientations: dict | None = None
    ) -> tuple[np.ndarray, np.ndarray, float]:
        r"""At :math:`W = u\,\mathrm{diag}(s)\,v^T`: :math:`(G v,\ G^T u,\ L^1(W))`, G = grad L^1(W).

        .. math::

            G v = u\,\mathrm{diag}(s)\,(v^T XX^T v) - YX^T v,\qquad
            G^T u = XX^T v\,\mathrm{diag}(s) - XY^T u,

        evaluated with the data (X^T v, Y^T u) or the covariances, so nothing of size
        d_y x d_x is formed: cost O(n (d_x + d_y) k) or O(d_x (d_x + d_y) k), memory O((d_x + d_y) k
        + n k). The loss uses
        :math:`\|WX - Y\|^2 = \|\mathrm{diag}(s) V_X^T - Y_u^T\|^2 + (\|Y\|^2 - \|Y^T u\|^2)`
        (samples; absolute error ~ eps ||Y||^2) or the covariance expansion (absolute error
        ~ eps (||Y||^2 + ||W X||^2)). The data products are taken in the orientations
        ``orientations`` (a dict as :meth:`product_orientations` returns; missing names and
        None: chosen by :func:`linrank.linalg.orientation_for`); the orientations agree to
        rounding.
        """
        o = {} if orientations is None else orientations
        v = vt.T
        if self.form == "samples":
            Xv = thin_product(self.X, v, True, o.get("XT"))  # n x k
            Yu = thin_product(self.Y, u, True, o.get("YT"))  # n x k
            B = Xv.T @ Xv  # v^T XX^T v
            R = Xv * s - Yu  # (W X - Y)^T u
            Gv = u @ (s[:, None] * B) - thin_product(self.Y, Xv, False, o.get("Y"))
            Gtu = thin_product(self.X, R, False, o.get("X"))
            loss = 0.5 * (float(np.sum(R * R)) + max(self.yy - float(np.sum(Yu * Yu)), 0.0))
            return Gv, Gtu, loss
        if self.autoencoder:
            # one product with XX^T for both v and u
            CV = thin_product(self.Cxx, np.hstack((v, u)), False, o.get("Cxx"))
            k = v.shape[1]
            Cv, Cu = CV[:, :k], CV[:, k:]
            Cyx_v, Cyx_t_u = Cv, Cu
        else:
            Cv = thin_product(self.Cxx, v, False, o.get("Cxx"))
            Cyx_v = thin_product(self.Cyx, v, False, o.get("Cyx"))
            Cyx_t_u = thin_product(self.Cyx, u, True, o.get("CyxT"))
        B = vt @ Cv
        Gv = u @ (s[:, None] * B) - Cyx_v
        Gtu = Cv * s - Cyx_t_u
        c = 0.0 if self.yy is None else self.yy
        cross = float(np.sum(s * np.einsum("ij,ij->j", u, Cyx_v)))
        quad = float(np.sum(s * s * np.diag(B)))
        loss = 0.5 * (c - 2.0 * cross + quad)
        return Gv, Gtu, loss

    def fingerprint_arrays(self) -> list[np.ndarray]:
        """The arrays defining the data (for checkpoint fingerprints)."""
        if self.form == "samples":
            return [self.X, self.Y]
        return [self.Cxx, self.Cyx, np.array([np.nan if self.yy is None else self.yy])]


def as_data(
    X: object,
    Y: object = None,
    *,
    covariance: bool = False,
    form: str = "auto",
    yy: float | None = None,
) -> LinearData:
    """Normalize the data arguments of the flows to a :class:`LinearData`.

    * ``X`` already a :class:`LinearData` (then Y must be None): returned as is.
    * ``covariance=False``: X (d_x x n) and Y (d_y x n) samples; Y None means Y = X.
    * ``covariance=True``: X is X X^T, Y is Y X^T (None: autoencoder), ``yy`` = ||Y||_F^2.

    Raises
    ------
    TypeError, ValueError
        Non-numeric or non-finite data, sample counts that differ, mismatched shapes.
    """
    if isinstance(X, LinearData):
        if Y is not None:
            raise ValueError("pass either a LinearData as X (and Y=None) or arrays X, Y")
        return X
    if covariance:
        return LinearData.from_covariances(X, Y, yy=yy)
    if yy is not None:
        raise ValueError("yy is only used with covariance=True")
    return LinearData.from_samples(X, Y, form=form)


# ---------------------------------------------------------------------- paper data
def gaussian_data(
    d: int,
    n_samples: int | None = None,
    sigma: float | None = None,
    seed: int | np.random.Generator | None = None,
) -> np.ndarray:
    r"""Data X (d x n_samples) with i.i.d. N(0, sigma^2) entries: the set-up of Section 7.

    Defaults as in the paper: ``sigma = 1/sqrt(d)``, ``n_samples = 3 d``; use Y = X.
    """
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise ValueError(f"d must be a positive integer, got {d!r}")
    n = 3 * int(d) if n_samples is None else n_samples
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    sig = 1.0 / np.sqrt(d) if sigma is None else float(sigma)
    if not (np.isfinite(sig) and sig > 0):
        raise ValueError(f"sigma must be finite and positive, got {sigma!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return sig * rng.standard_normal((int(d), int(n)))


def top_projector(X: object, k: int) -> np.ndarray:
    r""":math:`U_k U_k^T` for the top-k eigenvectors of :math:`XX^T` (Proposition 29).

    The global minimizer of the autoencoder loss :math:`\tfrac12\|X - WX\|^2` on M_k (unique
    when :math:`\lambda_k > \lambda_{k+1}`). X is the d x n data (not the covariance).
    """
    Xa = finite_real_matrix("X", X)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= Xa.shape[0]:
        raise ValueError(f"k must be an integer in [1, {Xa.shape[0]}], got {k!r}")
    U, _, _ = np.linalg.svd(Xa, full_matrices=False)
    Uk = U[:, :k]
    return Uk @ Uk.T


def rank_constrained_minimizer(X: object, Y: object | None, k: int) -> tuple[np.ndarray, float]:
    r"""The global minimizer of :math:`L^1(W) = \tfrac12\|Y - WX\|_F^2` over rank(W) <= k, and its loss.

    With :math:`XX^T = LL^T` (Cholesky, needs :math:`XX^T` positive definite, i.e. rank X = d_x)
    and :math:`T = YX^T L^{-T}`, the problem is Eckart-Young for :math:`WL`:
    :math:`W^* = [T]_k L^{-1}` and :math:`L^1(W^*) = \tfrac12(\|Y\|_F^2 - \sum_{i \le k}\sigma_i(T)^2)`.
    For Y = X (``Y=None``) this is :func:`top_projector` (Proposition 29). The minimizer is unique
    when :math:`\sigma_k(T) > \sigma_{k+1}(T)`. Accuracy: backward stable up to cond(XX^T); the loss
    to ~eps ||Y||^2 absolutely. Any scale of X and Y: they are scaled by powers of two first (exact),
    so that XX^T neither overflows nor underflows; a W* or loss beyond the floating point range is
    refused with a ValueError (the loss may be subnormal, with fewer digits, below ~1e-308).

    Raises
    ------
    TypeError, ValueError
        Non-finite or non-2-d data, sample counts that differ, k outside [1, min(d_x, d_y)],
        XX^T not positive definite, or a result that overflows.
    """
    Xa = finite_real_matrix("X", X)
    Ya = Xa if Y is None else finite_real_matrix("Y", Y)
    if Ya.shape[1] != Xa.shape[1]:
        raise ValueError(
            f"X and Y must have the same number of samples, got {Xa.shape[1]} and {Ya.shape[1]}"
        )
    kmax = min(Xa.shape[0], Ya.shape[0])
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= kmax:
        raise ValueError(f"k must be an integer in [1, {kmax}], got {k!r}")
    # scaled by powers of two (exact) to max |entry| in [1/2, 1): X X^T cannot overflow or
    # underflow at any scale of the data; W* = (cy / cx) W*(X/cx, Y/cy), L = cy^2 L(X/cx, Y/cy)
    ex, ey = _exponent(Xa), _exponent(Ya)
    Xs = np.ldexp(Xa, -ex)
    Ys = Xs if Y is None else np.ldexp(Ya, -ey)
    try:
        L = np.linalg.cholesky(Xs @ Xs.T)
    except np.linalg.LinAlgError:
        raise ValueError("X X^T must be positive definite (X of full row rank)") from None
    T = np.linalg.solve(L, Xs @ Ys.T).T  # Y X^T L^{-T}
    U, sv, Vt = np.linalg.svd(T, full_matrices=False)
    Tk = (U[:, :k] * sv[:k]) @ Vt[:k]
    with np.errstate(over="ignore"):
        W = np.ldexp(np.linalg.solve(L.T, Tk.T).T, ey - ex)  # [T]_k L^{-1}
        loss = float(np.ldexp(0.5 * (float(np.sum(Ys**2)) - float(np.sum(sv[:k] ** 2))), 2 * ey))
    if not (all_finite(W) and math.isfinite(loss)):
        raise ValueError(
            "the minimizer W* or its loss overflows the floating point range at this scale of X "
            f"(max |X| ~ 2^{ex}) and Y (max |Y| ~ 2^{ey}): W* scales as |Y| / |X|, the loss as "
            "|Y|^2; rescale the data"
        )
    return W, loss


def _exponent(A: np.ndarray) -> int:
    """e with max |A| in [2^(e-1), 2^e) (0 for a zero matrix): A / 2^e is exact and O(1)."""
    top = float(np.max(np.abs(A))) if A.size else 0.0
    return math.frexp(top)[1] if top > 0 else 0
