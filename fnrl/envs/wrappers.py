"""Wrappers for pure-JAX functional envs: auto-reset, time limit, action repeat, episode
statistics and vectorization (seed-features K17, K18, O5).

Each wrapper takes a `fnrl.types.Env` and returns a new one whose `reset`/`step` are pure,
jit-able and vmap-able; wrapper state is a `NamedTuple` holding the wrapped env's state in its
`env_state` field, so states nest like the wrappers do.

Composition order (innermost first) — the only order in which every wrapper sees what it needs:

    env = vectorize(episode_statistics(auto_reset(time_limit(action_repeat(base, k), T))), N)

* `action_repeat` is innermost: it must stop at a done frame, before anything resets the env.
  Inside `time_limit`, the limit counts agent steps (k frames each); swap the two to count frames.
* `time_limit` sits inside `auto_reset`, so a truncation triggers the automatic reset.
* `episode_statistics` sits outside `auto_reset`: the last finished episode's numbers must
  survive the reset, and the post-done reset step (`valid=False`) must be seen to be skipped.
  It also works outside `vectorize` (it is elementwise over any batch shape).
* `vectorize` is outermost: each env resets on its own schedule, which `vmap` of the per-env
  `lax.cond` in `auto_reset` gives for free.

Reset convention (envpool, `fnrl.types.TimeStep`): after a step that returned `terminated` or
`truncated`, the next `step` ignores its action and returns the first observation of a new
episode with reward 0, `terminated = truncated = False` and `valid=False`.

A pure-JAX env's state is an ordinary pytree, so TensorForce's `StateSettableEnvironment`
(K14) needs no API here: build or `_replace` a state and pass it to `step`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from fnrl._validation import check_array
from fnrl.types import Array, Env, PRNGKey, PyTree, TimeStep


# --------------------------------------------------------------------------------------------
# Argument helpers.


def _check_env(fn: str, env: Any, batched_ok: bool = False) -> None:
    """A pure-JAX `Env`, unbatched unless the wrapper works elementwise over a batch."""
    if not isinstance(env, Env):
        raise ValueError(f"{fn}: argument `env` must be a fnrl.types.Env, got {type(env).__name__}")
    if not env.is_jax:
        raise ValueError(f"{fn}: argument `env` must be a pure-JAX env (is_jax=True)")
    if not batched_ok and env.num_envs is not None:
        raise ValueError(
            f"{fn}: argument `env` must be a single (unbatched) env, got num_envs={env.num_envs}; "
            "apply this wrapper before `vectorize`"
        )


def _check_count(fn: str, name: str, value: Any) -> None:
    """A static Python integer >= 1 (it fixes a loop length or a batch size)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{fn}: argument `{name}` must be a Python int >= 1, got {value!r}")


# --------------------------------------------------------------------------------------------
# Auto-reset.


class AutoResetState(NamedTuple):
    """State of `auto_reset`: the env's state, the key for the next reset, and whether the last
    step ended an episode (so the next `step` resets instead of acting)."""

    env_state: PyTree
    key: PRNGKey
    needs_reset: Array  # bool scalar


def _cast_like(tree: PyTree, like: PyTree) -> PyTree:
    """Casts `tree`'s leaves to the dtypes of `like` (shape structs), so both `lax.cond`
    branches agree even when an env's reset and step produce different (e.g. weak) dtypes."""
    return jax.tree.map(lambda x, s: jnp.asarray(x, s.dtype), tree, like)


def _reset_step_timestep(timestep: TimeStep) -> TimeStep:
    """A reset's timestep as envpool returns it from the post-done step: reward 0, invalid."""
    return timestep._replace(
        reward=jnp.zeros_like(timestep.reward),
        terminated=jnp.zeros_like(timestep.terminated),
        truncated=jnp.zeros_like(timestep.truncated),
        valid=jnp.zeros_like(timestep.valid),
    )


def auto_reset(env: Env) -> Env:
    """Resets the env automatically, envpool style.

    `step(state, a)` on a state whose last step was done (`terminated | truncated`) ignores `a`,
    resets the env with a fresh key split from the one carried in the state, and returns the new
    episode's first observation with `reward = 0`, `terminated = truncated = False`,
    `valid = False`. Otherwise it steps the env and returns its timestep unchanged.

    Args:
      env: an unbatched pure-JAX env.

    Returns:
      The auto-resetting env; its state is an `AutoResetState`.
    """
    _check_env("auto_reset", env)

    def reset(key: PRNGKey) -> tuple[AutoResetState, TimeStep]:
        carry_key, reset_key = jax.random.split(key)
        env_state, timestep = env.reset(reset_key)
        return AutoResetState(env_state, carry_key, jnp.asarray(False)), timestep

    # Branches are built once (not per call) so un-jitted calls reuse the traced `lax.cond`.
    def do_reset(state: AutoResetState, action: PyTree) -> tuple[AutoResetState, TimeStep]:
        carry_key, reset_key = jax.random.split(state.key)
        env_state, timestep = env.reset(reset_key)
        timestep = _reset_step_timestep(timestep)
        out_like = jax.eval_shape(env.step, state.env_state, action)
        env_state, timestep = _cast_like((env_state, timestep), out_like)
        return AutoResetState(env_state, carry_key, jnp.asarray(False)), timestep

    def do_step(state: AutoResetState, action: PyTree) -> tuple[AutoResetState, TimeStep]:
        env_state, timestep = env.step(state.env_state, action)
        return AutoResetState(env_state, state.key, jnp.asarray(timestep.done)), timestep

    def step(state: AutoResetState, action: PyTree) -> tuple[AutoResetState, TimeStep]:
        return lax.cond(state.needs_reset, do_reset, do_step, state, action)

    return Env(reset=reset, step=step, spec=env.spec, num_envs=None, is_jax=True)


