"""Developer tools (layout check: ``python -m linrank.devtools.layout``)."""
