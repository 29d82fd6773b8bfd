"""Tests for fnrl/envs/classic_control.py: step-by-step agreement with envpool 1.2.5, one-step
agreement with gymnasium's reference implementation on arbitrary states, jit/vmap, reset
distributions, specs and argument checks.

The envpool comparison runs once under `jax.enable_x64(True)` (a context manager, so 64-bit mode
never leaks into other tests): envpool integrates in double precision, and in float32 Acrobot's
chaotic dynamics drift past 1e-5 after ~250 steps. The float32 run follows a shorter horizon.
"""

from __future__ import annotations

import functools

import envpool
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.envs import classic_control as gym_cc
from hypothesis import given
from hypothesis import strategies as st

from fnrl.envs.classic_control import (
    CONSTRUCTORS,
    ClassicControlState,
    acrobot,
    cartpole,
    mountain_car,
    mountain_car_continuous,
    pendulum,
    state_from_observation,
)
from fnrl.types import Spec
from tests.helpers import floats, jit_variants, variant

# envpool / gymnasium build float64 Box bounds and warn when storing them as float32.
pytestmark = pytest.mark.filterwarnings("ignore:.*precision lowered by casting:UserWarning")

ENV_IDS = list(CONSTRUCTORS)
KEY = jax.random.key(0)
DISCRETE = {"CartPole-v1": 2, "Acrobot-v1": 3, "MountainCar-v0": 3}
# Reset ranges of the physical state (gymnasium's reset sources).
RESET_RANGES = {
    "CartPole-v1": ([-0.05] * 4, [0.05] * 4),
    "Acrobot-v1": ([-0.1] * 4, [0.1] * 4),
    "MountainCar-v0": ([-0.6, 0.0], [-0.4, 0.0]),
    "MountainCarContinuous-v0": ([-0.6, 0.0], [-0.4, 0.0]),
    "Pendulum-v1": ([-np.pi, -1.0], [np.pi, 1.0]),
}


@pytest.fixture(params=[True, False], ids=["x64", "x32"])
def x64(request):
    """Runs the test with jax's default float set to float64 or float32, restored afterwards."""
    with jax.enable_x64(request.param):
        yield request.param


def _random_actions(action_spec: Spec, num_steps: int, seed: int) -> np.ndarray:
    """Uniform discrete actions, or continuous ones reaching 1.5x past the bounds (to be clipped)."""
    rng = np.random.default_rng(seed)
    if action_spec.num_values is not None:
        return rng.integers(0, action_spec.num_values, num_steps).astype(np.int32)
    low, high = 1.5 * np.asarray(action_spec.minimum), 1.5 * np.asarray(action_spec.maximum)
    return rng.uniform(low, high, (num_steps, 1)).astype(np.float32)


def _follow_envpool(env_id: str, num_steps: int, tol: float, **options) -> int:
    """Steps envpool and the JAX env with the same actions, re-synchronising the JAX state at
    every envpool reset step (the step after a done one); returns the number of done steps."""
    pool = envpool.make(env_id, env_type="gymnasium", num_envs=1, seed=7, **options)
    env = CONSTRUCTORS[env_id](**options)
    step = jax.jit(env.step)
    obs, _ = pool.reset()
    state = state_from_observation(env_id, obs[0], KEY)
    after_done, dones = False, 0
    for i, action in enumerate(_random_actions(env.spec().action, num_steps, seed=0)):
        obs, reward, terminated, truncated, _ = pool.step(action[None])
        if after_done:  # envpool's reset step: the action is ignored, a new episode begins
            state, after_done = state_from_observation(env_id, obs[0], KEY), False
            continue
        state, ts = step(state, action)
        where = f"{env_id} step {i}"
        np.testing.assert_allclose(ts.observation, obs[0], rtol=tol, atol=tol, err_msg=where)
        np.testing.assert_allclose(ts.reward, reward[0], rtol=tol, atol=tol, err_msg=where)
        assert (bool(ts.terminated), bool(ts.truncated)) == (terminated[0], truncated[0]), where
        assert bool(ts.valid), where
        after_done = bool(terminated[0] or truncated[0])
        dones += after_done
    return dones


