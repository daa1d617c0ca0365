"""The result type of every flow (:func:`linrank.flows.factor_flow`, :func:`linrank.flows.manifold_flow`
and any system run by :mod:`linrank.flows.integrator`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..manifold import DeepLinearFixedRank, FixedRankPoint
from ..network import product

__all__ = ["FlowResult", "build_result"]


@dataclass
class FlowResult:
    """Result of a flow.

    Attributes
    ----------
    t : recorded times; loss : L^1 at ``t``; grad_norm : the gradient norm at ``t`` (Riemannian
        for manifold_flow; for factor_flow the norm of the layer gradient, equal to it for
        balanced factors).
    method, status, message : the Runge-Kutta method; "completed", "converged", "event",
        "stalled", "collapsed", "interrupted" or "failed"; a sentence saying why the run ended.
    t_final, nfev, nsteps, nrejected, depth : the time reached, right-hand-side evaluations,
        accepted and rejected steps, the depth N.
    distance : ||W(t) - target||_F at ``t`` (or None); conserved_drift : factor_flow with
        ``conserved=True`` (else None); singular_values : manifold_flow's s(t), shape
        (len(t), k); trajectory : the states at ``t`` (points or factor lists) or None.
    point / factors : the final state; collapse : the collapse record (Remark 33) or None;
    ranks : adaptive_rank_flow's rank increases [(t, k), ...] from (0, 1), else None;
    diagnostics : further recorded values of a system, by name (arrays over ``t``).
    records : the values of the ``record`` callables at ``t``, by name (arrays, first axis t).
    t_events, W_events : with ``events``: for each event the times of its zeros (array) and the
        states there (list, in the form of ``trajectory`` items); else None.
    error : the exception of a user callback that ended the run ("failed"), else None.
    rank_decay : manifold flows: when the smallest singular value fell by 1e3 from its peak and
        still falls at the end (the flow approaches a critical point of lower rank), its decay
        law fitted on the last half of the fall (also told in ``message``), else None.
    stepper : for ``method="Rosenbrock"`` / ``"auto"`` the stiff stepper's counters
        (Jacobian-vector products ``njev``, Krylov iterations ``nlinear``, ``switches`` as
        (t, mode), ...; :mod:`linrank.flows.stiff`), else None.
    W : the final product, dense (property); success : status is "completed" (t_end reached),
        "converged" (gtol, ftol), "event" (a terminal event) or "stalled" (rdtol): the run ended
        by its own rules, not by a failure, a collapse or an interrupt.
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
    #: adaptive_rank_flow: [(t, k), ...], the start (0, 1) and each rank increase (else None)
    ranks: list | None = None
    diagnostics: dict = field(default_factory=dict, repr=False)
    records: dict = field(default_factory=dict, repr=False)
    t_events: list | None = None
    W_events: list | None = field(default=None, repr=False)
    error: BaseException | None = None
    rank_decay: dict | None = None
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
        """True when the run ended by its own rules: t_end, gtol, ftol, a terminal event, rdtol."""
        return self.status in ("completed", "converged", "event", "stalled")


def build_result(run: Any, base: tuple[str, ...], user: str) -> FlowResult:
    """The :class:`FlowResult` of the integrator ``run`` (:mod:`linrank.flows.integrator`): its
    records (``base`` names the plain series, ``user`` prefixes the user's records), counters,
    events, final state and the system's note (:meth:`~linrank.flows.system.FlowSystem.summary`).
    """
    r = run.rec
    sysm = run.sys
    res = FlowResult(
        t=np.array(r["t"], dtype=float),
        loss=np.array(r["loss"], dtype=float),
        grad_norm=np.array(r["gnorm"], dtype=float),
        method=run.o.method,
        status=run.status,
        message=run.message,
        t_final=run.t,
        nfev=run.nfev,
        nsteps=run.nsteps,
        nrejected=run.nrej,
        depth=sysm.depth,
        trajectory=[sysm.trajectory_item(row) for row in r["traj"]] if run.o.trajectory
        else None,
        collapse=run.collapse,
        error=run.error,
    )
    fields = set(FlowResult.__dataclass_fields__)
    for key, vals in r.items():
        if key in base:
            continue
        if key.startswith(user):
            res.records[key[len(user):]] = np.array(vals, dtype=float)
            continue
        if not vals:
            continue
        arr = np.array(vals, dtype=float)
        if key in fields:
            setattr(res, key, arr)
        else:
            res.diagnostics[key] = arr
    mon = run.events
    if mon.events:
        res.t_events = [np.array(ts, dtype=float) for ts in mon.t_events]
        res.W_events = [[sysm.trajectory_item(a) for a in states] for states in mon.states]
    for key, val in sysm.final(run.y).items():
        setattr(res, key, val)
    note = sysm.summary(res)
    if note is not None:
        res.message += note[0]
        res.rank_decay = note[1]
    return res
