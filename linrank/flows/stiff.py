r"""Stiff stepping for the flows: a Krylov Rosenbrock-W method (ROS34PW2) and LSODA-like automatic
switching between Dormand-Prince, Runge-Kutta-Chebyshev and ROS34PW2 (``method="Rosenbrock"``
and ``method="auto"``).

The method
----------
ROS34PW2 (Rang and Angermann, BIT 45 (2005), the coefficients below as published there): a
four-stage linearly implicit Rosenbrock-W method of order 3 with an embedded method of order 2,
L-stable (stability function :math:`R(\infty) = 0`) and stiffly accurate. For
:math:`\dot y = F(y)` and a matrix :math:`J \approx F'(y_n)`, in the form of Hairer and Wanner
(Solving ODE II, IV.7, eq. (7.25)) with :math:`u_i = \sum_j \gamma_{ij} k_j`:

.. math::

    (I - h\gamma J)\, u_i = h\gamma\Big(F\big(y_n + \textstyle\sum_{j<i} a_{ij} u_j\big)
        + \sum_{j<i} \tfrac{c_{ij}}{h} u_j\Big),\qquad
    y_{n+1} = y_n + \sum_i m_i u_i,\qquad
    \mathrm{err} = \sum_i (m_i - \hat m_i)\, u_i,

with :math:`(a_{ij}) = (\alpha_{ij})\Gamma^{-1}`, :math:`(c_{ij}) = \gamma^{-1} I - \Gamma^{-1}`,
:math:`m = b^T\Gamma^{-1}`, :math:`\hat m = \hat b^T \Gamma^{-1}` (computed from the published
:math:`\alpha, \Gamma, b, \hat b` at import; tests/test_stiff.py checks the order conditions and
:math:`R(\infty) = 0`). Being a W-method, its order does not depend on J being the exact
Jacobian (tests/test_stiff.py measures order 3 with the exact J and with J perturbed by 50%), so
an approximate J (difference quotients) costs nothing but the quality of the linear algebra.

Linear systems :math:`(I - h\gamma J) u = r` are solved by restarted GMRES
(:func:`scipy.sparse.linalg.gmres`) on Jacobian-vector products of the system
(:meth:`FlowSystem.jacobian <linrank.flows.system.FlowSystem.jacobian>`: exact forward mode for the
layer-wise flow, a difference quotient for the factored manifold engine), right-preconditioned by
:meth:`FlowSystem.stiff_preconditioner` where the system has one. A solve is accepted when its
residual, in the error norm of the step (``atol + rtol |y|``), is at most ``_LIN_TOL`` = 0.1 of
the tolerance divided by :math:`\max_i |m_i|` = 4.18 (and no less than 1e-12 of the right-hand
side, what rounding allows); a solve that does not get there within
``_LIN_MAXITER`` iterations rejects the step (the step size is then reduced, as for a failed
stage). The step-size controller is the integrator's (safety 0.9, factors in [0.2, 10]) with
the exponent -1/3 of an order-2 error estimate (the error is handed over as
:math:`\mathrm{err}^{5/3}`, so the driver's :math:`\mathrm{err}^{-1/5}` becomes
:math:`\mathrm{err}^{-1/3}`).

Switching (``method="auto"``)
-----------------------------
Three modes: Dormand-Prince ("explicit"), the Runge-Kutta-Chebyshev method RKC
(:mod:`linrank.flows.chebyshev`, "chebyshev": stabilized explicit, for the real or nearly real
spectra of gradient flows) and ROS34PW2 ("stiff"). The run starts with Dormand-Prince. Every
``_CHECK`` = 40 accepted steps the dominant eigenvalue modulus :math:`\rho` of the Jacobian is
estimated by ``_POWER`` = 3 power iterations on Jacobian-vector products (warm-started from the
last estimate's vector). Dormand-Prince's stability interval reaches to about 3.3 on the negative
real axis; when its accepted steps satisfy :math:`h\rho \ge 2.5` at two checks in a row, the step
is held by stability, not accuracy, and the run switches to RKC. In Chebyshev mode :math:`\rho`
is re-estimated every ``_CHECK_CHEB`` = 20 accepted steps and after every rejected step (power
iterations until the estimate changes by < 1%, at most 10), each step takes the least number of
stages s whose interval covers :math:`[-1.2\rho h, 0]`, and the step is capped where s would
exceed ``S_MAX`` = 250. At each check in the Chebyshev or stiff mode, the time advanced per unit
of work since the last check (work = right-hand sides + Jacobian-vector products +
preconditioner applications + 2 per Jacobian set up, :meth:`RosenbrockStepper.cost`) is
compared with the alternatives: Dormand-Prince at its stability limit, :math:`(2.8/\rho)/6`;
from the stiff mode, RKC at the current step, :math:`h/(s(1.2\rho h) + 0.5)`; from the Chebyshev
mode, ROS34PW2 when the stage cap held at least half of the steps since the last check. The best
alternative, when it wins at two checks in a row, becomes the mode; after every switch but the
first the next test waits :math:`40 \cdot 2^j` steps (j = the number of switches so far, at most
12), which bounds the cost of switching back and forth. The switches are listed in
``FlowResult.stepper["switches"]`` as (t, mode). All decisions depend on counts and computed
numbers only, never on timings, so a run is reproducible and a resumed run (the stepper's state
is checkpointed, as of the first attempt of the step in progress) is bit-identical to an
uninterrupted one.

Events and ``ftol`` are located, as for Dormand-Prince, by Brent's method on the continuous
extension of the accepted Rosenbrock or Chebyshev step: the cubic Hermite interpolant of
:math:`y_n, y_{n+1}` (before the system's normalization) and the slopes
:math:`F(y_n), F(y_{n+1})` (both already evaluated by the step: no extra right-hand side), whose
local error :math:`O(h^4)` is below that of the second-order RKC and third-order ROS34PW2 steps
(:func:`linrank.flows.chebyshev.set_hermite`); records at ``t_eval`` are exact (the steps land
on them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.sparse.linalg import LinearOperator, gmres

from .chebyshev import S_MAX, rkc_coefficients, rkc_stages, rkc_step, set_hermite
from .system import FlowSystem, StepFailure

__all__ = ["ROS34PW2", "RosenbrockStepper", "make_stepper"]


class _Coefficients:
    """A Rosenbrock-W method from its published form (alpha, Gamma, b, bhat) and its transformed
    coefficients a, c, m, mhat (module docstring)."""

    def __init__(self, name: str, gamma: float, alpha: np.ndarray, Gamma: np.ndarray,
                 b: np.ndarray, bhat: np.ndarray, order: int):
        self.name, self.gamma, self.order = name, gamma, order
        self.alpha, self.Gamma, self.b, self.bhat = alpha, Gamma, b, bhat
        Gi = np.linalg.inv(Gamma)
        self.a = alpha @ Gi
        self.c = np.diag(np.full(len(b), 1.0 / gamma)) - Gi
        self.m = b @ Gi
        self.mhat = bhat @ Gi
        self.stages = len(b)


_G = 0.435866521508459
ROS34PW2 = _Coefficients(
    "ROS34PW2", _G,
    alpha=np.array([[0.0, 0.0, 0.0, 0.0],
                    [0.87173304301691801, 0.0, 0.0, 0.0],
                    [0.84457060015369423, -0.11299064236484185, 0.0, 0.0],
                    [0.0, 0.0, 1.0, 0.0]]),
    Gamma=np.array([[_G, 0.0, 0.0, 0.0],
                    [-0.87173304301691801, _G, 0.0, 0.0],
                    [-0.90338057013044082, 0.054180672388095326, _G, 0.0],
                    [0.24212380706095346, -1.2232505839045147, 0.54526025533510214, _G]]),
    b=np.array([0.24212380706095346, -1.2232505839045147, 1.5452602553351020, _G]),
    bhat=np.array([0.37810903145819369, -0.096042292212423178, 0.5, 0.2179332607542295]),
    order=3,
)

_LIN_TOL = 0.1
_LIN_MAXITER = 400
_RESTART = 60
_CHECK = 40
_CHECK_CHEB = 20  # Chebyshev mode: accepted steps between spectral-radius estimates
_POWER = 3
_POWER_MAX = 10  # Chebyshev mode: power iterations until the estimate changes by < 1%
_RHO_SAFETY = 1.2  # the Chebyshev stages cover [-1.2 rho, 0]
_TO_STIFF = 2.5
_DP_STABLE = 2.8  # a Dormand-Prince step h with h rho <= 2.8 is stable (boundary ~3.3)


class _Slope:
    """A stand-in for an Evaluation holding a combination vector (for error_norm/advance)."""

    __slots__ = ("K",)

    def __init__(self, K: np.ndarray):
        self.K = K


class RosenbrockStepper:
    """One adaptive stepper for the integrator: ROS34PW2 steps (``auto=False``) or automatic
    switching between Dormand-Prince and ROS34PW2 (``auto=True``); see the module docstring.

    :meth:`step` has the signature of the integrator's Dormand-Prince attempt and returns the
    error in its convention. Counters: ``njev`` (Jacobian-vector products), ``nlin`` (Krylov
    iterations), ``nprec`` (preconditioner applications), ``nsetup`` (Jacobians set up),
    ``switches``.
    """

    def __init__(self, system: FlowSystem, rtol: float, atol: float, auto: bool):
        self.sys = system
        self.rtol, self.atol = rtol, atol
        self.auto = auto
        self.mode = "explicit" if auto else "stiff"
        self.njev = self.nlin = self.nprec = self.nsetup = self.nrhs = 0
        self._snap: tuple[int, dict] | None = None  # (integrator step count, state) at step()
        self._integ: Any = None
        self.switches: list[tuple[float, str]] = []
        self.rho = np.nan
        self._votes = 0
        self._since = 0
        self._hold = 0  # explicit steps before the next test for stiffness
        self._backoffs = 0
        self._mark = (0.0, 0.0)  # (t, cost) at the last check in stiff mode
        self._want = ""  # the mode voted for at the last check
        self._capped = 0  # Chebyshev steps since the last check whose length the cap S_MAX held
        self._refresh = False  # re-estimate rho before the next attempt (a rejected one)
        self._vec: np.ndarray | None = None
        self._jac: tuple[Any, Callable] | None = None
        self._coef = ROS34PW2
        self._lin_tol = _LIN_TOL / float(np.max(np.abs(ROS34PW2.m)))

    # ------------------------------------------------------------ checkpoint state
    def state(self) -> dict:
        """What a resumed run needs to continue identically (JSON-able): the state before the
        last attempt if that attempt was not committed (an interrupt inside a step)."""
        if self._snap is not None and self._integ is not None \
                and self._integ.nsteps == self._snap[0]:
            st = dict(self._snap[1])
            st["switches"] = st["switches"][: st["switches_n"]]
            v = st["vec"]
            st["vec"] = None if v is None else np.asarray(v).tolist()
            return st
        return self._state()

    def _state_light(self) -> dict:
        st = self._state(vec=False)
        st["vec"] = self._vec
        return st

    def _state(self, vec: bool = True) -> dict:
        return {"mode": self.mode, "rho": None if np.isnan(self.rho) else self.rho,
                "votes": self._votes, "since": self._since, "switches": list(self.switches),
                "hold": self._hold, "backoffs": self._backoffs, "mark": list(self._mark),
                "want": self._want, "capped": self._capped, "refresh": self._refresh,
                "counts": [self.njev, self.nlin, self.nprec, self.nsetup, self.nrhs],
                "vec": None if (self._vec is None or not vec) else self._vec.tolist(),
                "switches_n": len(self.switches)}

    def restore(self, st: dict) -> None:
        self.mode = st["mode"]
        self.rho = np.nan if st["rho"] is None else float(st["rho"])
        self._votes, self._since = int(st["votes"]), int(st["since"])
        self._hold, self._backoffs = int(st["hold"]), int(st["backoffs"])
        self._mark = (float(st["mark"][0]), float(st["mark"][1]))
        self._want = str(st.get("want", ""))
        self._capped = int(st.get("capped", 0))
        self._refresh = bool(st.get("refresh", False))
        self.switches = [(float(t), str(m)) for t, m in st["switches"]]
        self.njev, self.nlin, self.nprec, self.nsetup, self.nrhs = (int(x) for x in st["counts"])
        self._vec = None if st["vec"] is None else np.array(st["vec"], dtype=float)

    def stats(self) -> dict:
        """The counters for ``FlowResult.stepper``."""
        return {"method": "auto" if self.auto else self._coef.name, "njev": self.njev,
                "nlinear": self.nlin, "nprec": self.nprec, "njac": self.nsetup,
                "switches": list(self.switches), "mode": self.mode,
                "rho": None if np.isnan(self.rho) else float(self.rho)}

    # ------------------------------------------------------------ Jacobian
    def _jacobian(self, y: Any) -> Callable:
        if self._jac is None or self._jac[0] is not y:
            self._jac = (y, self.sys.jacobian(y))
            self.nsetup += 1
        return self._jac[1]

    def _jv(self, J: Callable, v: np.ndarray) -> np.ndarray:
        self.njev += 1
        return J(v)

    def spectral_radius(self, y: Any, iters: int = _POWER) -> float:
        """|lambda_max| of the Jacobian at y by power iterations (warm-started): ``_POWER``
        for the switching test, or up to ``iters`` until the estimate changes by < 1%. A lower
        bound (||J v|| <= rho for a unit v)."""
        J = self._jacobian(y)
        v = self._vec
        if v is None or v.shape != np.shape(y):
            v = np.random.default_rng(0).standard_normal(np.shape(y))
        v = v / np.linalg.norm(v)
        rho = prev = 0.0
        for i in range(max(iters, _POWER)):
            w = self._jv(J, v)
            rho = float(np.linalg.norm(w))
            if not (np.isfinite(rho) and rho > 0.0):
                return 0.0
            v = w / rho
            if i + 1 >= _POWER and abs(rho - prev) <= 0.01 * rho:
                break
            prev = rho
        self._vec = v
        return rho

    # ------------------------------------------------------------ linear solves
    def _solve(self, J: Callable, g: float, r: np.ndarray, scale: Any, prec: Callable | None,
               y: Any) -> np.ndarray:
        """u with (I - g J) u = r, residual in the step's error norm <= the linear tolerance."""
        n = r.shape[0]
        d = scale if np.ndim(scale) else np.full(n, float(scale))

        def apply(v: np.ndarray) -> np.ndarray:  # scaled, right-preconditioned operator
            x = d * v
            if prec is not None:
                self.nprec += 1
                x = prec(x)
            return (x - g * self._jv(J, x)) / d

        op = LinearOperator((n, n), matvec=apply, dtype=float)
        rs = r / d
        nr = float(np.linalg.norm(rs))
        # the tolerance, but no less than rounding can reach (~1e-12 of the right-hand side)
        target = max(self._lin_tol * np.sqrt(n), 1e-12 * nr)
        if nr <= target:
            w = rs.copy()
            return d * w if prec is None else prec(d * w)
        count = [0]

        def cb(_: Any) -> None:
            count[0] += 1

        w, info = gmres(op, rs, rtol=0.0, atol=target, restart=_RESTART,
                        maxiter=max(1, _LIN_MAXITER // _RESTART), callback=cb,
                        callback_type="pr_norm")
        self.nlin += count[0]
        x = d * w
        if prec is not None:
            self.nprec += 1
            x = prec(x)
        if info != 0 or not np.all(np.isfinite(x)):
            raise StepFailure(f"the Krylov solve of (I - h gamma J) u = r did not converge in "
                              f"{_LIN_MAXITER} iterations (h gamma = {g:.3g})")
        return x

    # ------------------------------------------------------------ steps
    def rosenbrock_step(self, integ: Any, y: Any, ev0: Any, h: float):
        """One ROS34PW2 attempt: (y_new, ev_new, error in the step's norm, order-2 scaled)."""
        sysm, co = self.sys, self._coef
        J = self._jacobian(y)
        g = co.gamma * h
        scale = sysm.error_scale(y, y, self.rtol, self.atol)
        pfun = getattr(sysm, "stiff_preconditioner", None)
        prec = pfun(y, g) if pfun is not None else None
        U: list[_Slope] = []
        for i in range(co.stages):
            if i == 0:
                K = ev0.K
            else:
                self.nrhs += 1
                K = integ._eval(sysm.advance(y, 1.0, co.a[i, :i], U), full=False).K
            r = K.copy()
            for j in range(i):
                if co.c[i, j] != 0.0:
                    r += (co.c[i, j] / h) * U[j].K
            U.append(_Slope(self._solve(J, g, g * r, scale, prec, y)))
        y_end = sysm.advance(y, 1.0, co.m, U)
        y_new = sysm.normalize(y_end)
        self.nrhs += 1
        ev_new = integ._eval(y_new)
        set_hermite(integ, y, h, ev0, ev_new, y_end - y)
        sc = sysm.error_scale(y, y_new, self.rtol, self.atol)
        err = sysm.error_norm(y, co.m - co.mhat, U, sc)
        return y_new, ev_new, err ** (5.0 / 3.0) if np.isfinite(err) else np.inf

    def step(self, integ: Any, y: Any, ev0: Any, h: float):
        """The integrator's hook: one attempt of the current mode, and the switching test."""
        self._integ = integ
        if self.auto and (self._snap is None or self._snap[0] != integ.nsteps):
            # at the first attempt of a step (cheap: small fields and a reference to the never
            # mutated vector); a resumed run repeats the rejected attempts from there
            self._snap = (integ.nsteps, self._state_light())
        if self.mode == "stiff":
            out = self.rosenbrock_step(integ, y, ev0, h)
        elif self.mode == "chebyshev":
            out = self.chebyshev_step(integ, y, ev0, h)
        else:
            out = integ._dp_step(y, ev0, h)
        if self.auto and out[2] <= 1.0:
            self._consider(integ, y, h)
        return out

    def limit(self, h: float) -> float:
        """The step the current mode can take at most: in Chebyshev mode the stability
        interval of ``S_MAX`` stages, beta(S_MAX) / (1.2 rho); else h."""
        if self.mode == "chebyshev" and self.rho > 0.0:
            return min(h, rkc_coefficients(S_MAX).beta / (_RHO_SAFETY * self.rho))
        return h

    def chebyshev_step(self, integ: Any, y: Any, ev0: Any, h: float):
        """One RKC attempt (:mod:`linrank.flows.chebyshev`) with the least number of stages
        whose stability interval covers [-1.2 rho h, 0]; the error in the integrator's
        convention (order-2 estimate). A rejected attempt re-estimates rho before the next."""
        if self._refresh or not self.rho > 0.0:
            self.rho = self.spectral_radius(y, _POWER_MAX)
            self._refresh = False
        s = rkc_stages(_RHO_SAFETY * self.rho * h)
        if s > S_MAX:  # only after a rho refresh within the step: the cap
            s = S_MAX
        if h >= 0.999 * self.limit(np.inf):
            self._capped += 1
        self.nrhs += s
        y_new, ev_new, err = rkc_step(integ, self.sys, y, ev0, h, s, self.rtol, self.atol)
        if not err <= 1.0:
            self._refresh = True
        return y_new, ev_new, err ** (5.0 / 3.0) if np.isfinite(err) else np.inf

    def cost(self, integ: Any) -> float:
        """Work so far in right-hand-side equivalents: the stiff steps' evaluations,
        Jacobian-vector products, preconditioner applications (about one each for the
        layer-wise flow) and two per Jacobian set up (a gradient and an SVD)."""
        return float(self.nrhs + self.njev + self.nprec + 2 * self.nsetup)

    def _consider(self, integ: Any, y: Any, h: float) -> None:
        """The switching rule (module docstring), at an accepted step of size h from y."""
        t_new = float(integ.t + h)
        self._refresh = False
        held = self._hold > 0
        if held:
            self._hold -= 1
        self._since += 1
        every = _CHECK_CHEB if self.mode == "chebyshev" else _CHECK
        if self._since < every or (held and self.mode != "chebyshev"):
            return
        since, self._since = self._since, 0
        # Chebyshev mode needs a current rho (its stage count) even while a decision is held
        self.rho = self.spectral_radius(y, _POWER_MAX if self.mode == "chebyshev" else _POWER)
        if held:
            return
        if self.mode == "explicit":
            self._votes = self._votes + 1 if h * self.rho >= _TO_STIFF else 0
            if self._votes >= 2:
                self._switch(integ, t_new, "chebyshev")
            return
        t0, c0 = self._mark
        cost = self.cost(integ)
        self._mark = (t_new, cost)
        rate = {self.mode: (t_new - t0) / max(cost - c0, 1.0)}  # time advanced per unit of work
        rate["explicit"] = (_DP_STABLE / self.rho if self.rho > 0 else np.inf) / 6.0
        if self.mode == "stiff":  # Chebyshev at this step length (or at its cap)
            hc = self.limit(h) if self.rho > 0 else h
            rate["chebyshev"] = hc / (rkc_stages(_RHO_SAFETY * self.rho * hc) + 0.5)
        elif 2 * self._capped >= since:  # the cap held most Chebyshev steps: try ROS34PW2
            rate["stiff"] = np.inf
        self._capped = 0
        best = max(rate, key=lambda k: rate[k])
        if best == self.mode:
            self._votes, self._want = 0, ""
            return
        self._votes = self._votes + 1 if best == self._want else 1
        self._want = best
        if self._votes >= 2:
            self._switch(integ, t_new, best)

    def _switch(self, integ: Any, t_new: float, mode: str) -> None:
        """Change the mode; after a switch the next test waits ``_CHECK * 2^j`` steps (j the
        switches so far, at most 12), which bounds the cost of switching back and forth."""
        self.mode, self._votes, self._want, self._capped = mode, 0, "", 0
        self._mark = (t_new, self.cost(integ))
        self.switches.append((t_new, mode))
        self._refresh = mode == "chebyshev"  # a converged rho before the first RKC step
        if len(self.switches) > 1:
            self._hold = _CHECK * 2 ** self._backoffs
            self._backoffs = min(self._backoffs + 1, 12)


def make_stepper(system: FlowSystem, method: str, rtol: float, atol: float
                 ) -> RosenbrockStepper | None:
    """The stepper of ``method`` ("Rosenbrock", "auto"), or None for the Runge-Kutta methods.
    A system without Jacobian-vector products is refused with a ValueError."""
    if method not in ("Rosenbrock", "auto"):
        return None
    if not callable(getattr(system, "jacobian", None)) or not system.has_jacobian:
        raise ValueError(f"method={method!r} needs Jacobian-vector products, which the "
                         f"{type(system).__name__} does not provide (use 'RK45'; for "
                         "manifold_flow at depth 1 the projected engine has none)")
    return RosenbrockStepper(system, rtol, atol, auto=(method == "auto"))