# --------------------------------------------------------------------------------------------
# Time limit.


class TimeLimitState(NamedTuple):
    """State of `time_limit`: the env's state and the steps taken in the current episode."""

    env_state: PyTree
    steps: Array  # int32 scalar


def time_limit(env: Env, max_steps: int) -> Env:
    """Truncates episodes after `max_steps` steps (TensorForce Runner `max_episode_timesteps`).

    With `n` the number of steps since the last reset, the `n`-th step returns
    `truncated = truncated_env | (n >= max_steps & ~terminated)`: a termination on the limit
    step wins and stays a termination (it must not bootstrap). The count restarts at `reset`, so
    put `time_limit` inside `auto_reset`.

    Args:
      env: an unbatched pure-JAX env.
      max_steps: episode length limit, a Python int >= 1.

    Returns:
      The time-limited env; its state is a `TimeLimitState`.
    """
    _check_env("time_limit", env)
    _check_count("time_limit", "max_steps", max_steps)

    def reset(key: PRNGKey) -> tuple[TimeLimitState, TimeStep]:
        env_state, timestep = env.reset(key)
        return TimeLimitState(env_state, jnp.zeros((), jnp.int32)), timestep

    def step(state: TimeLimitState, action: PyTree) -> tuple[TimeLimitState, TimeStep]:
        env_state, timestep = env.step(state.env_state, action)
        steps = state.steps + 1
        over = (steps >= max_steps) & ~timestep.terminated
        timestep = timestep._replace(truncated=timestep.truncated | over)
        return TimeLimitState(env_state, steps), timestep

    return Env(reset=reset, step=step, spec=env.spec, num_envs=None, is_jax=True)


# --------------------------------------------------------------------------------------------
# Action repeat.


def _identity(x: Any) -> Any:
    return x


def action_repeat(env: Env, repeats: int) -> Env:
    """Repeats each action `repeats` times (TensorForce `Runner(repeat_actions)`, ALE frame skip).

    One step applies `a` up to `repeats` times and returns the last frame's timestep with
    `reward = Σ_j r_j` over the frames played; it stops right after a frame that is done, so the
    episode's end is never stepped past.

    Args:
      env: an unbatched pure-JAX env (innermost: apply before `time_limit` and `auto_reset`).
      repeats: frames per agent step, a Python int >= 1.

    Returns:
      The env with repeated actions; its state is the wrapped env's state.
    """
    _check_env("action_repeat", env)
    _check_count("action_repeat", "repeats", repeats)

    def play(carry: tuple) -> tuple:
        state, timestep, total, action = carry
        state, timestep = env.step(state, action)
        return state, timestep, total + timestep.reward, action

    def frame(_, carry: tuple) -> tuple:
        # Under vmap the cond becomes a select: frames played past a done one are discarded.
        return lax.cond(carry[1].done, _identity, play, carry)

    def step(state: PyTree, action: PyTree) -> tuple[PyTree, TimeStep]:
        state, timestep = env.step(state, action)
        carry = (state, timestep, timestep.reward, action)
        state, timestep, total, _ = lax.fori_loop(0, repeats - 1, frame, carry)
        return state, timestep._replace(reward=total)

    return Env(reset=env.reset, step=step, spec=env.spec, num_envs=None, is_jax=True)


# --------------------------------------------------------------------------------------------
# Episode statistics.


class EpisodeStats(NamedTuple):
    """Per-env episode bookkeeping (TensorForce Runner `episode_rewards` / `episode_timesteps`).

    `episode_return`/`episode_length` run over the current episode; `last_return`/`last_length`
    describe the last finished one (0 before any finished); `num_episodes` counts finished ones.
    Lengths count valid steps (actions that acted on the env).
    """

    episode_return: Array
    episode_length: Array
    last_return: Array
    last_length: Array
    num_episodes: Array


class EpisodeStatisticsState(NamedTuple):
    """State of `episode_statistics`: the env's state and its `EpisodeStats`."""

    env_state: PyTree
    stats: EpisodeStats


def episode_stats_init(timestep: TimeStep) -> EpisodeStats:
    """Zero statistics shaped like `timestep.reward` (one entry per env of a batch)."""
    reward = check_array("timestep.reward", timestep.reward, kind="float", fn="episode_stats_init")
    zero, count = jnp.zeros(reward.shape, reward.dtype), jnp.zeros(reward.shape, jnp.int32)
    return EpisodeStats(zero, count, zero, count, count)


