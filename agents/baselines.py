"""Agents that do not learn, as reference levels and sanity checks: TensorForce's `RandomAgent`
(A14, test R5) and `ConstantAgent` (A15, test R4).

Both follow the recipe contract so the command line can train (that is: run) them like any agent;
an `update` only plays `num_steps` ticks in `num_envs` envs and reports the episodes that finished
(there are no losses and no parameters: `params(state)` is `()`).

- Random: every action part is drawn independently as TensorForce's `RandomModel` does — bool
  with probability 1/2, int uniformly from its `num_values`, bounded float uniformly in
  [minimum, maximum], unbounded float from a standard normal.
- Constant: every action part is `action_value` (TensorForce's `action_values={'action': v}`),
  cast to the part's dtype (bool: v != 0) and checked against its spec; `greedy` changes nothing.

`make_trainer(config, env)` / `make_train(config, env)` build either agent from its config type.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnrl.rollout import PolicyOutput, RolloutCarry, Trajectory
from fnrl.types import Array, Env, EnvSpec, PRNGKey, PyTree, Spec

from agents import common
from agents.common import check_counts, check_field_types

ActFn = Callable[[PyTree, PRNGKey, PyTree, Any], PyTree]


@dataclasses.dataclass(frozen=True)
class RandomConfig:
    """Random agent (JSON-serialisable field types)."""

    num_envs: int = 8
    num_steps: int = 128  # ticks per env and update
    total_steps: int = 100_000  # env steps of the whole run

    def __post_init__(self):
        check_field_types("RandomConfig", self)
        check_counts("RandomConfig", self, ("num_envs", "num_steps", "total_steps"))


@dataclasses.dataclass(frozen=True)
class ConstantConfig:
    """Constant agent (JSON-serialisable field types)."""

    num_envs: int = 8
    num_steps: int = 128  # ticks per env and update
    total_steps: int = 100_000  # env steps of the whole run
    action_value: float = 0.0  # every action part, cast to its dtype

    def __post_init__(self):
        check_field_types("ConstantConfig", self)
        check_counts("ConstantConfig", self, ("num_envs", "num_steps", "total_steps"))
        if not math.isfinite(self.action_value):
            raise ValueError(f"ConstantConfig: field `action_value` must be a finite number, got {self.action_value!r}")


class BaselineState(NamedTuple):
    """The whole state (arrays only): the rollout carry and the updates done."""

    rollout: RolloutCarry
    update_count: Array  # int32


# --------------------------------------------------------------------------------------------
# Actions.


def random_part(spec: Spec, key: PRNGKey, batch: tuple[int, ...]) -> Array:
    """One part `[*batch, *spec.shape]` drawn as TensorForce's `RandomModel` (module docstring)."""
    shape = batch + tuple(spec.shape)
    kind = spec.kind
    if kind == "bool":
        return jax.random.uniform(key, shape) < 0.5
    if kind == "int":
        first = 0 if spec.minimum is None else jnp.asarray(spec.minimum, jnp.int32)
        return (first + jax.random.randint(key, shape, 0, spec.num_values)).astype(spec.dtype)
    if kind == "bounded":
        low, high = (jnp.broadcast_to(jnp.asarray(b, jnp.float32), shape) for b in (spec.minimum, spec.maximum))
        return jax.random.uniform(key, shape, minval=low, maxval=high).astype(spec.dtype)
    return jax.random.normal(key, shape).astype(spec.dtype)


def constant_part(spec: Spec, value: float, batch: tuple[int, ...]) -> Array:
    """One part `[*batch, *spec.shape]` filled with `value` in the part's dtype."""
    fill = (value != 0) if spec.kind == "bool" else value
    return jnp.full(batch + tuple(spec.shape), fill, spec.dtype)


