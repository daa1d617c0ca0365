"""The adversarial search for starts (linrank.experiments.search)."""
