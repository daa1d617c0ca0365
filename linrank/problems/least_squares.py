r"""The loss :math:`L^1(W) = \tfrac12\|Y - WX\|_F^2` of the paper as a pymanopt problem on
:class:`~linrank.DeepLinearFixedRank`, with its exact gradient and Hessian-vector product."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pymanopt

from ..data import finite_real_matrix
from ..manifold import DeepLinearFixedRank
from .callbacks import ambient_problem

__all__ = ["least_squares_problem"]


def least_squares_problem(
    manifold: DeepLinearFixedRank,
    X: np.ndarray,
    Y: np.ndarray | None = None,
    preconditioner: Callable[[Any, Any], Any] | None = None,
) -> pymanopt.Problem:
    r"""The loss :math:`L^1(W) = \tfrac12\|Y - WX\|_F^2` of the paper on ``manifold``, exactly.

    Gradient :math:`(WX - Y)X^T` and Hessian-vector product :math:`Z XX^T` (dense callbacks of
    :func:`~linrank.ambient_problem`); ``Y=None`` is the autoencoder Y = X. X is d_x x n, Y is
    d_y x n with (d_y, d_x) = (manifold.m, manifold.n). Its global minimizer and minimum are given in closed
    form by :func:`linrank.data.rank_constrained_minimizer`.
    """
    if not isinstance(manifold, DeepLinearFixedRank):
        raise TypeError(
            f"manifold must be a linrank.DeepLinearFixedRank, got {type(manifold).__name__}"
        )
    X = finite_real_matrix("X", X)
    Y = X if Y is None else finite_real_matrix("Y", Y)
    if X.shape[1] != Y.shape[1]:
        raise ValueError(
            f"X (d_x x n) and Y (d_y x n) must have equal sample counts, got {X.shape}, {Y.shape}"
        )
    if (Y.shape[0], X.shape[0]) != (manifold.m, manifold.n):
        raise ValueError(
            f"W = manifold point is {manifold.m} x {manifold.n}, data give {Y.shape[0]} x {X.shape[0]}"
        )
    C = X @ X.T
    B = Y @ X.T
    problem = ambient_problem(
        manifold,
        lambda W: 0.5 * float(np.sum((Y - W @ X) ** 2)),
        lambda W: W @ C - B,
        lambda W, Z: Z @ C,
        preconditioner,
    )
    # the data define the loss: what the flows' checkpoint fingerprints cover
    problem.fingerprint_arrays = lambda: [X, Y]
    return problem
