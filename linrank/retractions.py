r"""Retractions and vector transport on :math:`\mathcal{M}_k` (the representation layer).

Built on :mod:`linrank.fixedrank` only (no metric): the truncated-SVD (metric projection)
retraction, the polar retraction and the transport by projection, each O((m + n) k^2) and never
forming an m x n matrix. :meth:`linrank.DeepLinearFixedRank.retraction` chooses between the two
retractions and documents their properties. Both raise ValueError, never numpy's LinAlgError, for
a non-finite point or step or a step whose result is not representable.
"""

from __future__ import annotations

import numpy as np

from .fixedrank import (
    FixedRankPoint,
    TangentVector,
    all_finite,
    check_point_factors,
)

__all__ = ["GRAM_RCOND", "gram_factor", "projection_retraction", "polar_retraction",
           "frame_products", "transport"]


def _checked(retraction, point: FixedRankPoint, t: TangentVector) -> FixedRankPoint:
    """Run ``retraction``; if it fails (numpy's LinAlgError, or the ValueError of a non-finite
    intermediate or result), name the non-finite input, else say that the step is too large.

    NaN and inf in the inputs propagate to the results, which the retractions check (by sums of
    their factors), so finite inputs cost no extra pass over them.
    """
    try:
        return retraction(point, t)
    except ValueError as exc:  # LinAlgError is a ValueError
        check_point_factors(point)
        if not all_finite(*t):
            raise ValueError("tangent_vector contains NaN or inf: the step is not finite") from None
        raise ValueError(f"retraction failed: {exc} (step too large to represent?)") from None


def projection_retraction(point: FixedRankPoint, t: TangentVector) -> FixedRankPoint:
    r"""The rank-k truncated SVD of :math:`W + \xi` (the metric projection onto M_k).

    With :math:`U_p = Q_u R_u`, :math:`V_p = Q_v R_v`,
    :math:`W + \xi = [u\ Q_u]\,T\,[v\ Q_v]^T`, :math:`T = \begin{pmatrix} S + M & R_v^T \\
    R_u & 0\end{pmatrix}`, and the SVD of the 2k x 2k matrix T gives the result. R_u, R_v come
    from the Cholesky factors of the k x k Gram matrices :math:`U_p^T U_p`, :math:`V_p^T V_p`
    and Q_u, Q_v are never formed (:math:`[u\ Q_u] a = u a_1 + U_p R_u^{-1} a_2`); a side whose
    Gram matrix is ill-conditioned (:data:`GRAM_RCOND`) uses a Householder QR instead (as
    pymanopt's FixedRankEmbedded). O((m + n) k^2); equal to the QR form to rounding. Singular
    values below ``eps * s_max`` are floored.

    Raises ValueError (never numpy's LinAlgError) for a non-finite point or step, or a step so
    large that the result is not representable.
    """
    return _checked(_projection_retraction, point, t)


#: The projection retraction uses the Cholesky factor of the Gram matrix ``Up^T Up`` (``Vp^T Vp``)
#: instead of a Householder QR of Up (Vp) unless Cholesky fails or the ratio of the smallest to
#: the largest diagonal entry of the factor (a lower bound of ``1 / cond(Up)``) is below this;
#: then that side falls back to the QR. Measured: results equal to the QR form to <= 2e-15
#: relative up to ``cond(Up) = 1e8`` (tests/test_retraction.py), so the threshold leaves margin
#: for the estimate's underestimation of the condition number.
GRAM_RCOND = 1e-6


def gram_factor(A: np.ndarray) -> np.ndarray | None:
    """Upper triangular R with ``A^T A = R^T R`` (Cholesky of the Gram matrix), or None when A is
    rank deficient or ill-conditioned (diagonal ratio of R below :data:`GRAM_RCOND`)."""
    try:
        L = np.linalg.cholesky(A.T @ A)
    except np.linalg.LinAlgError:
        return None
    d = np.diagonal(L)
    if not d.min() > GRAM_RCOND * d.max():  # also catches NaN
        return None
    return L.T


