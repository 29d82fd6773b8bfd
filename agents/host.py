"""Training on envs that step outside XLA (envpool): the host loop of an `agents.common.OnPolicy`
recipe, for several seeds at once.

One pool of `seeds · num_envs` envs serves all seeds: seed k owns envs `[k·E, (k+1)·E)`. An
update plays `num_steps` ticks with `fnrl.rollout.collect` on the pool as it is (flat, env
order) — one jitted policy tick per env call that reshapes the rows to `[seeds, E]` and runs the
recipe's `policy_step` vmapped over the seeds' states, with the recipe's `to_env` inside the
same call — then runs the recipe's `learn`, jitted and vmapped over seeds, on the rollout
reshaped to `[seeds, T, E]`. These are the same functions a pure-JAX run scans over, so the two
backends share every line of the algorithm.

Given an asynchronous pool (`fnrl.envs.envpool_async(id, seeds · E, batch_size=seeds · E / 2)`),
the rollout is `fnrl.rollout.collect_async`: two lanes, each holding half of every seed's envs,
and the policy acts for one lane while the other steps. Each env's trajectory follows the same
rules (time-major, `valid` flags, episode statistics); only the policy's random draws differ.

The learner states hold their rollout carry with `env_state = ()`: the pool lives on the host,
outside the checkpointed state. A resumed run restores the learners and starts fresh episodes.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Var

from fnrl.envs.wrappers import episode_stats
from fnrl.rollout import RolloutCarry, Trajectory, collect, collect_async
from fnrl.types import Env, PRNGKey, PyTree

from agents.common import Trainer, TrainState


def _split(seeds: int, x: Any) -> Any:
    """`[seeds · n, ...]` -> `[seeds, n, ...]` (numpy or jax arrays)."""
    return x.reshape((seeds, -1) + x.shape[1:])


def _merge(x: Any) -> Any:
    """`[seeds, n, ...]` -> `[seeds · n, ...]`."""
    return x.reshape((-1,) + x.shape[2:])


def seeds_view(env: Env, seeds: int) -> tuple[Env, Callable[[Any], PyTree]]:
    """`env` (a host env of `seeds · E` envs) seen as `[seeds, E]`: timesteps come split by seed
    and actions go in as `[seeds, E, ...]`. Also returns the view's `env_info`: the episode
    statistics split the same way."""
    if env.num_envs % seeds:
        raise ValueError(f"seeds_view: env.num_envs ({env.num_envs}) must be a multiple of seeds ({seeds})")
    split = lambda x: _split(seeds, np.asarray(x))  # noqa: E731
    merge = lambda x: _merge(np.asarray(x))  # noqa: E731

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
    """The recipe's policy step for every seed (vmapped over the states' leading axis). One seed
    acts with the step key itself: a split is a threefry loop, ~30 µs per tick on CPU."""
    seeds = jax.tree.leaves(states)[0].shape[0]
    keys = key[None] if seeds == 1 else jax.random.split(key, seeds)
    if action is None:
        return jax.vmap(lambda s, k, o, m: policy_step(s, k, o, m))(states, keys, observation, memory)
    return jax.vmap(policy_step)(states, keys, observation, memory, action)


def _rows_policy(policy_step: Callable, seeds: int, states: TrainState, key: PRNGKey, observation: PyTree,
                 memory: PyTree, action: PyTree = None):
    """`_seeds_policy` on seed-major rows `[seeds · n, ...]` (a pool, or a lane of it), reshaped
    inside the jitted tick, where reshapes cost nothing."""
    split = functools.partial(_split, seeds)
    args = jax.tree.map(split, (observation, memory, action))
    return jax.tree.map(_merge, _seeds_policy(policy_step, states, key, *args))


def _rows_to_env(to_env: Callable, seeds: int, action: PyTree) -> PyTree:
    """The recipe's `to_env` (vmapped over seeds) on seed-major rows."""
    return jax.tree.map(_merge, jax.vmap(to_env)(jax.tree.map(functools.partial(_split, seeds), action)))


