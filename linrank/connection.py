r"""Levi-Civita connection and exact Riemannian Hessian of the deep-linear metric.

Let :math:`B_W = \mathcal{A}_W \circ P_T(W)` (:math:`B = P_T` for depth N = 1, :math:`B = \mathcal{A}_W`
for N >= 2). B is self-adjoint on :math:`\mathbb{R}^{m\times n}`, its kernel is the normal space and
:math:`g_W(a, b) = \langle B^+ a, b\rangle_F` (eq. (30) of Bah, Rauhut, Terstiege, Westdickenberg
2019). For tangent fields X, Y (Koszul formula; derivation in ``docs/theory.rst``, section
"Levi-Civita connection and Hessian"):

.. math::

    \nabla_X Y = P_T(D_X Y) - \tfrac12 P_T\big[(D_X B)(B^+Y) + (D_Y B)(B^+X)\big]
                 + \tfrac12 B\, r(B^+X, B^+Y),

where :math:`\langle r(a, b), w\rangle_F = \langle (D_w B) a, b\rangle_F` for all tangent w, and with
G the Euclidean gradient and H the Euclidean Hessian applied to :math:`\xi`:

.. math::

    \operatorname{Hess} f[\xi] = B H + P_T[(D_\xi B) G] - \tfrac12 P_T[(D_\xi B) P_T G]
        - \tfrac12 P_T[(D_{\operatorname{grad} f} B)(B^+\xi)] + \tfrac12 B\, r(B^+\xi, P_T G).

The derivative of B along :math:`\mathcal{M}_k` (Daleckii-Krein)
-----------------------------------------------------------------
(Derivation: ``docs/theory.rst``, section "Daleckii-Krein divided differences".)
Write :math:`B_W(Z) = \sum_j f_j(WW^T)\, Z\, g_j(W^TW)` with :math:`f_j(x) = x^{(N-j)/N}`,
:math:`g_j(x) = x^{(j-1)/N}` (Definition 4), or the projector for N = 1. In the frames
:math:`[u, U_\perp]`, :math:`[v, V_\perp]` every coefficient of :math:`D_\xi B` is one divided
difference

.. math::

    T(x, y; z) = \frac{\varphi[x, y, z]}{\varphi[x, y]},\qquad \varphi(t) = t^N,\qquad
    x = s_i^{2/N},\ \ldots,

at the points :math:`s_i^{2/N}` and 0 (the Up, Vp blocks):
:math:`\tau_{ijl} = T(s_i^{2/N}, s_j^{2/N}; s_l^{2/N}) = (w_{il} - w_{jl})/(s_i^2 - s_j^2)`,
:math:`\sigma_{il} = \varphi[s_i^{2/N}, 0, s_l^{2/N}]/p_i = (w_{il} - p_l)/s_i^2`,
:math:`\pi_{ij} = T(s_i^{2/N}, s_j^{2/N}; 0) = (p_i - p_j)/(s_i^2 - s_j^2)`, and
:math:`p_i / s_i^2 = s_i^{-2/N}` (the only coefficient at N = 1, where this is the classical
Weingarten map of the fixed-rank manifold). With
:math:`C = M S + S M^T`, :math:`D = M^T S + S M` (the derivatives of :math:`WW^T`, :math:`W^TW` on the
core block) and :math:`\xi = (U_p, M, V_p)`, the tangent part of :math:`(D_\xi B) Z` is

.. math::

    M_o &= \textstyle\sum_j C_{ij}\tau_{ijl} Z_{jl} + \sum_j Z_{ij} D_{jl} \tau_{jli}
           + s_i \sigma_{il} (U_p^T Z v)_{il} + (u^T Z V_p)_{il} s_l \sigma_{li},\\
    U_o &= U_p S (Z_{11}\circ\sigma) + P_{u^\perp} Z v\, (D\circ\pi)
           + P_{u^\perp} Z P_{v^\perp} V_p\, S^{1-2/N},\\
    V_o &= P_{v^\perp} Z^T u\, (C\circ\pi) + V_p S (\sigma\circ Z_{11}^T)
           + P_{v^\perp} Z^T P_{u^\perp} U_p\, S^{1-2/N},

with :math:`Z_{11} = u^T Z v`. Only :math:`Zv, Z^Tu, Z V_p, Z^T U_p` are needed.

Accuracy
--------
The divided differences (:mod:`linrank.divided_differences`) have relative error <= 1e-13,
O(1) in N. The Hessian then has the accuracy of the products with G and H (a few ulps times the
condition of the sums), and matches a chart reference with finite-difference Christoffel symbols
to ~1e-7.

Cost: O((m + n) k^2 + k^3) per Hessian-vector product beyond the products of the Euclidean
gradient G with the 2k vectors [v, V_p], [u, U_p] and of H with v, u; the k^3 weights are cached
per point.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from .divided_differences import (
    DivDiffWeights,
    divided_difference_weights,
    second_divided_difference,
)
from .fixedrank import (
    TangentVector,
    all_finite,
    ambient_products,
    check_tangent,
    check_tangent_at,
    is_factor_gradient,
    parse_point,
    parse_tangent,
    project_products,
    projection,
    real_array,
    to_tangent_space,
)
from .metric import apply_A, apply_A_inverse, check_depth

__all__ = [
    "DivDiffWeights",
    "divided_difference_weights",
    "second_divided_difference",
    "derivative_of_B",
    "r_form",
    "christoffel",
    "levi_civita",
    "riemannian_hessian",
    "hessian_from_products",
]

# ---------------------------------------------------------------------------------------------
# blocks of (D_xi B) Z


def _dB_blocks(pt, W: DivDiffWeights, xi, Z11, Zv_perp, Ztu_perp, N1=None, N2=None):
    """Tangent part of (D_xi B) Z from the products of Z (see the module docstring).

    Z11 = u^T Z v, Zv_perp = P_u^perp Z v, Ztu_perp = P_v^perp Z^T u, N1 = P_u^perp Z P_v^perp Vp,
    N2 = P_v^perp Z^T P_u^perp Up (None for a tangent Z).
    """
    s = W.s
    Up, M, Vp = xi
    MS = M * s[None, :]
    SM = s[:, None] * M
    Csym = MS + MS.T
    Dsym = SM + SM.T
    E1 = Up.T @ Zv_perp  # Up^T Z v
    E2 = Ztu_perp.T @ Vp  # u^T Z Vp
    Mo = (
        np.einsum("ij,ijl,jl->il", Csym, W.tau, Z11)
        + np.einsum("ij,jl,jli->il", Z11, Dsym, W.tau)
        + s[:, None] * W.sigma * E1
        + E2 * (s[:, None] * W.sigma).T
    )
    Uo = Up @ (s[:, None] * (Z11 * W.sigma)) + Zv_perp @ (Dsym * W.pi)
    Vo = Ztu_perp @ (Csym * W.pi) + Vp @ (s[:, None] * (W.sigma * Z11.T))
    sq = s * W.q
    if N1 is not None:
        Uo = Uo + N1 * sq
    if N2 is not None:
        Vo = Vo + N2 * sq
    return TangentVector(Uo, Mo, Vo)


def _dB_tangent(pt, W, xi, a):
    """Tangent part of (D_xi B) a for a tangent vector a."""
    return _dB_blocks(pt, W, xi, a.M, a.Up, a.Vp)


def _r(W: DivDiffWeights, a, b):
    """r(a, b): <r(a, b), w>_F = <(D_w B) a, b>_F for all tangent w (a, b tangent)."""
    s = W.s
    tau, sigma, pi = W.tau, W.sigma, W.pi
    KC = np.einsum("ijl,il,jl->ij", tau, b.M, a.M) + pi * (a.Vp.T @ b.Vp)
    KD = np.einsum("jli,ij,il->jl", tau, a.M, b.M) + pi * (a.Up.T @ b.Up)
    rM = (KC + KC.T) * s[None, :] + s[:, None] * (KD + KD.T)
    rU = a.Up @ (s[:, None] * (sigma * b.M)).T + b.Up @ (s[:, None] * (a.M * sigma)).T
    rV = a.Vp @ ((b.M * sigma.T) * s[None, :]) + b.Vp @ (s[:, None] * (sigma * a.M.T)).T
    return TangentVector(rU, rM, rV)


def _A(W: DivDiffWeights, t):
    return apply_A(W.w, W.p, t)


def _Ainv(W: DivDiffWeights, t):
    return apply_A_inverse(W.w, W.p, t)


def _geometry(manifold: Any) -> tuple[tuple[int, int, int], int]:
    """The shape (m, n, k) and depth N of ``manifold`` (a DeepLinearFixedRank, or any object with
    the integer attributes m, n, k and depth)."""
    try:
        shape = (manifold.m, manifold.n, manifold.k)
        depth = manifold.depth
    except AttributeError:
        raise TypeError(
            "manifold must be a linrank.DeepLinearFixedRank (integer attributes m, n, k, depth), "
            f"got {type(manifold).__name__}"
        ) from None
    for val in shape:
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)):
            raise TypeError(f"manifold.m, .n, .k must be integers, got {shape}")
    return shape, check_depth(depth)


def _normalized(s: np.ndarray, depth: int) -> tuple[np.ndarray, float]:
    r"""``(s / c, log2 c)`` with c the power of two nearest :math:`\sqrt{s_{max} s_{min}}` (exact).

    Every quantity of the connection is homogeneous in the scale c of W: with
    :math:`\alpha = 2(N-1)/N`, :math:`B_{cW} = c^\alpha B_W`, :math:`D B_{cW} = c^{\alpha-1} D B_W`,
    :math:`r_{cW} = c^{\alpha-1} r_W`, :math:`\Gamma_{cW} = \Gamma_W / c` and the Hessian
    is :math:`c^\alpha B H + c^{\alpha-1}(\ldots)`. The functions below evaluate at s / c, whose
    range is :math:`[\sqrt{s_{min}/s_{max}}, \sqrt{s_{max}/s_{min}}]`, and scale the results, so
    that :math:`s^2`, :math:`w^2`, :math:`1/w^2` never overflow in intermediates when the result
    itself is representable (e.g. s = (1e150, 1e149) or (1e-150, 1e-151)).
    """
    e = round(0.5 * (math.log2(s.max()) + math.log2(s.min())))
    return (np.ldexp(s, -e) if e else s), float(e)


def _alpha(depth: int) -> float:
    """The degree 2(N - 1)/N of homogeneity of A_W in W."""
    return 2.0 * (depth - 1) / depth


def _times_pow2(t: TangentVector, x: float) -> TangentVector:
    """``t * 2**x`` without overflow or underflow of 2**x itself (np.ldexp of the integer part)."""
    if x == 0.0:
        return t
    if abs(x) < 1000.0:  # 2**x is a normal float: one multiplication
        f = 2.0**x
        return TangentVector(t.Up * f, t.M * f, t.Vp * f)
    ip = int(np.floor(x))
    f = 2.0 ** (x - ip)
    return TangentVector(*(np.ldexp(b * f, ip) for b in t))


def _quiet_overflow(fn):
    """Run ``fn`` without numpy's overflow/invalid warnings: its inputs are checked to be finite
    and its result by :func:`_finite_result`, which raises a ValueError saying what overflowed."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            return fn(*args, **kwargs)

    return wrapper