# Episode ends the 500 random steps must cross (terminations for CartPole, time limits else).
_MIN_DONES = {"CartPole-v1": 5, "MountainCar-v0": 2, "Pendulum-v1": 2}


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_matches_envpool(env_id, x64):
    num_steps = 500 if x64 else 150  # float32 Acrobot is chaotic past ~250 steps
    dones = _follow_envpool(env_id, num_steps, tol=1e-5)
    if x64:
        assert dones >= _MIN_DONES.get(env_id, 0)


def test_matches_envpool_with_custom_time_limit():
    with jax.enable_x64(True):
        assert _follow_envpool("Acrobot-v1", 120, tol=1e-5, max_episode_steps=40) == 2


def test_default_time_limits_match_envpool():
    for env_id, make in CONSTRUCTORS.items():
        limit = envpool.make_spec(env_id).config.max_episode_steps
        env = make()
        state, _ = env.reset(KEY)
        action = jnp.zeros(env.spec().action.shape, env.spec().action.dtype)
        _, before = env.step(state._replace(t=jnp.int32(limit - 2)), action)
        _, at = env.step(state._replace(t=jnp.int32(limit - 1)), action)
        assert not bool(before.truncated) and bool(at.truncated), env_id
        assert not bool(at.terminated), env_id


def test_termination_on_the_last_allowed_step_is_terminated_not_truncated():
    # envpool reports truncated=True, terminated=False here; fnrl keeps the real terminal.
    env = mountain_car(max_episode_steps=1)
    state = ClassicControlState(jnp.array([0.49, 0.02]), jnp.int32(0), KEY)
    _, ts = env.step(state, jnp.int32(2))
    assert bool(ts.terminated) and not bool(ts.truncated)


# ---------------------------------------------------------------------------------------------
# One step against gymnasium's NumPy implementation, from arbitrary states.


def _gym_step(env_id: str, physics: np.ndarray, action: np.ndarray):
    """gymnasium's own step from `physics` (float64): (observation, reward, terminated)."""
    env = {
        "CartPole-v1": gym_cc.CartPoleEnv,
        "Acrobot-v1": gym_cc.AcrobotEnv,
        "MountainCar-v0": gym_cc.MountainCarEnv,
        "MountainCarContinuous-v0": gym_cc.Continuous_MountainCarEnv,
        "Pendulum-v1": gym_cc.PendulumEnv,
    }[env_id]()
    env.state = physics.astype(np.float64)
    if env_id == "CartPole-v1":
        env.steps_beyond_terminated = None
    obs, reward, terminated, _, _ = env.step(int(action) if env_id in DISCRETE else action)
    return obs, reward, terminated


# Boxes of physical states to draw from: beyond the reset ranges, reaching walls and clips.
_STATE_BOXES = {
    "CartPole-v1": ([-2.4, -3.0, -0.21, -3.0], [2.4, 3.0, 0.21, 3.0]),
    "Acrobot-v1": ([-np.pi, -np.pi, -4 * np.pi, -9 * np.pi], [np.pi, np.pi, 4 * np.pi, 9 * np.pi]),
    "MountainCar-v0": ([-1.2, -0.07], [0.6, 0.07]),
    "MountainCarContinuous-v0": ([-1.2, -0.07], [0.6, 0.07]),
    "Pendulum-v1": ([-3 * np.pi, -8.0], [3 * np.pi, 8.0]),
}


def _step_env(env_id, physics, action):
    env = CONSTRUCTORS[env_id]()
    return env.step(ClassicControlState(physics, jnp.int32(0), KEY), action)[1]


