"""Butcher tableaux of the explicit Runge-Kutta methods of the flows.

Dormand-Prince 5(4) (Hairer, Norsett, Wanner I, Table 5.2) with the coefficients of scipy's
``scipy.integrate.RK45`` (tests/test_flows_package.py checks them against scipy's), the classical
fourth-order method and explicit Euler. Row ``A[i]`` holds the coefficients of stage ``i`` on the
slopes of stages 0..i-1; ``E`` is the difference of the fifth- and fourth-order weights on the
seven slopes of an RK45 step (the seventh at the new point, first-same-as-last).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ADAPTIVE", "DOPRI5", "EULER", "METHODS", "RK4", "Tableau"]


@dataclass(frozen=True)
class Tableau:
    """An explicit Runge-Kutta method: stage rows ``A``, weights ``B``, error weights ``E``
    (None for a fixed-step method) and the order of the error estimate's lower method."""

    A: tuple[tuple[float, ...], ...]
    B: tuple[float, ...]
    E: tuple[float, ...] | None = None
    error_order: int = 4


DOPRI5 = Tableau(
    A=(
        (),
        (1 / 5,),
        (3 / 40, 9 / 40),
        (44 / 45, -56 / 15, 32 / 9),
        (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
        (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    ),
    B=(35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
    E=(-71 / 57600, 0.0, 71 / 16695, -71 / 1920, 17253 / 339200, -22 / 525, 1 / 40),
)
RK4 = Tableau(A=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)), B=(1 / 6, 1 / 3, 1 / 3, 1 / 6))
EULER = Tableau(A=((),), B=(1.0,))

#: the accepted spellings of the ``method`` option and their canonical names
METHODS = {"rk45": "RK45", "rk4": "RK4", "euler": "Euler", "rosenbrock": "Rosenbrock",
           "ros34pw2": "Rosenbrock", "auto": "auto"}
#: the methods that adapt their step (the others take the fixed ``step``)
ADAPTIVE = ("RK45", "Rosenbrock", "auto")
