r"""The protocol between the integrator and the systems it integrates.

A *system* is an autonomous ODE :math:`\dot y = F(y)` on some state space, together with
everything the Runge-Kutta driver (:mod:`linrank.flows.integrator`) needs to know about that
space. The driver only ever calls the methods of :class:`FlowSystem`; it never looks inside a
state. This lets states be flat vectors (:class:`VectorSystem`, the layer-wise flow (5)),
flat vectors with a normalization after each step (the factored manifold engine) or objects that
are not vectors at all (the projected engine, whose states are thin SVDs and whose "sum"
``y + h sum_j a_j K_j`` is a truncated SVD).

Contract (checked by the driver, relied upon by the systems):

* :meth:`FlowSystem.rhs` is called at the start point, at every Runge-Kutta stage and at every
  accepted point; it returns an :class:`Evaluation` with the slope ``K`` (whatever
  :meth:`FlowSystem.advance` and :meth:`FlowSystem.error_norm` understand), the loss and the norm
  of the gradient. It raises :class:`StepFailure` when the slope cannot be evaluated (rank lost,
  non-finite values); under RK45 that rejects the step, under the fixed-step methods it ends the
  run with status "failed".
* :meth:`FlowSystem.advance` forms the stage point ``y + h sum_j coeffs[j] K_j``; after the
  last stage the driver passes the result through :meth:`FlowSystem.normalize` (the post-step
  hook: re-orthonormalization), and every accepted point through :meth:`FlowSystem.check_stop`
  (e.g. the collapse test of Remark 33).
* Error control: the error estimate of a step is ``h * error_norm(y, E, evals, scale)`` with the
  embedded coefficients E and ``scale = error_scale(y, y_new, rtol, atol)``; a step is accepted
  when it is <= 1 (scipy's convention: an RMS norm of error / (atol + rtol |y|)).
* Checkpoints and trajectories store states as 1-d float arrays (:meth:`FlowSystem.to_array`,
  :meth:`FlowSystem.from_array`); resuming must give back the state bit for bit.
* :meth:`FlowSystem.diagnostics` returns the extra values recorded at every recorded time:
  keys named like :class:`linrank.flows.result.FlowResult` fields (``distance``,
  ``conserved_drift``, ``singular_values``) fill those fields, other keys go to
  ``FlowResult.diagnostics``. :meth:`FlowSystem.final` returns the result's final-state fields
  (``point`` or ``factors``).
* :meth:`FlowSystem.identity` returns what defines the run besides the start and the integrator
  options (data, shapes, depth, ...); it is hashed into the checkpoint fingerprint only when a
  checkpoint is requested.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["Evaluation", "FlowSystem", "LazyEvaluation", "StepFailure", "VectorSystem",
           "fixed_step_hint", "safe_norm"]


def safe_norm(value: float, parts: Callable[[], Sequence[np.ndarray]]) -> float:
    """A Euclidean norm ``value`` computed from plain sums of squares, or, if that is outside
    [1e-140, 1e140] (where the squares may have overflowed to inf or underflowed to 0), the norm
    of all entries of ``parts()`` recomputed after scaling by their largest magnitude.

    The flows keep the fast sums of squares for ordinary scales (bit-identical to them) and
    stay exact for states of magnitude up to ~1e300 (e.g. a start W0 scaled by 1e80, whose
    slopes are ~1e160 and their squares ~1e320).
    """
    if 1e-140 < value < 1e140:
        return value
    arrays = [np.asarray(a, dtype=float) for a in parts()]
    m = max((float(np.max(np.abs(a), initial=0.0)) for a in arrays), default=0.0)
    if m == 0.0 or not np.isfinite(m):
        return m
    return m * float(np.sqrt(sum(float(np.vdot(a / m, a / m)) for a in arrays)))


def fixed_step_hint(method: str) -> str:
    """The divergence hint of the deep linear flows: for Euler/RK4 the likely cause is a step
    above the stability limit; RK45 controls its step, so nothing is said for it."""
    if method in ("RK45", "Rosenbrock", "auto"):
        return ""
    return (f" ({method} with a fixed step: the step is probably above the stability limit ~ "
            "2 / (N s_max^(2(N-1)/N) lambda_max(XX^T)))")


class StepFailure(Exception):
    """A stage could not be evaluated (rank lost, non-finite values)."""


class Evaluation:
    """The right-hand side at a state, with the loss and gradient norm there."""

    __slots__ = ("K", "loss", "gnorm")
    lazy = False

    def __init__(self, K: Any, loss: float, gnorm: float):
        self.K = K
        self.loss = loss
        self.gnorm = gnorm


class LazyEvaluation:
    """A right-hand side whose loss and gradient norm are computed only when read.

    Stage evaluations of a Runge-Kutta step never need them; accepted points do (records,
    divergence and gtol tests), and the driver reads them there. ``K`` must be a numpy array
    (the driver checks it for finiteness at the stages).
    """

    __slots__ = ("K", "_fn", "_vals")
    lazy = True

    def __init__(self, K: np.ndarray, fn: Callable[[], tuple[float, float]]):
        self.K = K
        self._fn = fn
        self._vals: tuple[float, float] | None = None

    def _get(self) -> tuple[float, float]:
        if self._vals is None:
            self._vals = self._fn()
            self._fn = None
        return self._vals

    @property
    def loss(self) -> float:
        return self._get()[0]

    @property
    def gnorm(self) -> float:
        return self._get()[1]


class FlowSystem:
    """Base class of the systems integrated by :class:`linrank.flows.integrator.Integrator`.

    Subclasses set the attributes and implement the methods marked "required"; the others have
    working defaults.

    Attributes
    ----------
    name : str
        Short name ("factor", "manifold"): the progress bar shows "<name> flow" and the
        fingerprint starts with it.
    depth : int
        Stored in the result (``FlowResult.depth``).
    loss_scale : float
        A loss level that a decreasing flow never has to exceed (the loss at W = 0,
        ``||Y||^2 / 2``, or 0). The driver declares divergence when the loss grows above
        ``L(0) + max(|L(0)|, loss_scale)``.
    """

    name = "flow"
    depth = 1
    loss_scale = 0.0
    #: small per-run numbers (JSON-serializable) that a system keeps across steps, e.g. a
    #: running maximum for a stop rule; set by the integrator and saved in its checkpoints
    run_state: dict = {}

    # ------------------------------------------------------------------ required
    def rhs(self, y: Any) -> Evaluation | LazyEvaluation:
        """The slope at ``y`` (raise :class:`StepFailure` if it cannot be evaluated)."""
        raise NotImplementedError

    def advance(self, y: Any, h: float, coeffs: Sequence[float],
                evals: Sequence[Evaluation]) -> Any:
        """The state ``y + h sum_j coeffs[j] evals[j].K`` (len(coeffs) <= len(evals))."""
        raise NotImplementedError

    def error_scale(self, a: Any, b: Any, rtol: float, atol: float) -> Any:
        """The tolerance scale of a step from ``a`` to ``b`` (``atol + rtol |y|``)."""
        raise NotImplementedError

    def error_norm(self, base: Any, coeffs: Sequence[float], evals: Sequence[Evaluation],
                   scale: Any) -> float:
        """The scaled norm of ``sum_j coeffs[j] evals[j].K`` at ``base`` (1 = tolerance)."""
        raise NotImplementedError

    def state_norm(self, y: Any, scale: Any) -> float:
        """The scaled norm of the state itself (for the initial step size)."""
        raise NotImplementedError

    def to_array(self, y: Any) -> np.ndarray:
        """The state as a 1-d float array (checkpoints, trajectories); may be a view."""
        raise NotImplementedError

    def from_array(self, a: np.ndarray) -> Any:
        """The inverse of :meth:`to_array`, returning an independent state."""
        raise NotImplementedError

    def final(self, y: Any) -> dict:
        """The result's final-state fields, e.g. ``{"point": ...}`` or ``{"factors": ...}``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ optional
    def normalize(self, y: Any) -> Any:
        """Post-step hook: the canonical form of a step's result (default: ``y`` itself)."""
        return y

    def check_stop(self, y: Any, t: float) -> tuple[str, str, dict] | None:
        """``(status, message, info)`` to end the run at the accepted point ``y`` (time ``t``),
        or None to continue. Status "collapsed" is also warned about (RuntimeWarning); ``info``
        (a dict of numbers) becomes ``FlowResult.collapse``."""
        return None

    def diagnostics(self, y: Any) -> dict:
        """Extra values recorded at every recorded time (see the module docstring)."""
        return {}

    def trajectory_item(self, a: np.ndarray) -> Any:
        """The public form of a recorded state (given as :meth:`to_array` output)."""
        return self.from_array(a)

    def identity(self) -> tuple[list[np.ndarray], tuple]:
        """What defines the run besides start and options: (arrays, a tuple of plain values)."""
        return [], ()

    def pinned(self) -> dict[str, str]:
        """Choices made once for the run that change results at the level of rounding (e.g. the
        orientation of the data products, :mod:`linrank.linalg`): stored in the checkpoint and
        restored by :meth:`pin` on resume, so that a resumed run is bit-identical. Empty by
        default."""
        return {}

    def pin(self, choices: dict[str, str]) -> None:
        """Restore the choices of :meth:`pinned` from a checkpoint (names missing there take
        their default: a checkpoint written before a choice existed used the default)."""

    def callback_name(self) -> str:
        """Names the user code that :meth:`rhs` calls (a problem's cost and gradient), for the
        message of a run that it ended by raising or by returning non-finite values."""
        return "the right-hand side"

    def nonfinite_hint(self) -> str:
        """Appended to the message when the loss or gradient is not finite (e.g. which callback
        returned it); empty by default."""
        return ""

    def summary(self, result: Any) -> tuple[str, dict] | None:
        """A note on the finished run from its records: (text appended to the message, info for
        ``FlowResult.rank_decay``) or None. Must depend on the records only (resume gives the
        same note)."""
        return None

    has_jacobian = False

    def jacobian(self, y: Any) -> Callable[[np.ndarray], np.ndarray]:
        """The Jacobian of :meth:`rhs` at the flat-vector state y as a function z -> J z (for
        the stiff stepper, :mod:`linrank.flows.stiff`; set ``has_jacobian = True``)."""
        raise NotImplementedError

    def stiff_preconditioner(self, y: Any, g: float) -> Callable[[np.ndarray], np.ndarray] | None:
        """An approximation of :math:`(I - gJ)^{-1}` at y for the stiff stepper's Krylov
        solves, or None (no preconditioning)."""
        return None

    def stiffness_hint(self) -> str:
        """Appended to the message when RK45's steps become too small to reach t_end (the
        stiffness guard of the integrator): why the system is stiff there; empty by default."""
        return ""

    def divergence_hint(self, method: str) -> str:
        """Appended to the message when the run diverges (e.g. a stability limit of the
        fixed-step methods); empty by default."""
        return ""


