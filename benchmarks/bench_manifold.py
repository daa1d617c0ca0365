"""Benchmark DeepLinearFixedRank against pymanopt's FixedRankEmbedded (foundation issue).

Run:  .venv/bin/python benchmarks/bench_manifold.py [--quick] [--repeat R]

Targets (ratios, each the median over R interleaved pairs of timings in one process, so that load
from other processes hits both sides alike):
  * Riemannian gradient (depth 2) <= 1.5x the Euclidean projection of the same gradient;
  * inner product <= 1.0x pymanopt's at depth 1, <= 1.5x at depth 2;
  * retraction and transport <= 0.6x pymanopt's (at (20000, 20000, 10), where pymanopt's
    transport forms a 20000 x 20000 matrix, against its formula computed from the factors);
  * depth 1000 <= 1.2x depth 2 for the gradient, the inner product and the retraction.
(2000, 2000, 10) uses a dense gradient; (20000, 20000, 10) a factored gradient (U, S, V) of rank 10
(never formed: a 20000 x 20000 matrix is 3.2 GB).
"""

from __future__ import annotations

import argparse
import platform
import time

import benchlib  # benchmarks/benchlib.py, next to this script
import numpy as np
from pymanopt.manifolds import FixedRankEmbedded

from linrank import DeepLinearFixedRank
from linrank import fixedrank as fr
from linrank.linalg import ORIENTATIONS, thin_product


