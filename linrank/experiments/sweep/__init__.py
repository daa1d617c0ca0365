"""The parameter sweep (linrank.experiments.sweep)."""
