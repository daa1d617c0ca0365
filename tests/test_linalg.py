"""linrank.linalg: the two orientations of a thin product agree to rounding; the choice follows
the documented rule (argument, environment variable, measurement per shape class); the flows
pin it for the whole run and a resumed run restores it from its checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest

from linrank import linalg
from linrank.data import LinearData
from linrank.flows import manifold_flow
from linrank.linalg import (
    ENV_VAR,
    MIN_ELEMENTS,
    clear_orientation_cache,
    is_eligible,
    orientation_cache,
    orientation_for,
    thin_product,
)

EPS = np.finfo(float).eps


def _reference(A, B, transpose):
    """Row-by-row dot products in extended precision (independent of BLAS)."""
    Al = np.asarray(A, dtype=np.longdouble)
    Bl = np.asarray(B, dtype=np.longdouble)
    return np.asarray((Al.T if transpose else Al) @ Bl, dtype=float)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("shape", [(600, 600, 10), (700, 520, 3), (530, 900, 20)])
def test_orientations_agree_to_rounding(order, transpose, shape):
    p, q, r = shape
    rng = np.random.default_rng(sum(shape))
    A = np.asarray(rng.standard_normal((p, q)), order=order)
    B = rng.standard_normal((p if transpose else q, r))
    ref = _reference(A, B, transpose)
    # error bound of a dot product of length L: L eps sum |a_i b_i| (entrywise)
    L = p if transpose else q
    bound = L * EPS * (np.abs(A.T if transpose else A) @ np.abs(B))
    outs = [thin_product(A, B, transpose, o) for o in ("direct", "flipped")]
    for out in outs:
        assert out.shape == ref.shape
        assert np.all(np.abs(out - ref) <= bound)
    # the two orientations differ by rounding only (relative to the product's scale)
    scale = np.abs(A.T if transpose else A) @ np.abs(B)
    assert np.max(np.abs(outs[0] - outs[1]) / scale) <= 4 * L * EPS
    # the measured choice (whatever it is) gives one of the two
    auto = thin_product(A, B, transpose)
    assert any(np.array_equal(auto, o) for o in outs)


def test_symmetric_covariance_product_matches_dense():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((520, 800)) / np.sqrt(800)
    C = X @ X.T
    C = 0.5 * (C + C.T)
    B = rng.standard_normal((520, 10))
    a = thin_product(C, B, orientation="direct")
    b = thin_product(C, B, orientation="flipped")
    assert np.max(np.abs(a - b)) <= 520 * EPS * np.max(np.abs(C) @ np.abs(B))


def test_rule_argument_environment_and_eligibility(monkeypatch):
    small = np.ones((10, 10))
    big = np.ones((512, 512))
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert not is_eligible(small, 3) and is_eligible(big, 3)
    assert not is_eligible(big, 65) and not is_eligible(big.astype(np.float32), 3)
    assert not is_eligible(big[:, ::2], 3)  # not contiguous
    assert big.size == MIN_ELEMENTS
    assert orientation_for(small, 3) == "direct"  # ineligible: never measured
    assert orientation_for(small, 3, orientation="flipped") == "flipped"  # argument wins
    monkeypatch.setenv(ENV_VAR, "flipped")
    assert orientation_for(small, 3) == "flipped"
    assert orientation_for(big, 3, orientation="direct") == "direct"
    monkeypatch.setenv(ENV_VAR, " Direct ")
    assert orientation_for(big, 3) == "direct"
    monkeypatch.setenv(ENV_VAR, "sideways")
    with pytest.raises(ValueError, match=ENV_VAR):
        orientation_for(big, 3)
    monkeypatch.setenv(ENV_VAR, "measure")
    with pytest.raises(ValueError, match="orientation"):
        thin_product(big, np.ones((512, 2)), orientation="both")


def test_measurement_once_per_shape_class(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    clear_orientation_cache()
    calls = []
    real = linalg._measure
    monkeypatch.setattr(linalg, "_measure", lambda *a: calls.append(a[1:]) or real(*a))
    A = np.random.default_rng(1).standard_normal((600, 600))
    first = orientation_for(A, 10)
    assert first in ("direct", "flipped") and len(calls) == 1
    assert orientation_for(A, 12) == first and len(calls) == 1  # same class (10, 12 -> 16)
    orientation_for(A, 10, transpose=True)
    orientation_for(np.asfortranarray(A), 10)
    orientation_for(A, 40)
    assert len(calls) == 4 and len(orientation_cache()) == 4
    clear_orientation_cache()
    assert orientation_cache() == {}


def test_flow_pins_orientation_and_resume_restores_it(tmp_path, monkeypatch):
    """A run started with "flipped" products and resumed in a process that would choose
    "direct" ends bit-identical to the uninterrupted "flipped" run (the checkpoint carries the
    choice), and differs from an all-"direct" run at most by rounding."""
    d, k = 520, 3
    rng = np.random.default_rng(4)
    X = rng.standard_normal((d, 2 * d)) / np.sqrt(d)
    data = LinearData.from_samples(X)
    u = np.linalg.qr(rng.standard_normal((d, k)))[0]
    v = np.linalg.qr(rng.standard_normal((d, k)))[0]
    p0 = (u, np.array([1.0, 0.8, 0.6]), v.T)
    opts = {"method": "RK4", "step": 0.02}
    monkeypatch.setenv(ENV_VAR, "flipped")
    full = manifold_flow(data, None, p0, 3, 0.4, **opts)
    path = tmp_path / "ck.npz"
    part = manifold_flow(data, None, p0, 3, 0.2, checkpoint=str(path), **opts)
    assert part.status == "completed"
    with np.load(path) as z:
        assert json.loads(str(z["pinned"])) == {"Cxx": "flipped"}
    monkeypatch.setenv(ENV_VAR, "direct")
    direct = manifold_flow(data, None, p0, 3, 0.4, **opts)
    # same run continued: t_end differs, so resume through a checkpoint of the long run
    path2 = tmp_path / "ck2.npz"
    monkeypatch.setenv(ENV_VAR, "flipped")
    from linrank.flows.factored import FactoredSystem

    orig = FactoredSystem.rhs
    count = {"n": 0}

    def interrupting(self, y):
        count["n"] += 1
        if count["n"] == 40:
            raise KeyboardInterrupt
        return orig(self, y)

    monkeypatch.setattr(FactoredSystem, "rhs", interrupting)
    with pytest.warns(UserWarning, match="interrupted"):
        cut = manifold_flow(data, None, p0, 3, 0.4, checkpoint=str(path2), checkpoint_steps=1,
                            **opts)
    assert cut.status == "interrupted"
    monkeypatch.setattr(FactoredSystem, "rhs", orig)
    monkeypatch.setenv(ENV_VAR, "direct")  # the resuming process would choose otherwise
    resumed = manifold_flow(data, None, p0, 3, 0.4, checkpoint=str(path2), resume=True,
                            **opts)
    assert resumed.status == "completed"
    assert np.array_equal(resumed.W, full.W)
    assert np.array_equal(resumed.loss, full.loss)
    rel = np.linalg.norm(direct.W - full.W) / np.linalg.norm(full.W)
    assert rel <= 1e-12