def _side_factor(A: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(B, R, Q-or-None): A = Q R with Q = A R^{-1} (Gram form, returned as (A, R, None)) or a
    Householder QR (returned as (Q, R, Q)) when the Gram form is ill-conditioned."""
    R = gram_factor(A)
    if R is not None:
        return A, R, None
    Q, R = np.linalg.qr(A)
    return Q, R, Q


def _apply_side(B: np.ndarray, R: np.ndarray, Q: np.ndarray | None, C: np.ndarray) -> np.ndarray:
    """``Q @ C`` with Q = B R^{-1} (Gram form: a k x k solve, no m x k Q formed)."""
    if Q is not None:
        return Q @ C
    # numpy's LAPACK (not scipy's dtrtrs: alternating between the two OpenBLAS builds costs
    # thread-pool hand-overs, see the user guide, docs/guide/speed.rst)
    return B @ np.linalg.solve(R, C)


def _projection_retraction(point: FixedRankPoint, t: TangentVector) -> FixedRankPoint:
    """With Up = Q_u R_u, Vp = Q_v R_v: W + xi = [u Q_u] T [v Q_v]^T, T = [[S + M, R_v^T],
    [R_u, 0]]; R_u, R_v from the Cholesky factors of the k x k Gram matrices (QR fallback per
    side, :data:`GRAM_RCOND`), and Q_u, Q_v never formed: [u Q_u] a = u a_1 + Up R_u^{-1} a_2."""
    u, s, vt = point
    k = s.shape[0]
    Bu, Ru, Qu = _side_factor(t.Up)
    Bv, Rv, Qv = _side_factor(t.Vp)
    T = np.zeros((2 * k, 2 * k))
    T[:k, :k] = t.M
    i = np.arange(k)
    T[i, i] += s
    T[:k, k:] = Rv.T
    T[k:, :k] = Ru
    Ut, St, Vtt = np.linalg.svd(T)
    S = St[:k]
    if not np.all(np.isfinite(S)):
        raise ValueError("retraction produced non-finite singular values (step not finite)")
    S = np.maximum(S, S[0] * np.finfo(float).eps)
    U = u @ Ut[:k, :k]
    U += _apply_side(Bu, Ru, Qu, Ut[k:, :k])
    Vt = Vtt[:k, :k] @ vt
    Vt += _apply_side(Bv, Rv, Qv, Vtt[:k, k:].T).T
    if not all_finite(U, Vt):
        raise ValueError("retraction produced non-finite factors (step too large to represent)")
    return FixedRankPoint(U, S, Vt)


def polar_retraction(point: FixedRankPoint, t: TangentVector) -> FixedRankPoint:
    r"""The polar retraction :math:`U' K V'^T`, :math:`K = S + M`,
    :math:`U' = \operatorname{pf}(u + U_p K^{-1})`, :math:`V' = \operatorname{pf}(v + V_p K^{-T})`.

    See :meth:`linrank.DeepLinearFixedRank.retraction`. K is inverted through its SVD with
    singular values floored at ``eps * s_max``. O((m + n) k^2). Raises ValueError as
    :func:`projection_retraction`.
    """
    return _checked(_polar_retraction, point, t)


def _polar_retraction(point: FixedRankPoint, t: TangentVector) -> FixedRankPoint:
    u, s, vt = point
    K = np.diag(s) + t.M
    if not np.all(np.isfinite(K)):
        raise ValueError("retraction produced non-finite singular values (step not finite)")
    a, sig, bt = np.linalg.svd(K)
    if not np.all(np.isfinite(sig)):
        raise ValueError("retraction produced non-finite singular values (step not finite)")
    # floor relative to K's scale (to the point's when K = S + M is exactly zero)
    sig = np.maximum(sig, (sig[0] if sig[0] > 0 else s[0]) * np.finfo(float).eps)
    # K^{-1} = bt^T diag(1/sig) a^T; U' a = pf(u + Up K^{-1}) a = pf((u a + Up bt^T / sig)),
    # since pf(A a) = pf(A) a for orthogonal a (the same for V' with bt^T).
    Au = u @ a + (t.Up @ bt.T) / sig
    Av = vt.T @ bt.T + (t.Vp @ a) / sig
    if not all_finite(Au, Av):
        raise ValueError("retraction produced non-finite factors (step not finite)")
    Qa, _, Rat = np.linalg.svd(Au, full_matrices=False)
    Qb, _, Rbt = np.linalg.svd(Av, full_matrices=False)
    return FixedRankPoint(Qa @ Rat, sig, (Qb @ Rbt).T)


def frame_products(point_a: FixedRankPoint, point_b: FixedRankPoint) -> tuple[np.ndarray, np.ndarray]:
    """The k x k cross products ``(u_a^T u_b, v_a^T v_b)`` of two points' frames (what
    :func:`transport` needs of the points alone). O((m + n) k^2)."""
    return point_a.u.T @ point_b.u, point_a.vt @ point_b.vt.T


def transport(
    point_a: FixedRankPoint, point_b: FixedRankPoint, vector_a: TangentVector,
    frames: tuple[np.ndarray, np.ndarray] | None = None,
) -> TangentVector:
    r"""Vector transport by Frobenius projection onto the tangent space at ``point_b``.

    With :math:`Z = u_a M v_a^T + U_p v_a^T + u_a V_p^T`, :math:`P_u = u_a^T u_b`,
    :math:`P_v = v_a^T v_b`: :math:`Z v_b = u_a A + U_p P_v`, :math:`A = M P_v + V_p^T v_b`;
    :math:`Z^T u_b = v_a B + V_p P_u`, :math:`B = M^T P_u + U_p^T u_b`;
    :math:`M_b = u_b^T Z v_b = P_u^T A + (U_p^T u_b)^T P_v`, and the result is
    :math:`(Z v_b - u_b M_b,\ M_b,\ Z^T u_b - v_b M_b^T)`. Only k x k intermediates beside the
    result, no m x n or m x 2k array, O((m + n) k^2). ``frames`` may pass
    :func:`frame_products` of the two points (reused when several vectors are transported
    between the same points). Equal to the projection of the embedding to rounding.
    """
    ua, vta = point_a.u, point_a.vt
    ub, vtb = point_b.u, point_b.vt
    Pu, Pv = frame_products(point_a, point_b) if frames is None else frames
    Up, M, Vp = vector_a
    Uu = Up.T @ ub  # k x k
    A = M @ Pv + Vp.T @ vtb.T
    B = M.T @ Pu + Uu
    Mb = Pu.T @ A + Uu.T @ Pv
    Upb = ua @ A
    Upb += Up @ Pv
    Upb -= ub @ Mb
    Vpb = vta.T @ B
    Vpb += Vp @ Pu
    Vpb -= vtb.T @ Mb.T
    if not all_finite(Upb, Mb, Vpb):
        raise ValueError("transport produced non-finite values")
    return TangentVector(Upb, Mb, Vpb)
