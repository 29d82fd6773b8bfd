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

from fnrl.types import PRNGKey, PyTree

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
