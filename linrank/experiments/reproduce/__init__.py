"""The reproduction of the paper's Section 7 (linrank.experiments.reproduce)."""
