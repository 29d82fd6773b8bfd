"""The contract every agent recipe fulfils, so the command line can drive any of them.

A recipe builds a `Trainer` from its config and an env. `update` is one training iteration
(rollout + learning) as a pure, jit-able function of an all-array `TrainState` pytree, so a run
is either one jitted `lax.scan` over `num_updates` (`make_train`, PureJaxRL style) or a host loop
of jitted chunks of updates that can show progress, write metrics and checkpoint between chunks,
with the same numbers.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax

from fnrl.types import Env, PRNGKey, PyTree

TrainState = PyTree


class Trainer(NamedTuple):
    """See the module docstring. `act(params, key, observation, greedy)` returns actions."""

    init: Callable[[PRNGKey], TrainState]
    update: Callable[[TrainState], tuple[TrainState, dict]]
    num_updates: int
    steps_per_update: int
    act: Callable[[PyTree, PRNGKey, Any, bool], Any]
    params: Callable[[TrainState], PyTree]


def train_from_trainer(trainer: Trainer) -> Callable[[PRNGKey], tuple[TrainState, dict]]:
    """`train(key) -> (state, metrics)`: the whole run as one jit-able, vmap-able function."""

    def train(key: PRNGKey) -> tuple[TrainState, dict]:
        state = trainer.init(key)
        return jax.lax.scan(lambda s, _: trainer.update(s), state, None, length=trainer.num_updates)

    return train


def check_env(fn: str, config: Any, env: Any, steps_per_update: int | None = None,
              formula: str = "num_envs * num_steps") -> None:
    """`env` is a pure-JAX batched env of `config.num_envs` envs and the run holds one update.

    `steps_per_update` defaults to `config.num_envs * config.num_steps`; `formula` names it in
    the error message.
    """
    if not isinstance(env, Env) or not env.is_jax:
        raise ValueError(f"{fn}: argument `env` must be a pure-JAX fnrl Env (backend='jax')")
    if env.num_envs != config.num_envs:
        raise ValueError(f"{fn}: argument `env` has num_envs={env.num_envs}, but config.num_envs={config.num_envs}")
    steps = config.num_envs * config.num_steps if steps_per_update is None else steps_per_update
    if config.total_steps < steps:
        raise ValueError(f"{fn}: config.total_steps ({config.total_steps}) must be >= {formula} = {steps}")
