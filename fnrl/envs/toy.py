"""Pure-JAX toy environments: TensorForce's `MinimalTest` (seed-features K16, R2, K17),
AgentNet's boolean-reasoning experiment (K4) and a multi-armed bandit.

Each constructor returns a raw, unbatched `fnrl.types.Env`: `reset(key)` and `step(state, a)`
are pure and jit/vmap-able, the state is a `NamedTuple` carrying any randomness as a key, and
the reward of a step is a float32 scalar. Raw envs do not reset themselves; wrap them as
`fnrl.envs.wrappers` documents (`auto_reset`, `vectorize`, ...) to get envpool's convention.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnrl._validation import check_array, is_positive_int_sequence
from fnrl.envs.wrappers import time_limit
from fnrl.types import Array, ArrayLike, Env, EnvSpec, PRNGKey, PyTree, Spec, TimeStep


def _timestep(observation: PyTree, reward: ArrayLike, terminated: ArrayLike) -> TimeStep:
    """A valid, untruncated timestep with float32 reward and bool flags."""
    return TimeStep(
        observation=observation,
        reward=jnp.asarray(reward, jnp.float32),
        terminated=jnp.asarray(terminated, jnp.bool_),
        truncated=jnp.zeros((), jnp.bool_),
        valid=jnp.ones((), jnp.bool_),
    )


# --------------------------------------------------------------------------------------------
# TensorForce MinimalTest.

MINIMAL_TEST_TYPES = ("bool", "int", "float", "bounded")
_CHECK_KIND = {"bool": "bool", "int": "int", "float": "float", "bounded": "float"}


class MinimalTestState(NamedTuple):
    """State of `minimal_test`: one `(x, y)` float32 pair per action part, and the key that
    draws terminations."""

    pairs: dict[str, Array]
    key: PRNGKey


def _spec_error(detail: str) -> ValueError:
    return ValueError(
        "minimal_test: argument `specification` must be one of "
        f"{MINIMAL_TEST_TYPES} or a dict of them (name -> type | (type, shape), or TensorForce's "
        f"type -> shape); {detail}"
    )


def _parse_part(name: str, value: Any) -> tuple[str, tuple[int, ...]]:
    """One dict entry -> (type, shape): `type`, `(type, shape)` or TensorForce's `type: shape`."""
    if isinstance(value, str):
        kind, shape = value, ()
    elif isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], str):
        kind, shape = value
    else:
        kind, shape = name, value
    shape = (shape,) if isinstance(shape, int) else shape
    if kind not in MINIMAL_TEST_TYPES:
        raise _spec_error(f"got type {kind!r} for {name!r}")
    if not is_positive_int_sequence(shape):
        raise _spec_error(f"got shape {shape!r} for {name!r} (want a tuple of ints >= 1)")
    return kind, tuple(shape)


def _parse_minimal_spec(specification: Any) -> dict[str, tuple[str, tuple[int, ...]]]:
    if isinstance(specification, str):
        specification = {specification: specification}
    if not isinstance(specification, dict) or not specification:
        raise _spec_error(f"got {specification!r}")
    return {str(name): _parse_part(name, value) for name, value in specification.items()}


def _minimal_action_spec(kind: str, shape: tuple[int, ...]) -> Spec:
    """TensorForce's MinimalTest `actions`: int has 2 values, bounded lies in [-0.5, 1.5]."""
    if kind == "bool":
        return Spec(shape, jnp.bool_)
    if kind == "int":
        return Spec(shape, jnp.int32, num_values=2)
    if kind == "bounded":
        return Spec(shape, jnp.float32, minimum=-0.5, maximum=1.5)
    return Spec(shape, jnp.float32)


