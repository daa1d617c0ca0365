"""Butcher tableaux of the explicit Runge-Kutta methods of the flows.

Dormand-Prince 5(4) (Hairer, Norsett, Wanner I, Table 5.2) with the coefficients of scipy's
``scipy.integrate.RK45`` (tests/test_flows_package.py checks them against scipy's), the classical
fourth-order method and explicit Euler. Row ``A[i]`` holds the coefficients of stage ``i`` on the
slopes of stages 0..i-1; ``E`` is the difference of the fifth- and fourth-order weights on the
seven slopes of an RK45 step (the seventh at the new point, first-same-as-last).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ADAPTIVE", "DOPRI5", "DOPRI5_DENSE", "EULER", "METHODS", "RK4", "Tableau",
           "dense_weights"]


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
#: Dormand-Prince's continuous extension (Hairer, Norsett, Wanner I, Sec. II.6; scipy's
#: ``RK45.P``): the state at t + theta h is y + h sum_j b_j(theta) K_j with
#: b_j(theta) = sum_p P[j][p] theta^(p+1), over the seven slopes of the step (order 4).
DOPRI5_DENSE = (
    (1.0, -8048581381 / 2820520608, 8663915743 / 2820520608, -12715105075 / 11282082432),
    (0.0, 0.0, 0.0, 0.0),
    (0.0, 131558114200 / 32700410799, -68118460800 / 10900136933,
     87487479700 / 32700410799),
    (0.0, -1754552775 / 470086768, 14199869525 / 1410260304, -10690763975 / 1880347072),
    (0.0, 127303824393 / 49829197408, -318862633887 / 49829197408,
     701980252875 / 199316789632),
    (0.0, -282668133 / 205662961, 2019193451 / 616988883, -1453857185 / 822651844),
    (0.0, 40617522 / 29380423, -110615467 / 29380423, 69997945 / 29380423),
)


def dense_weights(method: str, theta: float) -> list[float]:
    """The weights b_j(theta) of the continuous extension of ``method`` at the fraction theta of
    a step: Dormand-Prince's (order 4, seven slopes) for RK45, the classical one of RK4 (order 3:
    b_1 = theta - 3 theta^2 / 2 + 2 theta^3 / 3, b_2 = b_3 = theta^2 - 2 theta^3 / 3,
    b_4 = -theta^2 / 2 + 2 theta^3 / 3); Euler's is linear (b_1 = theta). ``"hermite"``: the
    cubic Hermite interpolant of a step (stiff steps, :mod:`linrank.flows.stiff`) from the slopes
    (F_n, F_{n+1}, Delta/h), Delta = y_{n+1} - y_n: weights (theta - 2 theta^2 + theta^3,
    theta^3 - theta^2, 3 theta^2 - 2 theta^3), local error O(h^4)."""
    if method == "hermite":
        t2, t3 = theta * theta, theta ** 3
        return [theta - 2.0 * t2 + t3, t3 - t2, 3.0 * t2 - 2.0 * t3]
    if method == "RK45":
        return [sum(c * theta ** (p + 1) for p, c in enumerate(row)) for row in DOPRI5_DENSE]
    if method == "RK4":
        t2, t3 = theta * theta, theta ** 3
        mid = t2 - 2.0 * t3 / 3.0
        return [theta - 1.5 * t2 + 2.0 * t3 / 3.0, mid, mid, -0.5 * t2 + 2.0 * t3 / 3.0]
    return [theta]


RK4 = Tableau(A=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)), B=(1 / 6, 1 / 3, 1 / 3, 1 / 6))
EULER = Tableau(A=((),), B=(1.0,))

#: the accepted spellings of the ``method`` option and their canonical names
METHODS = {"rk45": "RK45", "rk4": "RK4", "euler": "Euler", "rosenbrock": "Rosenbrock",
           "ros34pw2": "Rosenbrock", "auto": "auto"}
#: the methods that adapt their step (the others take the fixed ``step``)
ADAPTIVE = ("RK45", "Rosenbrock", "auto")
