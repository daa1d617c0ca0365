r"""The problems a user builds on :class:`~linrank.DeepLinearFixedRank`, one module each.

* :mod:`linrank.problems.least_squares`: :func:`least_squares_problem`, the paper's loss
  :math:`L^1(W) = \tfrac12\|Y - WX\|_F^2` with its exact gradient and Hessian.
* :mod:`linrank.problems.callbacks`: :func:`ambient_problem` (:class:`AmbientProblem`), a loss
  given as callbacks on the dense W (cost, Euclidean gradient, optional Hessian-vector product).
* :mod:`linrank.problems.autograd`: :func:`autograd_problem`, a loss written with
  ``autograd.numpy`` on the dense W.
* :mod:`linrank.problems.completion` and :mod:`linrank.problems.sensing`: matrix completion and
  matrix sensing, evaluated from the factors of the point (below), on the shared
  :class:`FactorizationProblem` of :mod:`linrank.problems.base`.

The flows take any of them through their adapter :class:`linrank.flows.problem_data.ProblemData`.

Matrix completion and matrix sensing on :class:`~linrank.DeepLinearFixedRank`, exactly.

Deep matrix factorization trains :math:`W = W_N \cdots W_1` on a loss of the product alone; from
balanced factors the product moves by the Riemannian gradient flow of that loss for the metric of
depth N (Corollary 8's chain-rule argument does not use the form of the loss). These problems give
pymanopt (all optimizers, TrustRegions included) and :func:`linrank.riemannian_flow` the exact
cost, Euclidean gradient and Euclidean Hessian-vector product of two such losses, evaluated from
the factors ``(u, s, vt)`` of the point:

* :func:`matrix_completion_problem`: :math:`f(W) = \tfrac{c}{2} \sum_{(i,j)\in\Omega} (W_{ij} - A_{ij})^2`.
  W is evaluated on :math:`\Omega` only, as :math:`W_{ij} = \sum_l u_{il} s_l v_{jl}`; the
  gradient is the sparse matrix of residuals on :math:`\Omega`; nothing of size m x n is formed
  (:mod:`linrank.problems.completion`).
* :func:`matrix_sensing_problem`: :math:`f(W) = \tfrac{c}{2} \|\mathcal{A}(W) - y\|^2` for a linear
  measurement operator :math:`\mathcal{A}: \mathbb{R}^{m\times n} \to \mathbb{R}^p`
  (:mod:`linrank.problems.sensing`).

c = 1 (``reduction="sum"``, the default) or 1 / (number of terms) (``reduction="mean"``). Both
return a :class:`FactorizationProblem` (:mod:`linrank.problems.base`), a
:class:`pymanopt.Problem` whose Riemannian gradient is :math:`\mathcal{A}_W(P_T \nabla f)`
(eq. (31)) and whose Riemannian Hessian is the Levi-Civita one of
:func:`linrank.connection.riemannian_hessian`. This package gathers the public names of its modules.
"""

from __future__ import annotations

from .autograd import autograd_problem
from .base import REDUCTIONS, FactorizationProblem
from .callbacks import AmbientProblem, ambient_problem
from .completion import (
    MatrixCompletionProblem,
    matrix_completion_problem,
    observed_entries,
)
from .least_squares import least_squares_problem
from .sensing import MatrixSensingProblem, matrix_sensing_problem

__all__ = [
    "AmbientProblem",
    "ambient_problem",
    "autograd_problem",
    "least_squares_problem",
    "REDUCTIONS",
    "FactorizationProblem",
    "MatrixCompletionProblem",
    "MatrixSensingProblem",
    "matrix_completion_problem",
    "matrix_sensing_problem",
    "observed_entries",
]
