"""The contract every agent recipe fulfils, so the command line can drive any of them, and the
plumbing the recipes share (config checks, named optimizers, episode metrics).

A recipe builds a `Trainer` from its config and an env. `update` is one training iteration
(rollout + learning) as a pure, jit-able function of an all-array `TrainState` pytree, so a run
is either one jitted `lax.scan` over `num_updates` (`make_train`, PureJaxRL style) or a host loop
of jitted chunks of updates that can show progress, write metrics and checkpoint between chunks,
with the same numbers.

On-policy recipes also describe themselves split at the env (`OnPolicy`): how a state starts
around a rollout carry, the policy step that acts, and the learning step that consumes a rollout.
`on_policy_trainer` joins them with `fnrl.rollout.unroll` for pure-JAX envs; `agents.host` joins
the very same functions with a host loop for envs that step outside XLA (envpool), and
`agents.tensorforce` with TensorForce's act/observe calls.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

import fnrl

from fnrl.envs.wrappers import episode_stats
from fnrl.rollout import PolicyOutput, RolloutCarry, Trajectory, rollout_init, unroll
from fnrl.types import Env, PRNGKey, PyTree

TrainState = PyTree
OPTIMIZERS = ("rmsprop", "adam", "sgd")


class OnPolicy(NamedTuple):
    """An on-policy recipe split at the env. A state's `rollout` field is the `RolloutCarry`
    between rollouts (its `env_state` is `()` when the env lives outside the state)."""

    start: Callable[[PRNGKey, RolloutCarry], TrainState]  # a fresh state around a rollout carry
    policy_step: Callable[..., PolicyOutput]  # (state, key, observation, memory, action=None)
    learn: Callable[[TrainState, RolloutCarry, Trajectory], tuple[TrainState, dict]]  # (state, carry after, rollout)
    to_env: Callable[[PyTree], PyTree]  # the env's action for a sampled one (e.g. clipped to bounds)
    num_steps: int  # rollout length of one update
    initial_memory: PyTree = ()  # per-env memory at episode starts (recurrent policies)


class Trainer(NamedTuple):
    """See the module docstring. `act(params, key, observation, greedy)` returns actions.

    `init`/`update` exist for pure-JAX envs (None for a host env); `on_policy` for recipes that
    can also run in a host loop (None otherwise). A recurrent policy acts through
    `act_with_memory(params, key, observation, memory, greedy) -> (action, memory)`, with memory
    `[B, ...]` starting at `on_policy.initial_memory` and reset to it at episode starts."""

    init: Optional[Callable[[PRNGKey], TrainState]]
    update: Optional[Callable[[TrainState], tuple[TrainState, dict]]]
    num_updates: int
    steps_per_update: int
    act: Callable[[PyTree, PRNGKey, Any, bool], Any]
    params: Callable[[TrainState], PyTree]
    on_policy: Optional[OnPolicy] = None
    act_with_memory: Optional[Callable] = None


def train_from_trainer(trainer: Trainer) -> Callable[[PRNGKey], tuple[TrainState, dict]]:
    """`train(key) -> (state, metrics)`: the whole run as one jit-able, vmap-able function."""
    if trainer.init is None:
        raise ValueError("make_train: needs a pure-JAX env (backend='jax'); host envs train with agents.host")

    def train(key: PRNGKey) -> tuple[TrainState, dict]:
        state = trainer.init(key)
        return jax.lax.scan(lambda s, _: trainer.update(s), state, None, length=trainer.num_updates)

    return train


def _on_policy_init(recipe: OnPolicy, env: Env, key: PRNGKey) -> TrainState:
    start_key, env_key = jax.random.split(key)
    return recipe.start(start_key, rollout_init(env, env_key, recipe.initial_memory))


def _on_policy_update(recipe: OnPolicy, env: Env, state: TrainState) -> tuple[TrainState, dict]:
    policy = functools.partial(recipe.policy_step, state)
    carry, trajectory = unroll(policy, env, state.rollout, recipe.num_steps, recipe.initial_memory,
                               env_info=episode_stats)
    return recipe.learn(state, carry, trajectory)


def on_policy_trainer(recipe: OnPolicy, env: Env, num_updates: int, steps_per_update: int,
                      act: Callable, params: Callable, act_with_memory: Optional[Callable] = None) -> Trainer:
    """The `Trainer` of an on-policy recipe: `update` = `unroll` then `learn` on a pure-JAX env;
    a host env (envpool) gets `init = update = None` and is trained by `agents.host`."""
    init = update = None
    if env.is_jax:
        acting_env = env._replace(step=lambda state, action: env.step(state, recipe.to_env(action)))
        init = functools.partial(_on_policy_init, recipe, acting_env)
        update = functools.partial(_on_policy_update, recipe, acting_env)
    return Trainer(init, update, num_updates, steps_per_update, act, params, recipe, act_with_memory)


# --------------------------------------------------------------------------------------------
# Shared by the recipes.


def check_env(fn: str, config: Any, env: Any, steps_per_update: int | None = None,
              formula: str = "num_envs * num_steps", host_ok: bool = True) -> None:
    """`env` is a batched fnrl Env of `config.num_envs` envs (pure-JAX unless `host_ok`) and the
    run holds at least one update.

    `steps_per_update` defaults to `config.num_envs * config.num_steps`; `formula` names it in
    the error message.
    """
    if not isinstance(env, Env) or not (env.is_jax or host_ok):
        raise ValueError(f"{fn}: argument `env` must be a pure-JAX fnrl Env (backend='jax')")
    if env.num_envs != config.num_envs:
        raise ValueError(f"{fn}: argument `env` has num_envs={env.num_envs}, but config.num_envs={config.num_envs}")
    steps = config.num_envs * config.num_steps if steps_per_update is None else steps_per_update
    if config.total_steps < steps:
        raise ValueError(f"{fn}: config.total_steps ({config.total_steps}) must be >= {formula} = {steps}")


def check_counts(owner: str, config: Any, names: tuple[str, ...]) -> None:
    """Each named field is an int >= 1."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{owner}: field `{name}` must be an int >= 1, got {value!r}")


