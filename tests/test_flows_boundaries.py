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
