"""Rollouts: play a policy in an environment for N ticks (AgentNet `get_sessions`, TensorForce
`Runner`), replay a stored session with teacher-forced actions, and a jitted one-step react.

Tick alignment (AgentNet M4/M9): at tick i the policy sees observation o_i and its memory from
tick i−1, emits action a_i and memory m_i; the env answers with reward r_i and o_{i+1}. Every
field of a `Trajectory` is time-major `[T, ...]` and indexed by the tick.

A policy step is any function

    policy_step(key, observation, memory, action=None) -> PolicyOutput(action, memory, extras)

that samples an action when `action` is None and otherwise uses the given one (teacher forcing in
`replay`; a memory update that reads the action must read `action`). `extras` is any pytree the
caller wants recorded per tick (logits, values, log-probabilities). Bind parameters with
`functools.partial`. Memory is reset to `initial_memory` on the first tick of every episode: after
`reset`, and after a `valid=False` timestep (the envpool-style reset step, see `fnrl.types.TimeStep`).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from fnrl.types import Array, Env, PRNGKey, PyTree, TimeStep


class PolicyOutput(NamedTuple):
    action: PyTree
    memory: PyTree
    extras: PyTree = ()


PolicyStep = Callable[..., PolicyOutput]


class Trajectory(NamedTuple):
    """A time-major rollout. Transition i is (observation[i], action[i]) → (reward[i], o_{i+1}).

    `terminated`/`truncated` describe o_{i+1}; `valid[i]` is False where the env ignored the
    action (the reset step after a done one); `first[i]` marks the first tick of an episode
    (memory was reset before it); `memory[i]` is the memory after tick i (AgentNet's hidden_seq);
    `env_info[i]` is `env_info(env_state)` after step i when the rollout was given such a
    function (e.g. `fnrl.envs.wrappers.episode_stats`), else `()`.
    """

    observation: PyTree
    action: PyTree
    reward: Array
    terminated: Array
    truncated: Array
    valid: Array
    first: Array
    extras: PyTree
    memory: PyTree
    env_info: PyTree = ()


class RolloutCarry(NamedTuple):
    """What a rollout carries from one call to the next (so rollouts can be chained)."""

    env_state: Any
    timestep: TimeStep
    memory: PyTree
    first: Array
    key: PRNGKey


def rollout_init(env: Env, key: PRNGKey, initial_memory: PyTree = ()) -> RolloutCarry:
    """Resets `env` and returns the carry for `unroll`/`collect`; every env starts an episode."""
    reset_key, key = jax.random.split(key)
    env_state, timestep = env.reset(reset_key)
    first = jnp.ones(jnp.shape(timestep.reward), bool)
    return RolloutCarry(env_state, timestep, initial_memory, first, key)


def reset_memory(memory: PyTree, initial_memory: PyTree, first: Array) -> PyTree:
    """memory where not `first`, else the initial memory (broadcast over the batch)."""

    def pick(current, initial):
        mask = jnp.reshape(first, jnp.shape(first) + (1,) * (jnp.ndim(current) - jnp.ndim(first)))
        return jnp.where(mask, jnp.broadcast_to(initial, jnp.shape(current)), current)

    return jax.tree.map(pick, memory, initial_memory)


def _tick(policy_step: PolicyStep, initial_memory: PyTree, key, observation, memory, first, action=None):
    """One policy tick: reset memory on first ticks, then act (or teacher-force `action`)."""
    key, step_key = jax.random.split(key)
    memory = reset_memory(memory, initial_memory, first)
    return key, policy_step(step_key, observation, memory, action)


_jitted_tick = jax.jit(_tick)


def unroll(
    policy_step: PolicyStep,
    env: Env,
    carry: RolloutCarry,
    length: int,
    initial_memory: PyTree = None,
    env_info: Callable[[Any], PyTree] | None = None,
) -> tuple[RolloutCarry, Trajectory]:
    """Plays `policy_step` in a pure-JAX `env` for `length` ticks inside one `lax.scan`.

    AgentNet's `get_sessions` (M4) for in-graph environments. Jit-able; `vmap`/shard over
    independent carries. `initial_memory` is what memory resets to at episode starts (default:
    zeros shaped like the carry's memory).

    Returns:
      the carry after the last tick (its timestep holds o_T for bootstrapping) and the trajectory.
    """
    if not env.is_jax:
        raise ValueError("unroll: argument `env` is a host env (envpool); use `collect` instead")
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"unroll: argument `length` must be a Python int >= 1, got {length!r}")
    init_memory = jax.tree.map(jnp.zeros_like, carry.memory) if initial_memory is None else initial_memory

    def body(carry: RolloutCarry, _):
        key, out = _tick(policy_step, init_memory, carry.key, carry.timestep.observation, carry.memory, carry.first)
        env_state, timestep = env.step(carry.env_state, out.action)
        record = Trajectory(
            observation=carry.timestep.observation, action=out.action, reward=timestep.reward,
            terminated=timestep.terminated, truncated=timestep.truncated, valid=timestep.valid,
            first=carry.first, extras=out.extras, memory=out.memory,
            env_info=() if env_info is None else env_info(env_state),
        )
        return RolloutCarry(env_state, timestep, out.memory, ~timestep.valid, key), record

    return lax.scan(body, carry, None, length=length)


def replay(
    policy_step: PolicyStep,
    key: PRNGKey,
    observations: PyTree,
    actions: PyTree,
    first: Array,
    memory: PyTree,
    initial_memory: PyTree = None,
) -> tuple[PyTree, PyTree]:
    """Re-runs a policy over a stored session with the recorded actions (AgentNet experience
    replay, M5 `as_replay_recurrence`): memory and extras are recomputed from the current
    parameters while actions are teacher-forced.

    Args:
      policy_step: see the module docstring; it receives the recorded action.
      key: PRNG key for any randomness inside the policy (e.g. dropout).
      observations, actions: time-major `[T, ...]` pytrees from a `Trajectory`.
      first: `[T, ...]` bool, episode starts (memory resets there), e.g. `Trajectory.first`.
      memory: the memory before tick 0 (e.g. stored with the session; zeros for a fresh start).
      initial_memory: what memory resets to (default zeros of `memory`'s shape).

    Returns:
      `(extras, memories)`, both time-major.
    """
    first = jnp.asarray(first)
    if first.dtype != jnp.bool_:
        raise ValueError(f"replay: argument `first` must be a bool array, got dtype {first.dtype}")
    init_memory = jax.tree.map(jnp.zeros_like, memory) if initial_memory is None else initial_memory

    def body(state, xs):
        key, memory = state
        observation, action, is_first = xs
        key, out = _tick(policy_step, init_memory, key, observation, memory, is_first, action)
        return (key, out.memory), (out.extras, out.memory)

    _, (extras, memories) = lax.scan(body, (key, memory), (observations, actions, first))
    return extras, memories


def make_act(policy_step: PolicyStep) -> Callable[[PRNGKey, PyTree, PyTree], PolicyOutput]:
    """AgentNet's `get_react_function` (M1): a jitted one-step `act(key, observation, memory)`."""
    return jax.jit(lambda key, observation, memory: policy_step(key, observation, memory, None))


def collect(
    policy_step: PolicyStep,
    env: Env,
    carry: RolloutCarry,
    length: int,
    initial_memory: PyTree = None,
    env_info: Callable[[Any], PyTree] | None = None,
) -> tuple[RolloutCarry, Trajectory]:
    """The host-loop twin of `unroll`: the same ticks, for envs that step on the host (envpool).

    The policy tick is jitted; the env steps in Python. Works with pure-JAX envs too (their
    step is jitted), so the two backends share agent code and give the same trajectory.
    The trajectory's arrays are stacked on the host as numpy arrays.

    The jitted tick is cached on the policy function: to call `collect` again with new
    parameters without recompiling, pass `jax.tree_util.Partial(step_fn, params)` (the same
    `step_fn` object each time, the arrays as its bound arguments) rather than a new closure.
    """
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"collect: argument `length` must be a Python int >= 1, got {length!r}")
    init_memory = jax.tree.map(jnp.zeros_like, carry.memory) if initial_memory is None else initial_memory
    if not isinstance(policy_step, jax.tree_util.Partial):
        policy_step = jax.tree_util.Partial(policy_step)
    env_step = jax.jit(env.step) if env.is_jax else env.step
    records = []
    for _ in range(length):
        key, out = _jitted_tick(policy_step, init_memory, carry.key, carry.timestep.observation, carry.memory,
                                carry.first)
        env_state, timestep = env_step(carry.env_state, jax.device_get(out.action))
        records.append(Trajectory(
            observation=carry.timestep.observation, action=out.action, reward=timestep.reward,
            terminated=timestep.terminated, truncated=timestep.truncated, valid=timestep.valid,
            first=carry.first, extras=out.extras, memory=out.memory,
            env_info=() if env_info is None else env_info(env_state),
        ))
        carry = RolloutCarry(env_state, timestep, out.memory, ~np.asarray(timestep.valid), key)
    trajectory = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *records)
    return carry, trajectory
