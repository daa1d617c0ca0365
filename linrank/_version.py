"""linrank's version: written here only.

pyproject.toml reads it (``[tool.setuptools.dynamic]``, statically, without importing linrank),
``linrank.__version__`` and ``linrank --version`` import it. Bump it here and in CHANGELOG.md.
"""

__version__ = "0.1.0"
