r"""A pymanopt problem on :class:`~linrank.DeepLinearFixedRank` as the "data" of the gradient flows.

The flows need two things of a loss f of the end-to-end matrix W:

* on :math:`\mathcal{M}_k` (:func:`linrank.riemannian_flow`): at a point :math:`W = u\,\mathrm{diag}(s)\,v^T`
  the products :math:`(G v,\ G^T u)` with the Euclidean gradient :math:`G = \nabla f(W)` and the
  loss, :meth:`ProblemData.point_products`; only their tangent parts matter, since
  :math:`\dot W = -\mathcal{A}_W(P_T G)` (eq. (31), with f in place of :math:`L^1`);
* on the layers (:func:`linrank.factor_flow` with a problem): f and the whole G at the dense
  product :math:`W = W_N \cdots W_1` of any rank, :meth:`ProblemData.loss_and_gradient`, since
  :math:`\nabla_{W_i} f(W_N\cdots W_1) = W_{i+1}^T\cdots W_N^T\,G\,W_1^T\cdots W_{i-1}^T`.

Where a problem offers them (the problems of :mod:`linrank.problems` and
:mod:`linrank.problems_factorization`: ``gradient_products(point)`` and
``dense_loss_and_gradient(W)``) they are used directly. Any other :class:`pymanopt.Problem` on
the manifold (for example a cost of ``(u, s, vt)`` with pymanopt's autodiff) works on
:math:`\mathcal{M}_k` through its Riemannian gradient: :math:`P_T G = \mathcal{A}_W^{-1}(\operatorname{grad} f)`
(exact to rounding, the weights are positive), but not on the layers, whose gradient needs the
normal part of G too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pymanopt
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from ..manifold import DeepLinearFixedRank, FixedRankPoint

__all__ = ["ProblemData"]


class ProblemData:
    """The loss of a :class:`pymanopt.Problem` on DeepLinearFixedRank, with the interface of
    :class:`linrank.network.LinearData` that the flows use (``d_y``, ``d_x``, ``yy``,
    ``point_products``, ``loss_and_gradient``, ``fingerprint_arrays``).

    Raises
    ------
    TypeError
        ``problem`` is not a pymanopt Problem, or its manifold is not a DeepLinearFixedRank.
    """

    form = "problem"
    yy = None
    autoencoder = False

    def __init__(self, problem: Any):
        if not isinstance(problem, pymanopt.Problem):
            raise TypeError(f"problem must be a pymanopt.Problem, got {type(problem).__name__}")
        man = problem.manifold
        if not isinstance(man, DeepLinearFixedRank):
            raise TypeError(
                "the problem must be defined on a linrank.DeepLinearFixedRank (its depth and rank "
                f"define the flow), got a problem on {type(man).__name__}"
            )
        self.problem = problem
        self.manifold = man
        self.d_y, self.d_x = man.m, man.n
        self._products = getattr(problem, "gradient_products", None)
        self._dense = getattr(problem, "dense_loss_and_gradient", None)
        #: the start of the flow (a point or a dense W), for :meth:`fingerprint_arrays`
        self.start: Any = None

    @property
    def has_dense_gradient(self) -> bool:
        """Whether the problem gives f and G at a dense W of any rank (needed by the layer flow)."""
        return self._dense is not None

    def point_products(
        self, u: np.ndarray, s: np.ndarray, vt: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, float]:
        r"""(G v, G^T u, f(W)) at :math:`W = u\,\mathrm{diag}(s)\,v^T` (tangent parts exact)."""
        point = FixedRankPoint(u, s, vt)
        if self._products is not None:
            Gv, Gtu, loss = self._products(point)
            return np.asarray(Gv), np.asarray(Gtu), float(loss)
        man = self.manifold
        t = man.apply_A_inverse(point, self.problem.riemannian_gradient(point))
        return t.Up + u @ t.M, t.Vp + vt.T @ t.M.T, float(self.problem.cost(point))

    def require_dense_gradient(self) -> None:
        """Raise the TypeError of the layer-wise flow if the problem has no dense gradient."""
        if self._dense is None:
            raise TypeError(
                "the layer-wise flow needs the loss and its Euclidean gradient at the dense product "
                "W of any rank: build the problem with ambient_problem, autograd_problem, "
                "least_squares_problem, matrix_completion_problem or matrix_sensing_problem (a "
                "cost of the factors (u, s, vt) gives only the tangent part of the gradient)"
            )

    def loss_and_gradient(self, W: np.ndarray) -> tuple[float, np.ndarray]:
        """(f(W), G) at a dense m x n W, G as a dense array (the layer flow multiplies it by the
        layers on both sides)."""
        self.require_dense_gradient()
        loss, G = self._dense(W)
        return float(loss), _dense(G, W.shape)

    def fingerprint_arrays(self, start: Any = None) -> list[np.ndarray]:
        """Arrays identifying the loss, for the checkpoints of the flows. The rule:

        1. a problem that declares what defines it is trusted: ``problem.fingerprint()`` (an
           optional hook; arrays, a string or bytes) and/or ``problem.fingerprint_arrays()``
           (linrank's own problems: the observations, measurements or data);
        2. any other problem (a cost given by callables) is identified by its values: the loss
           and the gradient products at the start (``start``, default :attr:`start`) and at
           two fixed probe points of the manifold (seeded; random orthonormal factors, singular
           values of the start's scale). A changed problem whose loss and gradient agree with the
           old one at the start and at both probes (bit for bit) is not detected: declare its
           parameters with ``fingerprint`` to be safe. An exception at a probe is hashed as
           its type and message.

        The manifold's shape, rank and depth are always included.
        """
        out = [np.array([self.d_y, self.d_x, self.manifold.k, self.manifold.depth], dtype=float)]
        problem = self.problem
        declared = False
        hook = getattr(problem, "fingerprint", None)
        if callable(hook):
            out += _as_arrays(hook())
            declared = True
        fa = getattr(problem, "fingerprint_arrays", None)
        if callable(fa):
            out += [np.asarray(a, dtype=float) for a in fa()]
            declared = True
        if declared:
            return out
        start = self.start if start is None else start
        if start is None:
            raise ValueError("no start given to fingerprint a problem without data arrays")
        dense = isinstance(start, np.ndarray)
        if dense:
            scale = float(np.linalg.norm(start, 2)) or 1.0
        else:
            scale = float(np.max(start[1]))
        points = [start] + [self._probe(seed, scale, dense) for seed in (20190103, 20190104)]
        for point in points:
            try:
                if dense:
                    loss, G = self.loss_and_gradient(point)
                    out += [np.array([loss]), G]
                else:
                    Gv, Gtu, loss = self.point_products(*point)
                    out += [np.array([loss]), Gv, Gtu]
            except Exception as exc:  # the failure itself identifies the problem there
                out += _as_arrays(f"{type(exc).__name__}: {exc}")
        return out

    def _probe(self, seed: int, scale: float, dense: bool) -> Any:
        """A fixed point of the manifold (seeded) with singular values of the given scale."""
        rng = np.random.default_rng(seed)
        k = self.manifold.k
        u = np.linalg.qr(rng.standard_normal((self.d_y, k)))[0]
        v = np.linalg.qr(rng.standard_normal((self.d_x, k)))[0]
        s = scale * np.sort(rng.uniform(0.5, 1.5, k))[::-1]
        if dense:
            return (u * s) @ v.T
        return FixedRankPoint(u, s, v.T.copy())


def _as_arrays(value: Any) -> list[np.ndarray]:
    """A fingerprint value (arrays, numbers, a string or bytes) as float arrays."""
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return [np.frombuffer(value, dtype=np.uint8).astype(float)]
    if isinstance(value, (list, tuple)):
        return [a for v in value for a in _as_arrays(v)]
    return [np.asarray(value, dtype=float).ravel()]


def _dense(G: Any, shape: tuple[int, int]) -> np.ndarray:
    """An ambient gradient in any accepted form as a dense array of ``shape``."""
    if sp.issparse(G):
        out = G.toarray()
    elif isinstance(G, LinearOperator):
        out = G.matmat(np.eye(shape[1]))
    elif isinstance(G, (tuple, list)) and len(G) == 3 and np.ndim(G[1]) == 2:
        U, S, V = (np.asarray(x, dtype=float) for x in G)
        out = (U @ S) @ V.T
    else:
        out = np.asarray(G, dtype=float)
    if out.shape != shape:
        raise ValueError(f"the Euclidean gradient must have shape {shape}, got {out.shape}")
    return np.asarray(out, dtype=float)
