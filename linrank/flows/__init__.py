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
    with state the thin SVD (u, s, vt): memory O((d_x + d_y) k) beyond the data (plus X X^T when
    the data are used as covariances), cost per step independent of the depth. W0 is dense (k =
    its numerical rank, or ``rank=k``) or a point (u, s, vt). The result has ``point``.
    ``engine``: "auto" (``"factored"`` for N >= 2, ``"projected"`` for N = 1), "factored"
    (:mod:`linrank.flows.factored`: Koch-Lubich ODE in factors u S v^T, nothing divided by a
    singular value for N >= 2) or "projected" (:mod:`linrank.flows.projected`: projected
    Runge-Kutta with truncated SVDs, any N).

``riemannian_flow(problem, x0, t_end, **options) -> FlowResult``
    The same flow for the loss f of any pymanopt Problem on a DeepLinearFixedRank (its depth and
    rank): :math:`\dot W = -\mathcal{A}_W(P_T \nabla f(W))`, e.g. matrix completion or sensing;
    same engines and options as manifold_flow. ``factor_flow(problem, None, factors, t_end)`` is
    the layer-wise flow of :math:`f(W_N \cdots W_1)` (Corollary 8's other side).

Inputs must be real and finite (complex or NaN/inf data, starts, factors and targets are
refused with a TypeError/ValueError naming the argument). Norms of states and slopes are
computed without overflow of their squares, so starts up to ~1e150 and data up to ~1e100 are
integrated exactly on their own time scale.

Data: ``X`` (d_x x n) and ``Y`` (d_y x n; ``None`` means Y = X, the autoencoder), or
``covariance=True`` with X := X X^T, Y := Y X^T and optionally ``yy = ||Y||_F^2``, or a
:class:`linrank.network.LinearData` as X.

Common options (keyword only)
    ``method``: "RK45" (default; Dormand-Prince 5(4), adaptive, error-controlled), "RK4" (classical,
    fixed step), "Euler" (explicit, fixed step: the paper's choice), "Rosenbrock" (ROS34PW2, an
    L-stable linearly implicit Rosenbrock-W method of order 3 with an order-2 error estimate, its
    linear systems solved by GMRES on Jacobian-vector products: for stiff runs) or "auto"
    (Dormand-Prince, switching to ROS34PW2 when a power iteration on Jacobian-vector products
    shows that the explicit step is held by stability, and back when the explicit method would
    be cheaper; :mod:`linrank.flows.stiff`; not the default, see BENCHMARKS.md "Stiff
    stepping"); the stiff methods are available for factor_flow and for the factored engine of
    manifold_flow / riemannian_flow (depth >= 2), and report their counters in
    ``FlowResult.stepper``; ``rtol`` (1e-6), ``atol``
    (1e-9): as in scipy's solve_ivp (manifold_flow measures the error in the Frobenius norm of
    the product: ``||E||_F <= atol sqrt(d_x d_y) + rtol ||W||_F`` per step); ``step``: the step
    of RK4/Euler (required for them); ``first_step``, ``max_step``, ``max_steps`` (without it,
    RK45 ends a run as "failed", with a message, when its step stays so small that t_end is
    more than 1e8 steps away: stiff flows, e.g. depth N makes the rates of the singular values
    ~N, data scaled by c make all rates ~c^2; with it, the run goes on until max_steps);
    ``t_eval``: increasing times in [0, t_end] to record (default: every accepted step; steps are
    shortened to land on them exactly); ``trajectory=True``: keep the state at recorded times;
    ``target``: a d_y x d_x matrix (or point) whose Frobenius distance is recorded;
    ``gtol``: stop when the Riemannian gradient norm is <= gtol; ``checkpoint``: a path (.npz)
    written every ``checkpoint_every`` seconds (default 60) and/or ``checkpoint_steps`` steps,
    at the end and on KeyboardInterrupt; a later call with the same arguments resumes from it
    (``resume=True``) and ends bit-identical to an uninterrupted run; the path is checked before
    integrating (its directory must exist and accept files; an existing file there must be a
    linrank checkpoint: no other file is overwritten), and a save that fails later (disk full)
    is a RuntimeWarning that never loses the result; ``progress=True``: a tqdm
    bar over [0, t_end]. manifold_flow also takes ``rank`` and ``collapse_tol`` (default 1e-10):
    the run stops with ``status == "collapsed"`` when
    :math:`s_k < \text{collapse\_tol} \cdot \max(s_1(t), s_1(0))` (Remark 33), not with NaN.

:class:`FlowResult` attributes: ``t``, ``loss`` (L^1 at ``t``), ``grad_norm`` (Riemannian gradient
norm at ``t``; for factor_flow the norm of the layer gradient, equal to it for balanced factors),
``distance`` (or None), ``conserved_drift`` (factor_flow with ``conserved=True``, else None),
``singular_values`` (manifold_flow: s(t), shape (len(t), k)), ``trajectory`` (list of points or of
factor lists, or None), ``W`` (final product, dense), ``point`` / ``factors`` (final state),
``status`` ("completed", "converged", "collapsed", "interrupted", "failed"), ``message``,
``success``, ``t_final``, ``nfev``, ``nsteps``, ``nrejected``, ``method``.

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
``stiff``                      ROS34PW2 with Krylov solves, automatic switching (the stepper
                               the integrator asks for a step under "Rosenbrock" / "auto")
``jacobians``                  Jacobian-vector products: loss Hessians, forward mode of flow (5),
                               differences
``checkpoint``                 fingerprint and atomic .npz files
``targets``                    recorded distances to a target matrix or point
``layers``                     flow (5): :class:`LayerSystem`, :func:`factor_flow`
``manifold_base``              flow (31), shared by both engines: start, collapse test, records
``factored``, ``projected``    the two engines of flow (31)
``riemannian``                 :func:`manifold_flow` (engine choice)
``problem_flow``               :func:`riemannian_flow`: the same engines for the loss of any
                               pymanopt Problem on DeepLinearFixedRank
=============================  ===============================================================

Imports go downwards only: result, options, tableaux, system < checkpoint, stiff, jacobians <
integrator < systems < entry points.

Adding a system
---------------
1. Subclass :class:`FlowSystem` (or :class:`VectorSystem` when the state is a flat float vector
   and a step is a plain sum: then only :meth:`~FlowSystem.rhs` and :meth:`~FlowSystem.final`
   remain) in a new module ``linrank/flows/<name>.py``. Set ``name``, ``depth`` and
   ``loss_scale``; implement ``rhs`` (return :class:`Evaluation`, or :class:`LazyEvaluation` to
   compute the loss and gradient norm only at accepted points), ``advance``, ``error_scale``,
   ``error_norm``, ``state_norm``, ``to_array``/``from_array`` (checkpoints, trajectories) and
   ``final``; override ``normalize`` (post-step re-orthonormalization), ``check_stop`` (e.g. a
   collapse test), ``diagnostics`` (values recorded with every point: ``distance``,
   ``singular_values``, ``conserved_drift`` or any other name, which lands in
   ``FlowResult.diagnostics``), ``identity`` (what the checkpoint fingerprint must cover) and
   ``divergence_hint`` as needed. The contract is in :mod:`linrank.flows.system`.
2. Write the public function: check its own arguments, ``opts = parse_options(t_end,
   **options)``, build the system and ``return integrate(system, y0, t_end, opts)``. Every
   integrator option (methods, tolerances, ``t_eval``, ``gtol``, checkpoints, Ctrl-C, progress)
   then works unchanged; the loop is not touched.
3. Export it here and test it against an independent reference.
"""

from __future__ import annotations

from .integrator import Integrator, integrate
from .layers import LayerSystem, factor_flow
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
    "factor_flow",
    "integrate",
    "manifold_flow",
    "parse_options",
    "riemannian_flow",
]
