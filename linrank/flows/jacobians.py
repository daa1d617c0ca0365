r"""Jacobian-vector products of the flows' right-hand sides, for the stiff stepper
(:mod:`linrank.flows.stiff`).

* :func:`loss_hessian_vector`: the Euclidean Hessian-vector product :math:`\nabla^2 f(W)[Z]` of
  the loss of the product at a dense W: exact for :math:`L^1` (:math:`Z XX^T`), matrix completion
  (:math:`P_\Omega Z`), matrix sensing (:math:`\mathcal{A}^*\mathcal{A} Z`) and the problems of
  :func:`linrank.ambient_problem` / :func:`linrank.autograd_problem` built with a Hessian; for any
  other loss a central difference of the gradient (exact for quadratic losses up to rounding,
  O(eps^(2/3)) relative otherwise).
* :func:`layer_jvp`: the derivative of the layer-wise flow (5) by forward-mode differentiation of
  its right-hand side, by hand. With prefixes :math:`P_i = W_{i-1}\cdots W_1`, the back-propagated
  :math:`T_i = (W_N\cdots W_{i+1})^T G` and a direction :math:`Z = (Z_1, \dots, Z_N)`:
  :math:`\dot P_{i+1} = Z_i P_i + W_i \dot P_i`, :math:`\dot W = \dot P_{N+1}`,
  :math:`\dot G = \nabla^2 f(W)[\dot W]`, :math:`\dot T_N = \dot G`,
  :math:`\dot T_{i-1} = Z_i^T T_i + W_i^T \dot T_i`, and the derivative of
  :math:`F_i = -T_i P_i^T` is :math:`-(\dot T_i P_i^T + T_i \dot P_i^T)`. Cost about three
  right-hand sides; checked against central differences in tests/test_stiff.py.
* :func:`difference_jvp`: a one-sided difference :math:`(F(y + \epsilon z) - F(y))/\epsilon` of
  any flat-vector system (the manifold flow's factored engine), step
  :math:`\epsilon = \sqrt{\mathrm{eps}}\,(1 + \|y\|)/\|z\|`: relative error ~1e-8, which the
  W-method of :mod:`linrank.flows.stiff` tolerates (its order does not depend on the Jacobian).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..data import LinearData

__all__ = ["difference_jvp", "layer_jvp", "loss_hessian_vector"]


def loss_hessian_vector(data: Any) -> tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], bool]:
    """``(hvp, exact)``: ``hvp(W, Z)`` is the Euclidean Hessian of the flow's loss at the dense W
    applied to the dense Z; ``exact`` says whether it is exact (else a central difference of the
    gradient)."""
    if isinstance(data, LinearData):
        if data.form == "samples":
            X = data.X
            return (lambda W, Z: (Z @ X) @ X.T), True
        C = data.Cxx
        return (lambda W, Z: Z @ C), True
    problem = getattr(data, "problem", None)
    rows, cols = getattr(problem, "rows", None), getattr(problem, "cols", None)
    if rows is not None and cols is not None and hasattr(problem, "n_observed"):
        def completion(W: np.ndarray, Z: np.ndarray) -> np.ndarray:
            out = np.zeros_like(Z)
            out[rows, cols] = Z[rows, cols]
            return out

        return completion, True
    if hasattr(problem, "forward") and hasattr(problem, "adjoint"):
        return (lambda W, Z: problem.adjoint(problem.forward(Z))), True
    dense_h = getattr(problem, "_dense_hessian", None)
    if dense_h is not None:
        return (lambda W, Z: np.asarray(dense_h(W, Z), dtype=float)), True

    def central(W: np.ndarray, Z: np.ndarray) -> np.ndarray:
        nz = float(np.linalg.norm(Z))
        if nz == 0.0:
            return np.zeros_like(Z)
        eps = np.finfo(float).eps ** (1 / 3) * (1.0 + float(np.linalg.norm(W))) / nz
        _, Gp = data.loss_and_gradient(W + eps * Z)
        _, Gm = data.loss_and_gradient(W - eps * Z)
        return (Gp - Gm) / (2.0 * eps)

    return central, False


def layer_jvp(Ws: list[np.ndarray], Zs: list[np.ndarray], G: np.ndarray,
              hvp: Callable[[np.ndarray, np.ndarray], np.ndarray],
              prefix: list[np.ndarray] | None = None) -> list[np.ndarray]:
    r"""The derivative of the right-hand side of flow (5) at the factors ``Ws`` along ``Zs``
    (module docstring), given the loss gradient ``G`` at the product and the loss Hessian
    ``hvp``. ``prefix[j] = W_{j+1} ... W_1`` may be passed to save N - 1 products."""
    N = len(Ws)
    if prefix is None:
        prefix = [Ws[0]]
        for j in range(1, N):
            prefix.append(Ws[j] @ prefix[-1])
    dprefix = [Zs[0]]  # dprefix[j] = d(W_{j+1} ... W_1)
    for j in range(1, N):
        dprefix.append(Zs[j] @ prefix[j - 1] + Ws[j] @ dprefix[-1])
    dG = hvp(prefix[-1], dprefix[-1])
    out: list[Any] = [None] * N
    T, dT = G, dG
    for i in range(N - 1, -1, -1):
        if i > 0:
            out[i] = -(dT @ prefix[i - 1].T + T @ dprefix[i - 1].T)
            T, dT = Ws[i].T @ T, Zs[i].T @ T + Ws[i].T @ dT
        else:
            out[i] = -dT
    return out


def difference_jvp(rhs: Callable[[np.ndarray], np.ndarray], y: np.ndarray, K0: np.ndarray,
                   z: np.ndarray) -> np.ndarray:
    """``(F(y + e z) - F(y)) / e`` with ``F(y) = K0`` given and e as in the module docstring."""
    nz = float(np.linalg.norm(z))
    if nz == 0.0:
        return np.zeros_like(z)
    eps = np.sqrt(np.finfo(float).eps) * (1.0 + float(np.linalg.norm(y))) / nz
    return (rhs(y + eps * z) - K0) / eps
