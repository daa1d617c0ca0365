"""Sphinx configuration of linrank's documentation (``make docs``)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

import linrank  # noqa: E402

project = "linrank"
author = "linrank developers"
release = linrank.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    # MathJax 3 shipped with the build (a PyPI package): the pages render their formulas offline,
    # without a CDN; it sets mathjax_path to the copy in _static/mathjax
    "sphinx-mathjax-offline",
    "sphinx.ext.viewcode",
    "numpydoc",
]

# numpydoc: no autosummary tables of members (autodoc lists them), no cross-link guessing of
# every type word in "Parameters" (the library writes shapes there, e.g. "(k,) array").
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"
autodoc_mock_imports: list[str] = []

exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path: list[str] = []
nitpicky = False


def _resolve_through_top_level(app, env, node, contnode):
    """Resolve ``linrank.<module>.<name>`` and bare ``<name>`` references to ``linrank.<name>``.

    The reference documents public names under the top-level package (docs/api.rst), while
    docstrings often cite them through their defining module or without a prefix; this keeps
    those links working when modules are renamed.
    """
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    parts = target.split(".")
    if parts[0] == "linrank":
        parts = parts[2:] if len(parts) > 2 and parts[2] in linrank.__all__ else parts[1:]
    domain = env.get_domain("py")
    if parts and parts[0] in linrank.__all__:
        full = "linrank." + ".".join(parts)
    else:  # a name documented in one module only (e.g. linrank.critical.iter_critical_points)
        hits = [name for name in domain.objects if name.endswith("." + target)]
        if len(hits) != 1:
            return None
        full = hits[0]
    return domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], full, node, contnode
    )


def setup(app):
    app.connect("missing-reference", _resolve_through_top_level)
