"""Pieces shared by the applications (linrank.experiments.shared)."""
