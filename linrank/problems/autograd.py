"""A pymanopt problem on :class:`~linrank.DeepLinearFixedRank` from a cost written with
``autograd.numpy`` on the dense W: autograd supplies the Euclidean gradient and Hessian-vector
product, :class:`~linrank.problems.callbacks.AmbientProblem` routes them through the manifold."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import autograd
import autograd.numpy as anp
import numpy as np
import pymanopt

from ..manifold import DeepLinearFixedRank
from .callbacks import AmbientProblem, real_cost

__all__ = ["autograd_problem"]


def autograd_problem(
    manifold: DeepLinearFixedRank,
    cost: Callable[[np.ndarray], float],
    preconditioner: Callable[[Any, Any], Any] | None = None,
) -> pymanopt.Problem:
    """A pymanopt Problem from a cost written with ``autograd.numpy`` on the dense matrix W.

    The Euclidean gradient is ``autograd.grad(cost)`` and the Hessian-vector product is the
    derivative of ``<grad cost(W), Z>`` in W (forward-over-reverse is not needed: reverse over
    reverse with a fixed Z). ``preconditioner`` as in :func:`~linrank.ambient_problem`.
    """
    if not callable(cost):
        raise TypeError("cost must be callable taking the dense m x n matrix W")
    raw_grad = autograd.grad(cost)

    def grad(W):
        try:
            return raw_grad(W)
        except TypeError as exc:
            if "real scalar-output" not in str(exc):
                raise
            # autograd differentiates only real scalars: name the callback and what it returned
            real_cost(cost(np.asarray(W, dtype=float)))
            raise  # pragma: no cover - a real scalar value does not reach here

    def hvp(W, Z):
        return autograd.grad(lambda X: anp.sum(grad(X) * Z))(W)

    return AmbientProblem(
        manifold, cost, lambda W: grad(np.asarray(W, dtype=float)), hvp, preconditioner
    )
