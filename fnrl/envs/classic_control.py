"""Pure-JAX classic-control environments matching envpool 1.2.5 (and gymnasium's dynamics).

`cartpole()`, `acrobot()`, `mountain_car()`, `mountain_car_continuous()` and `pendulum()` each
return one unbatched `fnrl.types.Env` (AgentNet's symbolic `BaseEnvironment`, row K1, as a pure
`step(state, action)`): batch it with `jax.vmap`, run it inside `jit` / `lax.scan`.

Semantics (checked against envpool step by step in the tests):
- Observations, reset distributions, integrators, rewards and termination follow gymnasium's
  `classic_control` sources, which envpool mirrors; the physics runs in jax's default float
  (float32, or float64 under `jax_enable_x64`, where it agrees with envpool's double state).
- The time limit (envpool's `max_episode_steps`) is reported as `truncated`. Where the last
  allowed step also terminates, fnrl reports `terminated=True, truncated=False` (envpool reports
  the opposite): a real terminal must not be bootstrapped, and the flags stay exclusive.
- These raw envs never reset by themselves; every `step` returns `valid=True`. After a done step
  the physics simply keeps going: resetting envpool-style is the auto-reset wrapper's job, using
  `state.key` (the key kept for the next reset).
- Actions: discrete actions are int scalars and out-of-range values are clipped to the nearest
  valid action (values cannot raise under `jit`; envpool's behaviour there is undefined).
  Continuous actions are float `[1]`, clipped to the bounds by the physics as gymnasium and
  envpool do; MountainCarContinuous's control cost uses the *unclipped* action, as both do.
  A wrong dtype or shape raises a ValueError naming `action`.

`state_from_observation` rebuilds a state from an observation, to start from a given physical
state (e.g. to follow an envpool episode); `ClassicControlState(physics, t, key)` does it directly.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnrl._validation import check_array
from fnrl.types import Array, ArrayLike, Env, EnvSpec, PRNGKey, Spec, TimeStep


class ClassicControlState(NamedTuple):
    """State of one classic-control env.

    Attributes:
      physics: `[d]` float physical state; its layout is given in each constructor's docstring.
      t: int32 scalar, steps taken since the last reset (compared with `max_episode_steps`).
      key: PRNG key reserved for the next reset.
    """

    physics: Array
    t: Array
    key: PRNGKey


class _Dynamics(NamedTuple):
    """What distinguishes one classic-control task; `_make_env` turns it into an `Env`."""

    name: str
    reset_low: tuple[float, ...]
    reset_high: tuple[float, ...]
    # (physics, checked action) -> (next physics, reward, terminated)
    transition: Callable[[Array, Array], tuple[Array, Array, Array]]
    observe: Callable[[Array], Array]
    from_observation: Callable[[Array], Array]
    observation_bounds: tuple[tuple[float, ...], tuple[float, ...]]
    action: Spec  # dtype filled in at call time with jax's default float for continuous actions


def _float_dtype() -> np.dtype:
    """jax's default float: float32, or float64 when `jax_enable_x64` is on."""
    return np.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))


def _check_key(key: PRNGKey, fn: str) -> PRNGKey:
    """Accepts a typed key (`jax.random.key`) or a raw uint32[2] key (`jax.random.PRNGKey`)."""
    dtype, shape = getattr(key, "dtype", None), tuple(getattr(key, "shape", (None,)))
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        ok = shape == ()
    else:
        ok = dtype == np.uint32 and shape == (2,)
    if not ok:
        raise ValueError(
            f"{fn}: argument `key` must be one PRNG key (jax.random.key(...) or a uint32[2] "
            f"jax.random.PRNGKey), got dtype {dtype} and shape {shape}"
        )
    return key


def _check_action(dyn: _Dynamics, action: ArrayLike, fn: str) -> Array:
    """Validates dtype/shape statically; clips discrete values (they cannot raise under jit)."""
    if dyn.action.num_values is not None:
        action = check_array("action", action, kind="int", rank=0, fn=fn)
        return jnp.clip(action, 0, dyn.action.num_values - 1)
    action = check_array("action", action, kind="float", shape=dyn.action.shape, fn=fn)
    return action.astype(_float_dtype())


