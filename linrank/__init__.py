"""linrank: geometry and training dynamics of deep linear neural networks.

Implements the Riemannian geometry of Bah, Rauhut, Terstiege and Westdickenberg (2019),
"Learning deep linear neural networks: Riemannian gradient flows and convergence to global
minimizers": the metric g_W(a, b) = <A_W^{-1} a, b> on the manifold of rank-k matrices.
"""

from ._version import __version__ as __version__  # written in linrank/_version.py only
from .baselines import NuclearNormCompletion, nuclear_norm_completion
from .connection import christoffel, levi_civita, riemannian_hessian
from .critical import AutoencoderProblem, CriticalPoint, closed_form_spectrum, critical_points
from .data import LinearData, as_data, gaussian_data, rank_constrained_minimizer, top_projector
from .diagnostics import check_gradient, check_hessian, hessian_spectrum
from .flows import FlowResult, adaptive_rank_flow, factor_flow, manifold_flow, riemannian_flow
from .manifold import DeepLinearFixedRank, FactorGradient, FixedRankPoint, TangentVector
from .measures import effective_rank, unobserved_error
from .metric import core_weights, metric_weights, side_weights
from .network import balanced_factors, conserved_quantities, gaussian_factors, imbalance, product
from .problems import (
    ambient_problem,
    autograd_problem,
    least_squares_problem,
    matrix_completion_problem,
    matrix_sensing_problem,
)

__all__ = [
    "riemannian_hessian",
    "levi_civita",
    "christoffel",
    "check_gradient",
    "check_hessian",
    "hessian_spectrum",
    "critical_points",
    "closed_form_spectrum",
    "CriticalPoint",
    "AutoencoderProblem",
    "DeepLinearFixedRank",
    "FactorGradient",
    "FixedRankPoint",
    "TangentVector",
    "core_weights",
    "side_weights",
    "metric_weights",
    "ambient_problem",
    "autograd_problem",
    "least_squares_problem",
    "matrix_completion_problem",
    "matrix_sensing_problem",
    "rank_constrained_minimizer",
    "FlowResult",
    "factor_flow",
    "manifold_flow",
    "riemannian_flow",
    "adaptive_rank_flow",
    "LinearData",
    "as_data",
    "balanced_factors",
    "gaussian_factors",
    "conserved_quantities",
    "effective_rank",
    "unobserved_error",
    "nuclear_norm_completion",
    "NuclearNormCompletion",
    "gaussian_data",
    "imbalance",
    "product",
    "top_projector",
    "compare",
    "sweep",
    "sweep_rerun",
    "sweep_report",
    "search",
]

#: Names imported on first use: the experiments pull in joblib, scipy.stats and matplotlib.
_LAZY = {
    "compare": ("linrank.experiments.compare", "compare"),
    "sweep": ("linrank.experiments.sweep", "sweep"),
    "sweep_rerun": ("linrank.experiments.sweep", "rerun"),
    "sweep_report": ("linrank.experiments.sweep", "write_report"),
    "search": ("linrank.experiments.search", "search"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'linrank' has no attribute {name!r}")
