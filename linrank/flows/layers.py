r"""The layer-wise gradient flow (5) of :math:`L^N(W_1, \dots, W_N) = L^1(W_N \cdots W_1)`:
the system (:class:`LayerSystem`) and its public entry point :func:`factor_flow`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pymanopt

from ..data import LinearData, as_data
from ..network import check_factors, conserved_quantities, product
from .integrator import integrate
from .jacobians import layer_jvp, loss_hessian_vector
from .options import check_option_names, check_t_end, parse_options
from .problem_data import ProblemData
from .result import FlowResult
from .system import Evaluation, StepFailure, VectorSystem, fixed_step_hint, safe_norm
from .targets import parse_target

__all__ = ["LayerSystem", "factor_flow", "product_singular_values"]

#: factor_flow's own keywords (for the "did you mean" of a misspelt one)
OWN = ("conserved", "target", "covariance", "yy", "form", "singular_values")


def product_singular_values(Ws: Sequence[np.ndarray]) -> np.ndarray:
    r"""The singular values of :math:`W = W_N \cdots W_1` from the factors, without W.

    A chain of QR factorizations: with :math:`L_0 = I` and the thin QR
    :math:`(W_j L_{j-1})^T = Q_j R_j`, :math:`L_j = R_j^T` (d_j x m_j, m_j = min(d_0..d_j)); since
    the :math:`Q_j^T` have orthonormal rows, W = L_N Q_N^T ... Q_1^T has the singular values of
    the d_y x m_N matrix L_N. Returns the m_N = min(d_0, ..., d_N) values that can be nonzero,
    descending. Cost :math:`\sum_j O(d_j m_{j-1} m_j) + O(d_N m_N^2)` instead of
    :math:`O(\sum_j d_j d_{j-1} d_0 + d_N d_0 \min(d_N, d_0))` for the dense product and its
    SVD: the same order at full width, less with a narrow layer. Backward stable: absolute
    error ~ N eps prod_j ||W_j||, as for the SVD of the product formed in floating point.
    """
    L = np.linalg.qr(np.asarray(Ws[0], dtype=float).T, mode="r").T
    for W in Ws[1:]:
        L = np.linalg.qr((W @ L).T, mode="r").T
    return np.linalg.svd(L, compute_uv=False)


def _backprop(Ws: list[np.ndarray], prefix: list[np.ndarray], G: np.ndarray) -> np.ndarray:
    r"""The flat concatenation of :math:`W_{i+1}^T \cdots W_N^T\, G\, W_1^T \cdots W_{i-1}^T`,
    i = 1..N (the adjoint of the product's derivative applied to G; ``prefix[j] = W_{j+1} ...
    W_1``)."""
    N = len(Ws)
    grads: list = [None] * N
    T = G  # T = (W_N ... W_{i+1})^T G
    for i in range(N - 1, -1, -1):
        grads[i] = T @ prefix[i - 1].T if i > 0 else T
        if i > 0:
            T = Ws[i].T @ T
    return np.concatenate([g.ravel() for g in grads])


def _rayleigh(data: object, m: int, n: int) -> float:
    """<Z, H Z> / <Z, Z> of the loss Hessian H at W = 0 for a fixed random Z (seed 0): the
    mean curvature of the loss (the observed fraction for matrix completion)."""
    hvp = loss_hessian_vector(data)[0]
    Z = np.random.default_rng(0).standard_normal((m, n))
    return max(float(np.vdot(Z, hvp(np.zeros((m, n)), Z))) / float(np.vdot(Z, Z)), 0.0)


def _prefixes(Ws: list[np.ndarray]) -> list[np.ndarray]:
    """``prefix[j] = W_{j+1} ... W_1``."""
    prefix = [Ws[0]]
    for j in range(1, len(Ws)):
        prefix.append(Ws[j] @ prefix[-1])
    return prefix


class LayerSystem(VectorSystem):
    r"""Flow (5) on the factors; the state is the concatenation of the raveled factors.

    .. math:: \dot W_i = -W_{i+1}^T \cdots W_N^T\, \nabla L^1(W)\, W_1^T \cdots W_{i-1}^T .

    ``loss`` is any object with ``loss_and_gradient(W) -> (L(W), grad L(W))`` for the product
    W = W_N ... W_1 (a :class:`linrank.network.LinearData` gives the paper's L^1), ``shapes``
    the factor shapes, ``target`` None or a dense matrix whose distance to W is recorded,
    ``D0`` the conserved quantities at the start when their drift is to be recorded.
    """

    name = "factor"
    has_jacobian = True

    def __init__(self, loss: LinearData, shapes: list[tuple[int, int]], target: Any,
                 conserved: bool, D0: list[np.ndarray] | None, singular_values: bool = False):
        self.data = loss
        self.shapes = [tuple(s) for s in shapes]
        self.sizes = [a * b for a, b in self.shapes]
        self.offsets = np.cumsum([0] + self.sizes)
        self.target = target
        self.conserved = conserved
        self.D0 = D0
        self.record_sv = bool(singular_values)
        self.depth = len(shapes)
        self._hvp = None
        self._kappa: float | None = None
        yy = getattr(loss, "yy", None)
        self.loss_scale = 0.0 if yy is None else 0.5 * yy

    def initial_state(self, factors: Sequence[np.ndarray]) -> np.ndarray:
        return np.concatenate([np.asarray(W, dtype=float).ravel() for W in factors])

    def split(self, y: np.ndarray) -> list[np.ndarray]:
        """The factors W_1, ..., W_N as views into the flat state."""
        return [y[self.offsets[j]: self.offsets[j + 1]].reshape(self.shapes[j])
                for j in range(len(self.shapes))]

    def rhs(self, y: np.ndarray) -> Evaluation:
        Ws = self.split(y)
        N = len(Ws)
        prefix = [Ws[0]]  # prefix[j] = W_{j+1} ... W_1
        for j in range(1, N):
            prefix.append(Ws[j] @ prefix[-1])
        loss, G = self.data.loss_and_gradient(prefix[-1])
        K = -_backprop(Ws, prefix, G)
        if not np.all(np.isfinite(K)):
            raise StepFailure("the right-hand side is not finite: the solution diverged"
                              + self.nonfinite_hint())
        return Evaluation(K, loss, safe_norm(float(np.linalg.norm(K)), lambda: (K,)))

    def jacobian(self, y: np.ndarray):
        """The Jacobian of :meth:`rhs` at y as a function z -> J z (exact forward mode,
        :func:`linrank.flows.jacobians.layer_jvp`; the loss Hessian as stated there)."""
        if self._hvp is None:
            self._hvp = loss_hessian_vector(self.data)[0]
        Ws = self.split(y)
        prefix = _prefixes(Ws)
        _, G = self.data.loss_and_gradient(prefix[-1])
        hvp = self._hvp

        def jvp(z: np.ndarray) -> np.ndarray:
            out = layer_jvp(Ws, self.split(z), G, hvp, prefix)
            return np.concatenate([g.ravel() for g in out])

        return jvp

    def stiff_preconditioner(self, y: np.ndarray, g: float):
        r"""An approximate inverse of :math:`I - gJ` at y: the Gauss-Newton part of the layer
        Hessian with the loss Hessian replaced by :math:`\kappa I` (:math:`\kappa` its
        Rayleigh quotient at a fixed random direction), :math:`J \approx -\kappa D^T D` with D
        the derivative of the product, inverted by Woodbury,
        :math:`(I + g\kappa D^TD)^{-1} = I - D^T (g\kappa)(I + g\kappa DD^T)^{-1} D`, where for
        balanced factors :math:`DD^T = \mathcal{A}_W` (Definition 4), diagonal in the full SVD
        of W with weights :math:`\sum_j s_i^{2(N-j)/N} s_k^{2(j-1)/N}`. Exact for balanced
        factors, a loss Hessian :math:`\kappa I` and G = 0; otherwise only a preconditioner.
        Cost per application about one right-hand side; one SVD of W per step."""
        if self._kappa is None:
            self._kappa = _rayleigh(self.data, self.shapes[-1][0], self.shapes[0][1])
        c = g * self._kappa
        if not c > 0.0:
            return None
        Ws = self.split(y)
        prefix = _prefixes(Ws)
        W = prefix[-1]
        U, s, Vt = np.linalg.svd(W)
        m, n = W.shape
        N = len(Ws)
        a = np.zeros(m)
        b = np.zeros(n)
        a[: s.size] = s ** (2.0 / N)
        b[: s.size] = s ** (2.0 / N)
        A, B = np.meshgrid(a, b, indexing="ij")
        hi = np.maximum(A, B)
        diff = A - B
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.where(np.abs(diff) > 1e-6 * hi, (A ** N - B ** N) / diff, N * hi ** (N - 1))
        D = c / (1.0 + c * w)

        def apply(z: np.ndarray) -> np.ndarray:
            Zs = self.split(z)
            dP = Zs[0]
            for j in range(1, N):
                dP = Zs[j] @ prefix[j - 1] + Ws[j] @ dP
            E = U @ (((U.T @ dP) @ Vt.T) * D) @ Vt
            return z - _backprop(Ws, prefix, E)

        return apply

    def diagnostics(self, y: np.ndarray) -> dict:
        out: dict = {}
        Ws = self.split(y)
        if self.conserved:
            D = conserved_quantities(Ws)
            out["conserved_drift"] = max(
                (float(np.linalg.norm(a - b)) for a, b in zip(D, self.D0)), default=0.0)
        if self.target is not None:
            out["distance"] = float(np.linalg.norm(product(Ws) - self.target))
        if self.record_sv:
            out["singular_values"] = product_singular_values(Ws)
        return out

    def callback_name(self) -> str:
        problem = getattr(self.data, "problem", None)
        if problem is None:
            return "the data's loss_and_gradient"
        return f"the problem's dense_loss_and_gradient ({type(problem).__name__})"

    def nonfinite_hint(self) -> str:
        problem = getattr(self.data, "problem", None)
        return "" if problem is None else f" (values from {self.callback_name()})"

    def final(self, y: np.ndarray) -> dict:
        return {"factors": [W.copy() for W in self.split(y)]}

    def trajectory_item(self, a: np.ndarray) -> list[np.ndarray]:
        return [W.copy() for W in self.split(a)]

    def identity(self) -> tuple[list[np.ndarray], tuple]:
        """The data, the target, the factor shapes (the flat start alone does not fix them) and
        whether the drift is recorded."""
        arrays = self.data.fingerprint_arrays()
        return (arrays + ([self.target] if self.target is not None else []),
                (type(self.data).__name__, getattr(self.data, "form", None), tuple(self.shapes),
                 self.conserved, self.record_sv))

    def stiffness_hint(self) -> str:
        return (". The layer-wise flow (5) is stiff on this time scale (large data, factors or "
                "depth); data scaled by c speed it up by c^2 (the flow of c X at time t is the "
                "flow of X at time c^2 t)")

    def divergence_hint(self, method: str) -> str:
        return fixed_step_hint(method)


def factor_flow(
    X: object, Y: object, factors: Sequence[np.ndarray], t_end: float, *,
    conserved: bool = False, target: object = None, covariance: bool = False,
    yy: float | None = None, form: str = "auto", singular_values: bool = False, **options: Any,
) -> FlowResult:
    r"""Integrate the layer-wise gradient flow (5) of :math:`L^N` from ``factors`` up to ``t_end``.

    .. math::

        \dot W_i = -\nabla_{W_i} L^N = -W_{i+1}^T \cdots W_N^T\,(W X - Y) X^T\,
        W_1^T \cdots W_{i-1}^T,\qquad W = W_N \cdots W_1 .

    Parameters
    ----------
    X, Y : data (d_x x n, d_y x n; Y None for Y = X) or covariances with ``covariance=True``
        (see the package docstring), or a LinearData as X; or, for any other loss f of the
        product, a pymanopt Problem as X (Y None) that gives f and its Euclidean gradient at a
        dense W of any rank: :func:`linrank.ambient_problem`, :func:`linrank.autograd_problem`,
        :func:`linrank.least_squares_problem`, :func:`linrank.matrix_completion_problem`,
        :func:`linrank.matrix_sensing_problem` (only the loss is used, not the manifold's rank or
        depth). The flow is then :math:`\dot W_i = -W_{i+1}^T\cdots W_N^T \nabla f(W)\,
        W_1^T\cdots W_{i-1}^T`; ``method="Euler", step=h`` is plain gradient descent on the
        layers with step h (the paper's method).
    factors : W_1, ..., W_N with W_j of shape (d_j, d_{j-1}), d_0 = d_x, d_N = d_y; N >= 1.
    t_end : final time >= 0.
    conserved : record the drift max_j ||D_j(t) - D_j(0)||_F of the conserved quantities
        D_j = W_{j+1}^T W_{j+1} - W_j W_j^T (Lemma 2(3)) at the recorded times.
    target : a d_y x d_x matrix (or point (u, s, vt)); its distance ||W(t) - target||_F is recorded.
    singular_values : record the singular values of the product W(t) at the recorded times
        (``FlowResult.singular_values``, shape (len(t), min(d_0, ..., d_N))), from the factors by
        a chain of QR factorizations (:func:`product_singular_values`: no m x n product, cost
        sum_j O(d_j m_{j-1} m_j) per record, m_j = min(d_0..d_j)).
    **options : method, rtol, atol, step, first_step, max_step, max_steps, t_eval, trajectory,
        gtol, ftol, rdtol, rdwindow, events, record, checkpoint, checkpoint_every,
        checkpoint_steps, resume, progress (package docstring). A misspelt keyword is a
        TypeError naming factor_flow and the nearest valid keyword.

    Returns
    -------
    FlowResult with ``factors`` (final) and ``W`` (their product).

    Accuracy: RK45 keeps each step's error in the factor entries below ``atol + rtol |W_j|``
    (scipy's RMS norm); the global error is of that order times the flow's growth rate. Near an
    attracting equilibrium each step may still move the state by ~ the tolerance, so gradient
    norms level off there at about rtol times the gradient's scale.

    Note: with hidden widths above rank(W(0)) the rank is invariant only in exact arithmetic.
    A rank-k critical point such as U_k U_k^T of the autoencoder is a saddle among products of
    higher rank, and rounding errors (for N = 2 growing at a rate ~ lambda_{k+1}) let the flow
    escape from it towards U_{k'} U_{k'}^T, k' = min hidden width, as in Remark 33; the manifold
    flow stays on M_k.
    Cost per right-hand side: O(sum_j d_j d_{j-1} d_x + d_y d_x min(d_x, n)).

    Raises
    ------
    TypeError, ValueError
        Non-finite data or factors, sample counts that differ, factors that do not chain or do
        not match the data, a problem whose manifold has another depth than the number of
        factors, a negative t_end, bad options.
    """
    t_end = check_t_end(t_end)
    opts = parse_options(t_end, **check_option_names("factor_flow", options, OWN))
    if isinstance(X, pymanopt.Problem):
        if Y is not None or covariance or yy is not None:
            raise ValueError("with a problem as the loss, leave Y, covariance and yy out")
        data = ProblemData(X)
        data.require_dense_gradient()
        Ws = check_factors(factors, d_x=data.d_x, d_y=data.d_y)
        if data.manifold.depth != len(Ws):
            raise ValueError(
                f"the problem's manifold has depth N = {data.manifold.depth} but {len(Ws)} "
                "factors were given: factor_flow integrates the layer-wise flow of f(W_N ... W_1)"
                " with one layer per factor, while the problem's depth defines its Riemannian "
                "metric (riemannian_flow, pymanopt); build the problem on a DeepLinearFixedRank "
                f"of depth {len(Ws)} so that both describe the same network")
        data.start = product(Ws)
    else:
        data = as_data(X, Y, covariance=covariance, form=form, yy=yy)
        Ws = check_factors(factors, d_x=data.d_x, d_y=data.d_y)
    tgt = parse_target(target, data.d_y, data.d_x, as_point=False)
    D0 = conserved_quantities(Ws) if conserved else None
    system = LayerSystem(data, [W.shape for W in Ws], tgt, bool(conserved), D0,
                         bool(singular_values))
    return integrate(system, system.initial_state(Ws), t_end, opts)
