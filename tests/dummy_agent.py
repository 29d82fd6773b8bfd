"""A tiny agent following the recipe contract, for testing the command line's mechanics.

Its "learning" is a deterministic function of every trajectory seen, so any difference between a
resumed and an uninterrupted run shows up in the final parameters.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

import fnrl
from agents.common import Trainer, train_from_trainer
from fnrl.envs.wrappers import episode_stats


@dataclasses.dataclass(frozen=True)
class DummyConfig:
    num_envs: int = 2
    num_steps: int = 8
    total_steps: int = 160
    learning_rate: float = 0.1


class DummyState(NamedTuple):
    params: jax.Array
    carry: fnrl.RolloutCarry
    env_steps: jax.Array


def make_trainer(config: DummyConfig, env) -> Trainer:
    num_actions = env.spec().action.num_values

    def act(params, key, observation, greedy):
        logits = observation @ params
        if greedy:
            return jnp.argmax(logits, axis=-1).astype(jnp.int32)
        return jax.random.categorical(key, logits).astype(jnp.int32)

    def policy_step(params, key, observation, memory, action=None):
        return fnrl.PolicyOutput(act(params, key, observation, False) if action is None else action, memory)

    def init(key):
        obs_dim = env.spec().observation.shape[0]
        params = 0.01 * jax.random.normal(key, (obs_dim, num_actions))
        return DummyState(params, fnrl.rollout_init(env, key), jnp.int32(0))

    def update(state):
        carry, traj = fnrl.unroll(lambda *a: policy_step(state.params, *a), env, state.carry,
                                  config.num_steps, env_info=episode_stats)
        signal = jnp.mean(traj.observation, axis=(0, 1))[:, None] * jnp.mean(traj.reward)
        params = state.params + config.learning_rate * signal
        ended = (traj.terminated | traj.truncated) & traj.valid
        metrics = {
            "episode_return_sum": jnp.sum(jnp.where(ended, traj.env_info.last_return, 0.0)),
            "episode_count": jnp.sum(ended).astype(jnp.float32),
            "env_steps": (state.env_steps + config.num_steps * config.num_envs).astype(jnp.float32),
            "loss": -jnp.mean(traj.reward),
        }
        return DummyState(params, carry, state.env_steps + config.num_steps * config.num_envs), metrics

    return Trainer(init, update, config.total_steps // (config.num_steps * config.num_envs),
                   config.num_steps * config.num_envs, act, lambda s: s.params)


def make_train(config, env):
    return train_from_trainer(make_trainer(config, env))
