"""Critical points of the autoencoder (Propositions 29, 30): closed-form spectra vs the Hessian."""

import csv
import json
import math

import numpy as np
import pytest

from linrank import DeepLinearFixedRank
from linrank.cli import main
from linrank.critical import (
    AutoencoderProblem,
    closed_form_spectrum,
    critical_points,
    iter_critical_points,
)


def _data(d, samples, seed):
    return np.random.default_rng(seed).standard_normal((d, samples))


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("d,k", [(5, 2), (6, 3)])
def test_every_critical_point_matches_the_closed_form(depth, d, k):
    X = _data(d, 3 * d, 10 * d + k)
    cps = critical_points(X, k, depth)
    assert len(cps) == math.comb(d, k)
    lam = np.sort(np.linalg.eigvalsh(X @ X.T))[::-1]
    man = DeepLinearFixedRank(d, d, k, depth)
    ae = AutoencoderProblem(man, X)
    for cp in cps:
        assert cp.spectrum_error <= 1e-10, (cp.J, cp.spectrum_error)
        assert cp.computed_index == cp.predicted_index
        assert cp.gradient_norm <= 1e-12 * lam[0]
        # loss: closed form against the cost evaluated at the point
        assert abs(cp.loss - ae.cost(cp.point)) <= 1e-12 * np.sum(lam)
        assert cp.kind == ("global minimizer" if cp.J == tuple(range(k)) else "strict saddle")
        assert (cp.predicted_index == 0) == (cp.kind == "global minimizer")
        assert cp.computed_smallest < 0 or cp.kind == "global minimizer"
    assert min(cps, key=lambda c: c.loss).J == tuple(range(k))


def test_closed_form_against_a_direct_block_computation():
    """Spectrum of the 2 x 2 blocks and N lambda_c, computed independently with eigvalsh."""
    lam = np.array([5.0, 3.0, 2.5, 1e-9, 0.7])
    J = [1, 3]
    N = 4
    ref = [N * lam[c] for c in J for _ in J]
    for a in set(range(5)) - set(J):
        for i in J:
            ref += list(np.linalg.eigvalsh([[lam[i], -lam[a]], [-lam[a], lam[a]]]))
    got = closed_form_spectrum(lam, J, N)
    np.testing.assert_allclose(got, np.sort(ref), rtol=1e-12, atol=1e-14)
    # a nearly tied pair: the negative eigenvalue ~ -5e-10 keeps its digits (mpmath reference)
    import mpmath as mp

    li, la = 1.0, 1.0 + 1e-9
    with mp.workdps(50):
        a, b = mp.mpf(li), mp.mpf(la)
        ref_minus = (a + b) / 2 - mp.sqrt(((a - b) / 2) ** 2 + b**2)
    got = closed_form_spectrum(np.array([la, li]), [1], 1)
    assert abs(got[0] - float(ref_minus)) <= 1e-14 * abs(float(ref_minus))
    with pytest.raises(ValueError):
        closed_form_spectrum(lam, [1, 1], 2)
    with pytest.raises(ValueError):
        closed_form_spectrum(lam, [7], 2)


def test_sampling_when_there_are_many():
    X = _data(12, 30, 1)
    cps = critical_points(X, 4, 2, max_points=12, spectra="none")
    Js = [c.J for c in cps]
    assert len(Js) == len(set(Js)) == 12
    assert (0, 1, 2, 3) in Js and (8, 9, 10, 11) in Js and (0, 1, 2, 4) in Js
    assert all(c.computed_spectrum is None for c in cps)
    assert sum(c.kind == "global minimizer" for c in cps) == 1


def test_repeated_eigenvalue_gives_two_degenerate_minimizers():
    rng = np.random.default_rng(2)
    Q = np.linalg.qr(rng.standard_normal((5, 5)))[0]
    X = Q @ np.diag(np.sqrt([4.0, 2.0, 2.0, 1.0, 0.5]))  # lambda_2 = lambda_3
    cps = critical_points(X, 2, 3)
    mins = [c for c in cps if c.kind == "global minimizer"]
    assert sorted(c.J for c in mins) == [(0, 1), (0, 2)]
    for c in mins:
        assert c.computed_index == 0
        assert abs(c.computed_smallest) <= 1e-12 * 12
        assert c.spectrum_error <= 1e-10


def test_lanczos_mode_finds_the_smallest_eigenvalue():
    X = _data(40, 80, 3)
    it = iter_critical_points(X, 3, 2, max_points=3, spectra="smallest")
    for cp in it:
        assert cp.computed_index is None
        assert (
            abs(cp.computed_smallest - cp.predicted_smallest)
            <= 1e-8 * abs(cp.predicted_spectrum).max()
        )


def test_autoencoder_problem_matches_dense_formulas():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((7, 15))
    man = DeepLinearFixedRank(7, 7, 3, 2)
    ae = AutoencoderProblem(man, X)
    np.random.seed(0)
    pt = man.random_point()
    xi = man.random_tangent_vector(pt)
    W = man.to_dense(pt)
    assert ae.cost(pt) == pytest.approx(0.5 * np.sum((X - W @ X) ** 2), rel=1e-13)
    G = (W @ X - X) @ X.T
    H = man.tangent_to_dense(pt, xi) @ X @ X.T
    ref = man.euclidean_to_riemannian_hessian(pt, G, H, xi)
    got = ae.riemannian_hessian(pt, xi)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, atol=1e-12 * np.abs(b).max())
    with pytest.raises(ValueError):
        AutoencoderProblem(DeepLinearFixedRank(6, 7, 2, 2), X)


def test_input_errors():
    X = _data(4, 8, 0)
    with pytest.raises(ValueError, match="k must"):
        critical_points(X, 5)
    with pytest.raises(ValueError, match="spectra"):
        critical_points(X, 2, spectra="some")
    with pytest.raises(TypeError):
        critical_points(X, 2, depth=2.0)


def test_saddles_command_writes_a_table(tmp_path, capsys):
    out = tmp_path / "saddles.csv"
    code = main(["saddles", "--d", "5", "--k", "2", "--depth", "3", "--output", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "1 global minimizer(s), 9 strict saddle(s); 0 mismatch(es)" in text
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 10
    assert rows[0]["J"] == "1 2" and rows[0]["kind"] == "global minimizer"
    assert all(r["predicted_index"] == r["computed_index"] for r in rows)
    jout = tmp_path / "s.json"
    assert (
        main(["saddles", "--d", "6", "--k", "3", "--max-points", "4", "--output", str(jout)]) == 0
    )
    assert len(json.loads(jout.read_text())) == 4
    assert main(["saddles", "--d", "3", "--k", "4"]) == 2  # one-line error, exit status 2
    with pytest.raises(SystemExit):
        main(["saddles", "--depth", "0"])