def episode_stats_update(stats: EpisodeStats, timestep: TimeStep) -> EpisodeStats:
    """Adds one step's timestep to the statistics (also usable in a host loop over envpool).

    For a valid step: `G += r`, `L += 1`; if it is done, `(last_return, last_length) = (G, L)`,
    `num_episodes += 1` and `G = L = 0`. An invalid step (`valid=False`) changes nothing.
    Written with plain array arithmetic, so NumPy inputs stay NumPy (no device round trip in a
    host loop) and JAX inputs stay traceable.
    """
    for name, value, kind in (("valid", timestep.valid, "bool"), ("reward", timestep.reward, "float")):
        dtype = getattr(value, "dtype", None)
        if dtype is None or not (dtype == bool if kind == "bool" else np.issubdtype(dtype, np.floating)):
            raise ValueError(f"episode_stats_update: argument `timestep.{name}` must be a {kind} array, "
                             f"got {type(value).__name__} of dtype {dtype}")
    valid = timestep.valid
    done = timestep.done & valid
    ret = stats.episode_return + timestep.reward * valid
    length = stats.episode_length + valid.astype(np.int32)
    ongoing = ~done
    return EpisodeStats(
        episode_return=ret * ongoing,
        episode_length=length * ongoing,
        # One of the two terms is exactly 0: the finished return is kept bit for bit (a blend
        # `a + done·(b − a)` would round it against the previous episode's).
        last_return=ret * done + stats.last_return * ongoing,
        last_length=length * done + stats.last_length * ongoing,
        num_episodes=stats.num_episodes + done.astype(np.int32),
    )


def episode_statistics(env: Env) -> Env:
    """Tracks `EpisodeStats` in the state; read them with `episode_stats(state)`.

    Put it outside `auto_reset` (see the module docstring): the reset step is invalid and is
    skipped, and the last finished episode's numbers survive the automatic reset.

    Args:
      env: a pure-JAX env, batched or not.

    Returns:
      The env with statistics; its state is an `EpisodeStatisticsState`.
    """
    _check_env("episode_statistics", env, batched_ok=True)

    def reset(key: PRNGKey) -> tuple[EpisodeStatisticsState, TimeStep]:
        env_state, timestep = env.reset(key)
        return EpisodeStatisticsState(env_state, episode_stats_init(timestep)), timestep

    def step(state: EpisodeStatisticsState, action: PyTree) -> tuple[EpisodeStatisticsState, TimeStep]:
        env_state, timestep = env.step(state.env_state, action)
        stats = episode_stats_update(state.stats, timestep)
        return EpisodeStatisticsState(env_state, stats), timestep

    return Env(reset=reset, step=step, spec=env.spec, num_envs=env.num_envs, is_jax=True)


def episode_stats(state: PyTree) -> EpisodeStats:
    """The `EpisodeStats` inside a (possibly further wrapped or vectorized) env state, or the
    ones an envpool state (`fnrl.envs.envpool_adapter.EnvpoolState`) keeps itself."""
    found = state
    while not isinstance(found, EpisodeStatisticsState):
        if isinstance(getattr(found, "episode_stats", None), EpisodeStats):
            return found.episode_stats
        if not hasattr(found, "env_state"):
            raise ValueError(
                "episode_stats: argument `state` must come from an env wrapped by "
                f"`episode_statistics`, got {type(state).__name__}"
            )
        found = found.env_state
    return found.stats


# --------------------------------------------------------------------------------------------
# Vectorization.


def vectorize(env: Env, num_envs: int) -> Env:
    """Runs `num_envs` independent copies of `env` in lockstep with `jax.vmap`.

    `reset(key)` resets copy i with `jax.random.split(key, num_envs)[i]`; `step(state, a)`
    steps every copy with its slice `a[i]` of the batched action. Timesteps and states gain a
    leading axis of size `num_envs`.

    Args:
      env: an unbatched pure-JAX env (already auto-resetting, so copies reset independently).
      num_envs: the batch size, a Python int >= 1.

    Returns:
      The batched env, with `num_envs` set.
    """
    _check_env("vectorize", env)
    _check_count("vectorize", "num_envs", num_envs)
    batched_reset, batched_step = jax.vmap(env.reset), jax.vmap(env.step)

    def reset(key: PRNGKey) -> tuple[PyTree, TimeStep]:
        return batched_reset(jax.random.split(key, num_envs))

    def step(state: PyTree, action: PyTree) -> tuple[PyTree, TimeStep]:
        for leaf in jax.tree.leaves(action):
            if jnp.ndim(leaf) < 1 or jnp.shape(leaf)[0] != num_envs:
                raise ValueError(
                    f"vectorize: argument `action` must have leading axis num_envs={num_envs} "
                    f"on every leaf, got shape {jnp.shape(leaf)}"
                )
        return batched_step(state, action)

    return Env(reset=reset, step=step, spec=env.spec, num_envs=num_envs, is_jax=True)
