"""Tests of agents/es.py: the fitness against a NumPy loop, learning on CartPole-v1 and on
TensorForce's multi-part MinimalTest, determinism under jit + vmap, and argument checks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

import fnrl
from agents import es
from fnrl.rollout import PolicyOutput, Trajectory, rollout_init, unroll
from tests.helpers import episode_flags, floats, jit_variants, variant

T, B = 7, 3
CARTPOLE = es.ESConfig(num_envs=2, num_steps=500, population=32, total_steps=20 * 32_000)
MULTI_SPEC = {"bool": (), "int": (2,), "float": (1, 1), "bounded": (1,)}  # TensorForce's `multi` (R3)
MULTI = es.ESConfig(num_envs=4, num_steps=20, population=16, total_steps=10 * 1280, hidden_sizes=(16,))


def _first_episode_returns_np(reward, terminated, truncated, valid):
    out = np.zeros(reward.shape[1], np.float32)
    for b in range(reward.shape[1]):
        for i in range(reward.shape[0]):
            if valid[i, b]:
                out[b] += reward[i, b]
                if terminated[i, b] or truncated[i, b]:
                    break
    return out


def _trajectory(reward, terminated, truncated, valid):
    zeros = jnp.zeros_like(reward)
    return Trajectory(observation=zeros, action=zeros, reward=reward, terminated=terminated, truncated=truncated,
                      valid=valid, first=jnp.zeros_like(valid), extras=(), memory=())


def first_episode_returns(reward, terminated, truncated, valid):
    return es.first_episode_returns(_trajectory(reward, terminated, truncated, valid))


@jit_variants
@given(reward=floats((T, B)), flags=episode_flags((T, B)))
def test_first_episode_returns_matches_numpy_loop(use_jit, reward, flags):
    terminated, truncated, valid = flags
    got = variant(first_episode_returns, use_jit)(reward, terminated, truncated, valid)
    np.testing.assert_allclose(got, _first_episode_returns_np(reward, terminated, truncated, valid),
                               rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def cartpole():
    env = fnrl.envs.make("CartPole-v1", num_envs=CARTPOLE.num_envs)
    train = jax.jit(jax.vmap(es.make_train(CARTPOLE, env)))
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    return train(keys), train(keys)


def test_learns_cartpole(cartpole):
    (_, metrics), _ = cartpole
    sums, counts = np.asarray(metrics["episode_return_sum"]), np.asarray(metrics["episode_count"])
    returns = sums[:, -3:].sum(1) / counts[:, -3:].sum(1)
    assert np.all(returns >= 200), returns  # measured 376-435 over 8 seeds; random play ~22
    assert np.all(returns > 3 * sums[:, 0] / counts[:, 0])


def test_metrics_follow_the_contract(cartpole):
    (_, metrics), _ = cartpole
    per_update = CARTPOLE.population * CARTPOLE.num_envs * CARTPOLE.num_steps
    for name in ("episode_return_sum", "episode_count", "env_steps", "loss", "policy_loss"):
        assert metrics[name].shape == (2, 20) and metrics[name].dtype == np.float32, name
    np.testing.assert_array_equal(np.asarray(metrics["env_steps"])[1], per_update * np.arange(1, 21))
    np.testing.assert_array_equal(np.asarray(metrics["episode_count"]), CARTPOLE.population * CARTPOLE.num_envs)
    # the evaluated episodes' mean return is the population's mean fitness
    np.testing.assert_allclose(np.asarray(metrics["episode_return_sum"] / metrics["episode_count"]),
                               -np.asarray(metrics["loss"]), rtol=1e-5)


def test_metrics_count_only_finished_first_episodes():
    """Ten ticks end few CartPole episodes: the metrics count those, with their returns, while
    the fitness (−loss) averages every first episode's return so far."""
    config = es.ESConfig(num_envs=8, num_steps=10, population=8, total_steps=2 * 8 * 8 * 10, hidden_sizes=(8,))
    env = fnrl.envs.make("CartPole-v1", num_envs=config.num_envs)
    trainer = es.make_trainer(config, env)
    _, metrics = jax.jit(trainer.update)(trainer.init(jax.random.PRNGKey(0)))
    count, total = float(metrics["episode_count"]), float(metrics["episode_return_sum"])
    assert 0 < count < config.population * config.num_envs
    assert total / count < 10  # episodes that ended within 10 ticks
    assert -float(metrics["loss"]) > total / count  # unfinished first episodes have 10 steps of reward


def test_jit_vmap_deterministic_per_seed(cartpole):
    (state, metrics), (state_again, metrics_again) = cartpole
    jax.tree.map(np.testing.assert_array_equal, (state, metrics), (state_again, metrics_again))
    assert not np.array_equal(np.asarray(metrics["loss"])[0], np.asarray(metrics["loss"])[1])


def _reward_rate(trainer, env, params, key):
    """Mean reward per valid step of the greedy policy over 50 ticks."""

    def policy(key, observation, memory, action=None):
        return PolicyOutput(trainer.act(params, key, observation, True), memory)

    _, trajectory = unroll(policy, env, rollout_init(env, key), 50)
    return jnp.sum(trajectory.reward * trajectory.valid) / jnp.sum(trajectory.valid)


def test_learns_multi_part_minimal_test():
    """All action kinds at once (categorical, bernoulli, gaussian, beta heads): the greedy
    policy's reward per step goes from ~0.5 to near the maximum 1."""
    env = fnrl.envs.make("MinimalTest-v0", num_envs=MULTI.num_envs, specification=MULTI_SPEC)
    trainer = es.make_trainer(MULTI, env)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    state, _ = jax.jit(jax.vmap(es.make_train(MULTI, env)))(keys)
    rate = jax.jit(jax.vmap(lambda params, key: _reward_rate(trainer, env, params, key)))
    before, after = rate(jax.jit(jax.vmap(trainer.init))(keys).params, keys), rate(state.params, keys)
    assert np.all(np.asarray(after) >= 0.9) and np.all(np.asarray(after) > np.asarray(before) + 0.2), (before, after)


def test_deterministic_policy_ignores_the_key():
    env = fnrl.envs.make("CartPole-v1", num_envs=CARTPOLE.num_envs)
    trainer = es.make_trainer(CARTPOLE, env)
    params = trainer.init(jax.random.PRNGKey(0)).params
    _, timestep = env.reset(jax.random.PRNGKey(1))
    actions = [trainer.act(params, jax.random.PRNGKey(k), timestep.observation, False) for k in range(4)]
    assert all(np.array_equal(actions[0], a) for a in actions[1:])


@pytest.mark.parametrize("field, value", [
    ("num_envs", 0), ("population", 7), ("noise_std", 0.0), ("learning_rate", -1.0),
    ("fitness_shaping", "ranks"), ("bounded_actions", "squashed"), ("noise_std", "0.1"),
    ("learning_rate", float("inf")), ("noise_std", float("inf")), ("deterministic", "yes"),
])
def test_config_rejects_bad_fields(field, value):
    with pytest.raises(ValueError, match=field):
        es.ESConfig(**{field: value})


def test_make_trainer_rejects_mismatched_env():
    env = fnrl.envs.make("CartPole-v1", num_envs=4)
    with pytest.raises(ValueError, match="num_envs"):
        es.make_trainer(es.ESConfig(num_envs=2), env)
    with pytest.raises(ValueError, match="total_steps"):
        es.make_trainer(es.ESConfig(num_envs=4, total_steps=100), env)
    with pytest.raises(ValueError, match="env"):
        es.make_trainer(es.ESConfig(num_envs=4), env._replace(is_jax=False))
