"""Optimizers beyond optax's gradient transforms.

Target networks (seed-features J1, J2, J5, N3, N12)
---------------------------------------------------
A target network is a second copy of the online parameters, refreshed from them (AgentNet
`TargetNetwork.load_weights`, TensorForce's `Synchronization` optimizer behind
`target_sync_frequency` / `target_update_weight`). In fnrl it is just another params pytree in
the agent state, evaluated with the same `apply` (AgentNet's `.output_layers`), and these
functions compute its next value:

* `periodic_target_update` — hard copy every `period` steps (Mnih et al., 2015), optionally
  moving only a fraction `tau` of the way (TensorForce combines both).
* `polyak_target_update` — soft update every step, target = τ·online + (1 − τ)·target
  (Lillicrap et al., 2016; AgentNet `load_weights(moving_average_alpha=τ)`).
* `partial_target_update` — AgentNet `TargetNetwork(bottom_layers=...)`: some haiku modules
  are shared with the online network (always equal to it), the rest is a synced copy.

All work on any pytree of arrays (haiku params, a tuple of them, ...), preserve each leaf's
dtype, and run under `jit` / `vmap` with a traced `step` or `tau`.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence, Union

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from fnrl._validation import check_array, check_static_range
from fnrl.types import Array, ArrayLike, PyTree

# A haiku predicate `(module_name, param_name, value) -> bool`, or module-name prefixes.
SharedSpec = Union[str, Sequence[str], Callable[[str, str, Array], bool]]

# --------------------------------------------------------------------------------------------
# Target networks.


def _check_trees(fn: str, target: PyTree, online: PyTree) -> None:
    """`online` must mirror `target`: same tree structure, and per leaf the same shape/dtype."""
    target_def, online_def = jax.tree.structure(target), jax.tree.structure(online)
    if target_def != online_def:
        raise ValueError(
            f"{fn}: argument `online` must have the tree structure of `target`, got "
            f"{online_def} and {target_def}"
        )
    pairs = zip(jax.tree_util.tree_leaves_with_path(target), jax.tree.leaves(online))
    for (path, t), o in pairs:
        if jnp.shape(t) != jnp.shape(o) or jnp.result_type(t) != jnp.result_type(o):
            raise ValueError(
                f"{fn}: argument `online` at {jax.tree_util.keystr(path)} has "
                f"{jnp.result_type(o)}{list(jnp.shape(o))}, `target` has "
                f"{jnp.result_type(t)}{list(jnp.shape(t))}"
            )


def _check_tau(fn: str, tau: ArrayLike) -> None:
    check_array("tau", tau, kind="numeric", rank=0, fn=fn)
    check_static_range(fn, "tau", tau, 0.0, 1.0)


def _blend(fn: str, target: PyTree, online: PyTree, tau: ArrayLike) -> PyTree:
    """τ·online + (1 − τ)·target per leaf, in the leaf's dtype; a static τ = 1 copies exactly."""
    if isinstance(tau, (int, float, np.number)) and tau == 1:
        return jax.tree.map(jnp.asarray, online)  # works for integer leaves and non-finite targets
    for path, leaf in jax.tree_util.tree_leaves_with_path(target):
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
            raise ValueError(
                f"{fn}: leaf {jax.tree_util.keystr(path)} has dtype {jnp.result_type(leaf)}; a soft "
                "update (tau != 1) needs floating-point leaves"
            )
    tau = jnp.asarray(tau)

    def mix(t: Array, o: Array) -> Array:
        t = jnp.asarray(t)
        return (tau * o + (1 - tau) * t).astype(t.dtype)

    return jax.tree.map(mix, target, online)


def polyak_target_update(target: PyTree, online: PyTree, tau: ArrayLike) -> PyTree:
    """Soft target update: target' = τ·online + (1 − τ)·target, leaf by leaf.

    Polyak averaging of the online parameters as used for DDPG's target networks (Lillicrap et
    al., 2016, "Continuous control with deep reinforcement learning", arXiv:1509.02971), with
    AgentNet's `TargetNetwork.load_weights(moving_average_alpha=τ)` convention: τ = 1 is a hard
    copy, small τ a slow moving average. Same as `optax.incremental_update(online, target, τ)`.

    Args:
      target: the target parameters (any pytree of arrays).
      online: the online parameters, same structure, shapes and dtypes.
      tau: scalar in [0, 1] (may be traced). Leaves must be floating unless τ is the Python 1.

    Returns:
      The new target parameters, each leaf in `target`'s dtype.
    """
    fn = "polyak_target_update"
    _check_trees(fn, target, online)
    _check_tau(fn, tau)
    return _blend(fn, target, online, tau)


