"""linrank.deprecation.moved_module: the alias left at a moved module's old path (its use by the
problems' old paths is tested in tests/test_problems_shims.py)."""

from __future__ import annotations

import types

import pytest

from linrank.deprecation import moved_module


def test_alias_warns_at_the_caller_and_forwards_attributes():
    new = types.ModuleType("pkg.new")
    new.x = object()

    def alias_body():  # stands for the old module's body; the warning names its caller
        return moved_module("pkg.old", new)

    with pytest.warns(DeprecationWarning, match=r"^pkg\.old is deprecated: import from pkg\.new "
                      r"instead$") as record:
        getattr_ = alias_body()
    assert record[0].filename == __file__
    assert getattr_("x") is new.x
    with pytest.raises(AttributeError):
        getattr_("missing")


@pytest.mark.parametrize("old, new", [(None, types), ("pkg.old", "pkg.new")])
def test_bad_arguments_are_named(old, new):
    with pytest.raises(TypeError, match="old module's name"):
        moved_module(old, new)