def _read_leaves(fn: Callable, states: TrainState, *args: Any) -> tuple[bool, ...]:
    """Which leaves of `states` `fn(states, *args)` reads: backward liveness over its jaxpr. An
    unread leaf (an optimizer state, when acting) need not be passed to the jitted tick, whose
    dispatch cost grows with its number of arguments."""
    leaves, treedef = jax.tree.flatten(states)
    jaxpr = jax.make_jaxpr(lambda leaves, *a: fn(treedef.unflatten(leaves), *a))(leaves, *args).jaxpr
    live = {v for v in jaxpr.outvars if isinstance(v, Var)}
    for eqn in reversed(jaxpr.eqns):
        if eqn.effects or any(v in live for v in eqn.outvars):
            live.update(v for v in eqn.invars if isinstance(v, Var))
    return tuple(v in live for v in jaxpr.invars[: len(leaves)])


def _reading_policy(policy_fn: Callable, treedef: Any, unread: tuple, leaves: list, key: PRNGKey,
                    observation: PyTree, memory: PyTree, action: PyTree = None):
    """`policy_fn` on states rebuilt from the leaves it reads; `unread` holds a ShapeDtypeStruct
    for each unread leaf (zeros in their place, which XLA drops) and None for a read one."""
    read = iter(leaves)
    full = [next(read) if spec is None else jnp.zeros(spec.shape, spec.dtype) for spec in unread]
    return policy_fn(treedef.unflatten(full), key, observation, memory, action)


class HostRun(NamedTuple):
    """A host-loop run: jitted pieces built once, so every update reuses their compilations."""

    update: Callable[[TrainState, Any, PRNGKey], tuple[TrainState, Any, dict]]  # (states, env_state, key)
    init: Callable[[PRNGKey], tuple[TrainState, Any]]  # key -> (states, env_state)
    # (states, env_state, key) -> (carry after [seeds, E], trajectory [seeds, T, E], env_state):
    # the acting part of `update`, without learning.
    rollout: Callable[[TrainState, Any, PRNGKey], tuple[RolloutCarry, Trajectory, Any]]


def _lanes(seeds: int, num_envs: int) -> tuple[np.ndarray, np.ndarray]:
    """Half of every seed's envs in each lane (so a lane's rows reshape to `[seeds, E / 2]`)."""
    ids = np.arange(num_envs).reshape(seeds, 2, -1)
    return ids[:, 0].reshape(-1), ids[:, 1].reshape(-1)


def _check_pool(env: Any, seeds: int) -> None:
    from fnrl.envs.envpool_adapter import EnvpoolAsync  # envpool is slow to import: only for host runs

    if not isinstance(env, (Env, EnvpoolAsync)):
        raise ValueError(f"host_run: argument `env` must be an fnrl Env or an envpool_async pool, "
                         f"got {type(env).__name__}")
    if env.num_envs % seeds:
        raise ValueError(f"host_run: env.num_envs ({env.num_envs}) must be a multiple of seeds ({seeds})")
    if isinstance(env, EnvpoolAsync) and (env.num_envs % (2 * seeds) or 2 * env.batch_size != env.num_envs):
        raise ValueError(f"host_run: an envpool_async `env` needs an even number of envs per seed and "
                         f"batch_size = num_envs / 2, got num_envs={env.num_envs}, batch_size={env.batch_size} "
                         f"for {seeds} seeds")


def _acting_policy(policy_fn: Callable, cache: dict, states: TrainState, carry: RolloutCarry
                   ) -> jax.tree_util.Partial:
    """`policy_fn` bound to the leaves of `states` it reads: which ones is traced once per states
    structure and kept in `cache`. Leaves of extended dtypes (typed PRNG keys) have no zeros to
    stand in for them, so they are always passed."""
    leaves, treedef = jax.tree.flatten(states)
    if treedef not in cache:
        read = _read_leaves(policy_fn, states, carry.key, carry.timestep.observation, carry.memory)
        unread = tuple(None if r or jax.dtypes.issubdtype(x.dtype, jax.dtypes.extended)
                       else jax.ShapeDtypeStruct(np.shape(x), x.dtype) for r, x in zip(read, leaves))
        cache[treedef] = functools.partial(_reading_policy, policy_fn, treedef, unread)
    bound = cache[treedef]
    return jax.tree_util.Partial(bound, [x for x, spec in zip(leaves, bound.args[2]) if spec is None])