def periodic_target_update(
    target: PyTree, online: PyTree, step: ArrayLike, period: ArrayLike, tau: ArrayLike = 1.0
) -> PyTree:
    """Syncs the target when `step % period == 0`, else returns it unchanged.

    target' = τ·online + (1 − τ)·target if step mod period = 0, else target. With τ = 1 this is
    DQN's hard copy every C steps (Mnih et al., 2015, "Human-level control through deep
    reinforcement learning", Nature 518); τ < 1 is TensorForce's `target_update_weight`.

    Step 0 syncs: TensorForce's `Synchronization` starts its last-sync time at −period, so its
    first call copies, and `optax.periodic_update` agrees. Calling this with the counter of
    the update being made (0, 1, 2, ...) therefore syncs at 0, period, 2·period, ...

    Args:
      target: the target parameters (any pytree of arrays).
      online: the online parameters, same structure, shapes and dtypes.
      step: integer scalar, may be traced.
      period: integer scalar >= 1 (checked when static), may be traced.
      tau: scalar in [0, 1]; leaves must be floating unless τ is the Python 1.

    Returns:
      The new target parameters, each leaf in `target`'s dtype.
    """
    fn = "periodic_target_update"
    _check_trees(fn, target, online)
    check_array("step", step, kind="int", rank=0, fn=fn)
    check_array("period", period, kind="int", rank=0, fn=fn)
    check_static_range(fn, "period", period, 1)
    _check_tau(fn, tau)
    due = jnp.asarray(step) % period == 0
    synced = _blend(fn, target, online, tau)
    return jax.tree.map(lambda s, t: jnp.where(due, s, jnp.asarray(t)), synced, target)


def _shared_predicate(fn: str, shared: SharedSpec, modules: Sequence[str]) -> Callable[..., bool]:
    """A haiku predicate for `shared`; each given prefix must name at least one module."""
    if callable(shared):
        return shared
    prefixes = (shared,) if isinstance(shared, str) else tuple(shared)
    if not all(isinstance(p, str) for p in prefixes):
        raise ValueError(
            f"{fn}: argument `shared` must be a predicate or module-name prefixes, got {shared!r}"
        )

    def under(prefix: str, module: str) -> bool:
        # Whole path components only: "mlp/~/linear_1" must not claim "mlp/~/linear_10".
        return module == prefix or module.startswith(prefix + "/")

    for prefix in prefixes:
        if not any(under(prefix, m) for m in modules):
            raise ValueError(
                f"{fn}: argument `shared` prefix {prefix!r} matches no module; "
                f"modules are {sorted(modules)}"
            )
    return lambda module, name, value: any(under(p, module) for p in prefixes)


def partial_target_update(
    target: Mapping[str, Mapping[str, Array]],
    online: Mapping[str, Mapping[str, Array]],
    shared: SharedSpec,
    tau: ArrayLike = 1.0,
    *,
    step: ArrayLike | None = None,
    period: ArrayLike = 1,
) -> dict:
    """A target network sharing some modules with the online one; the rest is synced.

    AgentNet `TargetNetwork(outputs, bottom_layers=...)` (and `clone_network(bottom_layers=...)`)
    reuses the bottom layers of the online network and clones only the top; here the shared
    modules are taken from `online` as they are, every call, and the other modules get
    `polyak_target_update` with `tau` (τ = 1: hard copy), or `periodic_target_update` with
    `step`, `period`, `tau` when `step` is given:

      target'[m] = online[m]                    if module m is shared,
      target'[m] = τ·online[m] + (1 − τ)·target[m]   otherwise (when due, if periodic).

    Args:
      target, online: haiku parameter dicts `{module_name: {param_name: array}}`.
      shared: module-name prefixes (a prefix matches whole `/`-separated components, so
        "mlp/~/linear_1" does not match "mlp/~/linear_10"; each must match some module), or a
        `hk.data_structures.partition` predicate `(module_name, param_name, value) -> bool`.
        Static under `jit` (a tuple of strings or a function).
      tau: scalar in [0, 1] for the non-shared modules.
      step, period: if `step` is given, the non-shared modules sync only when
        `step % period == 0` (step 0 included).

    Returns:
      The new target parameters as a haiku dict.
    """
    fn = "partial_target_update"
    if not isinstance(target, Mapping) or not all(isinstance(v, Mapping) for v in target.values()):
        raise ValueError(f"{fn}: argument `target` must be haiku params {{module: {{name: array}}}}")
    _check_trees(fn, target, online)
    predicate = _shared_predicate(fn, shared, list(online))
    online_shared, online_rest = hk.data_structures.partition(predicate, online)
    _, target_rest = hk.data_structures.partition(predicate, target)
    if step is None:
        _check_tau(fn, tau)
        rest = _blend(fn, target_rest, online_rest, tau)
    else:
        rest = periodic_target_update(target_rest, online_rest, step, period, tau)
    return hk.data_structures.merge(online_shared, rest)
