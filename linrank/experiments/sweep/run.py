r"""One run of a sweep: data, start, flow until convergence or budget, and its bookkeeping.

:func:`run` turns a :class:`~linrank.experiments.sweep.grid.RunSpec` into one result row (a flat
dict of :data:`COLUMNS`); the same spec gives the same numbers wherever it runs (BLAS is held to
one thread, every random draw comes from the spec's seed).

Landscape (Proposition 29, and its regression form). With :math:`XX^T = LL^T` (Cholesky) and
:math:`T = YX^TL^{-T} = \sum_j \sigma_j a_j b_j^T` (SVD), :math:`\tfrac12\|Y - WX\|_F^2 =
\tfrac12\|WL - T\|_F^2 + \tfrac12(\|Y\|_F^2 - \|T\|_F^2)`; the critical points of rank <= k are

.. math:: W_J = \Big(\sum_{j\in J}\sigma_j a_j b_j^T\Big) L^{-1},\quad |J| \le k,\qquad
          L^1(W_J) = \tfrac12\Big(\|Y\|_F^2 - \sum_{j\in J}\sigma_j^2\Big).

For Y = X, :math:`T = L`, :math:`\sigma_j^2 = \lambda_j` (eigenvalues of XX^T), :math:`a_j = u_j`
and :math:`W_J = \sum_J u_j u_j^T`, :math:`L^1(W_J) = \tfrac12(\operatorname{tr}XX^T -
\sum_J\lambda_j)`: Proposition 29. The global minimizer is J = {1..k}; the Morse index of W_J on
:math:`\mathcal M_{|J|}` is :math:`\#\{(a, i): a\notin J, i\in J, \sigma_a > \sigma_i\}`
(W -> WL maps rank-k matrices to rank-k matrices, so the index is that of the low-rank
approximation of T). The lowest critical value above the minimum is
:math:`L^* + \tfrac12(\sigma_k^2 - \sigma_{k+1}^2)` (``cert_gap``): a run whose loss is below it is
certified to converge to the global minimizer (the loss never increases and the flow converges to
a critical point).

Integration: the manifold flow (31) for balanced starts (Corollary 8: the product of the layer
flow from balanced factors), the layer-wise flow (5) for the others, RK45 with ``rtol``/``atol``,
in chunks of flow time: after each chunk the distance to W* decides (converged when
:math:`\|W - W^*\|_F \le \text{tol}\,\|W^*\|_F`); the next chunk's length comes from the observed
decay rate of the distance (at most twice the last), so a run stops soon after it converges. The
budget is ``t_max`` (flow time) and ``max_steps`` (integrator steps), both deterministic. A run
not converged at its budget is continued from its state with both budgets doubled, up to
:data:`EXTEND` times them (not a start proved not to converge: on the invariant set
{U_r M U_r^T} with det M < 0); what is still not converged is then a ``counterexample`` (proved),
``critical`` (certified approaching another critical point,
:func:`~linrank.experiments.shared.families.critical_certificate`) or ``unresolved`` (column
``outcome``, :func:`outcome`; docs/theory.rst).

Saddle plateaus: stretches of the run where the gradient norm is below
``plateau * sigma_1^2 ||W*||_F``; at the step of smallest gradient of each, J is read off the
state (:math:`c_j = a_j^T W L b_j / \sigma_j`, J = {j: c_j > 1/2}) and accepted when
:math:`\|W - W_J\|_F \le 0.2\|W^*\|_F`; the loss there is compared with the closed-form
:math:`L^1(W_J)`. Plateaus at the minimizer are not saddles and are not counted.
"""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass

import numpy as np

from ... import as_data  # linrank.data after issue 10's split; the package name stays valid
from ...flows import factor_flow, manifold_flow
from ...network import conserved_quantities, product
from ..shared import families, starts
from .grid import RunSpec

__all__ = ["COLUMNS", "TIMING_COLUMNS", "OUTCOMES", "EXTEND", "Landscape", "make_data", "run",
           "run_safe"]

SPEC_COLUMNS = ["run_id", "seed", "data", "d", "samples", "t_rank", "noise", "rank",
                "depth", "hidden", "start", "imbalance", "eps", "tol", "t_max", "max_steps",
                "rtol", "atol", "plateau"]