def _minimal_next_pair(kind: str, pair: Array, action: Array) -> Array:
    """R2's update of one part's `(x, y)`.

    bool/int: `y = #(a == 1) / n`, `x = 1 − y`. float/bounded: with `s = mean(a)`,
    `(x, y) ← (max(x − s, 0), min(y + s, 1))`.
    """
    if kind in ("bool", "int"):
        y = jnp.mean((action == 1).astype(jnp.float32))
        return jnp.stack([1.0 - y, y])
    s = jnp.mean(action.astype(jnp.float32))
    return jnp.stack([jnp.maximum(pair[0] - s, 0.0), jnp.minimum(pair[1] + s, 1.0)])


def _minimal_actions(parts: dict, single: bool, action: PyTree) -> dict[str, Array]:
    """Checks the action against the parts' specs; returns it as a dict by part name."""
    if single:
        action = {next(iter(parts)): action}
    elif not isinstance(action, dict) or set(action) != set(parts):
        raise ValueError(
            f"minimal_test.step: argument `action` must be a dict with keys {sorted(parts)}, got "
            f"{sorted(action) if isinstance(action, dict) else type(action).__name__}"
        )
    return {
        name: check_array("action" if single else f"action[{name!r}]", action[name],
                          kind=_CHECK_KIND[kind], shape=shape, fn="minimal_test.step")
        for name, (kind, shape) in parts.items()
    }


def minimal_test(specification: str | dict) -> Env:
    """TensorForce's `MinimalTest` env for agent unit tests, with R2's exact semantics.

    One `(x, y)` pair per action part, reset to `(1, 0)`; each step updates every pair by
    `_minimal_next_pair`, rewards `r = mean_parts clip(y, 0, 1)` (the "correct" action is
    1 / True / 1.0, which earns 1 every step) and terminates with probability 0.25, drawn from
    the state's key. Observations are float32 `(x, y)` pairs, `Spec((2,), float32)`.

    Args:
      specification: a type in `("bool", "int", "float", "bounded")` (one scalar action), or a
        dict of action parts, each `name: type`, `name: (type, shape)` or, as in TensorForce,
        `type: shape` (e.g. `{"bool": (), "int": (2,), "float": (1, 1), "bounded": (1,)}`).
        With a single part, observation and action are bare arrays; otherwise dicts by name.

    Returns:
      The env; its state is a `MinimalTestState`.
    """
    parts = _parse_minimal_spec(specification)
    single = len(parts) == 1
    unwrap = (lambda tree: next(iter(tree.values()))) if single else (lambda tree: tree)
    env_spec = EnvSpec(
        observation=unwrap({name: Spec((2,), jnp.float32) for name in parts}),
        action=unwrap({name: _minimal_action_spec(*part) for name, part in parts.items()}),
    )

    def reset(key: PRNGKey) -> tuple[MinimalTestState, TimeStep]:
        pairs = {name: jnp.array([1.0, 0.0], jnp.float32) for name in parts}
        return MinimalTestState(pairs, key), _timestep(unwrap(pairs), 0.0, False)

    def step(state: MinimalTestState, action: PyTree) -> tuple[MinimalTestState, TimeStep]:
        actions = _minimal_actions(parts, single, action)
        pairs = {
            name: _minimal_next_pair(kind, state.pairs[name], actions[name])
            for name, (kind, _) in parts.items()
        }
        reward = jnp.mean(jnp.stack([jnp.clip(pair[1], 0.0, 1.0) for pair in pairs.values()]))
        key, draw = jax.random.split(state.key)
        terminated = jax.random.uniform(draw) < 0.25
        return MinimalTestState(pairs, key), _timestep(unwrap(pairs), reward, terminated)

    return Env(reset=reset, step=step, spec=lambda: env_spec)


# --------------------------------------------------------------------------------------------
# AgentNet boolean reasoning.

BOOLEAN_REASONING_ACTIONS = ("X1", "X2", "X3", "Y1", "Y2", "end")


class BooleanReasoningState(NamedTuple):
    """State of `boolean_reasoning`: hidden factors `[X1, X2, X3, Y1, Y2]` and which of them
    have been opened in this episode."""

    factors: Array  # bool[5]
    opened: Array  # bool[5]


