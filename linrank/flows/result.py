"""The result type of every flow (:func:`linrank.flows.factor_flow`, :func:`linrank.flows.manifold_flow`
and any system run by :mod:`linrank.flows.integrator`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..manifold import DeepLinearFixedRank, FixedRankPoint
from ..network import product

__all__ = ["FlowResult"]


@dataclass
class FlowResult:
    """Result of a flow.

    Attributes
    ----------
    t : recorded times; loss : L^1 at ``t``; grad_norm : the gradient norm at ``t`` (Riemannian
        for manifold_flow; for factor_flow the norm of the layer gradient, equal to it for
        balanced factors).
    method, status, message : the Runge-Kutta method; "completed", "converged", "collapsed",
        "interrupted" or "failed"; a sentence saying why the run ended.
    t_final, nfev, nsteps, nrejected, depth : the time reached, right-hand-side evaluations,
        accepted and rejected steps, the depth N.
    distance : ||W(t) - target||_F at ``t`` (or None); conserved_drift : factor_flow with
        ``conserved=True`` (else None); singular_values : manifold_flow's s(t), shape
        (len(t), k); trajectory : the states at ``t`` (points or factor lists) or None.
    point / factors : the final state; collapse : the collapse record (Remark 33) or None;
    diagnostics : further recorded values of a system, by name (arrays over ``t``).
    stepper : for ``method="Rosenbrock"`` / ``"auto"`` the stiff stepper's counters
        (Jacobian-vector products ``njev``, Krylov iterations ``nlinear``, ``switches`` as
        (t, mode), ...; :mod:`linrank.flows.stiff`), else None.
    W : the final product, dense (property); success : status is "completed" or "converged".
    """

    t: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    method: str
    status: str
    message: str
    t_final: float
    nfev: int
    nsteps: int
    nrejected: int
    depth: int
    distance: np.ndarray | None = None
    conserved_drift: np.ndarray | None = None
    singular_values: np.ndarray | None = None
    trajectory: list | None = None
    point: FixedRankPoint | None = None
    factors: list[np.ndarray] | None = None
    collapse: dict | None = None
    diagnostics: dict = field(default_factory=dict, repr=False)
    stepper: dict | None = None
    _W: np.ndarray | None = field(default=None, repr=False)

    @property
    def W(self) -> np.ndarray:
        """The final end-to-end matrix as a dense d_y x d_x array (computed on first access)."""
        if self._W is None:
            if self.point is not None:
                self._W = DeepLinearFixedRank.to_dense(self.point)
            else:
                self._W = product(self.factors)
        return self._W

    @property
    def success(self) -> bool:
        """True when the run reached t_end or the gradient tolerance."""
        return self.status in ("completed", "converged")
