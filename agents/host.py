"""Training on envs that step outside XLA (envpool): the host loop of an `agents.common.OnPolicy`
recipe, for several seeds at once.

One pool of `seeds · num_envs` envs serves all seeds: seed k owns envs `[k·E, (k+1)·E)`. An
update plays `num_steps` ticks with `fnrl.rollout.collect` — one jitted policy tick for all
seeds (the recipe's `policy_step`, vmapped over the seeds' states) and one env call per tick —
then runs the recipe's `learn`, jitted and vmapped over seeds, on the collected rollout. These
are the same functions a pure-JAX run scans over, so the two backends share every line of the
algorithm.

The learner states hold their rollout carry with `env_state = ()`: the pool lives on the host,
outside the checkpointed state. A resumed run restores the learners and starts fresh episodes.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import numpy as np

from fnrl.envs.wrappers import episode_stats
from fnrl.rollout import RolloutCarry, collect
from fnrl.types import Env, PRNGKey, PyTree

from agents.common import Trainer, TrainState


def seeds_view(env: Env, seeds: int) -> tuple[Env, Callable[[Any], PyTree]]:
    """`env` (a host env of `seeds · E` envs) seen as `[seeds, E]`: timesteps come split by seed
    and actions go in as `[seeds, E, ...]`. Also returns the view's `env_info`: the episode
    statistics split the same way."""
    if env.num_envs % seeds:
        raise ValueError(f"seeds_view: env.num_envs ({env.num_envs}) must be a multiple of seeds ({seeds})")
    split = lambda x: np.reshape(np.asarray(x), (seeds, -1) + np.shape(x)[1:])  # noqa: E731
    merge = lambda x: np.reshape(np.asarray(x), (-1,) + np.shape(x)[2:])  # noqa: E731

    def reset(key: PRNGKey) -> tuple[Any, PyTree]:
        state, timestep = env.reset(key)
        return state, jax.tree.map(split, timestep)

    def step(state: Any, action: PyTree) -> tuple[Any, PyTree]:
        state, timestep = env.step(state, jax.tree.map(merge, action))
        return state, jax.tree.map(split, timestep)

    view = Env(reset=reset, step=step, spec=env.spec, num_envs=env.num_envs // seeds, is_jax=False)
    return view, (lambda state: jax.tree.map(split, episode_stats(state)))


def _seeds_policy(policy_step: Callable, states: TrainState, key: PRNGKey, observation: PyTree, memory: PyTree,
                  action: PyTree = None):
    """The recipe's policy step for every seed (vmapped over the states' leading axis)."""
    keys = jax.random.split(key, jax.tree.leaves(states)[0].shape[0])
    if action is None:
        return jax.vmap(lambda s, k, o, m: policy_step(s, k, o, m))(states, keys, observation, memory)
    return jax.vmap(policy_step)(states, keys, observation, memory, action)


class HostRun(NamedTuple):
    """A host-loop run: jitted pieces built once, so every update reuses their compilations."""

    update: Callable[[TrainState, Any, PRNGKey], tuple[TrainState, Any, dict]]  # (states, env_state, key)
    init: Callable[[PRNGKey], tuple[TrainState, Any]]  # key -> (states, env_state)


def host_run(trainer: Trainer, env: Env, seeds: int) -> HostRun:
    """Builds the host loop of `trainer.on_policy` on `env`, a host env of `seeds · E` envs."""
    recipe = trainer.on_policy
    if recipe is None:
        raise ValueError("host_run: this agent has no host-loop form (`Trainer.on_policy` is None); "
                         "train it on a pure-JAX env (backend='jax')")
    view, env_info = seeds_view(env, seeds)
    policy_fn = functools.partial(_seeds_policy, recipe.policy_step)
    learn = jax.jit(jax.vmap(recipe.learn))
    start = jax.jit(jax.vmap(recipe.start))
    to_env = jax.jit(jax.vmap(recipe.to_env))
    act_env = view._replace(step=lambda state, action: view.step(state, to_env(action)))

    def init(key: PRNGKey) -> tuple[TrainState, Any]:
        env_key, start_key = jax.random.split(key)
        env_state, timestep = view.reset(env_key)
        memory = jax.tree.map(lambda m: np.broadcast_to(m, (seeds, view.num_envs) + np.shape(m)),
                              recipe.initial_memory)
        keys = jax.random.split(start_key, 2 * seeds)
        carries = RolloutCarry((), timestep, memory, np.ones((seeds, view.num_envs), bool), keys[seeds:])
        return start(keys[:seeds], carries), env_state

    def update(states: TrainState, env_state: Any, key: PRNGKey) -> tuple[TrainState, Any, dict]:
        rollout = states.rollout
        carry = RolloutCarry(env_state, rollout.timestep, rollout.memory, rollout.first, key)
        carry, trajectory = collect(jax.tree_util.Partial(policy_fn, states), act_env, carry, recipe.num_steps,
                                    recipe.initial_memory, env_info=env_info)
        seed_major = jax.tree.map(lambda x: np.swapaxes(x, 0, 1), trajectory)  # [T, K, ...] -> [K, T, ...]
        after = RolloutCarry((), carry.timestep, carry.memory, carry.first, rollout.key)
        states, metrics = learn(states, after, seed_major)
        return states, carry.env_state, metrics

    return HostRun(update=update, init=init)