def _finite_result(
    t: TangentVector, what: str, s: np.ndarray, depth: int, **inputs: TangentVector
) -> TangentVector:
    """``t`` if finite; else a ValueError naming the first non-finite tangent of ``inputs``
    (checked only then), or saying that the result overflows."""
    if not all_finite(*t):
        for name, vector in inputs.items():
            if not all_finite(*vector):
                raise ValueError(f"{name} contains NaN or inf")
        raise ValueError(
            f"{what} is not representable in floating point (it overflows) at singular values "
            f"in [{s.min():.3g}, {s.max():.3g}], depth {depth}"
        )
    return t


def _ambient_with_frames(shape, pt, Z, xi, name="euclidean_gradient"):
    """(Z [v, Vp], Z^T [u, Up]) in one product each, for any ambient form of Z."""
    if is_factor_gradient(Z):
        raise TypeError(
            "factor gradients (du, ds, dvt) of f(u, s, vt) do not determine the Riemannian Hessian: "
            "they carry only G v and G^T u, while the Hessian also needs the normal component of "
            "the Euclidean gradient G (through G V_p and G^T U_p). Pass G itself as a dense (m, n) "
            "array, a factored (U, S, V) triple or a scipy LinearOperator"
        )
    m, n, k = shape
    u, _, vt = pt
    frame_u = np.hstack((u, xi.Up))
    frame_vt = np.hstack((vt.T, xi.Vp)).T
    try:
        ZV, ZtU = ambient_products((frame_u, None, frame_vt), Z, m, n, name)
    except ValueError:
        if not all_finite(xi.Up, xi.Vp):  # the frames carry the tangent vector: blame it first
            raise ValueError("tangent_vector contains NaN or inf") from None
        raise
    return ZV[:, :k], ZV[:, k:], ZtU[:, :k], ZtU[:, k:]