RESULT_COLUMNS = [
    "status", "flow", "reached_global", "certified", "t_converge", "t_final", "nsteps",
    "final_distance", "final_loss_gap", "loss0_gap", "cert_gap", "spectral_gap", "sigma1_sq",
    "sigma_k_sq", "sigma_k1_sq", "condition_47", "margin_47", "imbalance0", "imbalance_drift",
    "n_saddles", "saddle_sets", "saddle_indices", "saddle_times", "saddle_time_total",
    "max_saddle_index", "saddle_loss_err", "outcome", "t_budget", "extensions", "crit_J",
    "crit_loss_rel", "crit_grad_ratio", "crit_reason", "amended", "in_span", "det_C0",
    "det_sign_kept", "invariant_defect_max", "min_distance", "error",
]
#: the outcomes of a run (column ``outcome``): see :func:`outcome`
OUTCOMES = ("converged", "counterexample", "critical", "unresolved", "collapsed", "error")
#: a run that ends at its budget is continued from its state, doubling the flow-time and step
#: budgets, up to EXTEND x (t_max, max_steps)
EXTEND = 8
TIMING_COLUMNS = ["wall_s", "cpu_s", "flow_s", "book_s"]
#: every column of a result row, in file order
COLUMNS = SPEC_COLUMNS + RESULT_COLUMNS + TIMING_COLUMNS


def _rng(spec: RunSpec, *key: object) -> np.random.Generator:
    tag = zlib.crc32(repr(key).encode())
    return np.random.default_rng(np.random.SeedSequence([spec.seed, tag]))


def make_data(spec: RunSpec) -> tuple[np.ndarray, np.ndarray | None]:
    """X (d x samples, N(0, 1/d) entries) and Y (None for Y = X, else T X + noise Z / sqrt(d)).

    Drawn from the seed and :meth:`RunSpec.data_key` only: runs of one seed share their data.
    """
    rng = _rng(spec, "data", spec.data_key())
    d, n = spec.d, spec.samples
    X = rng.standard_normal((d, n)) / math.sqrt(d)
    if spec.data == "autoencoder":
        return X, None
    A = rng.standard_normal((d, spec.t_rank))
    B = rng.standard_normal((spec.t_rank, d))
    Z = rng.standard_normal((d, n))
    Y = (A @ B / d) @ X + spec.noise * Z / math.sqrt(d)
    return X, Y


@dataclass
class Landscape:
    """Critical points and values of L^1 on rank <= k (module docstring), from the data."""

    sigma2: np.ndarray  # sigma_j^2, descending
    a: np.ndarray  # left singular vectors of T (columns)
    b: np.ndarray  # right singular vectors of T (columns)
    chol: np.ndarray  # L with X X^T = L L^T
    yy: float  # ||Y||_F^2
    k: int

    @classmethod
    def from_data(cls, X: np.ndarray, Y: np.ndarray | None, k: int) -> Landscape:
        Ya = X if Y is None else Y
        L = np.linalg.cholesky(X @ X.T)
        T = np.linalg.solve(L, X @ Ya.T).T  # Y X^T L^{-T}
        a, s, bt = np.linalg.svd(T, full_matrices=False)
        return cls(s**2, a, bt.T, L, float(np.sum(Ya * Ya)), int(k))

    def W_J(self, J: tuple[int, ...]) -> np.ndarray:
        J = list(J)
        core = (self.a[:, J] * np.sqrt(self.sigma2[J])) @ self.b[:, J].T
        return np.linalg.solve(self.chol.T, core.T).T

    @property
    def optimal(self) -> tuple[int, ...]:
        return tuple(range(self.k))

    @property
    def W_star(self) -> np.ndarray:
        return self.W_J(self.optimal)

    def loss_J(self, J: tuple[int, ...]) -> float:
        return 0.5 * (self.yy - float(np.sum(self.sigma2[list(J)])))

    @property
    def L_star(self) -> float:
        return self.loss_J(self.optimal)

    @property
    def sigma_next(self) -> float:
        return float(self.sigma2[self.k]) if self.k < self.sigma2.size else 0.0

    @property
    def cert_gap(self) -> float:
        """L(lowest non-optimal critical point) - L* = (sigma_k^2 - sigma_{k+1}^2) / 2."""
        return 0.5 * (float(self.sigma2[self.k - 1]) - self.sigma_next)

    def index(self, J: tuple[int, ...]) -> int:
        """Morse index of W_J on M_|J|: #{(a, i): a not in J, i in J, sigma_a > sigma_i}."""
        s = self.sigma2
        notJ = [a for a in range(s.size) if a not in J]
        return int(sum(1 for a in notJ for i in J if s[a] > s[i]))

    def identify(self, W: np.ndarray) -> tuple[tuple[int, ...] | None, float]:
        """(J, ||W - W_J||_F / ||W*||_F) of the critical point nearest W, J None if > 0.2."""
        V = W @ self.chol
        c = np.einsum("ij,ij->j", self.a, V @ self.b) / np.sqrt(self.sigma2)
        J = tuple(int(j) for j in np.flatnonzero(c > 0.5))
        if len(J) > self.k:
            return None, float("nan")
        err = float(np.linalg.norm(W - self.W_J(J)) / np.linalg.norm(self.W_star))
        return (J if err <= 0.2 else None), err

    def slowest_rate(self) -> float:
        """min over a > k >= i of s_a (s_i - s_a) / (s_i + s_a) (Y = X: the slowest rate at W*)."""
        s, k = self.sigma2, self.k
        if k >= s.size or s[k] <= 0:
            return float(s[k - 1])
        si, sa = s[k - 1], s[k:]
        return float(np.min(sa * (si - sa) / (si + sa))) if np.all(sa > 0) else float(si)