def check_ranges(owner: str, config: Any, ranges: tuple, allow_inf: tuple[str, ...] = (),
                 positive: tuple[str, ...] = ()) -> None:
    """Each `(name, low, high)` field lies in [low, high] (high None: no upper bound; `low`
    excluded for the names in `positive`), and is finite unless named in `allow_inf` (an
    infinite step size or coefficient only ever gives NaN)."""
    for name, low, high in ranges:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value \
                or (name in positive and value == low) or (high is not None and value > high) \
                or (value == math.inf and name not in allow_inf):
            raise ValueError(f"{owner}: field `{name}` must be a finite number in {'(' if name in positive else '['}"
                             f"{low}, {'inf)' if high is None else f'{high}]'}, got {value!r}")


def check_field_types(owner: str, config: Any) -> None:
    """Each field whose default is a bool holds a bool, each whose default is a number holds a
    number (not a bool), each whose default is a string a string (fields annotated `Optional`
    or `Any` excepted): a mistyped value fails here, naming the field, rather than at trace time
    or silently as a truthy flag."""
    for field in dataclasses.fields(config):
        default, value = field.default, getattr(config, field.name)
        if "Optional" in str(field.type) or str(field.type) == "Any":
            continue
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif isinstance(default, str):
            ok = isinstance(value, str)
        else:
            continue
        if not ok:
            raise ValueError(f"{owner}: field `{field.name}` must be a {type(default).__name__} like its default "
                             f"{default!r}, got {value!r}")


def check_choice(owner: str, name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{owner}: field `{name}` must be one of {choices}, got {value!r}")


def named_optimizer(name: str, learning_rate: float | optax.Schedule, max_grad_norm: float = 0.0,
                    eps: float = 1e-8, rmsprop_decay: float = 0.99) -> optax.GradientTransformation:
    """"rmsprop" / "adam" / "sgd" (optax), after global-norm clipping when `max_grad_norm` > 0.

    It runs on the parameters raveled into one vector (`optax.flatten`; same element-wise math,
    the global norm summed in another order): per leaf, clipping and Adam cost XLA a handful of
    tiny kernels each, and for the recipes' small networks those were a third of a minibatch
    step's kernels. PPO's CartPole chunk went from 152 to 98 kernels per minibatch step; in an
    in-process A/B (2026-12-03) it compiled 0.3–0.5 s faster and ran 2–4% faster. The optimizer
    state holds flat vectors."""
    check_choice("named_optimizer", "name", name, OPTIMIZERS)
    if name == "rmsprop":
        base = optax.rmsprop(learning_rate, decay=rmsprop_decay, eps=eps)
    elif name == "adam":
        base = optax.adam(learning_rate, eps=eps)
    else:
        base = optax.sgd(learning_rate)
    return optax.flatten(optax.chain(optax.clip_by_global_norm(max_grad_norm), base) if max_grad_norm > 0 else base)


def check_optimizer(owner: str, name: str, value: Any, allow_none: bool = False) -> None:
    """Config field `name` is an optimizer: a name from `OPTIMIZERS` or a TensorForce optimizer
    spec dict (`fnrl.optimizer_from_spec`, checked here so a bad spec fails at config time)."""
    if isinstance(value, dict):
        try:
            fnrl.optimizer_from_spec(value)
        except ValueError as error:
            raise ValueError(f"{owner}: field `{name}` is not a valid optimizer spec: {error}") from None
        return
    check_choice(owner, name, value, ((None,) if allow_none else ()) + OPTIMIZERS)


def minimizer(value: str | dict, learning_rate: float | optax.Schedule, max_grad_norm: float = 0.0,
              **named: Any) -> fnrl.Minimizer:
    """The `fnrl.Minimizer` of an optimizer config field: a TensorForce spec dict as it says (its
    own learning rate, clipping via `clipped_step`), or `named_optimizer(value, learning_rate,
    max_grad_norm, **named)` taking one gradient step per call."""
    if isinstance(value, dict):
        return fnrl.optimizer_from_spec(value)
    return fnrl.minimizer_from_optax(named_optimizer(value, learning_rate, max_grad_norm, **named))


def episode_metrics(trajectory: Trajectory) -> dict:
    """Sums and count of the episodes that finished in `trajectory` (the contract's metrics),
    from the `fnrl.envs.wrappers.episode_stats` recorded as its `env_info`.

    An episode is over where the statistics closed one (a valid step that left the running
    length at 0), not wherever the trajectory says done: with Atari's episodic life a life loss
    is `terminated` for learning while the statistics run on to game over."""
    stats = trajectory.env_info
    finished = trajectory.valid & (stats.episode_length == 0)
    return {
        "episode_return_sum": jnp.sum(jnp.where(finished, stats.last_return, 0.0)).astype(jnp.float32),
        "episode_length_sum": jnp.sum(jnp.where(finished, stats.last_length, 0)).astype(jnp.float32),
        "episode_count": jnp.sum(finished).astype(jnp.float32),
    }


def count_update(state: TrainState, metrics: dict, trajectory: Trajectory, steps_per_update: int) -> tuple:
    """Closes an update: `update_count` + 1, the episode metrics and the cumulative "env_steps"."""
    state = state._replace(update_count=state.update_count + 1)
    metrics = {**metrics, **episode_metrics(trajectory),
               "env_steps": state.update_count.astype(jnp.float32) * steps_per_update}
    return state, metrics