@_quiet_overflow
def derivative_of_B(manifold, point: Any, direction: Any, Z: Any):
    r"""Tangent part :math:`P_T[(D_\xi B) Z]` of the derivative of :math:`B_W = \mathcal{A}_W P_T`.

    Parameters
    ----------
    manifold : DeepLinearFixedRank.
    point : (u, s, vt).
    direction : tangent vector :math:`\xi` (the velocity of a curve in :math:`\mathcal{M}_k`).
    Z : ambient m x n vector in any form the manifold accepts (dense, (U, S, V), LinearOperator,
        sparse) or a tangent vector ``TangentVector`` (Up, M, Vp).

    Returns
    -------
    TangentVector. Daleckii-Krein formula of the module docstring; exact to ~1e-13 relative in
    the weights, O((m + n) k^2 + k^3) after the products Z [v, V_p], Z^T [u, U_p].
    """
    shape, depth = _geometry(manifold)
    pt = parse_point(point, shape)
    xi = check_tangent(direction, shape, "direction")
    sn, e = _normalized(pt.s, depth)
    W = divided_difference_weights(sn, depth)
    if isinstance(Z, TangentVector):
        out = _dB_tangent(pt, W, xi, check_tangent(Z, shape, "Z"))
    else:
        u, _, vt = pt
        Zv, ZVp, Ztu, ZtUp = _ambient_with_frames(shape, pt, Z, xi, "Z")
        Z11 = u.T @ Zv
        N1 = ZVp - u @ (u.T @ ZVp)
        N2 = ZtUp - vt.T @ (vt @ ZtUp)
        out = _dB_blocks(pt, W, xi, Z11, Zv - u @ Z11, Ztu - vt.T @ Z11.T, N1, N2)
    out = _times_pow2(out, e * (_alpha(depth) - 1.0))
    return _finite_result(out, "derivative_of_B", pt.s, depth)