class VectorSystem(FlowSystem):
    """A system whose state is a flat float vector and whose steps are plain sums.

    Implements the vector-space parts of :class:`FlowSystem` exactly as scipy's explicit
    Runge-Kutta solvers do: the error is the RMS norm of ``error / (atol + rtol max(|y|,
    |y_new|))`` entry by entry. A subclass implements :meth:`rhs` and :meth:`final`.
    """

    def advance(self, y: np.ndarray, h: float, coeffs: Sequence[float],
                evals: Sequence[Evaluation]) -> np.ndarray:
        out = y.copy()
        for c, ev in zip(coeffs, evals):
            if c != 0.0:
                out += (h * c) * ev.K
        if not np.all(np.isfinite(out)):
            raise StepFailure("the step is not finite")
        return out

    def error_scale(self, a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> np.ndarray:
        return atol + rtol * np.maximum(np.abs(a), np.abs(b))

    def error_norm(self, base: np.ndarray, coeffs: Sequence[float], evals: Sequence[Evaluation],
                   scale: np.ndarray) -> float:
        acc = np.zeros_like(evals[0].K)
        for c, ev in zip(coeffs, evals):
            if c != 0.0:
                acc += c * ev.K
        r = acc / scale
        return safe_norm(float(np.linalg.norm(r)), lambda: (r,)) / np.sqrt(acc.size)

    def state_norm(self, y: np.ndarray, scale: np.ndarray) -> float:
        r = y / scale
        return safe_norm(float(np.linalg.norm(r)), lambda: (r,)) / np.sqrt(y.size)

    def to_array(self, y: np.ndarray) -> np.ndarray:
        return y

    def from_array(self, a: np.ndarray) -> np.ndarray:
        return np.array(a, dtype=float)