def _spec(dyn: _Dynamics) -> EnvSpec:
    """Observation and action specs, floats in jax's default float dtype."""
    dtype = _float_dtype()
    low, high = (np.asarray(b, dtype) for b in dyn.observation_bounds)
    observation = Spec(low.shape, dtype, minimum=low, maximum=high)
    action = dyn.action
    if action.num_values is None:
        action = Spec(
            action.shape,
            dtype,
            minimum=np.asarray(action.minimum, dtype),
            maximum=np.asarray(action.maximum, dtype),
        )
    return EnvSpec(observation=observation, action=action)


def _check_max_episode_steps(max_episode_steps: int, fn: str) -> int:
    ok = isinstance(max_episode_steps, (int, np.integer)) and not isinstance(max_episode_steps, bool)
    if not ok or max_episode_steps < 1:
        raise ValueError(
            f"{fn}: argument `max_episode_steps` must be an int >= 1, got {max_episode_steps!r}"
        )
    return int(max_episode_steps)


def _make_env(dyn: _Dynamics, max_episode_steps: int) -> Env:
    """Builds `reset`/`step`/`spec` around one task's dynamics and a time limit.

    reset: physics ~ U(reset_low, reset_high), t = 0, reward 0.
    step:  (physics', r, terminated) = transition(physics, a), t' = t + 1,
           truncated = (t' >= max_episode_steps) and not terminated.
    """
    limit = _check_max_episode_steps(max_episode_steps, dyn.name)

    def reset(key: PRNGKey) -> tuple[ClassicControlState, TimeStep]:
        key = _check_key(key, f"{dyn.name}.reset")
        sample_key, next_key = jax.random.split(key)
        dtype = _float_dtype()
        low, high = jnp.asarray(dyn.reset_low, dtype), jnp.asarray(dyn.reset_high, dtype)
        physics = jax.random.uniform(sample_key, low.shape, dtype, low, high)
        state = ClassicControlState(physics, jnp.zeros((), jnp.int32), next_key)
        false = jnp.zeros((), bool)
        return state, TimeStep(dyn.observe(physics), jnp.zeros((), dtype), false, false, ~false)

    def step(state: ClassicControlState, action: ArrayLike) -> tuple[ClassicControlState, TimeStep]:
        fn = f"{dyn.name}.step"
        physics = check_array("state.physics", state.physics, shape=(len(dyn.reset_low),), fn=fn)
        action = _check_action(dyn, action, fn)
        physics, reward, terminated = dyn.transition(physics.astype(_float_dtype()), action)
        t = state.t + 1
        truncated = (t >= limit) & ~terminated
        timestep = TimeStep(dyn.observe(physics), reward, terminated, truncated, jnp.ones((), bool))
        return ClassicControlState(physics, t, state.key), timestep

    return Env(reset=reset, step=step, spec=functools.partial(_spec, dyn), num_envs=None, is_jax=True)


def _identity(x: Array) -> Array:
    return x


# ---------------------------------------------------------------------------------------------
# CartPole


_CARTPOLE_THETA_LIMIT = 12 * 2 * math.pi / 360  # radians
_CARTPOLE_X_LIMIT = 2.4


def _cartpole_transition(physics: Array, action: Array) -> tuple[Array, Array, Array]:
    """Cart-pole equations of motion, one explicit-Euler step of τ = 0.02 s (Barto et al. 1983;
    corrected derivation: Florian 2007, "Correct equations for the dynamics of the cart-pole").

        tmp = (F + m_p·l·θ̇²·sin θ) / (m_c + m_p)
        θ̈  = (g·sin θ − cos θ·tmp) / (l·(4/3 − m_p·cos²θ / (m_c + m_p)))
        ẍ  = tmp − m_p·l·θ̈·cos θ / (m_c + m_p)

    with F = ±10 N, g = 9.8, m_c = 1, m_p = 0.1, l = 0.5 (half the pole). Reward 1 on every step;
    terminated when |x| > 2.4 or |θ| > 12°.
    """
    gravity, mass_cart, mass_pole, half_length, tau = 9.8, 1.0, 0.1, 0.5, 0.02
    total_mass = mass_cart + mass_pole
    x, x_dot, theta, theta_dot = physics
    force = jnp.where(action == 1, 10.0, -10.0).astype(physics.dtype)
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    tmp = (force + mass_pole * half_length * theta_dot**2 * sin) / total_mass
    theta_acc = (gravity * sin - cos * tmp) / (
        half_length * (4.0 / 3.0 - mass_pole * cos**2 / total_mass)
    )
    x_acc = tmp - mass_pole * half_length * theta_acc * cos / total_mass
    new = jnp.stack(
        [x + tau * x_dot, x_dot + tau * x_acc, theta + tau * theta_dot, theta_dot + tau * theta_acc]
    )
    terminated = (jnp.abs(new[0]) > _CARTPOLE_X_LIMIT) | (jnp.abs(new[2]) > _CARTPOLE_THETA_LIMIT)
    return new, jnp.ones((), physics.dtype), terminated