@_quiet_overflow
def r_form(manifold, point: Any, a: Any, b: Any):
    r"""The tangent vector :math:`r(a, b)` with :math:`\langle r(a,b), w\rangle_F =
    \langle (D_w B) a, b\rangle_F` for every tangent w (a, b tangent). O((m + n) k^2 + k^3)."""
    shape, depth = _geometry(manifold)
    pt = parse_point(point, shape)
    sn, e = _normalized(pt.s, depth)
    W = divided_difference_weights(sn, depth)
    out = _r(W, check_tangent(a, shape, "a"), check_tangent(b, shape, "b"))
    out = _times_pow2(out, e * (_alpha(depth) - 1.0))
    return _finite_result(out, "r_form", pt.s, depth)


@_quiet_overflow
def christoffel(manifold, point: Any, X: Any, Y: Any):
    r"""The connection's correction :math:`\Gamma(X, Y) = \nabla_X Y - P_T(D_X Y)`:

    .. math::

        \Gamma(X, Y) = -\tfrac12 P_T[(D_X B)(B^+Y) + (D_Y B)(B^+X)] + \tfrac12 B\,r(B^+X, B^+Y).

    X and Y must be tangent at the point (Up orthogonal to u, Vp to v, to rounding: tolerance in
    :func:`linrank.fixedrank.check_tangent_at`); a non-tangent one is refused with a ValueError
    naming it. Symmetric in X, Y (torsion-free); a tangent vector. O((m + n) k^2 + k^3). Evaluated at the
    normalized singular values and scaled by 1/c (see ``_normalized``): finite whenever the
    result is representable; otherwise ValueError saying so.
    """
    shape, depth = _geometry(manifold)
    pt = parse_point(point, shape)
    sn, e = _normalized(pt.s, depth)
    W = divided_difference_weights(sn, depth)
    X = check_tangent_at(pt, X, shape, "X")
    Y = check_tangent_at(pt, Y, shape, "Y")
    aX, aY = _Ainv(W, X), _Ainv(W, Y)
    out = -0.5 * (_dB_tangent(pt, W, X, aY) + _dB_tangent(pt, W, Y, aX))
    out = out + 0.5 * _A(W, _r(W, aX, aY))
    return _finite_result(_times_pow2(out, -e), "christoffel", pt.s, depth)


