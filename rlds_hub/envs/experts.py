"""Scripted expert policies for the demo tasks: small classical controllers on a few floats.

Each expert reads the named observation fields, computes a scalar or 2-vector control in plain
Python / NumPy, and returns an action matching the environment's action spec exactly (dtype,
shape, clipped to the bounds): float64 for dm_control, float32 for Gymnasium Box actions.

Gains were tuned by running episodes (see ``tests/envs/test_envs.py`` for the returns they reach);
the cartpole LQR gains come from a discrete-time LQR on the MuJoCo model linearised about the
upright state (state ``[x, θ, ẋ, θ̇]``, control dt 0.01 s, Q = diag(1, 10, 1, 1), R = 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import dm_env
import numpy as np
from dm_env import specs

__all__ = [
    "EXPERTS",
    "CartpoleBalanceExpert",
    "CartpoleSwingupExpert",
    "PendulumExpert",
    "PointMassExpert",
]


class _ScalarActionExpert:
    """Base for experts with a flat float action: builds the spec-exact action array."""

    def __init__(self, action_spec: specs.Array) -> None:
        if not isinstance(action_spec, specs.Array) or not np.issubdtype(
            action_spec.dtype, np.floating
        ):
            raise TypeError(
                f"{type(self).__name__} needs a flat float action spec, got {action_spec!r}"
            )
        self._dtype = action_spec.dtype
        self._shape = action_spec.shape
        size = int(np.prod(action_spec.shape))
        self._needs_reshape = action_spec.shape != (size,)
        if isinstance(action_spec, specs.BoundedArray):
            low = np.broadcast_to(action_spec.minimum, action_spec.shape)
            high = np.broadcast_to(action_spec.maximum, action_spec.shape)
        else:
            low = np.full(action_spec.shape, -np.inf)
            high = np.full(action_spec.shape, np.inf)
        # Plain Python floats: clipping a few values is far cheaper than NumPy calls.
        self._bounds = list(zip(low.ravel().tolist(), high.ravel().tolist(), strict=True))

    def reset(self) -> None:
        """Experts are stateless; nothing to reset."""

    def _action(self, *controls: float) -> np.ndarray:
        """Clips ``controls`` to the spec bounds and returns them with the spec's dtype/shape."""
        clipped = [
            min(max(control, low), high)
            for control, (low, high) in zip(controls, self._bounds, strict=True)
        ]
        action = np.array(clipped, dtype=self._dtype)
        return action.reshape(self._shape) if self._needs_reshape else action


class PointMassExpert(_ScalarActionExpert):
    """PD controller driving the point mass to the target at the origin.

    ``dm_control/point_mass-easy``: observation ``position`` (x, y) and ``velocity``; actions
    are forces per axis in [-1, 1]. The reward is highest inside the target with small control,
    so the gains are moderate: fast approach, little steady-state effort.
    """

    def __init__(self, action_spec: specs.Array, kp: float = 30.0, kd: float = 2.0) -> None:
        super().__init__(action_spec)
        self._kp, self._kd = kp, kd

    def __call__(self, timestep: dm_env.TimeStep) -> np.ndarray:
        """Returns the PD force toward the origin."""
        obs = timestep.observation
        (x, y), (vx, vy) = obs["position"].tolist(), obs["velocity"].tolist()
        return self._action(-self._kp * x - self._kd * vx, -self._kp * y - self._kd * vy)


# Discrete-time LQR gains for the dm_control cartpole about upright, state [x, θ, ẋ, θ̇].
_CARTPOLE_LQR = (-0.8866, -9.7719, -1.5354, -2.6154)


def _cartpole_state(timestep: dm_env.TimeStep) -> tuple[float, float, float, float]:
    """(x, θ, ẋ, θ̇) from dm_control cartpole's ``position`` [x, cos θ, sin θ] and ``velocity``."""
    obs = timestep.observation
    x, cos_theta, sin_theta = obs["position"].tolist()
    x_dot, theta_dot = obs["velocity"].tolist()
    return x, math.atan2(sin_theta, cos_theta), x_dot, theta_dot


def _lqr(x: float, theta: float, x_dot: float, theta_dot: float) -> float:
    k_x, k_theta, k_x_dot, k_theta_dot = _CARTPOLE_LQR
    return -(k_x * x + k_theta * theta + k_x_dot * x_dot + k_theta_dot * theta_dot)