class _Cutoff(KeyboardInterrupt):
    """A flow returned "interrupted": the run is cut off and must not be recorded."""


@dataclass
class _Plateau:
    t0: float
    t1: float
    g: float
    W: np.ndarray
    loss: float


def _segments(t: np.ndarray, g: np.ndarray, thr: float) -> list[tuple[int, int]]:
    below = g <= thr
    out, i = [], 0
    while i < below.size:
        if below[i]:
            j = i
            while j + 1 < below.size and below[j + 1]:
                j += 1
            out.append((i, j))
            i = j + 1
        else:
            i += 1
    return out


def _integrate(spec: RunSpec, land: Landscape, data, factors: list[np.ndarray],
               U: np.ndarray | None = None, extend: bool = True) -> dict:
    """Chunked integration until ||W - W*|| <= tol ||W*|| or the budget; see module docstring.

    At the budget (t_max, max_steps) an unconverged run is continued from its state with both
    budgets doubled, up to :data:`EXTEND` times them (``extend=False``: not continued). With
    ``U`` (U_r, autoencoder) det(U_r^T W U_r), the invariant-set defect and ||W - U_rU_r^T||_F
    are recorded at every chunk end.
    """
    W_star = land.W_star
    nW = float(np.linalg.norm(W_star))
    goal = spec.tol * nW
    thr = spec.plateau * float(land.sigma2[0]) * nW
    opts = dict(rtol=spec.rtol, atol=spec.atol, target=W_star, trajectory=True)
    if spec.balanced:
        state: object = product(factors)
        flow = "manifold"
    else:
        state = factors
        flow = "factor"
    chunk = min(spec.t_max, 20.0 / float(land.sigma2[0]))
    t_now, steps, first_step = 0.0, 0, None
    t_conv = math.nan
    plateaus: list[_Plateau] = []
    status = None
    last = None
    last_below = False
    t_lim, s_lim, extensions = spec.t_max, spec.max_steps, 0
    series: dict[str, list] = {"t": [], "loss": [], "grad": [], "det": [], "defect": [],
                               "dist": []}
    while status is None:
        length = min(chunk, t_lim - t_now)
        o = dict(opts, max_steps=max(1, s_lim - steps))
        if first_step is not None:
            o["first_step"] = min(first_step, length)
        if flow == "manifold":
            res = manifold_flow(data, None, state, spec.depth, length, rank=land.k, **o)
        else:
            res = factor_flow(data, None, state, length, **o)
        if res.status == "interrupted":
            raise _Cutoff(res.message)
        steps += res.nsteps
        t = res.t + t_now
        dist, g = res.distance, res.grad_norm
        # saddle plateaus of this chunk (merged with one that ran into it)
        for i, j in _segments(t, g, thr):
            m = i + int(np.argmin(g[i: j + 1]))
            item = res.trajectory[m]
            W = land_dense(item)
            if plateaus and i == 0 and math.isclose(plateaus[-1].t1, t[0]) and last_below:
                p = plateaus[-1]
                p.t1 = t[j]
                if g[m] < p.g:
                    p.g, p.W, p.loss = g[m], W, float(res.loss[m])
            else:
                plateaus.append(_Plateau(t[i], t[j], g[m], W, float(res.loss[m])))
        last_below = bool(g[-1] <= thr)
        last = res
        series["t"].append(t)
        series["loss"].append(np.asarray(res.loss, dtype=float))
        series["grad"].append(np.asarray(g, dtype=float))
        if U is not None:
            W_end = res.W
            series["det"].append(families.compressed_det(W_end, U, land.k))
            series["defect"].append(families.invariant_defect(W_end, U, land.k))
            series["dist"].append(float(np.linalg.norm(W_end - U @ U.T)))
        hit = np.flatnonzero(dist <= goal)
        state = res.point if flow == "manifold" else res.factors
        t_now = float(t[-1])
        if hit.size:
            t_conv, status = float(t[hit[0]]), "converged"
        elif res.status == "collapsed":
            status = "collapsed"
        elif res.status == "failed" and not res.message.startswith("max_steps"):
            raise RuntimeError(f"{flow} flow failed: {res.message}")
        elif (res.status == "failed" or t_now >= t_lim * (1 - 1e-12) or steps >= s_lim):
            if extend and t_lim < EXTEND * spec.t_max * (1 - 1e-12):
                t_lim = min(2 * t_lim, EXTEND * spec.t_max)
                s_lim = min(2 * s_lim, EXTEND * spec.max_steps)
                extensions += 1
            else:
                status = "budget"
        else:
            if t.size >= 3:
                first_step = float(t[-2] - t[-3])
            tail = t >= t[0] + 0.7 * (t[-1] - t[0])
            rate = 0.0
            if np.count_nonzero(tail) >= 3 and np.all(dist[tail] > 0):
                rate = -float(np.polyfit(t[tail], np.log(dist[tail]), 1)[0])
            if rate > 0:
                need = math.log(dist[-1] / goal) / rate
                chunk = min(2 * chunk, max(1.0, 1.2 * need + 1.0))
            else:
                chunk = 2 * chunk
    return dict(status=status, flow=flow, t_conv=t_conv, t_final=t_now, steps=steps,
                plateaus=plateaus, last=last, t_budget=t_lim, extensions=extensions,
                series=series)


