"""The flows at their boundaries (issue 8): checkpoint files, hostile inputs, extreme scales."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from linrank import (
    LinearData,
    balanced_factors,
    factor_flow,
    gaussian_data,
    manifold_flow,
    product,
)


def test_checkpoint_of_another_factor_shape_is_refused(tmp_path):
    """Depth 2 (2 x 3, 3 x 2) and depth 3 (three 2 x 2) have 12 parameters each: the same flat
    start vector must not resume the other run."""
    X = gaussian_data(2, seed=0)
    y0 = np.random.default_rng(0).standard_normal(12) / 2
    depth2 = [y0[:6].reshape(3, 2), y0[6:].reshape(2, 3)]
    depth3 = [y0[:4].reshape(2, 2), y0[4:8].reshape(2, 2), y0[8:].reshape(2, 2)]
    path = tmp_path / "ck.npz"
    r2 = factor_flow(X, None, depth2, 1.0, checkpoint=path)
    assert r2.status == "completed"
    with pytest.raises(ValueError, match="different run"):
        factor_flow(X, None, depth3, 1.0, checkpoint=path)
    r3 = factor_flow(X, None, depth3, 1.0, checkpoint=path, resume=False)
    assert len(r3.factors) == 3 and r3.status == "completed"
    ref = factor_flow(X, None, depth3, 1.0)
    assert np.array_equal(r3.W, ref.W)


def _small_factor_problem():
    X = gaussian_data(4, seed=1)
    W0 = np.diag([1.0, 0.5, 0.0, 0.0])
    return X, balanced_factors(W0, (4, 3, 4), seed=0)


def _no_integration(monkeypatch):
    """Make any evaluation of the loss fail: the checks must come before integrating."""
    def boom(*args, **kwargs):
        raise AssertionError("the flow started integrating")

    monkeypatch.setattr(LinearData, "loss_and_gradient", boom)


def test_checkpoint_in_missing_directory_is_refused_before_integrating(tmp_path, monkeypatch):
    X, fs = _small_factor_problem()
    _no_integration(monkeypatch)
    path = tmp_path / "missing" / "ck.npz"
    with pytest.raises(ValueError, match="does not exist") as info:
        factor_flow(X, None, fs, 1e6, checkpoint=path)
    assert str(path) in str(info.value) and ".tmp-" not in str(info.value)
    not_a_dir = tmp_path / "file.txt"
    not_a_dir.write_text("x")
    with pytest.raises(ValueError, match="does not exist"):
        factor_flow(X, None, fs, 1e6, checkpoint=not_a_dir / "ck.npz")
    with pytest.raises(ValueError, match="directory"):
        factor_flow(X, None, fs, 1e6, checkpoint=tmp_path)


@pytest.mark.skipif(not os.path.isdir("/sys"), reason="needs a read-only /sys")
def test_checkpoint_in_read_only_directory_is_refused_before_integrating(monkeypatch):
    X, fs = _small_factor_problem()
    _no_integration(monkeypatch)
    path = "/sys/linrank-checkpoint.npz"
    try:
        with open(path + ".probe", "wb"):
            pass
    except OSError:
        pass
    else:  # pragma: no cover - /sys writable here
        os.remove(path + ".probe")
        pytest.skip("/sys is writable")
    with pytest.raises(OSError, match="cannot be written") as info:
        factor_flow(X, None, fs, 1e6, checkpoint=path)
    assert path in str(info.value) and ".tmp-" not in str(info.value)


def test_existing_foreign_file_is_not_overwritten(tmp_path):
    X, fs = _small_factor_problem()
    path = tmp_path / "mine.npz"
    path.write_bytes(b"a user's file")
    for resume in (True, False):
        with pytest.raises(ValueError, match="not a (readable )?linrank checkpoint"):
            factor_flow(X, None, fs, 1.0, checkpoint=path, resume=resume)
    assert path.read_bytes() == b"a user's file"


@pytest.mark.parametrize("flow", ["factor", "manifold"])
def test_failed_saves_never_lose_the_result(tmp_path, monkeypatch, flow):
    """Saves that fail during and after the run (disk full) are warned about; the computed
    result is returned, equal to a run without checkpoint."""
    X, fs = _small_factor_problem()
    if flow == "factor":
        def call(**kw):
            return factor_flow(X, None, fs, 2.0, **kw)
    else:
        def call(**kw):
            return manifold_flow(X, None, product(fs), 2, 2.0, **kw)
    ref = call()
    path = tmp_path / "ck.npz"

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as mp:
        mp.setattr(os, "replace", full_disk)
        with pytest.warns(RuntimeWarning, match="could not be written") as rec:
            res = call(checkpoint=path, checkpoint_steps=2)
    assert res.status == "completed"
    assert np.array_equal(res.W, ref.W) and np.array_equal(res.loss, ref.loss)
    msgs = [str(w.message) for w in rec]
    assert any("returned but not saved" in m for m in msgs)
    assert all(str(path) in m and ".tmp-" not in m for m in msgs if "checkpoint" in m)
    assert not path.exists() and not list(tmp_path.iterdir())  # no temporary files left


def test_data_are_hashed_only_for_a_checkpoint(tmp_path, monkeypatch):
    """The sha256 fingerprint (a pass over the data) is computed only when a checkpoint is
    requested."""
    X, fs = _small_factor_problem()
    calls = []
    original = LinearData.fingerprint_arrays

    def counted(self):
        calls.append(1)
        return original(self)

    monkeypatch.setattr(LinearData, "fingerprint_arrays", counted)
    factor_flow(X, None, fs, 0.5)
    manifold_flow(X, None, product(fs), 2, 0.5)
    manifold_flow(X, None, product(fs), 1, 0.5)
    assert calls == []
    factor_flow(X, None, fs, 0.5, checkpoint=tmp_path / "a.npz")
    manifold_flow(X, None, product(fs), 2, 0.5, checkpoint=tmp_path / "b.npz")
    assert len(calls) == 2


# ---------------------------------------------------------------------- hostile inputs
def _flow_problem():
    X = gaussian_data(6, seed=0)
    rng = np.random.default_rng(1)
    W0 = rng.standard_normal((6, 2)) @ rng.standard_normal((2, 6)) / 6
    return X, W0


def test_complex_input_is_refused():
    X, W0 = _flow_problem()
    u, s, vt = np.linalg.svd(W0)
    point = (u[:, :2], s[:2], vt[:2])
    for bad in (W0 + 1j * W0, W0.astype(complex), (point[0] + 0j, point[1], point[2]),
                (point[0], point[1].astype(complex), point[2])):
        with pytest.raises(TypeError, match="W0.* real"):
            manifold_flow(X, None, bad, 2, 1.0)
    with pytest.raises(TypeError, match="target.* real"):
        manifold_flow(X, None, W0, 2, 1.0, target=W0 + 0j)
    fs = balanced_factors(W0, (6, 3, 6), seed=0)
    with pytest.raises(TypeError, match="W_2 must be real"):
        factor_flow(X, None, [fs[0], fs[1] + 0j], 1.0)
    with pytest.raises(TypeError, match="X must be real"):
        factor_flow(X + 0j, None, fs, 1.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_refused_naming_the_argument(bad):
    X, W0 = _flow_problem()
    fs = balanced_factors(W0, (6, 3, 6), seed=0)
    Xb, Wb = X.copy(), W0.copy()
    Xb[1, 2] = bad
    Wb[0, 0] = bad
    for call, name in [
        (lambda: manifold_flow(Xb, None, W0, 2, 1.0), "X"),
        (lambda: manifold_flow(X, Xb, W0, 2, 1.0), "Y"),
        (lambda: manifold_flow(X, None, Wb, 2, 1.0), "W0"),
        (lambda: factor_flow(Xb, None, fs, 1.0), "X"),
        (lambda: factor_flow(X, None, [fs[0], fs[1] * bad], 1.0), "W_2"),
    ]:
        with pytest.raises(ValueError, match=f"{name} .*finite"):
            call()


@pytest.mark.parametrize("N, scale", [(2, 1e80), (3, 1e80), (2, 1e150)])
def test_huge_start_is_computed(N, scale):
    """W0 scaled by 1e80 (slopes ~1e160, their squares overflow): with Y = 0 the flow has the
    exact symmetry W(t; a W0) = a V(a^(2(N-1)/N) t; W0), checked against the unscaled run."""
    X, W0 = _flow_problem()
    Z = np.zeros_like(X)
    opts = {"rtol": 1e-10, "atol": 1e-14, "collapse_tol": 1e-300}
    V = manifold_flow(X, Z, W0, N, 1.0, **opts)
    W = manifold_flow(X, Z, scale * W0, N, scale ** (-2 * (N - 1) / N), **opts)
    assert W.status == V.status == "completed"
    assert np.linalg.norm(W.W / scale - V.W) <= 1e-9 * np.linalg.norm(V.W)
    # the autoencoder from 1e80 W0: no ZeroDivisionError; the singular values fall by 1e80,
    # which is no collapse (the state stays on M_k)
    r = manifold_flow(X, None, 1e80 * W0, N, 1.0)
    assert r.status == "completed" and np.all(np.isfinite(r.W))


def test_huge_data_is_computed_on_its_time_scale_and_refused_beyond():
    """Data scaled by c = 1e100: W(t; c X) = W(c^2 t; X). Up to t = 1e-200 it is computed; up to
    t = 1 RK45 would need ~1e200 steps: the run ends promptly with a message that says so
    (not one about fixed-step stability)."""
    X, W0 = _flow_problem()
    ref = manifold_flow(X, None, W0, 2, 1.0, rtol=1e-10, atol=1e-12)
    r = manifold_flow(1e100 * X, None, W0, 2, 1e-200, rtol=1e-10, atol=1e-12)
    assert r.status == "completed"
    assert np.linalg.norm(r.W - ref.W) <= 1e-7 * np.linalg.norm(ref.W)
    for res in (manifold_flow(1e100 * X, None, W0, 2, 1.0),
                factor_flow(1e100 * X, None, balanced_factors(W0, (6, 3, 6), seed=0), 1.0)):
        assert res.status == "failed" and res.nsteps <= 1000
        assert "stiff" in res.message and "c^2 t" in res.message
        assert "fixed step" not in res.message


def test_depth_1e9_ends_promptly_with_a_reason():
    """At depth N the core weights grow like N (w_ii = N s_i^(2(N-1)/N)): the flow is stiff with
    rates ~N, RK45 needs ~N t_end steps. Depth 1e9 to t_end = 1 is refused after a few hundred
    steps; a short t_end is computed; max_steps lifts the guard."""
    X, W0 = _flow_problem()
    r = manifold_flow(X, None, W0, 10**9, 1.0)
    assert r.status == "failed" and r.nsteps <= 1000
    assert "stiff" in r.message and "N = 1000000000" in r.message and "max_steps" in r.message
    short = manifold_flow(X, None, W0, 10**9, 2e-8)
    assert short.status == "completed"
    capped = manifold_flow(X, None, W0, 10**9, 1.0, max_steps=150)
    assert capped.status == "failed" and "max_steps" in capped.message and capped.nsteps == 150
