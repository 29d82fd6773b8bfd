"""Environments: one functional protocol (`fnrl.types.Env`), two backends.

    env = fnrl.envs.make("CartPole-v1", backend="jax", num_envs=8)       # pure JAX, jit-able
    env = fnrl.envs.make("Pong-v5", backend="envpool", num_envs=8, frame_skip=4)  # host stepping

Both backends return batched envs (leading axis `num_envs`) that reset the envpool way (see
`fnrl.types.TimeStep`) and keep episode statistics (`wrappers.episode_stats(state)` for the JAX
backend, `state.episode_stats` for envpool). Classic-control ids match gymnasium's; envpool ids
pass through unchanged (`envpool.list_all_envs()`).
"""

from __future__ import annotations

import difflib
from typing import Any, Callable

from fnrl.envs import classic_control, toy, wrappers
from fnrl.types import Env

BACKENDS = ("jax", "envpool")
# Names of `fnrl.envs.envpool_adapter` re-exported here; envpool takes about a second to import,
# so the adapter is imported on first use (`__getattr__`, or `make(..., backend="envpool")`).
_ENVPOOL_NAMES = ("EnvpoolAsync", "EnvpoolState", "envpool_async", "envpool_env", "envpool_option_names",
                  "receive_all")


def __getattr__(name: str) -> Any:
    if name in _ENVPOOL_NAMES:
        from fnrl.envs import envpool_adapter

        return getattr(envpool_adapter, name)
    raise AttributeError(f"module 'fnrl.envs' has no attribute {name!r}")



def _minimal_test(specification: Any = "int") -> Env:
    """MinimalTest-v0 defaults to one int action, TensorForce's `test_int` case."""
    return toy.minimal_test(specification)


def _bandit(**options: Any) -> Env:
    """Bandit-v0 defaults to 10 arms with means redrawn each episode (Sutton & Barto's testbed)."""
    if "means" not in options:
        options.setdefault("num_arms", 10)
    return toy.bandit(**options)


JAX_ENVS: dict[str, Callable[..., Env]] = {
    **classic_control.CONSTRUCTORS,
    "MinimalTest-v0": _minimal_test,
    "BooleanReasoning-v0": toy.boolean_reasoning,
    "Bandit-v0": _bandit,
}


def list_envs(backend: str = "jax") -> list[str]:
    """The env ids `make` accepts for `backend`."""
    _check_backend("list_envs", backend)
    if backend == "jax":
        return sorted(JAX_ENVS)
    import envpool  # imported lazily: it starts slower than the rest of fnrl

    return sorted(envpool.list_all_envs())


def make(env_id: str, backend: str = "jax", num_envs: int = 1, **options: Any) -> Env:
    """A batched env of `num_envs` copies of `env_id` on `backend`.

    JAX backend: `options` go to the env's constructor (e.g. `max_episode_steps` for classic
    control, `specification` for MinimalTest-v0, `means`/`num_arms` for Bandit-v0), except
    `action_repeat=k`, which wraps the env in `wrappers.action_repeat` (outside the env's own
    time limit, which therefore counts frames: Pendulum with k = 4 truncates after 50 agent
    steps; raise `max_episode_steps` to keep 200). The result is
    `vectorize(episode_statistics(auto_reset(env)), num_envs)`.
    envpool backend: `options` are envpool_adapter options (Atari `frame_skip`,
    `repeat_action_probability`, `episodic_life`, `reward_clip`, `noop_max`, ...).
    """
    _check_backend("make", backend)
    if backend == "envpool":
        from fnrl.envs.envpool_adapter import envpool_env

        return envpool_env(env_id, num_envs, **options)
    if env_id not in JAX_ENVS:
        close = difflib.get_close_matches(str(env_id), list(JAX_ENVS), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"make: unknown env id {env_id!r} for backend 'jax'{hint} "
                         f"(jax ids: {', '.join(sorted(JAX_ENVS))}; any envpool id works with backend='envpool')")
    repeats = options.pop("action_repeat", 1)
    env = JAX_ENVS[env_id](**options)
    if repeats != 1:
        env = wrappers.action_repeat(env, repeats)
    return wrappers.vectorize(wrappers.episode_statistics(wrappers.auto_reset(env)), num_envs)


def _check_backend(fn: str, backend: Any) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"{fn}: argument `backend` must be one of {BACKENDS}, got {backend!r}")


__all__ = [
    "BACKENDS", "JAX_ENVS", "EnvpoolAsync", "EnvpoolState", "classic_control", "envpool_async", "envpool_env",
    "envpool_option_names", "list_envs", "make", "receive_all", "toy", "wrappers",
]
