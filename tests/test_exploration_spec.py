"""Tests for fnrl.exploration's `exploration_from_spec` (TensorForce `explorations_spec`): each
type against the fnrl function it is built on, TensorForce's defaults, per-action dicts,
jit/vmap, and the spec errors' key paths."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnrl.exploration import (
    EXPLORATION_TYPES,
    Exploration,
    OUState,
    episode_decay_noise,
    explore_continuous,
    explore_discrete,
    exploration_from_spec,
    gaussian_noise,
    half_life_decay,
    linear_anneal,
    ornstein_uhlenbeck,
)
from tests.helpers import jit_variants

SHAPE = (4, 2)  # e.g. 4 envs, 2 action components


def _explore_steps(exploration: Exploration, steps, use_jit: bool, shape=SHAPE, key=0):
    """Values of `explore` at the given (episode, timestep) pairs, threading the state."""
    explore = jax.jit(exploration.explore) if use_jit else exploration.explore
    state, values = exploration.init(shape), []
    for i, (episode, timestep) in enumerate(steps):
        value, state = explore(jax.random.fold_in(jax.random.key(key), i), state, episode, timestep)
        values.append(np.asarray(value))
    return values, state


STEPS = [(0, 0), (1, 2500), (3, 5000), (7, 10000), (9, 20000)]


@jit_variants
def test_epsilon_anneal_is_linear_anneal_with_tensorforce_defaults(use_jit):
    values, _ = _explore_steps(exploration_from_spec("epsilon_anneal"), STEPS, use_jit)
    schedule = linear_anneal(1.0, 0.1, 10000, 0)
    for value, (_, timestep) in zip(values, STEPS):
        np.testing.assert_allclose(value, np.full(SHAPE, schedule(timestep)), rtol=1e-6)
    np.testing.assert_allclose(values[2], 0.55, rtol=1e-6)  # half-way between 1.0 and 0.1


@jit_variants
def test_epsilon_decay_is_half_life_decay(use_jit):
    spec = {"type": "epsilon_decay", "initial_epsilon": 0.9, "final_epsilon": 0.05,
            "timesteps": 8000, "start_timestep": 1000, "half_lives": 4}
    values, _ = _explore_steps(exploration_from_spec(spec), STEPS, use_jit)
    schedule = half_life_decay(0.9, 0.05, 8000, 1000, 4)
    for value, (_, timestep) in zip(values, STEPS):
        np.testing.assert_allclose(value, np.full(SHAPE, schedule(timestep)), rtol=1e-6)
    assert values[0][0, 0] == pytest.approx(0.9) and values[-1][0, 0] == pytest.approx(0.05)


def test_constant_and_none():
    values, state = _explore_steps(exploration_from_spec({"type": "constant", "constant": 0.3}),
                                   STEPS[:2], True)
    np.testing.assert_allclose(values, np.full((2,) + SHAPE, 0.3, np.float32))
    np.testing.assert_allclose(state, values[-1])  # the state is the last value
    values, _ = _explore_steps(exploration_from_spec(None), STEPS[:2], True)
    np.testing.assert_array_equal(values, np.zeros((2,) + SHAPE))  # TensorForce's default: none


def test_per_env_timesteps_broadcast():
    exploration = exploration_from_spec({"type": "epsilon_anneal", "timesteps": 100})
    timesteps = jnp.array([0, 50, 100, 200])[:, None]  # one counter per env
    value, _ = jax.jit(exploration.explore)(jax.random.key(0), exploration.init(SHAPE), 0, timesteps)
    np.testing.assert_allclose(value[:, 0], [1.0, 0.55, 0.1, 0.1], rtol=1e-6)
    with pytest.raises(ValueError, match="`timestep`"):
        exploration.explore(jax.random.key(0), exploration.init(SHAPE), 0, jnp.zeros(3))


@jit_variants
def test_linear_decay_is_episode_decay_noise(use_jit):
    values, _ = _explore_steps(exploration_from_spec("linear_decay"), STEPS, use_jit, key=5)
    for i, (value, (episode, _)) in enumerate(zip(values, STEPS)):
        want = episode_decay_noise(jax.random.fold_in(jax.random.key(5), i), episode, SHAPE)
        np.testing.assert_allclose(value, want, rtol=1e-6)
        assert value.max() <= 1.0 / (episode + 1)


@jit_variants
def test_ornstein_uhlenbeck_is_the_ou_process_with_tensorforce_defaults(use_jit):
    values, state = _explore_steps(exploration_from_spec("ornstein_uhlenbeck"), STEPS, use_jit, key=2)
    noise = ornstein_uhlenbeck(theta=0.15, sigma=0.3, mu=0.0)
    ref_state = noise.init(SHAPE)
    for i, value in enumerate(values):
        want, ref_state = noise.sample(jax.random.fold_in(jax.random.key(2), i), ref_state)
        np.testing.assert_allclose(value, want, rtol=1e-6, atol=1e-7)
    assert isinstance(state, OUState)
    # Temporally correlated: consecutive values are mostly kept (x' = 0.85·x + 0.3·n).
    assert np.corrcoef(values[-2].ravel(), values[-1].ravel())[0, 1] > 0.5


def test_gaussian_is_gaussian_noise_and_keeps_the_action_dtype():
    action = jnp.zeros(SHAPE, jnp.float16)
    exploration = exploration_from_spec({"type": "gaussian", "sigma": 0.2})
    value, _ = jax.jit(exploration.explore)(jax.random.key(4), exploration.init(action), 0, 0)
    np.testing.assert_allclose(value, gaussian_noise(jax.random.key(4), action, 0.2), rtol=1e-3)
    assert value.dtype == jnp.float16 and value.shape == SHAPE


def test_values_drive_explore_discrete_and_continuous_under_vmap():
    """The TensorForce pipeline: value per action type, vmapped over 3 seeds."""
    epsilon = exploration_from_spec({"type": "constant", "constant": 1.0})
    noise = exploration_from_spec({"type": "gaussian", "sigma": 5.0})

    def act(key):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        eps, _ = epsilon.explore(k1, epsilon.init((64,)), 0, 0)
        discrete = explore_discrete(k2, jnp.zeros(64, jnp.int32), 3, eps)
        n, _ = noise.explore(k3, noise.init((64,)), 0, 0)
        return discrete, explore_continuous(jnp.zeros(64), n, -1.0, 1.0)

    discrete, continuous = jax.jit(jax.vmap(act))(jax.random.split(jax.random.key(0), 3))
    assert discrete.shape == (3, 64) and set(np.unique(discrete)) == {0, 1, 2}  # epsilon 1: uniform
    assert np.abs(continuous).max() == 1.0 and len(np.unique(continuous)) > 10  # noisy, clipped


def test_per_action_dict_and_ready_explorations():
    ou = exploration_from_spec("ornstein_uhlenbeck")
    built = exploration_from_spec({"steer": {"type": "ornstein_uhlenbeck", "sigma": 0.1,
                                             "scope": "x", "summary_labels": ()},
                                   "fire": "epsilon_decay", "gear": None, "brake": ou})
    assert set(built) == {"steer", "fire", "gear", "brake"} and built["brake"] is ou
    assert all(isinstance(e, Exploration) for e in built.values())
    value, _ = built["fire"].explore(jax.random.key(0), built["fire"].init(()), 0, 0)
    assert float(value) == pytest.approx(1.0)


def test_types_listed():
    assert set(EXPLORATION_TYPES) == {"constant", "epsilon_anneal", "epsilon_decay", "linear_decay",
                                      "ornstein_uhlenbeck", "gaussian"}


ERROR_CASES = [
    ({"type": "epsilon_anneall"},
     r"spec\['type'\] is 'epsilon_anneall'.*valid types: constant, epsilon_anneal, epsilon_decay"),
    ({"steer": {"type": "ornstein_uhlenbeck", "sigmaa": 0.1}},
     r"spec\['steer'\]\['sigmaa'\] is not a key of type 'ornstein_uhlenbeck'; valid keys: sigma, mu, theta"),
    ({"fire": {"type": "epsilon_anneal", "timesteps": 0}},
     r"spec\['fire'\] \(type 'epsilon_anneal'\): .*`timesteps` must be > 0"),
    ({"type": "ornstein_uhlenbeck", "theta": 2.5}, r"spec \(type 'ornstein_uhlenbeck'\): .*`theta`"),
    ({"type": "gaussian", "sigma": -1.0}, r"spec \(type 'gaussian'\): .*`sigma`"),
    ({"type": "linear_decay", "rate": 1.0},
     r"spec\['rate'\] is not a key of type 'linear_decay'; valid keys: none"),
    ({"a": 3}, r"spec\['a'\] must be an exploration type name"),
]


@pytest.mark.parametrize("spec, pattern", ERROR_CASES, ids=[str(i) for i in range(len(ERROR_CASES))])
def test_spec_errors_name_the_key_path(spec, pattern):
    with pytest.raises(ValueError, match=pattern):
        exploration_from_spec(spec)