_CARTPOLE = _Dynamics(
    name="cartpole",
    reset_low=(-0.05,) * 4,
    reset_high=(0.05,) * 4,
    transition=_cartpole_transition,
    observe=_identity,
    from_observation=_identity,
    observation_bounds=(
        (-2 * _CARTPOLE_X_LIMIT, -np.inf, -2 * _CARTPOLE_THETA_LIMIT, -np.inf),
        (2 * _CARTPOLE_X_LIMIT, np.inf, 2 * _CARTPOLE_THETA_LIMIT, np.inf),
    ),
    action=Spec((), np.int32, num_values=2),
)


def cartpole(max_episode_steps: int = 500) -> Env:
    """CartPole-v1 (Barto, Sutton & Anderson 1983): balance a pole on a cart pushed left or right.

    physics = observation = [x, ẋ, θ, θ̇]; reset ~ U(−0.05, 0.05)⁴. Actions: 0 push left,
    1 push right. Dynamics and reward: `_cartpole_transition`. `max_episode_steps` defaults to
    envpool's 500.
    """
    return _make_env(_CARTPOLE, max_episode_steps)


# ---------------------------------------------------------------------------------------------
# Acrobot


_ACROBOT_MAX_VEL = (4 * math.pi, 9 * math.pi)


def _acrobot_derivatives(y: Array, torque: Array) -> Array:
    """Acrobot equations of motion, "book" variant (Sutton & Barto 1998, §11.3; Spong 1995).

        d₁ = m₁l꜀₁² + m₂(l₁² + l꜀₂² + 2l₁l꜀₂ cos θ₂) + I₁ + I₂,   d₂ = m₂(l꜀₂² + l₁l꜀₂ cos θ₂) + I₂
        φ₂ = m₂l꜀₂g cos(θ₁ + θ₂ − π/2)
        φ₁ = −m₂l₁l꜀₂θ̇₂² sin θ₂ − 2m₂l₁l꜀₂θ̇₂θ̇₁ sin θ₂ + (m₁l꜀₁ + m₂l₁)g cos(θ₁ − π/2) + φ₂
        θ̈₂ = (τ + d₂/d₁·φ₁ − m₂l₁l꜀₂θ̇₁² sin θ₂ − φ₂) / (m₂l꜀₂² + I₂ − d₂²/d₁),   θ̈₁ = −(d₂θ̈₂ + φ₁)/d₁

    with m = l = I = 1, l꜀ = 0.5, g = 9.8. Returns dy/dt for y = [θ₁, θ₂, θ̇₁, θ̇₂].
    """
    m1 = m2 = l1 = inertia = 1.0
    lc1 = lc2 = 0.5
    g = 9.8
    theta1, theta2, dtheta1, dtheta2 = y
    d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * jnp.cos(theta2)) + 2 * inertia
    d2 = m2 * (lc2**2 + l1 * lc2 * jnp.cos(theta2)) + inertia
    phi2 = m2 * lc2 * g * jnp.cos(theta1 + theta2 - math.pi / 2.0)
    phi1 = (
        -m2 * l1 * lc2 * dtheta2**2 * jnp.sin(theta2)
        - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * jnp.sin(theta2)
        + (m1 * lc1 + m2 * l1) * g * jnp.cos(theta1 - math.pi / 2)
        + phi2
    )
    ddtheta2 = (torque + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * jnp.sin(theta2) - phi2) / (
        m2 * lc2**2 + inertia - d2**2 / d1
    )
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    return jnp.stack([dtheta1, dtheta2, ddtheta1, ddtheta2])


