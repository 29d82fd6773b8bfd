"""Tests of agents/trpo.py: learning on CartPole-v1, the trust region (TensorForce's MinimalTest
rows R12 are in tests/test_tensorforce_matrix.py), determinism under jit + vmap, and argument checks."""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnrl
from agents import policy, trpo
from fnrl.rollout import rollout_init

CONTRACT_METRICS = ("episode_return_sum", "episode_count", "env_steps", "loss", "policy_loss", "value_loss",
                    "entropy", "kl")
# TensorForce's `multi` test spec (R3) less its unbounded float part: bounded actions are
# gaussian here too, and every part adds to the (long) compilation.
MULTI_SPEC = {"bool": (), "int": (2,), "bounded": (1,)}

CARTPOLE = trpo.TRPOConfig(total_steps=24 * 2048)  # 24 updates of 8 envs x 256 steps


def _run(config, env_id, seeds, **env_options):
    env = fnrl.envs.make(env_id, num_envs=config.num_envs, **env_options)
    train = jax.jit(jax.vmap(trpo.make_train(config, env)))
    return train, jax.random.split(jax.random.PRNGKey(0), seeds)


@pytest.fixture(scope="module")
def cartpole():
    train, keys = _run(CARTPOLE, "CartPole-v1", 2)
    state, metrics = train(keys)
    state_again, metrics_again = train(keys)
    return state, metrics, state_again, metrics_again


def _mean_return(metrics, last):
    sums = np.asarray(metrics["episode_return_sum"])[:, -last:].sum(1)
    return sums / np.asarray(metrics["episode_count"])[:, -last:].sum(1)


def test_learns_cartpole(cartpole):
    _, metrics, _, _ = cartpole
    returns = _mean_return(metrics, last=6)
    assert np.all(returns >= 150), returns  # measured ~400-480; random play ~22
    assert np.all(_mean_return(metrics, last=6) > 3 * np.asarray(metrics["episode_return_sum"])[:, 0]
                  / np.asarray(metrics["episode_count"])[:, 0])


def test_realized_kl_stays_in_trust_region(cartpole):
    _, metrics, _, _ = cartpole
    kl = np.asarray(metrics["kl"])
    assert np.all(kl <= 1.5 * CARTPOLE.max_kl * (1 + 1e-5)), kl.max()
    # the steps are real: accepted, and of the trust region's size
    assert np.mean(np.asarray(metrics["line_search_accepted"])) >= 0.9
    assert np.median(kl) >= 0.5 * CARTPOLE.max_kl
    assert np.all(np.asarray(metrics["improvement"]) >= 0)


def test_metrics_follow_the_contract(cartpole):
    _, metrics, _, _ = cartpole
    for name in CONTRACT_METRICS:
        assert metrics[name].shape == (2, CARTPOLE.total_steps // 2048) and metrics[name].dtype == np.float32, name
    np.testing.assert_array_equal(np.asarray(metrics["env_steps"])[0], 2048 * np.arange(1, 25))
    assert np.all(np.isfinite(np.asarray(metrics["value_loss"])))


def test_jit_vmap_deterministic_per_seed(cartpole):
    state, metrics, state_again, metrics_again = cartpole
    jax.tree.map(np.testing.assert_array_equal, (state.policy_params, metrics), (state_again.policy_params,
                                                                                 metrics_again))
    returns = np.asarray(metrics["episode_return_sum"])
    assert not np.array_equal(returns[0], returns[1])  # the two seeds are different runs


def test_multi_part_actions_clipping_and_entropy_respect_the_trust_region():
    """Every action kind at once (categorical, bernoulli and gaussian KLs; bounded actions as
    clipped gaussians, since the beta KL's third derivatives take ~20 s to compile), the clipped
    surrogate and the entropy bonus: each update's KL within kl_tolerance · max_kl."""
    config = trpo.TRPOConfig(num_envs=2, num_steps=16, total_steps=4 * 32, hidden_sizes=(16,),
                             value_minibatches=2, likelihood_ratio_clipping=0.2, ent_coef=0.01, max_kl=0.02,
                             bounded_actions="clipped_gaussian")
    train, keys = _run(config, "MinimalTest-v0", 1, specification=MULTI_SPEC)
    _, metrics = train(keys)
    kl = np.asarray(metrics["kl"])
    assert np.all((kl >= 0) & (kl <= 1.5 * config.max_kl * (1 + 1e-5))), kl
    assert np.mean(np.asarray(metrics["line_search_accepted"])) > 0.5
    assert np.all(np.isfinite(np.asarray(metrics["entropy"])))


@pytest.mark.parametrize("clip_range, expected", [("symmetric", 0.78), ("tensorforce", 0.8)])
def test_clipped_surrogate_uses_the_configured_ratio_range(clip_range, expected):
    """ε = 0.25 and every ratio 0.78 with advantage −1: [1 − ε, 1 + ε] leaves 0.78 alone, while
    TensorForce's [1/(1 + ε), 1 + ε] = [0.8, 1.25] clips it, so the pessimistic loss is 0.8."""
    env = fnrl.envs.make("CartPole-v1", num_envs=2)
    config = trpo.TRPOConfig(num_envs=2, num_steps=4, total_steps=8, hidden_sizes=(8,), value_minibatches=1,
                             likelihood_ratio_clipping=0.25, clip_range=clip_range)
    agent = trpo.make_agent(config, env)
    state = trpo.start(agent, jax.random.PRNGKey(0), rollout_init(env, jax.random.PRNGKey(1)))
    observation = state.rollout.timestep.observation
    action = jnp.zeros((2,), jnp.int32)
    batch = trpo.TRPOBatch(observation, action, jnp.zeros(2), -jnp.ones(2), jnp.zeros(2), jnp.ones(2))
    dist_params, _ = trpo._forward(agent, state.policy_params, state.value_params, batch)
    log_prob = policy.log_prob(agent.spaces, dist_params, action)
    batch = batch._replace(log_prob=log_prob - np.log(0.78))  # ratio π/π_old = 0.78
    loss = trpo.surrogate_loss(agent, state.policy_params, state.value_params, batch)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


@pytest.mark.parametrize("field, value", [
    ("num_envs", 0), ("max_kl", 0.0), ("kl_tolerance", 0.5), ("ls_mode", "cubic"), ("ls_parameter", 1.5),
    ("bounded_actions", "squashed"), ("value_minibatches", 3), ("gae_lambda", 1.5),
    ("ls_parameter", 0.0), ("ls_parameter", 1.0), ("cg_residual_tol", -1.0), ("max_kl", "0.01"),
    ("max_kl", float("inf")), ("use_baseline", "no"), ("clip_range", "asymmetric"),
])
def test_config_rejects_bad_fields(field, value):
    with pytest.raises(ValueError, match=field):
        trpo.TRPOConfig(**{field: value})


def test_make_trainer_rejects_mismatched_env():
    env = fnrl.envs.make("CartPole-v1", num_envs=4)
    with pytest.raises(ValueError, match="num_envs"):
        trpo.make_trainer(trpo.TRPOConfig(num_envs=8), env)
    with pytest.raises(ValueError, match="total_steps"):
        trpo.make_trainer(trpo.TRPOConfig(num_envs=4, total_steps=100), env)
    host_trainer = trpo.make_trainer(trpo.TRPOConfig(num_envs=4), env._replace(is_jax=False))
    assert host_trainer.init is None and host_trainer.on_policy is not None  # trained by agents.host
    with pytest.raises(ValueError, match="pure-JAX"):
        trpo.make_train(trpo.TRPOConfig(num_envs=4), env._replace(is_jax=False))