def _check_constant(spec: Spec, value: float) -> None:
    """`value` is a valid action of the part: an index of an int part, inside a bounded one."""
    if spec.kind == "int":
        first = np.asarray(0 if spec.minimum is None else spec.minimum)
        valid = value == int(value) and bool(np.all((first <= value) & (value < first + spec.num_values)))
    elif spec.kind == "bounded":
        valid = bool(np.all((np.asarray(spec.minimum) <= value) & (value <= np.asarray(spec.maximum))))
    else:
        valid = True
    if not valid:
        raise ValueError(f"baselines.make_trainer: config.action_value={value!r} is not a valid action of {spec}")


def _is_spec(x: Any) -> bool:
    return isinstance(x, Spec)


def _batch_shape(obs_specs: list, obs_treedef: Any, observation: PyTree) -> tuple[int, ...]:
    """The leading axes of `observation` beyond its spec's shape."""
    leaf, spec = obs_treedef.flatten_up_to(observation)[0], obs_specs[0]
    shape = jnp.shape(leaf)
    return tuple(shape[: len(shape) - len(spec.shape)])


def _act(env_spec: EnvSpec, config: Any, params: PyTree, key: PRNGKey, observation: PyTree, greedy: Any) -> PyTree:
    """Actions for `observation` (any batch shape): random, or constant; `greedy` is ignored."""
    del params, greedy
    obs_specs, obs_treedef = jax.tree.flatten(env_spec.observation, is_leaf=_is_spec)
    batch = _batch_shape(obs_specs, obs_treedef, observation)
    specs, treedef = jax.tree.flatten(env_spec.action, is_leaf=_is_spec)
    if isinstance(config, ConstantConfig):
        parts = [constant_part(spec, config.action_value, batch) for spec in specs]
    else:
        parts = [random_part(spec, k, batch) for spec, k in zip(specs, jax.random.split(key, len(specs)))]
    return treedef.unflatten(parts)


# --------------------------------------------------------------------------------------------
# The recipe.


def start(key: PRNGKey, rollout: RolloutCarry) -> BaselineState:
    del key
    return BaselineState(rollout, jnp.zeros((), jnp.int32))


def policy_step(act: ActFn, state: BaselineState, key: PRNGKey, observation: PyTree, memory: PyTree,
                action: PyTree = None) -> PolicyOutput:
    del state
    return PolicyOutput(act((), key, observation, False) if action is None else action, memory)


def learn_rollout(config: Any, state: BaselineState, rollout: RolloutCarry,
                  trajectory: Trajectory) -> tuple[BaselineState, dict]:
    """Nothing to learn: counts the update and reports the finished episodes and env steps."""
    return common.count_update(state._replace(rollout=rollout), {}, trajectory, config.num_envs * config.num_steps)


def make_trainer(config: RandomConfig | ConstantConfig, env: Env) -> common.Trainer:
    """The `agents.common.Trainer` of the random or constant agent (by `config`'s type)."""
    if not isinstance(config, (RandomConfig, ConstantConfig)):
        raise ValueError(f"baselines.make_trainer: argument `config` must be a RandomConfig or ConstantConfig, "
                         f"got {type(config).__name__}")
    common.check_env("baselines.make_trainer", config, env)
    env_spec = env.spec()
    specs = jax.tree.leaves(env_spec.action, is_leaf=_is_spec)
    for spec in specs:
        if spec.kind == "int" and spec.num_values is None:
            raise ValueError(f"baselines.make_trainer: argument `env` has an int action spec without "
                             f"num_values: {spec}")
        if isinstance(config, ConstantConfig):
            _check_constant(spec, config.action_value)
    act = functools.partial(_act, env_spec, config)
    recipe = common.OnPolicy(start=start, policy_step=functools.partial(policy_step, act),
                             learn=functools.partial(learn_rollout, config), to_env=lambda action: action,
                             num_steps=config.num_steps)
    return common.on_policy_trainer(recipe, env, config.total_steps // (config.num_envs * config.num_steps),
                                    config.num_envs * config.num_steps, act=act, params=lambda state: ())


def make_train(config: RandomConfig | ConstantConfig, env: Env):
    """`train(key) -> (state, metrics)`: the whole run, jit- and vmap-able (PureJaxRL contract)."""
    return common.train_from_trainer(make_trainer(config, env))