def _rk4(derivatives: Callable[[Array], Array], y: Array, dt: float) -> Array:
    """One classical Runge-Kutta step: y + dt/6·(k₁ + 2k₂ + 2k₃ + k₄) (Runge 1895; Kutta 1901)."""
    k1 = derivatives(y)
    k2 = derivatives(y + dt / 2 * k1)
    k3 = derivatives(y + dt / 2 * k2)
    k4 = derivatives(y + dt * k3)
    return y + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)


def _wrap_angle(x: Array) -> Array:
    """Maps an angle into [−π, π) by whole turns."""
    return jnp.mod(x + math.pi, 2 * math.pi) - math.pi


def _acrobot_transition(physics: Array, action: Array) -> tuple[Array, Array, Array]:
    """One RK4 step of dt = 0.2 s with torque a − 1 ∈ {−1, 0, 1}; angles wrapped to [−π, π],
    velocities clipped to ±4π and ±9π. Reward −1, and 0 on the terminal step; terminated when the
    tip is a link length above the pivot: −cos θ₁ − cos(θ₁ + θ₂) > 1.
    """
    torque = (action - 1).astype(physics.dtype)
    y = _rk4(lambda s: _acrobot_derivatives(s, torque), physics, 0.2)
    new = jnp.stack(
        [
            _wrap_angle(y[0]),
            _wrap_angle(y[1]),
            jnp.clip(y[2], -_ACROBOT_MAX_VEL[0], _ACROBOT_MAX_VEL[0]),
            jnp.clip(y[3], -_ACROBOT_MAX_VEL[1], _ACROBOT_MAX_VEL[1]),
        ]
    )
    terminated = -jnp.cos(new[0]) - jnp.cos(new[1] + new[0]) > 1.0
    reward = jnp.where(terminated, 0.0, -1.0).astype(physics.dtype)
    return new, reward, terminated


def _acrobot_observe(physics: Array) -> Array:
    theta1, theta2, dtheta1, dtheta2 = physics
    cos, sin = jnp.cos, jnp.sin
    return jnp.stack([cos(theta1), sin(theta1), cos(theta2), sin(theta2), dtheta1, dtheta2])


def _acrobot_from_observation(obs: Array) -> Array:
    return jnp.stack([jnp.arctan2(obs[1], obs[0]), jnp.arctan2(obs[3], obs[2]), obs[4], obs[5]])


_ACROBOT = _Dynamics(
    name="acrobot",
    reset_low=(-0.1,) * 4,
    reset_high=(0.1,) * 4,
    transition=_acrobot_transition,
    observe=_acrobot_observe,
    from_observation=_acrobot_from_observation,
    observation_bounds=(
        (-1.0, -1.0, -1.0, -1.0, -_ACROBOT_MAX_VEL[0], -_ACROBOT_MAX_VEL[1]),
        (1.0, 1.0, 1.0, 1.0, _ACROBOT_MAX_VEL[0], _ACROBOT_MAX_VEL[1]),
    ),
    action=Spec((), np.int32, num_values=3),
)


def acrobot(max_episode_steps: int = 500) -> Env:
    """Acrobot-v1 (Sutton 1996; Sutton & Barto 1998): swing a two-link arm's tip above a line
    by torquing the middle joint.

    physics = [θ₁, θ₂, θ̇₁, θ̇₂], reset ~ U(−0.1, 0.1)⁴; observation
    [cos θ₁, sin θ₁, cos θ₂, sin θ₂, θ̇₁, θ̇₂]. Actions 0, 1, 2 apply torque −1, 0, +1.
    Dynamics and reward: `_acrobot_transition`. `max_episode_steps` defaults to envpool's 500.
    """
    return _make_env(_ACROBOT, max_episode_steps)


# ---------------------------------------------------------------------------------------------
# MountainCar (discrete and continuous)


_MOUNTAIN_CAR_BOUNDS = ((-1.2, -0.07), (0.6, 0.07))


