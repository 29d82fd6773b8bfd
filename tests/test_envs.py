"""fnrl.envs registry: make / list_envs across both backends."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnrl import envs
from fnrl.envs import wrappers


@pytest.mark.parametrize("env_id", sorted(envs.JAX_ENVS))
def test_every_jax_id_makes_a_batched_auto_resetting_env(env_id):
    env = envs.make(env_id, num_envs=3)
    spec = env.spec()
    state, ts = env.reset(jax.random.PRNGKey(0))
    assert env.num_envs == 3 and env.is_jax
    assert jnp.shape(ts.reward) == (3,)
    for leaf, s in zip(jax.tree.leaves(ts.observation), jax.tree.leaves(spec.observation, is_leaf=lambda x: hasattr(x, "kind"))):
        assert leaf.shape == (3,) + tuple(s.shape)
    step = jax.jit(env.step)
    action = jax.tree.map(lambda s: jnp.zeros((3,) + tuple(s.shape), s.dtype), spec.action,
                          is_leaf=lambda x: hasattr(x, "kind"))
    seen_invalid = False
    for _ in range(60):
        prev_done = np.asarray(ts.terminated | ts.truncated)
        state, ts = step(state, action)
        # the envpool convention: the step after a done one is invalid, and only that one
        np.testing.assert_array_equal(np.asarray(ts.valid), ~prev_done)
        seen_invalid |= bool((~np.asarray(ts.valid)).any())
    stats = wrappers.episode_stats(state)
    assert stats.num_episodes.shape == (3,)
    if env_id in ("Bandit-v0", "BooleanReasoning-v0", "MinimalTest-v0", "CartPole-v1"):
        assert seen_invalid and int(stats.num_episodes.sum()) > 0


def test_make_passes_options_and_action_repeat():
    env = envs.make("CartPole-v1", num_envs=2, max_episode_steps=5)
    state, ts = env.reset(jax.random.PRNGKey(1))
    for _ in range(5):
        state, ts = env.step(state, jnp.asarray([0, 1]))
    assert bool(ts.done.all())  # terminated or truncated by the 5-step limit
    repeated = envs.make("Pendulum-v1", num_envs=1, action_repeat=3)
    single = envs.make("Pendulum-v1", num_envs=1)
    s_r, _ = repeated.reset(jax.random.PRNGKey(2))
    s_1, _ = single.reset(jax.random.PRNGKey(2))
    a = jnp.full((1, 1), 0.5)
    _, ts_r = repeated.step(s_r, a)
    total = 0.0
    for _ in range(3):
        s_1, ts_1 = single.step(s_1, a)
        total += float(ts_1.reward[0])
    np.testing.assert_allclose(float(ts_r.reward[0]), total, rtol=1e-5)
    np.testing.assert_allclose(ts_r.observation, ts_1.observation, rtol=1e-5)


def test_envpool_backend_passes_through():
    env = envs.make("CartPole-v1", backend="envpool", num_envs=2)
    assert not env.is_jax and env.num_envs == 2
    assert env.spec().action.num_values == 2
    state, ts = env.reset(jax.random.PRNGKey(0))
    assert np.shape(ts.observation) == (2, 4)
    state.close()


def test_list_envs():
    assert "CartPole-v1" in envs.list_envs("jax") and "MinimalTest-v0" in envs.list_envs()
    assert "Pong-v5" in envs.list_envs("envpool")


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="CartPole-v1"):
        envs.make("Cartpole-v1")
    with pytest.raises(ValueError, match="`backend`"):
        envs.make("CartPole-v1", backend="gym")
    with pytest.raises(ValueError, match="`backend`"):
        envs.list_envs("brax")