def _reasoning_observation(state: BooleanReasoningState) -> Array:
    """+1 / −1 for an opened true / false factor, 0 for an unopened one."""
    signs = jnp.where(state.factors, 1.0, -1.0)
    return jnp.where(state.opened, signs, 0.0).astype(jnp.float32)


def _reasoning_reset(key: PRNGKey) -> tuple[BooleanReasoningState, TimeStep]:
    x = jax.random.bernoulli(key, 0.5, (3,))
    y1 = ~x[0] & x[1]
    state = BooleanReasoningState(
        factors=jnp.concatenate([x, jnp.stack([y1, ~y1])]), opened=jnp.zeros((5,), jnp.bool_)
    )
    return state, _timestep(_reasoning_observation(state), 0.0, False)


def _reasoning_step(
    state: BooleanReasoningState, action: ArrayLike
) -> tuple[BooleanReasoningState, TimeStep]:
    """Opens a factor (±1 for X, ±3 for Y, the first time only) or ends the episode (0)."""
    action = check_array("action", action, kind="int", rank=0, fn="boolean_reasoning.step")
    action = jnp.clip(action, 0, 5)
    end = action == 5
    index = jnp.minimum(action, 4)
    first = ~end & ~state.opened[index]
    magnitude = jnp.where(index < 3, 1.0, 3.0)
    reward = jnp.where(first, jnp.where(state.factors[index], magnitude, -magnitude), 0.0)
    state = state._replace(opened=state.opened.at[index].set(state.opened[index] | ~end))
    return state, _timestep(_reasoning_observation(state), reward, end)


def boolean_reasoning(max_steps: int | None = 10) -> Env:
    """AgentNet's boolean-reasoning experiment (`experiments/boolean_reasoning`) in pure JAX.

    Rules (as in AgentNet's `BooleanReasoningEnvironment`): each episode draws hidden bits
    `X1, X2, X3 ~ Bernoulli(0.5)` and sets `Y1 = ¬X1 ∧ X2`, `Y2 = ¬Y1`. Action i < 5 opens factor
    `BOOLEAN_REASONING_ACTIONS[i]`: the first time, it pays +1 if an X is 1 (−1 if 0) and +3 if a
    Y is 1 (−3 if 0); reopening pays 0. Action 5 ("end") pays 0 and terminates. Out-of-range
    actions are clipped to [0, 5]. Every X pays 0 in expectation, so the best policy opens X1
    (and X2 if X1 = 0) to infer which Y is 1, opens it and ends: expected return 3.

    The observation is Markov, float32 `[5]`: +1 / −1 for an opened true / false factor, 0 for
    an unopened one (AgentNet fed the last answer to a recurrent agent instead; this board holds
    the same information so a feed-forward agent can learn too).

    Args:
      max_steps: truncate episodes after this many steps (`time_limit`), or None for no limit.

    Returns:
      The env; its state is a `BooleanReasoningState` (inside a `TimeLimitState` with a limit).
    """
    env_spec = EnvSpec(
        observation=Spec((5,), jnp.float32, minimum=-1.0, maximum=1.0),
        action=Spec((), jnp.int32, num_values=len(BOOLEAN_REASONING_ACTIONS)),
    )
    env = Env(reset=_reasoning_reset, step=_reasoning_step, spec=lambda: env_spec)
    if max_steps is None:
        return env
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(
            f"boolean_reasoning: argument `max_steps` must be None or a Python int >= 1, got {max_steps!r}"
        )
    return time_limit(env, max_steps)


# --------------------------------------------------------------------------------------------
# Multi-armed bandit.

BANDIT_DISTRIBUTIONS = ("bernoulli", "gaussian")


class BanditState(NamedTuple):
    """State of `bandit`: the arms' means and the key that draws rewards."""

    means: Array  # float32[num_arms]
    key: PRNGKey


