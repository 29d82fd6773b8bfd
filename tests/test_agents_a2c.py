"""A2C recipe (agents/a2c.py): the loss against the formula, acting, and learning thresholds."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnrl.envs
from agents import a2c, policy, ppo
from fnrl.envs.wrappers import episode_stats
from fnrl.rollout import unroll


def _recent_return(metrics: dict, fraction: float = 0.2) -> np.ndarray:
    """Per seed: mean return of the episodes finished in the last `fraction` of the updates."""
    sums, counts = np.asarray(metrics["episode_return_sum"]), np.asarray(metrics["episode_count"])
    tail = max(1, int(sums.shape[-1] * fraction))
    return sums[..., -tail:].sum(-1) / np.maximum(counts[..., -tail:].sum(-1), 1)


def _train(config, env_id: str, seeds: int, **env_options):
    env = fnrl.envs.make(env_id, num_envs=config.num_envs, **env_options)
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    return jax.jit(jax.vmap(a2c.make_train(config, env)))(keys)


def test_learns_cartpole():
    # Measured: ~210 / ~160 for the two seeds over steps 48k–60k (random play: ~22).
    config = a2c.A2CConfig(total_steps=60_000)
    state, metrics = _train(config, "CartPole-v1", seeds=2)
    recent = _recent_return(metrics)
    assert np.all(recent >= 100.0), recent
    num_updates = 60_000 // 40
    assert metrics["env_steps"].shape == (2, num_updates)
    np.testing.assert_allclose(metrics["env_steps"][:, -1], num_updates * 40)
    for name in ("loss", "policy_loss", "value_loss", "entropy", "grad_norm", "learning_rate"):
        assert np.all(np.isfinite(metrics[name])), name
    assert state.update_count.shape == (2,)


def test_learns_gaussian_actions_with_adam_and_annealing():
    # MinimalTest-float (random play ≈ 1.26 per episode, the best ≈ 4): a gaussian policy.
    config = a2c.A2CConfig(num_envs=4, num_steps=8, total_steps=12_800, optimizer="adam", learning_rate=1e-3,
                           anneal_lr=True)
    _, metrics = _train(config, "MinimalTest-v0", seeds=1, specification="float")
    assert np.all(_recent_return(metrics) >= 3.5)
    num_updates = 12_800 // 32
    expected_lr = 1e-3 * (1.0 - np.arange(num_updates) / num_updates)
    np.testing.assert_allclose(metrics["learning_rate"][0], expected_lr, rtol=1e-5, atol=1e-9)


def _numpy_k_step_advantages(reward, terminated, truncated, valid, values, bootstrap, gamma):
    """Â_i = Σ_{k} γ^k r_{i+k} up to the episode's end in the rollout (+ γ^n V at a truncation
    or the rollout's end) − V_i, straight from the definition; 0 at invalid ticks."""
    num_steps, num_envs = reward.shape
    adv = np.zeros_like(reward)
    for b in range(num_envs):
        for i in range(num_steps):
            if not valid[i, b]:
                continue
            ret, scale, j = 0.0, 1.0, i
            while True:
                ret += scale * reward[j, b]
                scale *= gamma
                if terminated[j, b]:
                    break
                if truncated[j, b] or j == num_steps - 1:
                    ret += scale * (bootstrap[b] if j == num_steps - 1 else values[j + 1, b])
                    break
                j += 1
            adv[i, b] = ret - values[i, b]
    return adv


def test_loss_matches_the_formula():
    # Short CartPole episodes: terminations, truncations (time limit 12) and invalid reset ticks.
    config = a2c.A2CConfig(num_envs=3, num_steps=24, total_steps=72, gamma=0.9, ent_coef=0.03, vf_coef=0.7)
    env = fnrl.envs.make("CartPole-v1", num_envs=3, max_episode_steps=12)
    agent = a2c.make_agent(config, env)
    state = a2c.make_trainer(config, env).init(jax.random.PRNGKey(0))
    step_fn = functools.partial(a2c.policy_step, agent, state)
    rollout, traj = jax.jit(lambda carry: unroll(step_fn, env, carry, config.num_steps, env_info=episode_stats))(
        state.rollout)
    assert traj.terminated.any() and traj.truncated.any() and not traj.valid.all()
    _, bootstrap = agent.network.apply(state.params, rollout.timestep.observation)
    advantage, target = ppo.advantages(config, traj, bootstrap)
    loss, metrics = a2c.a2c_loss(agent, state.params, traj, advantage, target)

    dist_params, values = jax.tree.map(np.asarray, agent.network.apply(state.params, traj.observation))
    logits = dist_params[0][..., 0, :].astype(np.float64)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    action = np.asarray(traj.action)
    log_prob = np.take_along_axis(log_p, action[..., None], -1)[..., 0]
    entropy = -(np.exp(log_p) * log_p).sum(-1)
    valid = np.asarray(traj.valid)
    adv = _numpy_k_step_advantages(np.asarray(traj.reward), np.asarray(traj.terminated), np.asarray(traj.truncated),
                                   valid, values, np.asarray(bootstrap), 0.9)
    np.testing.assert_allclose(np.asarray(advantage), adv, rtol=1e-4, atol=1e-4)
    mean = lambda x: x[valid].mean()  # noqa: E731
    policy_loss = -mean(log_prob * adv)
    value_loss = mean(0.5 * adv**2)  # V − (Â + V) = −Â
    expected = policy_loss + 0.7 * value_loss - 0.03 * mean(entropy)
    np.testing.assert_allclose(float(metrics["policy_loss"]), policy_loss, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(float(metrics["value_loss"]), value_loss, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(float(metrics["entropy"]), mean(entropy), rtol=1e-5)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-4, atol=1e-5)


def test_act_greedy_takes_the_mode():
    config = a2c.A2CConfig(num_envs=4, total_steps=40)
    env = fnrl.envs.make("CartPole-v1", num_envs=4)
    trainer = a2c.make_trainer(config, env)
    state = trainer.init(jax.random.PRNGKey(0))
    observation = jax.random.normal(jax.random.PRNGKey(1), (4, 4))
    params = trainer.params(state)
    action = trainer.act(params, jax.random.PRNGKey(2), observation, True)
    dist_params, _ = policy.forward(a2c.make_agent(config, env), params["network"], (), observation)
    assert action.dtype == jnp.int32 and action.shape == (4,)
    np.testing.assert_array_equal(action, np.argmax(dist_params[0][:, 0], axis=-1))


@pytest.mark.parametrize("field, value", [("num_steps", 0), ("gamma", 1.5), ("gae_lambda", -0.1),
                                          ("optimizer", "lamb"), ("bounded_actions", "squash"),
                                          ("optimizer_eps", 0.0), ("rmsprop_decay", 1.0), ("vf_coef", float("nan")),
                                          ("ent_coef", -0.01), ("learning_rate", float("inf")),
                                          ("normalize_advantages", 2), ("gamma", True)])
def test_config_rejects_bad_fields(field, value):
    with pytest.raises(ValueError, match=field):
        a2c.A2CConfig(**{field: value})


def test_make_trainer_rejects_mismatched_env():
    env = fnrl.envs.make("CartPole-v1", num_envs=2)
    with pytest.raises(ValueError, match="num_envs"):
        a2c.make_trainer(a2c.A2CConfig(num_envs=4), env)
    with pytest.raises(ValueError, match="total_steps"):
        a2c.make_trainer(a2c.A2CConfig(num_envs=2, num_steps=5, total_steps=4), env)
