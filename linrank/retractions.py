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
    embedding,
    projection,
)

__all__ = ["projection_retraction", "polar_retraction", "transport"]


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

    From the QR factors of Up and Vp and the SVD of a 2k x 2k matrix, O((m + n) k^2) (as
    pymanopt's FixedRankEmbedded). Singular values below ``eps * s_max`` are floored.

    Raises ValueError (never numpy's LinAlgError) for a non-finite point or step, or a step so
    large that the result is not representable.
    """
    return _checked(_projection_retraction, point, t)


def _projection_retraction(point: FixedRankPoint, t: TangentVector) -> FixedRankPoint:
    u, s, vt = point
    k = s.shape[0]
    Qu, Ru = np.linalg.qr(t.Up)
    Qv, Rv = np.linalg.qr(t.Vp)
    T = np.block([[np.diag(s) + t.M, Rv.T], [Ru, np.zeros((k, k))]])
    Ut, St, Vtt = np.linalg.svd(T, full_matrices=False)
    U = np.hstack((u, Qu)) @ Ut[:, :k]
    S = St[:k]
    if not np.all(np.isfinite(S)):
        raise ValueError("retraction produced non-finite singular values (step not finite)")
    S = np.maximum(S, S[0] * np.finfo(float).eps)
    Vt = Vtt[:k] @ np.vstack((vt, Qv.T))
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


def transport(
    point_a: FixedRankPoint, point_b: FixedRankPoint, vector_a: TangentVector
) -> TangentVector:
    """Vector transport by Frobenius projection onto the tangent space at ``point_b``.

    From the factored embedding, O((m + n) k^2), no m x n intermediate.
    """
    m, n = point_b.u.shape[0], point_b.vt.shape[1]
    return projection(point_b, embedding(point_a, vector_a), m, n)
