"""Sealed cache files: the payload comes back only if complete, unchanged and of the expected
identity; every other file is named with what is wrong with it."""

from __future__ import annotations

import pytest

from linrank.experiments.shared.sealed import CacheMismatch, canonical, read_sealed, write_sealed

ID = {"kind": "test", "seed": 3, "opts": {"tol": 1e-8}, "version": [1, "0.1.0"]}


@pytest.fixture
def sealed(tmp_path):
    path = tmp_path / "a.cache"
    write_sealed(str(path), ID, b"payload \x00\xff bytes")
    return path


def test_round_trip_and_key_order(sealed):
    assert read_sealed(str(sealed), ID) == b"payload \x00\xff bytes"
    assert read_sealed(str(sealed), dict(reversed(list(ID.items())))) == b"payload \x00\xff bytes"
    assert canonical({"b": 1, "a": (1, 2)}) == '{"a":[1,2],"b":1}'


@pytest.mark.parametrize("damage,kind", [
    (lambda raw: raw[:-3], "cut off"),
    (lambda raw: raw.split(b"\n")[0] + b"\n", "cut off"),
    (lambda raw: raw + b"more", "changed"),
    (lambda raw: raw[:-1] + bytes([raw[-1] ^ 1]), "changed"),
    (lambda raw: b"", "unreadable"),
    (lambda raw: b"\x89PNG\r\n\x1a\n" + b"x" * 64, "unreadable"),
    (lambda raw: b"{" * (2 << 20), "unreadable"),
])
def test_damage_is_named(sealed, damage, kind):
    sealed.write_bytes(damage(sealed.read_bytes()))
    with pytest.raises(CacheMismatch, match=f"{sealed} is {kind}") as info:
        read_sealed(str(sealed), ID)
    assert info.value.kind == kind


def test_foreign_and_stale(sealed):
    with pytest.raises(CacheMismatch, match=r"is foreign: it belongs to another run: "
                                            r"seed=3 \(expected 4\)"):
        read_sealed(str(sealed), {**ID, "seed": 4})
    with pytest.raises(CacheMismatch, match=r"is foreign: .*opts\.tol=1e-08 \(expected 1e-06\)"):
        read_sealed(str(sealed), {**ID, "opts": {"tol": 1e-6}})
    with pytest.raises(CacheMismatch, match="is stale: written by another version"):
        read_sealed(str(sealed), {**ID, "version": [2, "0.1.0"]})


def test_identity_edited_in_the_header_is_caught(sealed):
    raw = sealed.read_bytes()
    sealed.write_bytes(raw.replace(b'"seed":3', b'"seed":4', 1))
    with pytest.raises(CacheMismatch, match="is changed"):
        read_sealed(str(sealed), {**ID, "seed": 4})


def test_a_directory_in_place_is_refused(tmp_path):
    (tmp_path / "d.cache").mkdir()
    with pytest.raises(IsADirectoryError, match="move it away"):
        read_sealed(str(tmp_path / "d.cache"), ID)
