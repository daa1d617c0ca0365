r"""Gradient flows of deep linear networks: the layer-wise flow (5) and the Riemannian flow (31).

API summary
-----------
``factor_flow(X, Y, factors, t_end, **options) -> FlowResult``
    The gradient flow (5) of :math:`L^N(W_1, \dots, W_N) = L^1(W_N \cdots W_1)` on the layers,

    .. math:: \dot W_i = -W_{i+1}^T \cdots W_N^T\, \nabla L^1(W)\, W_1^T \cdots W_{i-1}^T ,

    any N >= 1, any widths, balanced or not. Extra options: ``conserved=True`` records the drift
    :math:`\max_j \|D_j(t) - D_j(0)\|_F` of :math:`D_j = W_{j+1}^T W_{j+1} - W_j W_j^T` (Lemma 2(3)).
    The result has ``factors`` (final W_1..W_N).

``manifold_flow(X, Y, W0, depth, t_end, **options) -> FlowResult``
    The Riemannian gradient flow (31) on M_k, :math:`\dot W = -\mathcal{A}_W(\nabla L^1(W))`,
    with memory O((d_x + d_y) k) beyond the data (plus X X^T when the data are used as
    covariances). W0 is dense (k = its numerical rank, or ``rank=k``) or a point (u, s, vt). The
    result has ``point``. ``engine``: "auto" ("chain" for 2 <= N <= 8 with RK45, "factored" for
    other N >= 2, "projected" for N = 1), "chain" (:mod:`linrank.flows.chain`: a balanced chain
    of N factors of width k; singular values far below eps s_1 followed to relative accuracy,
    cost growing with N), "factored" (:mod:`linrank.flows.factored`: Koch-Lubich ODE in factors
    u S v^T, nothing divided by a singular value for N >= 2, cost per step independent of the
    depth, s_k / s_1 resolved down to ~1e-12) or "projected" (:mod:`linrank.flows.projected`:
    projected Runge-Kutta with truncated SVDs, any N).

``riemannian_flow(problem, x0, t_end, **options) -> FlowResult``
    The same flow for the loss f of any pymanopt Problem on a DeepLinearFixedRank (its depth and
    rank): :math:`\dot W = -\mathcal{A}_W(P_T \nabla f(W))`, e.g. matrix completion or sensing;
    same engines and options as manifold_flow, plus "chain" (:mod:`linrank.flows.chain`: a
    balanced chain of N factors of width k, no k x k SVD per evaluation; "auto" takes it for
    completion and sensing with RK45 at small depths). ``factor_flow(problem, None, factors, t_end)`` is
    the layer-wise flow of :math:`f(W_N \cdots W_1)` (Corollary 8's other side).

``adaptive_rank_flow(make_problem, shape=(m, n), depth=N, t_end=T, init_scale=alpha, **options)``
    The rank-adaptive flow: the same flow on :math:`\mathcal{M}_1, \mathcal{M}_2, \dots` from
    :math:`\alpha` times the top singular pair of :math:`-\nabla f(0)`, one direction added at
    scale :math:`\alpha` (the top singular pair of :math:`-P_N\nabla f`) whenever the flow stalls
    (:math:`\|P_T\nabla f\|_F \le \tau \|P_N\nabla f\|_2`): the small-initialization limit of
    the full-width flow at state O((m + n) k). The result also has ``ranks``.

Inputs must be real and finite (complex or NaN/inf data, starts, factors and targets are
refused with a TypeError/ValueError naming the argument). Norms of states and slopes are
computed without overflow of their squares, so starts up to ~1e150 and data up to ~1e100 are
integrated exactly on their own time scale.

Data: ``X`` (d_x x n) and ``Y`` (d_y x n; ``None`` means Y = X, the autoencoder), or
``covariance=True`` with X := X X^T, Y := Y X^T and optionally ``yy = ||Y||_F^2``, or a
:class:`linrank.network.LinearData` as X.

Common options (keyword only)
    ``method``: "RK45" (default; Dormand-Prince 5(4), adaptive, error-controlled), "RK4" (classical,
    fixed step), "Euler" (explicit, fixed step: plain gradient descent, the paper's choice),
    "Rosenbrock" (ROS34PW2, an L-stable linearly implicit Rosenbrock-W method of order 3 with an
    order-2 error estimate, its linear systems solved by GMRES on Jacobian-vector products: for
    stiff runs) or "auto" (Dormand-Prince, switching to Runge-Kutta-Chebyshev and to ROS34PW2
    when a power iteration on Jacobian-vector products shows that the explicit step is held by
    stability, and between them by cost; :mod:`linrank.flows.stiff`; not the default, see
    BENCHMARKS.md "Stiff stepping"); the stiff methods are available for factor_flow and for the
    factored engine of manifold_flow / riemannian_flow (depth >= 2), and report their counters
    in ``FlowResult.stepper``; events and ftol in a Rosenbrock or Chebyshev step are located on
    its cubic Hermite interpolant (values and slopes at both ends);
    ``rtol`` (1e-6), ``atol`` (1e-9): as in scipy's solve_ivp (manifold_flow measures the error
    in the Frobenius norm of the product: ``||E||_F <= atol sqrt(d_x d_y) + rtol ||W||_F`` per
    step); ``step``: the step of RK4/Euler (required for them); ``first_step``, ``max_step``,
    ``max_steps`` (without it, RK45 ends a run as "failed", with a message, when its step stays
    so small that t_end is more than 1e8 steps away: stiff flows, e.g. depth N makes the rates of
    the singular values ~N, data scaled by c make all rates ~c^2; with it, the run goes on until
    max_steps); ``t_eval``: increasing times in [0, t_end] to record (default: every accepted
    step; the adaptive methods shorten steps to land on them exactly; the fixed-step methods never shorten a
    step: they take the floor(t_end / step) whole steps, step n ending at n * step, and record a
    ``t_eval`` time at the step it falls in, at that step's time, see
    :mod:`linrank.flows.integrator`); ``trajectory=True``: keep the state at recorded times;
    ``target``: a d_y x d_x matrix (or point) whose Frobenius distance is recorded;
    ``checkpoint``: a path (.npz) written every ``checkpoint_every`` seconds (default 60) and/or
    ``checkpoint_steps`` steps, at the end and on KeyboardInterrupt; a later call with the same
    arguments resumes from it (``resume=True``) and ends bit-identical to an uninterrupted run
    (in one process; records, events and stop-rule state included); the fingerprint covers the
    data or problem (a problem's declared ``fingerprint()`` / ``fingerprint_arrays()``, else its
    loss and gradient at the start and at two fixed probe points:
    :meth:`linrank.flows.problem_data.ProblemData.fingerprint_arrays`), the start, the options, the
    names of the record callables and the events' ``terminal``/``direction`` (callables cannot
    be hashed: a resume trusts that callables of the same names compute the same); the path is
    checked before integrating (its directory must exist and accept files; an existing file
    there must be a linrank checkpoint: no other file is overwritten), and a save that fails
    later (disk full) is a RuntimeWarning that never loses the result; ``progress=True``: a tqdm
    bar over [0, t_end]. A misspelt keyword is a TypeError naming the public function and the
    nearest valid option (``rtoll=`` -> "did you mean 'rtol'").

Stop rules, events and recorders (every flow; :mod:`linrank.flows.events`)
    ``gtol``: stop ("converged") when the gradient norm is <= gtol; ``ftol``: stop ("converged")
    when the loss is <= ftol, at the time located on the step's continuous extension (Brent's
    method on Dormand-Prince's order-4 interpolant for RK45, RK4's order-3 one, the cubic
    Hermite interpolant of a Rosenbrock or Chebyshev step; at the iterate for Euler);
    ``rdtol`` with ``rdwindow`` (default 1.0): stop ("stalled") at the first accepted
    t where ``L(t') - L(t) <= rdtol * abs(L(t'))``, t' the latest accepted time <= t - rdwindow
    (never before t = rdwindow); ``events``: a callable g(t, W) or a list of them, in the manner of
    scipy's solve_ivp, with optional attributes ``terminal`` (True or a count of zeros after
    which the run ends, status "event") and ``direction`` (> 0 rising zeros only, < 0 falling, 0
    both); a zero in a step [t_n, t_n+1] (g(t_n) < 0 <= g(t_n+1) or g(t_n) > 0 >= g(t_n+1)) is
    located like ftol and stored in ``FlowResult.t_events[i]`` and ``W_events[i]``;
    ``record={"name": callable(t, W)}``: evaluated at every recorded time into
    ``FlowResult.records["name"]`` (a number or an array of fixed shape). W is the state in the
    form of ``trajectory`` items: the factor list (factor_flow) or the point (u, s, vt).
    factor_flow's ``singular_values=True`` records the product's singular values from the
    factors (a chain of QR factorizations, :func:`linrank.flows.layers.product_singular_values`).
    An exception from a user callback (the problem's cost or gradient, a record, an event) or a
    non-finite loss or gradient mid-run ends the run with status "failed", the trajectory so far,
    a message naming the callback and the exception in ``FlowResult.error``.

The collapse rule (manifold_flow, riemannian_flow; :mod:`linrank.flows.manifold_base`)
    One rule for both engines; ``collapse_tol`` defaults to None. "collapsed" only where the
    state leaves M_k: the smallest singular value s_k underflows to 0, or, for N = 1, falls to
    the rounding level max(m, n) eps s_1 after falling, or (factored engine) det S of
    W = u S v^T (chain engine, N >= 3: of an inner factor) changes sign (a step carried s_k
    across 0); with ``collapse_tol`` also where
    s_k < collapse_tol * (its own peak so far). No run whose s_k did not fall is stopped. For
    N >= 2 nothing is divided by s_k: a flow that approaches a critical point of lower rank runs
    to t_end, and ``message`` and ``FlowResult.rank_decay`` give the decay law of s_k (power or
    exponential, fitted on the last half of its fall). When s_k / s_1 falls below what the
    engine resolves (1e-12 factored/projected, 1e-12^N chain) the message says so.

:class:`FlowResult` attributes: ``t``, ``loss`` (L^1 at ``t``), ``grad_norm`` (Riemannian gradient
norm at ``t``; for factor_flow the norm of the layer gradient, equal to it for balanced factors),
``distance`` (or None), ``conserved_drift`` (factor_flow with ``conserved=True``, else None),
``singular_values`` (manifold flows: s(t), shape (len(t), k); factor_flow with
``singular_values=True``), ``records``, ``t_events``, ``W_events``, ``trajectory`` (list of points
or of factor lists, or None), ``W`` (final product, dense), ``point`` / ``factors`` (final state),
``status`` ("completed", "converged", "event", "stalled", "collapsed", "interrupted", "failed"),
``message``, ``success``, ``error``, ``rank_decay``, ``collapse``, ``t_final``, ``nfev``,
``nsteps``, ``nrejected``, ``method``.

Layout
------
Modelled on scipy.integrate: one integrator, many systems, one result type.

=============================  ===============================================================
``result``                     :class:`FlowResult`
``options``                    the integrator options, parsed once (:class:`FlowOptions`)
``tableaux``                   Butcher tableaux (Dormand-Prince 5(4), RK4, Euler)
``system``                     the protocol :class:`FlowSystem` (and :class:`VectorSystem` for flat
                               vector states), :class:`Evaluation`, :class:`StepFailure`
``integrator``                 the step loop: error control, ``t_eval``, stop rules, checkpoints,
                               interrupts, progress bar (:class:`Integrator`, :func:`integrate`)
``events``                     events, ftol and rdtol, user callbacks (:class:`CallbackError`)
``checkpoint``                 fingerprint, atomic .npz files, the integrator's saved state
``stiff``                      ROS34PW2 with Krylov solves, automatic switching (the stepper
                               the integrator asks for a step under "Rosenbrock" / "auto")
``chebyshev``                  Runge-Kutta-Chebyshev steps (stabilized explicit) for "auto"
``jacobians``                  Jacobian-vector products: loss Hessians, forward mode of flow (5),
                               differences
``targets``                    recorded distances to a target matrix or point
``layers``                     flow (5): :class:`LayerSystem`, :func:`factor_flow`
``manifold_base``              flow (31), shared by both engines: start, the collapse rule, the
                               decay-law note, records
``factored``, ``projected``    the two engines of flow (31)
``chain``                      the third engine (manifold_flow, riemannian_flow): a balanced chain
``chain_linalg``               product SVD from the factors, data products at general factors
``riemannian``                 :func:`manifold_flow` (engine choice)
``problem_flow``               :func:`riemannian_flow`: the same engines for the loss of any
                               pymanopt Problem on DeepLinearFixedRank
``adaptive``                   :func:`adaptive_rank_flow`: riemannian_flow's engines with a stall
                               test, on M_1, M_2, ... in turn
=============================  ===============================================================

Imports go downwards only: result, options, tableaux, system, events < checkpoint, stiff,
jacobians < integrator < systems < entry points.

Adding a system
---------------
1. Subclass :class:`FlowSystem` (or :class:`VectorSystem` when the state is a flat float vector
   and a step is a plain sum: then only :meth:`~FlowSystem.rhs` and :meth:`~FlowSystem.final`
   remain) in a new module ``linrank/flows/<name>.py``. Set ``name``, ``depth`` and
   ``loss_scale``; implement ``rhs`` (return :class:`Evaluation`, or :class:`LazyEvaluation` to
   compute the loss and gradient norm only at accepted points), ``advance``, ``error_scale``,
   ``error_norm``, ``state_norm``, ``to_array``/``from_array`` (checkpoints, trajectories) and
   ``final``; override ``normalize`` (post-step re-orthonormalization), ``check_stop`` (e.g. a
   collapse test; per-run numbers it keeps go into ``run_state``, saved in checkpoints),
   ``summary`` (a note on the finished run from its records), ``callback_name`` and
   ``nonfinite_hint`` (which user code the right-hand side calls), ``diagnostics`` (values
   recorded with every point: ``distance``, ``singular_values``, ``conserved_drift`` or any other name, which lands in
   ``FlowResult.diagnostics``), ``identity`` (what the checkpoint fingerprint must cover) and
   ``divergence_hint`` as needed. The contract is in :mod:`linrank.flows.system`.
2. Write the public function: check its own arguments, ``opts = parse_options(t_end,
   **options)``, build the system and ``return integrate(system, y0, t_end, opts)``. Every
   integrator option (methods, tolerances, ``t_eval``, ``gtol``, checkpoints, Ctrl-C, progress)
   then works unchanged; the loop is not touched.
3. Export it here and test it against an independent reference.
"""

from __future__ import annotations

from .adaptive import adaptive_rank_flow
from .integrator import Integrator, integrate
from .layers import LayerSystem, factor_flow, product_singular_values
from .manifold_base import decay_law
from .options import FlowOptions, parse_options
from .problem_flow import riemannian_flow
from .result import FlowResult
from .riemannian import manifold_flow
from .system import Evaluation, FlowSystem, LazyEvaluation, StepFailure, VectorSystem

__all__ = [
    "Evaluation",
    "FlowOptions",
    "FlowResult",
    "FlowSystem",
    "Integrator",
    "LayerSystem",
    "LazyEvaluation",
    "StepFailure",
    "VectorSystem",
    "adaptive_rank_flow",
    "decay_law",
    "factor_flow",
    "integrate",
    "manifold_flow",
    "parse_options",
    "product_singular_values",
    "riemannian_flow",
]
