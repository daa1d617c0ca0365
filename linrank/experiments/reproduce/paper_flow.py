"""The chunked integration of one reproduction run, with the extension of unfinished runs.

:func:`integrate_chunks` integrates the layer-wise flow (5) by :func:`linrank.flows.factor_flow`
in chunks and stops by the reproduction's convergence rule. A run that reaches its budget
without converging is continued from its final factors (the same deterministic chunks, nothing
recomputed) with the horizon doubled, up to ``t_cap`` (the callers use :data:`EXTEND` times the
first budget); what is still not converged then is handed to the certificates
(:func:`linrank.experiments.shared.families.certify_run`), and only what they do not certify is
unresolved.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ...data import LinearData
from ...flows import factor_flow

__all__ = ["EXTEND", "integrate_chunks"]

#: an unfinished run is continued, doubling its horizon, up to EXTEND x its first budget
EXTEND = 4


def integrate_chunks(data: LinearData, factors: list[np.ndarray], t_end: float, opts: dict,
                     chunk: float, grid: Callable[[float], np.ndarray], h: float | None,
                     etol: float | None, t_cap: float | None = None) -> dict:
    """factor_flow in chunks of ``chunk`` time units, stopping by the convergence rule.

    Stops when the flow reports gtol reached, when ||W - U_rU_r^T||_F <= etol at the end of a
    chunk (the gradient test alone cannot stop runs whose gradient floor, set by the integrator's
    tolerance, lies above gtol), or at the horizon. The horizon starts at ``t_end``; a run not
    converged there is continued from its state with the horizon doubled while it is below
    ``t_cap`` (None: ``t_end``, no extension). ``grid(T)`` gives the recording times of a horizon
    T (a doubled horizon records on its own grid beyond the old one). A restarted chunk is a new
    call from the chunk's final factors (deterministic). KeyboardInterrupt if a chunk was
    interrupted.

    Returns ``t``, ``trajectory`` (factors at the recorded times), ``loss`` and ``grad`` (the
    loss and the layer-gradient norm there), ``status`` ("completed", "converged" or "failed"),
    ``stop``, ``nsteps``, ``nfev``, ``result`` (the last chunk's FlowResult), ``t_budget`` (the
    final horizon) and ``extensions`` (how often it was doubled).
    """
    if h is not None:
        chunk = h * max(1, round(chunk / h))
    cap = t_end if t_cap is None else max(float(t_cap), t_end)
    horizon, extensions = float(t_end), 0
    ts: list[np.ndarray] = []
    loss: list[np.ndarray] = []
    grad: list[np.ndarray] = []
    traj: list = []
    nsteps = nfev = 0
    fs = factors
    status, stop, res = "completed", "budget", None
    t_done, i = 0.0, 0
    g = grid(horizon)
    while True:
        t0, t1 = i * chunk, min(horizon, (i + 1) * chunk)
        if t1 <= t0 + 1e-12 * chunk:
            if horizon < cap * (1 - 1e-12):
                horizon = min(2 * horizon, cap)
                extensions += 1
                g = np.union1d(g, t_done + grid(horizon - t_done))
                continue
            break
        part = g[(g > t0 + 1e-12 * chunk) & (g < t1 - 1e-12 * chunk)] - t0
        part = np.concatenate(([0.0] if i == 0 else [], part, [t1 - t0]))
        res = factor_flow(data, None, fs, t1 - t0, t_eval=part, **opts)
        if res.status == "interrupted":
            raise KeyboardInterrupt(res.message)
        ts.append(res.t + t0)
        loss.append(np.asarray(res.loss, dtype=float))
        grad.append(np.asarray(res.grad_norm, dtype=float))
        traj += res.trajectory
        nsteps += int(res.nsteps)
        nfev += int(res.nfev)
        fs = res.factors
        t_done, i = t1, i + 1
        if res.status == "failed":
            status, stop = "failed", res.message
            break
        if res.status == "converged":
            status, stop = "converged", f"layer gradient norm <= gtol at t = {t0 + res.t_final:.6g}"
            break
        if etol is not None and res.distance[-1] <= etol:
            status, stop = "converged", f"||W - U_rU_r^T||_F <= {etol:g} at t = {t1:.6g}"
            break
    return {"t": np.concatenate(ts), "trajectory": traj, "loss": np.concatenate(loss),
            "grad": np.concatenate(grad), "status": status, "stop": stop, "nsteps": nsteps,
            "nfev": nfev, "result": res, "t_budget": horizon, "extensions": extensions}