def levi_civita(manifold, point: Any, X: Any, Y: Any, DXY: Any):
    r"""Levi-Civita covariant derivative :math:`\nabla_X Y` of the deep-linear metric g.

    Parameters
    ----------
    X, Y : tangent vectors at ``point`` (X the direction, Y the value of the field at the point);
        refused with a ValueError naming them if not tangent (see :func:`christoffel`).
    DXY : the ambient (Euclidean) derivative of the field Y along X, in any ambient form
        (dense, (U, S, V), LinearOperator) or as a TangentVector for its tangent part; only
        :math:`P_T(D_X Y)` is used.

    Returns
    -------
    :math:`P_T(D_X Y) + \Gamma(X, Y)` (:func:`christoffel`); agrees with the chart Christoffel
    symbols to the reference's accuracy (~1e-7, tests/test_connection.py).
    """
    shape, _ = _geometry(manifold)
    pt = parse_point(point, shape)
    if isinstance(DXY, TangentVector):
        base = to_tangent_space(pt, check_tangent(DXY, shape, "DXY"))
    else:
        base = projection(pt, DXY, shape[0], shape[1], "DXY")
    return base + christoffel(manifold, pt, X, Y)


def riemannian_hessian(
    manifold, point: Any, euclidean_gradient: Any, euclidean_hessian: Any, tangent_vector: Any
):
    r"""Riemannian Hessian of the Levi-Civita connection of g applied to :math:`\xi`.

    .. math::

        \operatorname{Hess} f[\xi] = B H + P_T[(D_\xi B) G] - \tfrac12 P_T[(D_\xi B) P_T G]
          - \tfrac12 P_T[(D_{\operatorname{grad} f} B)(B^+\xi)] + \tfrac12 B\, r(B^+\xi, P_T G)

    with :math:`\operatorname{grad} f = B G = \mathcal{A}_W(P_T G)` (eq. (31)).

    Parameters
    ----------
    manifold : DeepLinearFixedRank of depth N >= 1 (N = 1: the embedded metric, where this is
        :math:`P_T H` plus the Weingarten term).
    point : (u, s, vt), any positive singular values (equal ones are exact).
    euclidean_gradient : G, the Euclidean gradient at W: dense (m, n), factored (U, S, V) meaning
        U S V^T, scipy LinearOperator or sparse matrix. Its normal component matters (through
        :math:`G V_p` and :math:`G^T U_p`), so pymanopt's factor gradients (du, ds, dvt) are
        rejected with a TypeError: they carry only :math:`G v` and :math:`G^T u`.
    euclidean_hessian : H, the Euclidean Hessian at W applied to the ambient matrix of
        :math:`\xi`, in any of the same ambient forms (only H v and H^T u are used).
    tangent_vector : :math:`\xi = (U_p, M, V_p)`.

    Returns
    -------
    TangentVector. Cost O((m + n) k^2 + k^3) plus G times 2k vectors twice and H times k vectors
    twice. Accuracy: that of the products, the weights are exact to ~1e-13.
    """
    shape, depth = _geometry(manifold)
    pt = parse_point(point, shape)
    xi = parse_tangent(tangent_vector, shape)  # its finiteness: checked with the result
    if is_factor_gradient(euclidean_hessian):
        raise TypeError(
            "euclidean_hessian must be the Euclidean Hessian-vector product in W as an ambient "
            "m x n vector (dense, (U, S, V) or LinearOperator), not factor derivatives"
        )
    Gv, GVp, Gtu, GtUp = _ambient_with_frames(shape, pt, euclidean_gradient, xi)
    Hv, Htu = ambient_products(pt, euclidean_hessian, shape[0], shape[1], "euclidean_hessian")
    return _hessian(depth, pt, xi, Gv, GVp, Gtu, GtUp, Hv, Htu)