def _mountain_car_physics(physics: Array, push: Array) -> Array:
    """Moore (1990)'s hill: v' = clip(v + push − 0.0025·cos 3x, ±0.07), x' = clip(x + v', −1.2, 0.6);
    hitting the left wall stops the car (v' = 0 when x' = −1.2 and v' < 0).
    """
    (min_x, min_v), (max_x, max_v) = _MOUNTAIN_CAR_BOUNDS
    x, v = physics
    v = jnp.clip(v + push - 0.0025 * jnp.cos(3 * x), min_v, max_v)
    x = jnp.clip(x + v, min_x, max_x)
    v = jnp.where((x == min_x) & (v < 0), 0.0, v)
    return jnp.stack([x, v])


def _mountain_car_transition(physics: Array, action: Array) -> tuple[Array, Array, Array]:
    """push = (a − 1)·0.001; reward −1 per step; terminated when x ≥ 0.5 and v ≥ 0."""
    new = _mountain_car_physics(physics, (action - 1).astype(physics.dtype) * 0.001)
    terminated = (new[0] >= 0.5) & (new[1] >= 0.0)
    return new, -jnp.ones((), physics.dtype), terminated


def _mountain_car_continuous_transition(physics: Array, action: Array) -> tuple[Array, Array, Array]:
    """push = clip(a, −1, 1)·0.0015; terminated when x ≥ 0.45 and v ≥ 0;
    reward = 100·terminated − 0.1·a² (the unclipped a, as gymnasium and envpool).
    """
    new = _mountain_car_physics(physics, jnp.clip(action[0], -1.0, 1.0) * 0.0015)
    terminated = (new[0] >= 0.45) & (new[1] >= 0.0)
    reward = jnp.where(terminated, 100.0, 0.0) - 0.1 * action[0] ** 2
    return new, reward.astype(physics.dtype), terminated


_MOUNTAIN_CAR = _Dynamics(
    name="mountain_car",
    reset_low=(-0.6, 0.0),
    reset_high=(-0.4, 0.0),
    transition=_mountain_car_transition,
    observe=_identity,
    from_observation=_identity,
    observation_bounds=_MOUNTAIN_CAR_BOUNDS,
    action=Spec((), np.int32, num_values=3),
)

_MOUNTAIN_CAR_CONTINUOUS = _MOUNTAIN_CAR._replace(
    name="mountain_car_continuous",
    transition=_mountain_car_continuous_transition,
    action=Spec((1,), np.float32, minimum=(-1.0,), maximum=(1.0,)),
)


def mountain_car(max_episode_steps: int = 200) -> Env:
    """MountainCar-v0 (Moore 1990; Sutton & Barto 2018, §10.1): an underpowered car must rock
    itself out of a valley.

    physics = observation = [x, v]; reset x ~ U(−0.6, −0.4), v = 0. Actions 0, 1, 2 push left,
    not at all, right. Dynamics and reward: `_mountain_car_transition`. `max_episode_steps`
    defaults to envpool's 200.
    """
    return _make_env(_MOUNTAIN_CAR, max_episode_steps)


def mountain_car_continuous(max_episode_steps: int = 999) -> Env:
    """MountainCarContinuous-v0 (Moore 1990): MountainCar with a continuous push a ∈ [−1, 1]
    (action shape `[1]`), a +100 goal bonus and a 0.1·a² control cost.

    physics = observation = [x, v]; reset as `mountain_car`. Dynamics and reward:
    `_mountain_car_continuous_transition`. `max_episode_steps` defaults to envpool's 999.
    """
    return _make_env(_MOUNTAIN_CAR_CONTINUOUS, max_episode_steps)


# ---------------------------------------------------------------------------------------------
# Pendulum


