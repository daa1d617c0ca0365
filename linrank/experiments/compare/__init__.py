"""The solver comparison (linrank.experiments.compare)."""
