"""The host loop (agents/host.py): on-policy recipes trained on envpool, several seeds on one pool."""

from __future__ import annotations

import json
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnrl.envs
from agents import a2c, baselines, cli, host, ppo, vpg
from agents.common import OnPolicy, Trainer
from fnrl.envs.wrappers import episode_stats
from fnrl.rollout import PolicyOutput, RolloutCarry


def test_seeds_view_splits_the_pool_by_seed():
    pool = fnrl.envs.make("CartPole-v1", backend="envpool", num_envs=6)
    view, env_info = host.seeds_view(pool, 3)
    assert view.num_envs == 2 and not view.is_jax
    state, timestep = view.reset(jax.random.PRNGKey(0))
    assert timestep.observation.shape == (3, 2, 4)
    action = np.array([[0, 1], [1, 0], [1, 1]], np.int32)
    state, timestep = view.step(state, action)
    # Same seed, same actions on the flat pool: seed k owns envs 2k, 2k + 1.
    flat_state, flat_timestep = pool.reset(jax.random.PRNGKey(0))
    flat_state, flat_timestep = pool.step(flat_state, action.reshape(-1))
    np.testing.assert_array_equal(timestep.observation.reshape(6, 4), flat_timestep.observation)
    assert env_info(state).last_return.shape == (3, 2)
    np.testing.assert_array_equal(env_info(state).episode_length.reshape(-1),
                                  episode_stats(flat_state).episode_length)
    with pytest.raises(ValueError, match="multiple of seeds"):
        host.seeds_view(pool, 4)


@pytest.mark.parametrize("module, config", [
    (a2c, a2c.A2CConfig(num_envs=2, num_steps=16, total_steps=320)),
    (vpg, vpg.VPGConfig(num_envs=2, num_steps=16, total_steps=320)),
    (baselines, baselines.RandomConfig(num_envs=2, num_steps=16, total_steps=320)),
])
def test_host_updates_count_the_pools_episodes(module, config):
    """Each update plays num_steps ticks per env; the reported episodes are the pool's."""
    seeds = 2
    pool = fnrl.envs.make("CartPole-v1", backend="envpool", num_envs=config.num_envs * seeds)
    trainer = module.make_trainer(config, host.seeds_view(pool, seeds)[0])
    run = host.host_run(trainer, pool, seeds)
    states, env_state = run.init(jax.random.PRNGKey(0))
    returns, counts = np.zeros(seeds), np.zeros(seeds)
    for update in range(trainer.num_updates):
        states, env_state, metrics = run.update(states, env_state, jax.random.PRNGKey(update))
        returns += np.asarray(metrics["episode_return_sum"])
        counts += np.asarray(metrics["episode_count"])
    np.testing.assert_array_equal(metrics["env_steps"], np.full(seeds, config.total_steps, np.float32))
    np.testing.assert_array_equal(states.update_count, np.full(seeds, trainer.num_updates))
    # Random CartPole episodes last ~20 ticks: 160 ticks per env finish several per seed.
    assert np.all(counts >= 4) and np.all(returns / counts > 5)
    assert states.rollout.env_state == ()
    env_state.close()


def test_episodes_are_games_under_atari_episodic_life():
    """With episodic life a life loss is `terminated` for learning, but an episode (the metrics'
    count and return) is a whole game: the count must be the pool's finished games."""
    config = baselines.RandomConfig(num_envs=2, num_steps=128, total_steps=1024)
    pool = fnrl.envs.make("Breakout-v5", backend="envpool", num_envs=2, episodic_life=True)
    trainer = baselines.make_trainer(config, pool)
    run = host.host_run(trainer, pool, 1)
    states, env_state = run.init(jax.random.PRNGKey(0))
    count = returns = 0.0
    for update in range(trainer.num_updates):
        states, env_state, metrics = run.update(states, env_state, jax.random.PRNGKey(update))
        count += float(np.sum(metrics["episode_count"]))
        returns += float(np.sum(metrics["episode_return_sum"]))
    games = int(np.sum(episode_stats(env_state).num_episodes))
    assert games >= 2 and count == games  # each random game loses 5 lives: 5x as many `terminated`
    assert returns >= 0.5 * games  # a random Breakout game scores ~1 point; no stale zeros counted
    env_state.close()