def _pendulum_transition(physics: Array, action: Array) -> tuple[Array, Array, Array]:
    """Torque-limited inverted pendulum, semi-implicit Euler with dt = 0.05 (g = 10, m = l = 1):

        u = clip(a, −2, 2),   cost = norm(θ)² + 0.1·θ̇² + 0.001·u²
        θ̇' = clip(θ̇ + (3g/(2l)·sin θ + 3u/(m l²))·dt, −8, 8),   θ' = θ + θ̇'·dt

    where norm wraps θ into [−π, π). Reward −cost; never terminates.
    """
    gravity, mass, length, dt = 10.0, 1.0, 1.0, 0.05
    theta, theta_dot = physics
    u = jnp.clip(action[0], -2.0, 2.0)
    cost = _wrap_angle(theta) ** 2 + 0.1 * theta_dot**2 + 0.001 * u**2
    angular_acc = 3 * gravity / (2 * length) * jnp.sin(theta) + 3.0 / (mass * length**2) * u
    theta_dot = theta_dot + angular_acc * dt
    theta_dot = jnp.clip(theta_dot, -8.0, 8.0)
    return jnp.stack([theta + theta_dot * dt, theta_dot]), -cost, jnp.zeros((), bool)


def _pendulum_observe(physics: Array) -> Array:
    return jnp.stack([jnp.cos(physics[0]), jnp.sin(physics[0]), physics[1]])


def _pendulum_from_observation(obs: Array) -> Array:
    return jnp.stack([jnp.arctan2(obs[1], obs[0]), obs[2]])


_PENDULUM = _Dynamics(
    name="pendulum",
    reset_low=(-math.pi, -1.0),
    reset_high=(math.pi, 1.0),
    transition=_pendulum_transition,
    observe=_pendulum_observe,
    from_observation=_pendulum_from_observation,
    observation_bounds=((-1.0, -1.0, -8.0), (1.0, 1.0, 8.0)),
    action=Spec((1,), np.float32, minimum=(-2.0,), maximum=(2.0,)),
)


def pendulum(max_episode_steps: int = 200) -> Env:
    """Pendulum-v1: swing a torque-limited pendulum up and hold it upright (the classic
    swing-up task, e.g. Doya 2000; Lillicrap et al. 2016 used it for DDPG).

    physics = [θ, θ̇] (θ = 0 upright, not wrapped), reset θ ~ U(−π, π), θ̇ ~ U(−1, 1);
    observation [cos θ, sin θ, θ̇]. Action: torque `[1]` in [−2, 2] (clipped). Dynamics and
    reward: `_pendulum_transition`. `max_episode_steps` defaults to envpool's 200.
    """
    return _make_env(_PENDULUM, max_episode_steps)


# ---------------------------------------------------------------------------------------------
# Ids and synchronisation


_TASKS = {
    "CartPole-v1": (cartpole, _CARTPOLE),
    "Acrobot-v1": (acrobot, _ACROBOT),
    "MountainCar-v0": (mountain_car, _MOUNTAIN_CAR),
    "MountainCarContinuous-v0": (mountain_car_continuous, _MOUNTAIN_CAR_CONTINUOUS),
    "Pendulum-v1": (pendulum, _PENDULUM),
}

# gymnasium / envpool id -> constructor (each takes `max_episode_steps=`).
CONSTRUCTORS: dict[str, Callable[..., Env]] = {env_id: make for env_id, (make, _) in _TASKS.items()}


def state_from_observation(
    env_id: str, observation: ArrayLike, key: PRNGKey, t: ArrayLike = 0
) -> ClassicControlState:
    """The state whose observation is `observation`, `t` steps into its episode.

    Angles come back as atan2(sin, cos) (Acrobot, Pendulum); every other entry is copied. The
    Pendulum angle is recovered modulo 2π, which changes neither its dynamics nor its reward.

    Args:
      env_id: a gymnasium id, one of `CONSTRUCTORS`.
      observation: one float observation of that env.
      key: PRNG key the state keeps for its next reset.
      t: steps already taken in the episode (for the time limit).
    """
    fn = "state_from_observation"
    if env_id not in _TASKS:
        raise ValueError(f"{fn}: argument `env_id` must be one of {sorted(_TASKS)}, got {env_id!r}")
    dyn = _TASKS[env_id][1]
    size = len(dyn.observation_bounds[0])
    obs = check_array("observation", observation, kind="numeric", shape=(size,), fn=fn)
    t = check_array("t", t, kind="int", rank=0, fn=fn).astype(jnp.int32)
    physics = dyn.from_observation(obs.astype(_float_dtype()))
    return ClassicControlState(physics, t, _check_key(key, fn))