def hessian_from_products(
    manifold,
    point: Any,
    tangent_vector: Any,
    G_v_Vp: np.ndarray,
    Gt_u_Up: np.ndarray,
    H_v: np.ndarray,
    Ht_u: np.ndarray,
):
    r"""The Riemannian Hessian of :func:`riemannian_hessian` from the products it needs.

    For gradients given through data (e.g. :math:`G = (W - I)XX^T`) the products can be formed
    in fewer passes over the data than through two separate operators.

    Parameters
    ----------
    G_v_Vp : (m, 2k) array :math:`G\,[v, V_p]`.
    Gt_u_Up : (n, 2k) array :math:`G^T [u, U_p]`.
    H_v, Ht_u : (m, k) and (n, k) arrays :math:`H v`, :math:`H^T u` (H the Euclidean Hessian
        applied to the ambient matrix of :math:`\xi = (U_p, M, V_p)`).

    Returns
    -------
    TangentVector; O((m + n) k^2 + k^3).
    """
    shape, depth = _geometry(manifold)
    pt = parse_point(point, shape)
    xi = parse_tangent(tangent_vector, shape)  # its finiteness: checked with the result
    m, n, k = shape
    for name, arr, want in (
        ("G_v_Vp", G_v_Vp, (m, 2 * k)),
        ("Gt_u_Up", Gt_u_Up, (n, 2 * k)),
        ("H_v", H_v, (m, k)),
        ("Ht_u", Ht_u, (n, k)),
    ):
        arr = real_array(name, arr)
        if arr.shape != want:
            raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
        if not all_finite(arr):
            raise ValueError(f"{name} contains NaN or inf")
    return _hessian(
        depth, pt, xi, G_v_Vp[:, :k], G_v_Vp[:, k:], Gt_u_Up[:, :k], Gt_u_Up[:, k:], H_v, Ht_u
    )


@_quiet_overflow
def _hessian(depth, pt, xi, Gv, GVp, Gtu, GtUp, H_v, Ht_u) -> TangentVector:
    """The Hessian formula of :func:`riemannian_hessian` on checked inputs."""
    # evaluated at s / c and scaled: Hess = c^alpha B H + c^(alpha - 1) (the rest) (_normalized)
    sn, e = _normalized(pt.s, depth)
    alpha = _alpha(depth)
    W = divided_difference_weights(sn, depth)
    u, _, vt = pt
    v = vt.T
    gT = project_products(pt, Gv, Gtu)
    grad = _A(W, gT)
    # P_T[(D_xi B)(G - P_T G / 2)]: tangent blocks halved, normal part in full
    N1 = GVp - u @ (u.T @ GVp)
    N2 = GtUp - v @ (vt @ GtUp)
    rest = _dB_blocks(pt, W, xi, 0.5 * gT.M, 0.5 * gT.Up, 0.5 * gT.Vp, N1, N2)
    a = _Ainv(W, xi)  # B^+ xi
    rest = rest - 0.5 * _dB_tangent(pt, W, grad, a)
    rest = rest + 0.5 * _A(W, _r(W, a, gT))
    # B H
    BH = _A(W, project_products(pt, H_v, Ht_u))
    if e == 0.0:
        out = BH + rest
    else:
        out = _times_pow2(BH, e * alpha) + _times_pow2(rest, e * (alpha - 1.0))
    return _finite_result(out, "the Riemannian Hessian", pt.s, depth, tangent_vector=xi)