@jit_variants
@pytest.mark.parametrize("env_id", ENV_IDS)
@given(data=st.data())
def test_one_step_matches_gymnasium(env_id, use_jit, data):
    low, high = _STATE_BOXES[env_id]
    physics = np.clip(data.draw(floats((len(low),), -30.0, 30.0)), low, high)
    if env_id in DISCRETE:
        action = np.int32(data.draw(st.integers(0, DISCRETE[env_id] - 1)))
    else:
        action = data.draw(floats((1,), -3.0, 3.0))
    want_obs, want_reward, want_terminated = _gym_step(env_id, physics, action)
    with jax.enable_x64(True):
        step = variant(_step_env, use_jit, static_argnames="env_id")
        ts = step(env_id, jnp.asarray(physics, jnp.float64), jnp.asarray(action))
        np.testing.assert_allclose(ts.observation, want_obs, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ts.reward, want_reward, rtol=1e-6, atol=1e-6)
        assert bool(ts.terminated) == want_terminated


# ---------------------------------------------------------------------------------------------
# jit / vmap


def _rollout(make, key, actions):
    """Reset, then step through `actions` with `lax.scan`; returns the stacked timesteps."""
    env = make()
    state, _ = env.reset(key)
    return jax.lax.scan(env.step, state, actions)[1]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_vmap_of_jit_matches_unbatched(env_id):
    make, num_envs, num_steps = CONSTRUCTORS[env_id], 64, 8
    spec = make().spec()
    actions = _random_actions(spec.action, num_envs * num_steps, seed=1)
    actions = actions.reshape((num_envs, num_steps) + spec.action.shape)
    keys = jax.random.split(KEY, num_envs)
    batched = jax.jit(jax.vmap(functools.partial(_rollout, make)))(keys, actions)
    assert batched.observation.shape == (num_envs, num_steps) + spec.observation.shape
    assert batched.observation.dtype == jnp.float32 and batched.reward.dtype == jnp.float32
    env = make()
    for i in (0, num_envs - 1):  # eager, unbatched, step by step
        state, _ = env.reset(keys[i])
        for t in range(num_steps):
            state, ts = env.step(state, actions[i, t])
            np.testing.assert_allclose(batched.observation[i, t], ts.observation, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(batched.reward[i, t], ts.reward, rtol=1e-5, atol=1e-6)
            assert bool(batched.terminated[i, t]) == bool(ts.terminated)
            assert bool(batched.truncated[i, t]) == bool(ts.truncated)


# ---------------------------------------------------------------------------------------------
# Reset distributions and specs


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reset_distribution(env_id):
    env = CONSTRUCTORS[env_id]()
    keys = jax.random.split(KEY, 2000)
    states, ts = jax.vmap(env.reset)(keys)
    low, high = (np.asarray(b, np.float32) for b in RESET_RANGES[env_id])
    physics = np.asarray(states.physics)
    assert np.all(physics >= low) and np.all(physics <= high)
    spread = (high - low) * 0.02
    np.testing.assert_array_less(physics.min(0), low + spread + 1e-12)
    np.testing.assert_array_less(high - spread - 1e-12, physics.max(0))
    np.testing.assert_allclose(physics.mean(0), (low + high) / 2, atol=0.05 * np.max(high - low))
    assert np.all(np.asarray(states.t) == 0)
    assert not np.any(ts.terminated | ts.truncated) and np.all(ts.valid) and np.all(ts.reward == 0)
    # The next reset uses a fresh key: kept keys differ from the ones given and from each other.
    kept = jax.random.key_data(states.key)
    assert len({tuple(k) for k in np.asarray(kept).tolist()}) == len(keys)
    assert not np.any(np.all(np.asarray(kept) == np.asarray(jax.random.key_data(keys)), axis=-1))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_envpool_resets_lie_in_the_reset_range(env_id):
    obs, _ = envpool.make(env_id, env_type="gymnasium", num_envs=32, seed=5).reset()
    physics = np.stack([np.asarray(state_from_observation(env_id, o, KEY).physics) for o in obs])
    low, high = RESET_RANGES[env_id]
    assert np.all(physics >= np.asarray(low) - 1e-6) and np.all(physics <= np.asarray(high) + 1e-6)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_spec_matches_envpool(env_id, x64):
    spec = CONSTRUCTORS[env_id]().spec()
    pool_spec = envpool.make_spec(env_id)
    float_dtype = np.float64 if x64 else np.float32
    pool_obs = pool_spec.observation_space
    assert spec.observation.shape == pool_obs.shape and spec.observation.dtype == float_dtype
    assert spec.observation.kind == "bounded"
    np.testing.assert_allclose(spec.observation.minimum, pool_obs.low, rtol=1e-6)
    np.testing.assert_allclose(spec.observation.maximum, pool_obs.high, rtol=1e-6)
    pool_act = pool_spec.action_space
    if env_id in DISCRETE:
        assert spec.action == Spec((), np.int32, num_values=int(pool_act.n))
    else:
        assert spec.action.shape == pool_act.shape and spec.action.dtype == float_dtype
        np.testing.assert_allclose(spec.action.minimum, pool_act.low)
        np.testing.assert_allclose(spec.action.maximum, pool_act.high)
    state, ts = CONSTRUCTORS[env_id]().reset(KEY)
    assert ts.observation.shape == spec.observation.shape and ts.observation.dtype == float_dtype
    assert state.physics.dtype == float_dtype and ts.reward.dtype == float_dtype


# ---------------------------------------------------------------------------------------------
# Actions and arguments


def test_out_of_range_discrete_actions_are_clipped():
    env = cartpole()
    state, _ = env.reset(KEY)
    for bad, good in ((5, 1), (-3, 0)):
        got, want = env.step(state, jnp.int32(bad))[1], env.step(state, jnp.int32(good))[1]
        np.testing.assert_array_equal(got.observation, want.observation)


def test_out_of_range_continuous_actions_clip_the_physics():
    env = pendulum()
    state, _ = env.reset(KEY)
    clipped, at_bound = env.step(state, jnp.array([5.0]))[1], env.step(state, jnp.array([2.0]))[1]
    np.testing.assert_array_equal(clipped.observation, at_bound.observation)
    np.testing.assert_array_equal(clipped.reward, at_bound.reward)  # Pendulum's cost uses clip(a)
    env = mountain_car_continuous()
    state, _ = env.reset(KEY)
    far, at_bound = env.step(state, jnp.array([2.0]))[1], env.step(state, jnp.array([1.0]))[1]
    np.testing.assert_array_equal(far.observation, at_bound.observation)
    np.testing.assert_allclose(far.reward, -0.1 * 2.0**2)  # the control cost uses the raw action


@pytest.mark.parametrize(
    "make, action, match",
    [
        (cartpole, jnp.float32(1.0), "integer"),
        (acrobot, jnp.array([1], jnp.int32), "rank 0"),
        (pendulum, jnp.float32(1.0), r"shape \(1,\)"),
        (mountain_car_continuous, jnp.array([1], jnp.int32), "floating"),
    ],
)
def test_bad_actions_raise(make, action, match):
    env = make()
    state, _ = env.reset(KEY)
    with pytest.raises(ValueError, match=f"`action`.*{match}"):
        env.step(state, action)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="`key`"):
        cartpole().reset(jnp.zeros(3, jnp.uint32))
    with pytest.raises(ValueError, match="`max_episode_steps`"):
        pendulum(max_episode_steps=0)
    with pytest.raises(ValueError, match="`state.physics`"):
        acrobot().step(cartpole().reset(KEY)[0]._replace(physics=jnp.zeros(2)), jnp.int32(0))
    with pytest.raises(ValueError, match="`env_id`"):
        state_from_observation("CartPole-v0", np.zeros(4), KEY)
    with pytest.raises(ValueError, match="`observation`"):
        state_from_observation("Acrobot-v1", np.zeros(4), KEY)


def test_raw_key_and_typed_key_give_the_same_reset():
    env = acrobot()
    typed = env.reset(jax.random.key(3))[1].observation
    raw = env.reset(jax.random.PRNGKey(3))[1].observation
    np.testing.assert_array_equal(typed, raw)