def _bandit_means(means: ArrayLike | None, num_arms: int | None, distribution: str) -> Array | None:
    """Checks the arm arguments; returns the fixed means, or None if drawn at each reset."""
    if (means is None) == (num_arms is None):
        raise ValueError("bandit: give exactly one of the arguments `means` and `num_arms`")
    if distribution not in BANDIT_DISTRIBUTIONS:
        raise ValueError(
            f"bandit: argument `distribution` must be one of {BANDIT_DISTRIBUTIONS}, got {distribution!r}"
        )
    if num_arms is not None:
        if isinstance(num_arms, bool) or not isinstance(num_arms, int) or num_arms < 1:
            raise ValueError(f"bandit: argument `num_arms` must be a Python int >= 1, got {num_arms!r}")
        return None
    means = check_array("means", means, kind="numeric", rank=1, fn="bandit").astype(jnp.float32)
    if means.shape[0] < 1:
        raise ValueError("bandit: argument `means` must have at least one arm, got shape (0,)")
    concrete = not isinstance(means, jax.core.Tracer)
    if distribution == "bernoulli" and concrete and not np.all((means >= 0) & (means <= 1)):
        raise ValueError(f"bandit: argument `means` must lie in [0, 1] for Bernoulli arms, got {means}")
    return means


def bandit(
    means: ArrayLike | None = None,
    *,
    num_arms: int | None = None,
    distribution: str = "bernoulli",
    stddev: float = 1.0,
) -> Env:
    """A multi-armed bandit with one-step episodes (Sutton & Barto, 2018, ch. 2).

    Pulling arm `a` pays `r ~ Bernoulli(μ_a)` or `r ~ N(μ_a, stddev²)` and terminates. The means
    are fixed (`means`) or redrawn at every reset (`num_arms`): `μ ~ U(0, 1)` for Bernoulli arms,
    `μ ~ N(0, 1)` for Gaussian ones. The observation is a constant float32 `[1]` zero; actions are
    int32 arm ids (out-of-range ids, negative ones too, are clamped to the nearest arm).

    Args:
      means: float `[num_arms]` fixed arm means (in [0, 1] for Bernoulli arms), or None.
      num_arms: number of arms with random means, or None when `means` is given.
      distribution: "bernoulli" or "gaussian".
      stddev: the Gaussian arms' reward standard deviation (> 0).

    Returns:
      The env; its state is a `BanditState`.
    """
    fixed = _bandit_means(means, num_arms, distribution)
    if isinstance(stddev, (int, float)) and not stddev > 0:
        raise ValueError(f"bandit: argument `stddev` must be > 0, got {stddev!r}")
    arms = num_arms if fixed is None else fixed.shape[0]
    env_spec = EnvSpec(Spec((1,), jnp.float32), Spec((), jnp.int32, num_values=arms))
    observation = jnp.zeros((1,), jnp.float32)

    def reset(key: PRNGKey) -> tuple[BanditState, TimeStep]:
        key, draw = jax.random.split(key)
        if fixed is not None:
            mu = fixed
        elif distribution == "bernoulli":
            mu = jax.random.uniform(draw, (arms,))
        else:
            mu = jax.random.normal(draw, (arms,))
        return BanditState(mu, key), _timestep(observation, 0.0, False)

    def step(state: BanditState, action: ArrayLike) -> tuple[BanditState, TimeStep]:
        action = check_array("action", action, kind="int", rank=0, fn="bandit.step")
        key, draw = jax.random.split(state.key)
        mu = state.means[jnp.clip(action, 0, arms - 1)]  # (jnp indexing would wrap a negative id)
        if distribution == "bernoulli":
            reward = (jax.random.uniform(draw) < mu).astype(jnp.float32)
        else:
            reward = mu + stddev * jax.random.normal(draw)
        return BanditState(state.means, key), _timestep(observation, reward, True)

    return Env(reset=reset, step=step, spec=lambda: env_spec)