class CartpoleBalanceExpert(_ScalarActionExpert):
    """LQR state feedback keeping the pole upright and the cart centred (``cartpole-balance``)."""

    def __call__(self, timestep: dm_env.TimeStep) -> np.ndarray:
        """Returns the LQR force."""
        return self._action(_lqr(*_cartpole_state(timestep)))


class CartpoleSwingupExpert(_ScalarActionExpert):
    """Energy-pumping swing-up, then LQR once the pole is near upright (``cartpole-swingup``).

    With θ = 0 upright the pole obeys θ̈ ≈ ω² sin θ − b u cos θ (ω² ≈ 15.3, b ≈ 14.1 for the
    dm_control model), so ``E = ½θ̇² + ω²(cos θ − 1)`` is 0 upright at rest and changes as
    ``dE/dt = −b u θ̇ cos θ``. Pushing ``u = k E θ̇ cos θ`` raises E to 0; a weak PD term keeps
    the cart near the rail centre. The LQR takes over within ``catch_angle`` of upright.
    """

    def __init__(
        self,
        action_spec: specs.Array,
        pump_gain: float = 0.2,
        center_gain: float = 0.6,
        center_damping: float = 0.8,
        catch_angle: float = 0.5,
        omega_sq: float = 15.26,
    ) -> None:
        super().__init__(action_spec)
        self._pump_gain, self._catch_angle, self._omega_sq = pump_gain, catch_angle, omega_sq
        self._center_gain, self._center_damping = center_gain, center_damping

    def __call__(self, timestep: dm_env.TimeStep) -> np.ndarray:
        """Returns the swing-up or stabilising force."""
        x, theta, x_dot, theta_dot = _cartpole_state(timestep)
        if abs(theta) < self._catch_angle:
            return self._action(_lqr(x, theta, x_dot, theta_dot))
        energy = 0.5 * theta_dot * theta_dot + self._omega_sq * (math.cos(theta) - 1.0)
        pump = self._pump_gain * energy * theta_dot * math.cos(theta)
        return self._action(pump - self._center_gain * x - self._center_damping * x_dot)


class PendulumExpert(_ScalarActionExpert):
    """Energy swing-up then PD balance for ``gym/Pendulum-v1`` (θ = 0 upright, torque ≤ 2).

    Dynamics: θ̈ = 15 sin θ + 3 u, so ``E = ½θ̇² + 15(cos θ − 1)`` changes as ``dE/dt = 3 u θ̇``;
    the swing-up applies full torque along ``−E θ̇`` until near upright, then PD holds it.
    """

    def __init__(
        self,
        action_spec: specs.Array,
        kp: float = 10.0,
        kd: float = 2.0,
        catch_cos: float = 0.9,
    ) -> None:
        super().__init__(action_spec)
        self._kp, self._kd, self._catch_cos = kp, kd, catch_cos
        self._max_torque = max(high for _, high in self._bounds)

    def __call__(self, timestep: dm_env.TimeStep) -> np.ndarray:
        """Returns the swing-up or balancing torque."""
        cos_theta, sin_theta, theta_dot = np.asarray(timestep.observation).tolist()
        theta = math.atan2(sin_theta, cos_theta)
        if cos_theta > self._catch_cos:
            return self._action(-self._kp * theta - self._kd * theta_dot)
        energy = 0.5 * theta_dot * theta_dot + 15.0 * (cos_theta - 1.0)
        push = -energy * theta_dot
        if push == 0.0:  # at rest at the bottom: any push starts the swing
            push = 1.0
        return self._action(math.copysign(self._max_torque, push))


def _from_spec(
    expert_cls: Callable[[specs.Array], Any],
) -> Callable[[dm_env.Environment, int | None], Any]:
    def factory(env: dm_env.Environment, seed: int | None = None) -> Any:
        del seed  # the experts are deterministic
        return expert_cls(env.action_spec())

    return factory


# Canonical env name -> factory(env, seed) -> policy.
EXPERTS: dict[str, Callable[[dm_env.Environment, int | None], Any]] = {
    "dm_control/point_mass-easy": _from_spec(PointMassExpert),
    "dm_control/cartpole-balance": _from_spec(CartpoleBalanceExpert),
    "dm_control/cartpole-swingup": _from_spec(CartpoleSwingupExpert),
    "gym/Pendulum-v1": _from_spec(PendulumExpert),
}