def make_start(spec: RunSpec, X: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """The starting factors of a spec, by :mod:`linrank.experiments.shared.starts` (kinds in the grid).

    "nonbalanced" is the paper's start perturbed with relative size ``imbalance`` in each factor
    (:func:`~linrank.experiments.shared.starts.perturbed_start`); "near_boundary" has margin ``eps``.
    """
    d, r, N = spec.d, spec.rank, spec.depth
    hw = [spec.hidden] * (N - 1)
    kind = spec.start
    if kind == "paper":
        return starts.paper_start(d, r, N, rng, hw)
    if kind == "balanced_inside":
        return starts.inside_47_start(X, r, N, rng, hw, basis=False)
    if kind == "balanced_outside":
        return starts.outside_47_start(X, r, N, rng, hw, basis=False)
    if kind == "near_boundary":
        return starts.near_boundary_start(X, r, N, rng, eps=spec.eps, hidden_widths=hw,
                                          basis=False)
    if kind == "special":
        return starts.special_start(X, r, N, rng, hw, basis=False)
    if kind == "gaussian":
        return starts.gaussian_start(d, r, N, rng, hw)
    if kind.startswith("search:"):
        from ..shared.startfile import eigenbasis_start, search_starts

        found = search_starts(kind[7:], d, r)
        return eigenbasis_start(X, found[spec.seed % len(found)], r, N, rng, hw)
    if kind == "nonbalanced":
        return starts.perturbed_start(starts.paper_start(d, r, N, rng, hw), spec.imbalance, rng)
    if kind in ("family_a", "family_b", "amended"):
        U, _ = starts.top_eigenbasis(X, r)
        if kind == "family_a":
            return families.family_a_start(U, r, N, rng, hw)
        if kind == "family_b":
            return families.family_b_start(U, r, N, rng, spec.eps, hw)
        return families.amended_start(U, r, N, rng, hw)
    raise ValueError(f"unknown kind of start {kind!r}")


def land_dense(item: object) -> np.ndarray:
    """The dense W of a trajectory item (a point (u, s, vt) or a list of factors)."""
    if isinstance(item, (list, tuple)) and len(item) == 3 and np.ndim(item[1]) == 1:
        u, s, vt = item
        return (u * s) @ vt
    return product(item)


def run(spec: RunSpec) -> dict:
    """Run one spec and return its row (dict over :data:`COLUMNS`; see the module docstring).

    Raises whatever the run raises (use :func:`run_safe` in a sweep); KeyboardInterrupt (also
    when a flow reports that it was interrupted) is never turned into a row.
    """
    from threadpoolctl import threadpool_limits

    t_start, cpu_start = time.perf_counter(), time.process_time()
    with threadpool_limits(limits=1):
        X, Y = make_data(spec)
        k = spec.rank
        land = Landscape.from_data(X, Y, k)
        data = as_data(X, Y, form="covariance")
        factors = make_start(spec, X, _rng(spec, "start", spec.cell()))
        W0 = product(factors)
        c47 = starts.condition_47(W0, X, k) if spec.data == "autoencoder" else None
        L0 = data.loss(W0)
        D0 = conserved_quantities(factors)
        U = starts.top_eigenbasis(X, k)[0] if spec.data == "autoencoder" else None
        inv = _invariant_start(W0, U, k)
        t_flow = time.perf_counter()
        # a start proved not to converge (invariant set, det < 0) is not continued
        out = _integrate(spec, land, data, factors, U, extend=not inv["proved"])
        t_book = time.perf_counter()
        last = out["last"]
        W = last.W
        nW = float(np.linalg.norm(land.W_star))
        L_star = land.L_star
        row = spec.to_dict()
        drift = math.nan
        if out["flow"] == "factor":
            D1 = conserved_quantities(last.factors)
            drift = max((float(np.linalg.norm(a - b)) for a, b in zip(D1, D0)), default=0.0)
        sets, idx, times, lerr = [], [], [], []
        for p in out["plateaus"]:
            J, _ = land.identify(p.W)
            if J == land.optimal:
                continue
            if J is None:
                sets.append("?")
                idx.append(-1)
            else:
                sets.append("{" + ",".join(str(j + 1) for j in J) + "}")
                idx.append(land.index(J))
                lerr.append(abs(p.loss - land.loss_J(J)))
            times.append(p.t1 - p.t0)
        final_gap = float(last.loss[-1]) - L_star
        ser = out["series"]
        cert = None
        if out["status"] == "budget":
            Jc, _ = land.identify(W)
            cert = families.critical_certificate(
                np.concatenate(ser["t"]), np.concatenate(ser["loss"]),
                np.concatenate(ser["grad"]), Jc,
                land.loss_J(Jc) if Jc is not None else math.nan, L_star, land.optimal)
        cex = bool(inv["proved"] and ser["det"] and all(x < 0 for x in ser["det"])
                   and max(ser["defect"]) <= 1e-8 and min(ser["dist"]) >= 1 - 1e-6)
        row.update(
            status=out["status"],
            flow=out["flow"],
            reached_global=out["status"] == "converged",
            certified=bool(final_gap < land.cert_gap),
            t_converge=out["t_conv"],
            t_final=out["t_final"],
            nsteps=out["steps"],
            final_distance=float(np.linalg.norm(W - land.W_star)) / nW,
            final_loss_gap=final_gap,
            loss0_gap=L0 - L_star,
            cert_gap=land.cert_gap,
            spectral_gap=float(land.sigma2[k - 1]) - land.sigma_next,
            sigma1_sq=float(land.sigma2[0]),
            sigma_k_sq=float(land.sigma2[k - 1]),
            sigma_k1_sq=land.sigma_next,
            condition_47="" if c47 is None else c47.holds,
            margin_47=math.nan if c47 is None else c47.min_u_W0_u,
            imbalance0=max((float(np.linalg.norm(D)) for D in D0), default=0.0),
            imbalance_drift=drift,
            n_saddles=len(sets),
            saddle_sets=";".join(sets),
            saddle_indices=";".join(map(str, idx)),
            saddle_times=";".join(f"{x:.6g}" for x in times),
            saddle_time_total=float(sum(times)),
            max_saddle_index=max(idx, default=0),
            saddle_loss_err=max(lerr, default=0.0),
            outcome=outcome(out["status"], cex, cert is not None and cert.certified),
            t_budget=out["t_budget"],
            extensions=out["extensions"],
            crit_J="" if cert is None else "{" + ",".join(str(j + 1) for j in cert.J) + "}",
            crit_loss_rel=math.nan if cert is None else cert.rel_loss_diff,
            crit_grad_ratio=math.nan if cert is None else cert.grad_ratio,
            crit_reason="" if cert is None else (cert.reason or "certified"),
            amended="" if U is None else inv["amended"],
            in_span="" if U is None else inv["in_span"],
            det_C0=inv["det"],
            det_sign_kept="" if not ser["det"] else bool(
                all(np.sign(x) == np.sign(inv["det"]) for x in ser["det"])),
            invariant_defect_max=max(ser["defect"], default=math.nan),
            min_distance=min(ser["dist"], default=math.nan),
            error="",
        )
        t_end = time.perf_counter()
    row.update(wall_s=t_end - t_start, cpu_s=time.process_time() - cpu_start,
               flow_s=t_book - t_flow,
               book_s=(t_flow - t_start) + (t_end - t_book))
    return row


def outcome(status: str, counterexample: bool, certified: bool) -> str:
    """A run's outcome from its status: ``converged``; ``counterexample`` (proved: the start
    lies on the invariant set {U_r M U_r^T} with det M < 0, and along the run W stayed on it
    (defect <= 1e-8) with det(U_r^T W U_r) < 0 and ||W - U_rU_r^T||_F >= 1 at every chunk end,
    docs/theory.rst); ``critical`` (budget spent after every extension, certified approaching a
    critical point W_J other than the minimizer by
    :func:`~linrank.experiments.shared.families.critical_certificate`: where the run is at its end,
    not a proof of its limit); ``unresolved`` (budget spent, neither); ``collapsed``."""
    if status == "converged":
        return "converged"
    if counterexample:
        return "counterexample"
    if status == "budget":
        return "critical" if certified else "unresolved"
    return status


def _invariant_start(W0: np.ndarray, U: np.ndarray | None, k: int) -> dict:
    """The start against the invariant sets: in span U_r (defect <= 1e-12), det C0, whether it
    is proved not to converge (in span with det C0 < 0), the amended predicate."""
    if U is None:
        return {"in_span": False, "det": math.nan, "proved": False, "amended": False}
    in_span = families.invariant_defect(W0, U, k) <= 1e-12
    det = families.compressed_det(W0, U, k)
    return {"in_span": bool(in_span), "det": det, "proved": bool(in_span and det < 0),
            "amended": families.amended(W0, U, k)}


def error_row(spec: RunSpec, exc: BaseException, wall: float = math.nan) -> dict:
    """The row of a run that raised: its spec, status "error" and the error's type and message."""
    row = {c: "" for c in COLUMNS}
    row.update(spec.to_dict())
    msg = " ".join(f"{type(exc).__name__}: {exc}".split())
    row.update(status="error", outcome="error", reached_global=False, error=msg[:500], wall_s=wall,
               flow="manifold" if spec.balanced else "factor")
    return row


def run_safe(spec: RunSpec) -> dict:
    """:func:`run`, with an exception recorded as an error row instead of raised.

    KeyboardInterrupt and SystemExit pass through: a cut-off run is never recorded.
    """
    t0 = time.perf_counter()
    try:
        return run(spec)
    except Exception as exc:  # noqa: BLE001 - a failed run is recorded, the sweep goes on
        return error_row(spec, exc, time.perf_counter() - t0)