def test_ppo_learns_cartpole_on_envpool_through_the_cli(tmp_path):
    out = tmp_path / "run"
    code = cli.main(["train", "ppo", "--env", "CartPole-v1", "--backend", "envpool", "--steps", "61440",
                     "--seeds", "2", "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backend"] == "envpool" and summary["seeds"] == 2
    assert all(r >= 120 for r in summary["final_return_per_seed"]), summary["final_return_per_seed"]
    assert 0 < summary["compile_seconds"] < summary["wall_seconds"]


def test_es_is_refused_on_envpool():
    with pytest.raises(SystemExit, match="pure-JAX"):
        cli.make_run("es", "CartPole-v1", "envpool", 1, {})


def test_ppo_host_policy_matches_the_jax_policy():
    """The host loop acts with the recipe's own policy step: same state, key and observation give
    the same action and log-prob as the pure-JAX trainer's."""
    config = ppo.PPOConfig(num_envs=2, num_steps=8, total_steps=16)
    pool = fnrl.envs.make("CartPole-v1", backend="envpool", num_envs=2)
    jax_trainer = ppo.make_trainer(config, fnrl.envs.make("CartPole-v1", num_envs=2))
    host_trainer = ppo.make_trainer(config, host.seeds_view(pool, 1)[0])
    state = jax_trainer.init(jax.random.PRNGKey(0))
    observation = np.asarray(state.rollout.timestep.observation)
    a = jax_trainer.on_policy.policy_step(state, jax.random.PRNGKey(1), observation, ())
    b = host_trainer.on_policy.policy_step(state, jax.random.PRNGKey(1), observation, ())
    np.testing.assert_array_equal(a.action, b.action)
    np.testing.assert_allclose(a.extras["log_prob"], b.extras["log_prob"])


# --------------------------------------------------------------------------------------------
# The double-buffered rollout (envpool_async) and the acting tick's arguments.


class _PoleState(NamedTuple):
    rollout: RolloutCarry
    gain: jax.Array
    unused: jax.Array  # never read when acting: left out of the jitted tick


def _pole_recipe(num_steps: int) -> OnPolicy:
    """A deterministic per-env policy (push along gain × the pole's lean) and a learn step that
    only keeps the carry: what the host loop plays is then fixed by the env seeds."""

    def policy_step(state, key, observation, memory, action=None):
        if action is None:
            action = (state.gain * observation[:, 2] > 0).astype(jnp.int32)
        return PolicyOutput(action, memory, {"angle": observation[:, 2]})

    return OnPolicy(start=lambda key, rollout: _PoleState(rollout, jnp.float32(-1.0), jnp.zeros(3)),
                    policy_step=policy_step,
                    learn=lambda state, rollout, trajectory: (state._replace(rollout=rollout), {}),
                    to_env=lambda action: action, num_steps=num_steps)


def test_async_pool_plays_what_the_sync_pool_plays():
    seeds, envs, steps = 2, 4, 30
    trainer = Trainer(None, None, 1, envs * steps, None, None, _pole_recipe(steps))
    runs = [host.host_run(trainer, pool, seeds) for pool in (
        fnrl.envs.make("CartPole-v1", backend="envpool", num_envs=seeds * envs),
        fnrl.envs.envpool_async("CartPole-v1", seeds * envs, seeds * envs // 2))]
    (sync_after, sync_traj, sync_pool), (async_after, async_traj, async_pool) = [
        run.rollout(*run.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1)) for run in runs]
    assert sync_traj.reward.shape == (seeds, steps, envs) and (~sync_traj.valid).any()
    for a, s in zip(jax.tree.leaves((async_after, async_traj)), jax.tree.leaves((sync_after, sync_traj))):
        np.testing.assert_array_equal(a, s)
    sync_pool.close(), async_pool.close()
    with pytest.raises(ValueError, match="batch_size = num_envs / 2"):
        host.host_run(trainer, fnrl.envs.envpool_async("CartPole-v1", 8, 2), 2)


def test_acting_tick_gets_only_the_leaves_the_policy_reads():
    state = _PoleState(RolloutCarry((), (), (), (), ()), jnp.float32(1.0), jnp.zeros(3))
    policy = _pole_recipe(1).policy_step
    read = host._read_leaves(lambda s, *a: policy(s, *a), state, jax.random.PRNGKey(0), jnp.zeros((2, 4)), ())
    assert read == (True, False)  # gain, unused


def test_async_host_updates_count_the_pools_episodes():
    config = baselines.RandomConfig(num_envs=2, num_steps=16, total_steps=320)
    pool = fnrl.envs.envpool_async("CartPole-v1", 4, 2)
    trainer = baselines.make_trainer(config, fnrl.envs.make("CartPole-v1", backend="envpool", num_envs=2))
    run = host.host_run(trainer, pool, 2)
    states, env_state = run.init(jax.random.PRNGKey(0))
    counts = lengths = 0
    for update in range(trainer.num_updates):
        states, env_state, metrics = run.update(states, env_state, jax.random.PRNGKey(update))
        counts = counts + np.asarray(metrics["episode_count"])
        lengths = lengths + np.asarray(metrics["episode_length_sum"])
    # Random CartPole episodes last ~22 steps: 160 steps per env finish several per seed.
    assert np.all(counts >= 4) and np.all((lengths / counts > 10) & (lengths / counts < 40))
    env_state.close()