def _time(fn, number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def paired(fa, fb, number: int, repeat: int) -> tuple[float, float, float]:
    """Median times of fa and fb and the median of the per-pair ratios fa / fb."""
    ta, tb = [], []
    for _ in range(repeat):
        ta.append(_time(fa, number))
        tb.append(_time(fb, number))
    ta, tb = np.array(ta), np.array(tb)
    return float(np.median(ta)), float(np.median(tb)), float(np.median(ta / tb))


def interleaved(fns, number: int, repeat: int) -> list[float]:
    """Median times of the functions, timed in turn ``repeat`` times."""
    times = [[] for _ in fns]
    for _ in range(repeat):
        for t, fn in zip(times, fns):
            t.append(_time(fn, number))
    return [float(np.median(t)) for t in times]


def bench(m: int, n: int, k: int, dense: bool, repeat: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(0)
    np.random.seed(0)
    ref = FixedRankEmbedded(m, n, k)
    deep1 = DeepLinearFixedRank(m, n, k, 1)
    deep2 = DeepLinearFixedRank(m, n, k, 2)
    deep1000 = DeepLinearFixedRank(m, n, k, 1000)
    x = deep2.random_point()
    head = f"({m}, {n}, {k}) {'dense' if dense else 'factored'}"
    rows = []
    if dense:
        G = rng.standard_normal((m, n))
        proj = lambda: ref.projection(x, G)  # noqa: E731
        proj_name = "pymanopt projection"
    else:
        r = 10
        G = (
            rng.standard_normal((m, r)),
            np.diag(rng.uniform(1, 2, r)),
            rng.standard_normal((n, r)),
        )
        # pymanopt evaluates U @ S @ V.T @ v left to right and so forms the m x n matrix: timed
        # once for information. The baseline is the same Euclidean projection P_T computed from
        # the factors (linrank at depth 1: pymanopt's formulas without the m x n intermediate).
        rows.append(
            (
                f"{head}: pymanopt projection (forms m x n) [s]",
                f"{_time(lambda: ref.projection(x, G), 1):.3g}",
            )
        )
        proj = lambda: deep1.projection(x, G)  # noqa: E731
        proj_name = "Euclidean projection from factors"
    a, b = deep2.random_tangent_vector(x), deep2.random_tangent_vector(x)
    number = 5 if dense else 20

    def add(name, res, target=None):
        ta, tb, ratio = res
        tgt = f" (target <= {target})" if target else ""
        rows.append((f"{head}: {name}{tgt}", f"{ratio:.3f}   [{ta:.3g} s vs {tb:.3g} s]"))
        benchlib.figure(f"{head}: {name}", f"{ratio:.2f} ({ta:.3g} s vs {tb:.3g} s)",
                        f"<= {target}" if target else "", ratio <= target if target else None)

    add(
        f"gradient depth 2 / {proj_name}",
        paired(lambda: deep2.euclidean_to_riemannian_gradient(x, G), proj, number, repeat),
        1.5,
    )
    if dense:
        # floor: the fastest orientation of each of the two products G v, G^T u (linrank.linalg)
        v, u = x[2].T, x[0]
        pairs = {
            o: lambda o=o: (thin_product(G, v, False, o), thin_product(G, u, True, o))
            for o in ORIENTATIONS
        }
        tg, ta, tb = interleaved(
            [lambda: deep2.euclidean_to_riemannian_gradient(x, G), pairs["direct"],
             pairs["flipped"]], number, repeat)
        floor = min(ta, tb)
        rows.append(
            (
                f"{head}: gradient depth 2 / fastest pair of products G v, G^T u "
                "(target <= 1.1)",
                f"{tg / floor:.3f}   [{tg:.3g} s vs {floor:.3g} s; direct pair {ta:.3g} s, "
                f"flipped pair {tb:.3g} s]",
            )
        )
    add(
        "gradient depth 1000 / depth 2",
        paired(
            lambda: deep1000.euclidean_to_riemannian_gradient(x, G),
            lambda: deep2.euclidean_to_riemannian_gradient(x, G),
            number,
            repeat,
        ),
        1.2,
    )
    add(
        "inner product depth 1 / pymanopt",
        paired(
            lambda: deep1.inner_product(x, a, b), lambda: ref.inner_product(x, a, b), 200, repeat
        ),
        1.0,
    )
    add(
        "inner product depth 2 / pymanopt",
        paired(
            lambda: deep2.inner_product(x, a, b), lambda: ref.inner_product(x, a, b), 200, repeat
        ),
        1.5,
    )
    add(
        "inner product depth 1000 / depth 2",
        paired(
            lambda: deep1000.inner_product(x, a, b),
            lambda: deep2.inner_product(x, a, b),
            200,
            repeat,
        ),
        1.2,
    )
    add(
        "retraction depth 2 / pymanopt",
        paired(lambda: deep2.retraction(x, a), lambda: ref.retraction(x, a), 10, repeat),
        0.6,
    )
    add(
        "retraction depth 1000 / depth 2",
        paired(lambda: deep1000.retraction(x, a), lambda: deep2.retraction(x, a), 10, repeat),
        1.2,
    )
    y = deep2.retraction(x, a)
    # pymanopt's formula (embedding, then projection) computed from the factors, without its
    # m x n intermediate: the baseline where pymanopt's own transport cannot run
    formula = lambda: fr.projection(y, fr.embedding(x, a), m, n)  # noqa: E731
    if dense:  # pymanopt's transport forms an m x n intermediate
        add(
            "transport / pymanopt",
            paired(lambda: deep2.transport(x, y, a), lambda: ref.transport(x, y, a), 5, repeat),
            0.6,
        )
    add(
        "transport / pymanopt's formula from factors",
        paired(lambda: deep2.transport(x, y, a), formula, 10, repeat),
        0.6,
    )
    fresh = DeepLinearFixedRank(m, n, k, 2)

    def transport_uncached():
        fresh._frames = None  # what a single transport between new points costs
        return fresh.transport(x, y, a)

    add(
        "transport, frame cache emptied / pymanopt's formula from factors",
        paired(transport_uncached, formula, 10, repeat),
    )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only (smoke run)")
    ap.add_argument("--repeat", type=int, default=15)
    benchlib.add_json_argument(ap)
    args = ap.parse_args()
    print(
        f"machine: {platform.machine()}, python {platform.python_version()}, numpy {np.__version__}"
    )
    cases = (
        [(200, 200, 10, True)]
        if args.quick
        else [(2000, 2000, 10, True), (20000, 20000, 10, False)]
    )
    for m, n, k, dense in cases:
        for name, val in bench(m, n, k, dense, args.repeat):
            print(f"{name:<78} {val}")
    benchlib.write_json(args.json)


if __name__ == "__main__":
    main()