def _init(recipe: Any, reset: Callable, start: Callable, seeds: int, num_envs: int,
          key: PRNGKey) -> tuple[TrainState, Any]:
    """Resets the pool and starts every seed's state around its `[E]` rows."""
    env_key, start_key = jax.random.split(key)
    env_state, timestep = reset(env_key)
    memory = jax.tree.map(lambda m: np.broadcast_to(m, (seeds, num_envs // seeds) + np.shape(m)),
                          recipe.initial_memory)
    keys = jax.random.split(start_key, 2 * seeds)
    carries = RolloutCarry((), jax.tree.map(functools.partial(_split, seeds), timestep), memory,
                           np.ones((seeds, num_envs // seeds), bool), keys[seeds:])
    return start(keys[:seeds], carries), env_state


def _rollout(recipe: Any, run: Callable, env: Any, policy: Callable, env_action: Callable, seeds: int,
             states: TrainState, env_state: Any, key: PRNGKey) -> tuple[RolloutCarry, Trajectory, Any]:
    """`num_steps` ticks of every seed on the flat pool (`run`: `collect` or `collect_async`):
    (the carry after, `[seeds, E]`; the trajectory, `[seeds, T, E]`; the pool's state)."""
    before = states.rollout
    rows = jax.tree.map(lambda x: _merge(np.asarray(x)), (before.timestep, before.first))
    carry = RolloutCarry(env_state, rows[0], jax.tree.map(_merge, before.memory), rows[1], key)
    carry, trajectory = run(policy(states, carry), env, carry, recipe.num_steps, recipe.initial_memory,
                            episode_stats, env_action)
    after = jax.tree.map(functools.partial(_split, seeds), (carry.timestep, carry.memory, carry.first))
    seed_major = jax.tree.map(lambda x: np.swapaxes(x.reshape((x.shape[0], seeds, -1) + x.shape[2:]), 0, 1),
                              trajectory)  # [T, seeds · E, ...] -> [seeds, T, E, ...]
    return RolloutCarry((), *after, before.key), seed_major, carry.env_state


def host_run(trainer: Trainer, env: Any, seeds: int) -> HostRun:
    """Builds the host loop of `trainer.on_policy` on `env`, a host env of `seeds · E` envs
    (`envpool_env`), or an `envpool_async` pool of them with `batch_size = seeds · E / 2` for the
    double-buffered rollout."""
    recipe = trainer.on_policy
    if recipe is None:
        raise ValueError("host_run: this agent has no host-loop form (`Trainer.on_policy` is None); "
                         "train it on a pure-JAX env (backend='jax')")
    _check_pool(env, seeds)
    from fnrl.envs.envpool_adapter import EnvpoolAsync, receive_all

    if isinstance(env, EnvpoolAsync):
        run = functools.partial(collect_async, lanes=_lanes(seeds, env.num_envs))
        reset = lambda key: receive_all(env, env.reset(key))  # noqa: E731
    else:
        run, reset = collect, env.reset
    policy = functools.partial(_acting_policy, functools.partial(_rows_policy, recipe.policy_step, seeds), {})
    env_action = jax.tree_util.Partial(functools.partial(_rows_to_env, recipe.to_env, seeds))
    rollout = functools.partial(_rollout, recipe, run, env, policy, env_action, seeds)
    learn = jax.jit(jax.vmap(recipe.learn))

    def update(states: TrainState, env_state: Any, key: PRNGKey) -> tuple[TrainState, Any, dict]:
        after, trajectory, env_state = rollout(states, env_state, key)
        states, metrics = learn(states, after, trajectory)
        return states, env_state, metrics

    init = functools.partial(_init, recipe, reset, jax.jit(jax.vmap(recipe.start)), seeds, env.num_envs)
    return HostRun(update=update, init=init, rollout=rollout)
