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

Loss-closure optimizers (seed-features G1–G16, A12)
---------------------------------------------------
TensorForce optimizers return *deltas* for the variables — optax's `updates`, applied by
`optax.apply_updates` — so plain gradient optimizers (G2 `adam`, `nadam`, `rmsprop`, ...; G16
AgentNet's `lasagne.updates`) are optax's, and those needing only gradients are optax
transformations here too (`clipped_step`; `natural_gradient`, given a `kl_fn` extra argument).
The others evaluate the loss at new points, so they take closures `loss_fn(params) -> scalar`:

* `conjugate_gradient`, `line_search` — TensorForce's solvers, as pure functions.
* `fisher_vector_product`, `natural_gradient_direction`, `natural_gradient_step` — TRPO's
  natural-gradient step with backtracking (TensorForce `optimized_step(natural_gradient)`).
* `es_gradient`, `es_step`, `centered_ranks` — evolution strategies (TensorForce `evolutionary`).
* `multi_step`, `optimized_step` — repeat, or line-search, any optax optimizer's step.

Minimizers and TensorForce optimizer specs (G1–G8, Q1, Q5)
----------------------------------------------------------
`Minimizer(init, minimize)` puts every kind behind one call, so a recipe need not know which
optimizer its config names: `minimize(loss_fn, params, state, key, **extra)` with
`loss_fn(params) -> (loss, aux)`. `minimizer_from_optax` wraps an optax optimizer;
`optimizer_from_spec` builds any TensorForce spec, meta-optimizers nested freely, on the
functions above (`natural_gradient_direction`, `natural_gradient_step`, `es_step`,
`line_search`, `clipped_step`) and optax.

Loops are `lax.while_loop` / `lax.scan`, so TensorForce's `*_unroll_loop` flags have no
counterpart. A separate baseline optimizer (TensorForce `baseline_optimizer`, G15) is a second
optax optimizer with its own state over the baseline's own params pytree, stepped on the
baseline's regression loss, e.g. `multi_step(optax.adam(1e-3), baseline_loss, ...,
num_steps=5)` as in TensorForce's `TestVPGBaselines`; when both live in one params tree,
`optax.multi_transform` routes each part to its optimizer.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence, Union

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.flatten_util import ravel_pytree
from optax import tree_utils as otu

from fnrl._validation import check_array, check_static_range
from fnrl.types import Array, ArrayLike, PRNGKey, PyTree, Scalar

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


# --------------------------------------------------------------------------------------------
# Loss-closure optimizers: shared checks.

LossFn = Callable[[PyTree], Array]


def _check_callable(fn: str, name: str, f: object) -> None:
    if not callable(f):
        raise ValueError(f"{fn}: argument `{name}` must be callable, got {type(f).__name__}")


def _check_float_tree(fn: str, name: str, tree: PyTree) -> PyTree:
    """Every leaf of `tree` must be a floating-point array; returns the tree of jax arrays."""
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    if not leaves:
        raise ValueError(f"{fn}: argument `{name}` must hold at least one array, got {tree!r}")
    for path, leaf in leaves:
        check_array(f"{name}{jax.tree_util.keystr(path)}", leaf, kind="float", fn=fn)
    return jax.tree.map(jnp.asarray, tree)


def _check_like(fn: str, name: str, tree: PyTree, ref_name: str, ref: PyTree) -> None:
    """`tree` must have the tree structure and leaf shapes of `ref`."""
    if jax.tree.structure(tree) != jax.tree.structure(ref):
        raise ValueError(
            f"{fn}: argument `{name}` must have the tree structure of `{ref_name}`, got "
            f"{jax.tree.structure(tree)} and {jax.tree.structure(ref)}"
        )
    for (path, r), t in zip(jax.tree_util.tree_leaves_with_path(ref), jax.tree.leaves(tree)):
        if jnp.shape(r) != jnp.shape(t):
            raise ValueError(
                f"{fn}: argument `{name}` at {jax.tree_util.keystr(path)} has shape "
                f"{jnp.shape(t)}, `{ref_name}` has {jnp.shape(r)}"
            )


def _check_scalar_fn(fn: str, name: str, f: Callable, *args: PyTree) -> np.dtype:
    """`f(*args)` must return a float scalar; checked abstractly (traced, not run). Returns its dtype."""
    _check_callable(fn, name, f)
    out = jax.eval_shape(f, *args)
    if getattr(out, "shape", None) != () or not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(f"{fn}: argument `{name}` must return a float scalar, got {out}")
    return out.dtype


def _check_int(fn: str, name: str, value: object, low: int) -> None:
    """A static (Python) integer >= low: it sets a loop length or an array shape."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{fn}: argument `{name}` must be a Python int, got {value!r}")
    check_static_range(fn, name, value, low)


def _check_scalar(fn: str, name: str, value: ArrayLike, low: float, strict: bool = False) -> None:
    """A numeric scalar >= low (> low if strict); traced values are checked for rank only."""
    check_array(name, value, kind="numeric", rank=0, fn=fn)
    check_static_range(fn, name, value, low)
    if strict and isinstance(value, (int, float, np.number)) and value == low:
        raise ValueError(f"{fn}: argument `{name}` must be > {low}, got {value}")


def _check_key(fn: str, key: PRNGKey) -> None:
    """A typed key (`jax.random.key`) or a raw uint32 key (`jax.random.PRNGKey`)."""
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if key.ndim != 0:
            raise ValueError(f"{fn}: argument `key` must be a single PRNG key, got shape {key.shape}")
        return
    check_array("key", key, kind="int", rank=1, fn=fn)


# --------------------------------------------------------------------------------------------
# Solvers: conjugate gradient and backtracking line search (TensorForce G11–G14).


class ConjugateGradientInfo(NamedTuple):
    """Diagnostics of `conjugate_gradient`."""

    iterations: Array  # int32 scalar: iterations run (<= max_iterations)
    squared_residual: Array  # r_tᵀ r_t of the recursion at the returned x
    nonpositive_curvature: Array  # bool: stopped at a direction p with pᵀ(A + λI)p <= 0


def conjugate_gradient(
    matvec: Callable[[PyTree], PyTree],
    b: PyTree,
    *,
    max_iterations: int = 20,
    damping: Scalar = 0.0,
    residual_tol: Scalar = 1e-10,
    x0: Optional[PyTree] = None,
) -> tuple[PyTree, ConjugateGradientInfo]:
    """Solves (A + λI) x = b for a symmetric positive-definite A given as a product `v ↦ A v`.

    Conjugate gradient (Hestenes & Stiefel, 1952, "Methods of conjugate gradients for solving
    linear systems"; TensorForce `ConjugateGradient`, damping λ added to every product):

        r_0 = b − (A + λI) x_0,   p_0 = r_0
        α_t = r_tᵀr_t / p_tᵀ(A + λI)p_t
        x_{t+1} = x_t + α_t p_t,   r_{t+1} = r_t − α_t (A + λI)p_t
        p_{t+1} = r_{t+1} + (r_{t+1}ᵀr_{t+1} / r_tᵀr_t) p_t

    stopping after `max_iterations` or as soon as r_tᵀr_t <= `residual_tol` (absolute; the
    default is modular_rl's TRPO value, TensorForce uses 1e-6). If A + λI is not positive
    definite along a search direction (p_tᵀ(A + λI)p_t <= 0, e.g. the Hessian of a KL taken away
    from its minimum), the recursion would divide by that curvature and diverge; it stops there
    instead and returns x_t, as truncated CG does (Steihaug, 1983, "The conjugate gradient method
    and trust regions in large scale optimization"), with `info.nonpositive_curvature` set.
    Vectors are any pytree shaped like `b` (e.g. haiku params, leaves of mixed float dtypes: each
    keeps its own), so Fisher-vector products need no flattening. A `lax.while_loop` runs the
    iterations: jit/vmap-friendly, not reverse-differentiable.

    Args:
      matvec: the linear map v ↦ A v on pytrees shaped like `b`.
      b: the right-hand side, a pytree of float arrays.
      max_iterations: Python int >= 0 (TensorForce `cg_max_iterations`, default 20).
      damping: λ >= 0 (TensorForce `cg_damping`).
      residual_tol: stop once the squared residual norm is at most this.
      x0: initial guess shaped like `b`; zeros if None.

    Returns:
      `(x, ConjugateGradientInfo)`.
    """
    fn = "conjugate_gradient"
    _check_callable(fn, "matvec", matvec)
    b = _check_float_tree(fn, "b", b)
    _check_int(fn, "max_iterations", max_iterations, 0)
    _check_scalar(fn, "damping", damping, 0.0)
    _check_scalar(fn, "residual_tol", residual_tol, 0.0)
    if x0 is not None:
        _check_like(fn, "x0", x0, "b", b)

    def add_scaled(u: PyTree, scale: Array, v: PyTree) -> PyTree:
        """u + scale·v leaf by leaf, each leaf kept in u's dtype (the loop carry's types)."""
        return jax.tree.map(lambda a, c: (a + scale * c).astype(a.dtype), u, v)

    def apply_a(v: PyTree) -> PyTree:
        return add_scaled(matvec(v), damping, v)

    x = otu.tree_zeros_like(b) if x0 is None else _check_float_tree(fn, "x0", x0)
    r = b if x0 is None else jax.tree.map(lambda c, d: (c - d).astype(c.dtype), b, apply_a(x))
    rr = otu.tree_vdot(r, r)

    def cond(carry):
        i, _, _, _, rr, bent = carry
        return (i < max_iterations) & (rr > residual_tol) & ~bent

    def body(carry):
        i, x, r, p, rr, _ = carry
        ap = apply_a(p)
        curvature = otu.tree_vdot(p, ap)
        bent = curvature <= 0  # a NaN curvature is not caught: NaN inputs give a NaN x
        alpha = jnp.where(bent, 0.0, rr / jnp.where(bent, 1.0, curvature))
        x = add_scaled(x, alpha, p)
        r = add_scaled(r, -alpha, ap)
        rr_next = jnp.where(bent, rr, otu.tree_vdot(r, r))
        return i + 1, x, r, add_scaled(r, rr_next / rr, p), rr_next, bent

    i, x, _, _, rr, bent = lax.while_loop(cond, body, (jnp.int32(0), x, r, r, rr, jnp.bool_(False)))
    return x, ConjugateGradientInfo(iterations=i, squared_residual=rr, nonpositive_curvature=bent)


class LineSearchInfo(NamedTuple):
    """Diagnostics of `line_search`."""

    accepted: Array  # bool: some candidate was accepted (else the params are unchanged)
    step_fraction: Array  # the accepted fraction of `step`, 0 if none
    num_evaluations: Array  # int32: loss evaluations made (candidates tried)
    loss: Array  # the loss at the returned params
    expected_improvement: Array  # first-order decrease predicted for the full step
    improvement: Array  # actual decrease loss(params) − loss(returned params); 0 if rejected


def _fraction(mode: str, parameter: Scalar, i: Array, dtype) -> Array:
    """Fraction of the step tried at iteration i: parameterⁱ, or 1 − i·parameter."""
    i = i.astype(dtype)
    if mode == "exponential":
        return jnp.asarray(parameter, dtype) ** i
    return 1 - i * jnp.asarray(parameter, dtype)


def _check_line_search_args(
    fn: str, prefix: str, max_iterations: int, accept_ratio: Scalar, mode: str, parameter: Scalar
) -> None:
    """Checks `line_search`'s settings; `prefix` is "ls_" where callers name them so."""
    _check_int(fn, prefix + "max_iterations", max_iterations, 1)
    _check_scalar(fn, prefix + "accept_ratio", accept_ratio, 0.0)
    if mode not in ("exponential", "linear"):
        raise ValueError(f"{fn}: argument `{prefix}mode` must be 'exponential' or 'linear', got {mode!r}")
    _check_scalar(fn, prefix + "parameter", parameter, 0.0, strict=True)
    check_static_range(fn, prefix + "parameter", parameter, high=1.0)
    if mode == "exponential" and isinstance(parameter, (int, float, np.number)) and parameter == 1:
        raise ValueError(f"{fn}: argument `{prefix}parameter` must be < 1 in exponential mode, got 1")


def _line_search_start(fn, loss_fn, params, step, loss, expected_improvement, dtype):
    """L(θ) and E = −∇L(θ)ᵀs where not given, both from one `jvp`."""
    if loss is None or expected_improvement is None:
        loss0, slope = jax.jvp(loss_fn, (params,), (step,))
        loss = loss0 if loss is None else loss
        expected_improvement = -slope if expected_improvement is None else expected_improvement
    loss = check_array("loss", loss, kind="numeric", rank=0, fn=fn).astype(dtype)
    expected = check_array("expected_improvement", expected_improvement, kind="numeric", rank=0, fn=fn)
    return loss, expected.astype(dtype)


def line_search(
    loss_fn: LossFn,
    params: PyTree,
    step: PyTree,
    *,
    loss: Optional[ArrayLike] = None,
    expected_improvement: Optional[ArrayLike] = None,
    max_iterations: int = 10,
    accept_ratio: Scalar = 0.9,
    mode: str = "exponential",
    parameter: Scalar = 0.5,
    constraint_fn: Optional[LossFn] = None,
    max_constraint: Optional[ArrayLike] = None,
) -> tuple[PyTree, LineSearchInfo]:
    """Backtracking line search: the first acceptable point from params + step back to params.

    Tries θ_i = θ + f_i·s for i = 0, 1, ... with f_i = parameterⁱ ("exponential") or
    f_i = 1 − i·parameter ("linear", while f_i > 0), and returns the first θ_i with

        L(θ) − L(θ_i) > 0,   (L(θ) − L(θ_i)) / (f_i·E) >= accept_ratio,   C(θ_i) <= max_constraint

    where E is the expected improvement of the full step (default −∇L(θ)ᵀs, by one `jvp`).
    If none of the `max_iterations` candidates passes — or E <= 0 — θ is returned unchanged
    (Schulman et al., 2015, "Trust region policy optimization", appendix C). Mirrors
    TensorForce's `LineSearch` / `OptimizedStep` (`ls_max_iterations`, `ls_accept_ratio`,
    `ls_mode`, `ls_parameter`, same defaults) with two deliberate differences: a failed search
    keeps θ instead of the last candidate, and a candidate whose ratio is worse than the previous
    one does not stop the search. The loss is minimised; a candidate with a non-finite loss or a
    NaN constraint is rejected.

    Args:
      loss_fn: `params -> scalar` loss to decrease.
      params: the current parameters (pytree of float arrays).
      step: the proposed full step, shaped like `params`.
      loss: `loss_fn(params)` if already known.
      expected_improvement: E (> 0 for a descent step) if already known.
      max_iterations: Python int >= 1, number of candidates at most.
      accept_ratio: >= 0, minimal ratio of actual to expected improvement.
      mode: "exponential" or "linear".
      parameter: the decay factor in (0, 1) ("exponential") or decrement in (0, 1] ("linear").
      constraint_fn: optional `params -> scalar`, e.g. TRPO's mean KL to the old policy.
      max_constraint: its bound; required with `constraint_fn`.

    Returns:
      `(new_params, LineSearchInfo)`.
    """
    fn = "line_search"
    params = _check_float_tree(fn, "params", params)
    _check_like(fn, "step", step, "params", params)
    dtype = _check_scalar_fn(fn, "loss_fn", loss_fn, params)
    _check_line_search_args(fn, "", max_iterations, accept_ratio, mode, parameter)
    if (constraint_fn is None) != (max_constraint is None):
        raise ValueError(f"{fn}: arguments `constraint_fn` and `max_constraint` go together")
    if constraint_fn is not None:
        _check_scalar_fn(fn, "constraint_fn", constraint_fn, params)
        _check_scalar(fn, "max_constraint", max_constraint, -np.inf)
    loss, expected = _line_search_start(fn, loss_fn, params, step, loss, expected_improvement, dtype)

    def candidate(fraction: Array) -> PyTree:
        return jax.tree.map(lambda p, s: p + (fraction * s).astype(p.dtype), params, step)

    def cond(carry):
        i, accepted, _, _ = carry
        more = (i < max_iterations) & (_fraction(mode, parameter, i, loss.dtype) > 0)
        return more & ~accepted & (expected > 0)

    def body(carry):
        i, _, _, _ = carry
        fraction = _fraction(mode, parameter, i, loss.dtype)
        value = loss_fn(candidate(fraction))
        improvement = loss - value
        ok = jnp.isfinite(value) & (improvement > 0) & (improvement >= accept_ratio * fraction * expected)
        if constraint_fn is not None:
            ok &= constraint_fn(candidate(fraction)) <= max_constraint
        return i + 1, ok, jnp.where(ok, fraction, 0).astype(loss.dtype), jnp.where(ok, value, loss)

    init = (jnp.int32(0), jnp.bool_(False), jnp.zeros_like(loss), loss)
    n, accepted, fraction, new_loss = lax.while_loop(cond, body, init)
    new_params = jax.tree.map(lambda c, p: jnp.where(accepted, c, p), candidate(fraction), params)
    improvement = jnp.where(accepted, loss - new_loss, 0).astype(loss.dtype)
    return new_params, LineSearchInfo(accepted, fraction, n, new_loss, expected, improvement)


# --------------------------------------------------------------------------------------------
# Natural gradient and TRPO (TensorForce NaturalGradient G4, OptimizedStep G7, TRPO A12).


def fisher_vector_product(kl_fn: LossFn, params: PyTree) -> Callable[[PyTree], PyTree]:
    """Returns v ↦ F v, F = ∇²_θ KL(π_old ‖ π_θ) at θ = params: the Fisher information there.

    `kl_fn(θ)` is the mean KL from the fixed data-collecting policy π_old (constants closed
    over, e.g. `fnrl.mean_kl`) to π_θ. At θ = θ_old the KL is 0 with zero gradient, and its
    Hessian is the Fisher information matrix E[∇log π ∇log πᵀ] (Schulman et al., 2015, "Trust
    region policy optimization", §6; Amari, 1998, "Natural gradient works efficiently in
    learning"). The product is forward-over-reverse, F v = ∂/∂ε ∇KL(θ + εv)|₀ (Pearlmutter,
    1994, "Fast exact multiplication by the Hessian"), linearized once so each conjugate-gradient
    iteration costs one linear pass, without ever forming F.

    Args:
      kl_fn: `params -> scalar` mean KL divergence.
      params: the point θ (pytree of float arrays), normally θ_old.

    Returns:
      The linear map, from and to pytrees shaped like `params`.
    """
    fn = "fisher_vector_product"
    params = _check_float_tree(fn, "params", params)
    _check_scalar_fn(fn, "kl_fn", kl_fn, params)
    _, product = jax.linearize(jax.grad(kl_fn), params)
    return product


def _check_cg_args(fn: str, max_iterations: int, damping: Scalar, residual_tol: Scalar) -> None:
    _check_int(fn, "cg_max_iterations", max_iterations, 0)
    _check_scalar(fn, "cg_damping", damping, 0.0)
    _check_scalar(fn, "cg_residual_tol", residual_tol, 0.0)


class NaturalGradientInfo(NamedTuple):
    """Diagnostics of `natural_gradient_direction`."""

    expected_improvement: Array  # −gᵀs: first-order loss decrease of the step (>= 0)
    quadratic_kl: Array  # ½ sᵀFs: the KL the step costs to second order (= max_kl, or 0)
    cg_iterations: Array  # int32
    cg_squared_residual: Array


def natural_gradient_direction(
    grads: PyTree,
    kl_fn: LossFn,
    params: PyTree,
    max_kl: Scalar,
    *,
    cg_max_iterations: int = 20,
    cg_damping: Scalar = 1e-3,
    cg_residual_tol: Scalar = 1e-10,
) -> tuple[PyTree, NaturalGradientInfo]:
    """The natural-gradient step of the loss, scaled to the KL trust region.

    Solves (F + λI) s' = −g by conjugate gradient (F from `fisher_vector_product`, g the loss
    gradient), then rescales so the quadratic KL model meets the bound (Schulman et al., 2015,
    "Trust region policy optimization", appendix C; TensorForce `NaturalGradient`, whose
    `learning_rate` is `max_kl`):

        s = s' · sqrt(max_kl / (½ s'ᵀF s')),   so ½ sᵀFs = max_kl,

    with F undamped in the rescaling as in TensorForce. If ½ s'ᵀFs' <= 0 (e.g. a zero
    gradient) the step is zero. The expected improvement −gᵀs is what `line_search` compares
    the actual loss decrease to.

    Args:
      grads: ∇_θ loss at `params`, shaped like `params`.
      kl_fn: `params -> scalar` mean KL(π_old ‖ π_params), see `fisher_vector_product`.
      params: the current parameters θ_old.
      max_kl: > 0, the trust-region size δ (may be traced).
      cg_max_iterations, cg_damping, cg_residual_tol: see `conjugate_gradient`; defaults are
        TensorForce's `cg_max_iterations=20`, `cg_damping=0.001`.

    Returns:
      `(step, NaturalGradientInfo)`; apply with `optax.apply_updates(params, step)`.
    """
    fn = "natural_gradient_direction"
    params = _check_float_tree(fn, "params", params)
    _check_like(fn, "grads", grads, "params", params)
    _check_scalar(fn, "max_kl", max_kl, 0.0, strict=True)
    _check_cg_args(fn, cg_max_iterations, cg_damping, cg_residual_tol)
    fvp = fisher_vector_product(kl_fn, params)
    direction, cg_info = conjugate_gradient(
        fvp, otu.tree_scale(-1.0, grads), max_iterations=cg_max_iterations, damping=cg_damping,
        residual_tol=cg_residual_tol,
    )
    quadratic = 0.5 * otu.tree_vdot(direction, fvp(direction))
    positive = quadratic > 0
    scale = jnp.where(positive, jnp.sqrt(max_kl / jnp.where(positive, quadratic, 1.0)), 0.0)
    step = jax.tree.map(lambda d: (scale * d).astype(d.dtype), direction)
    info = NaturalGradientInfo(
        expected_improvement=-otu.tree_vdot(grads, step),
        quadratic_kl=jnp.square(scale) * quadratic,
        cg_iterations=cg_info.iterations,
        cg_squared_residual=cg_info.squared_residual,
    )
    return step, info


def natural_gradient(
    max_kl: Scalar,
    *,
    cg_max_iterations: int = 20,
    cg_damping: Scalar = 1e-3,
    cg_residual_tol: Scalar = 1e-10,
) -> optax.GradientTransformationExtraArgs:
    """TensorForce's `NaturalGradient` optimizer as an optax transformation (no line search).

    `update(grads, state, params, kl_fn=...)` returns `natural_gradient_direction`'s step, a
    ready-to-apply descent step of KL size `max_kl` (the transformation is a whole optimizer,
    like `optax.sgd`, not a `scale_by_*` stage). `kl_fn` is passed as an extra argument, so the
    transformation composes with `optax.chain` (e.g. `clipped_step`); `params` are required.
    Schulman et al., 2015, "Trust region policy optimization"; Kakade, 2001, "A natural policy
    gradient". For TRPO's line search on top, use `natural_gradient_step`.

    Args:
      max_kl: > 0, TensorForce's `learning_rate`.
      cg_max_iterations, cg_damping, cg_residual_tol: see `conjugate_gradient`.

    Returns:
      An `optax.GradientTransformationExtraArgs` with empty state.
    """
    fn = "natural_gradient"
    _check_scalar(fn, "max_kl", max_kl, 0.0, strict=True)
    _check_cg_args(fn, cg_max_iterations, cg_damping, cg_residual_tol)
    cg = dict(cg_max_iterations=cg_max_iterations, cg_damping=cg_damping, cg_residual_tol=cg_residual_tol)

    def init(params: PyTree) -> optax.EmptyState:
        del params
        return optax.EmptyState()

    def update(updates, state, params=None, *, kl_fn=None, **extra_args):
        del extra_args
        if params is None or kl_fn is None:
            raise ValueError(f"{fn}: update needs `params` and the extra argument `kl_fn`")
        step, _ = natural_gradient_direction(updates, kl_fn, params, max_kl, **cg)
        return step, state

    return optax.GradientTransformationExtraArgs(init, update)


class NaturalGradientStepInfo(NamedTuple):
    """Diagnostics of `natural_gradient_step`."""

    loss: Array  # the loss before the step
    natural_gradient: NaturalGradientInfo
    line_search: LineSearchInfo


def natural_gradient_step(
    loss_fn: LossFn,
    kl_fn: LossFn,
    params: PyTree,
    max_kl: Scalar,
    *,
    cg_max_iterations: int = 20,
    cg_damping: Scalar = 1e-3,
    cg_residual_tol: Scalar = 1e-10,
    ls_max_iterations: int = 10,
    ls_accept_ratio: Scalar = 0.9,
    ls_mode: str = "exponential",
    ls_parameter: Scalar = 0.5,
    kl_tolerance: Optional[Scalar] = 1.5,
) -> tuple[PyTree, NaturalGradientStepInfo]:
    """One TRPO update: natural-gradient step in the KL trust region, then backtracking.

    θ' = θ + f·s with s from `natural_gradient_direction` (½ sᵀFs = max_kl) and f the first
    fraction accepted by `line_search`: the loss must drop by at least `ls_accept_ratio` of its
    linear prediction f·(−gᵀs), and the true mean KL(π_θ ‖ π_θ') may exceed max_kl by at most
    the factor `kl_tolerance` (None: no KL check, as TensorForce). Schulman et al., 2015, "Trust
    region policy optimization"; TensorForce's TRPO optimizer `optimized_step(natural_gradient)`,
    whose defaults these are. The loss is minimised: pass the negated surrogate, e.g.
    `-fnrl.trpo_surrogate(...)`.

    Args:
      loss_fn: `params -> scalar` loss to decrease (evaluated on a fixed batch).
      kl_fn: `params -> scalar` mean KL from the fixed old policy (built from `params`' values).
      params: the current parameters θ_old.
      max_kl: > 0, the trust region δ (TensorForce's `learning_rate`).
      cg_max_iterations, cg_damping, cg_residual_tol: see `conjugate_gradient`.
      ls_max_iterations, ls_accept_ratio, ls_mode, ls_parameter: see `line_search`.
      kl_tolerance: >= 1 or None; a candidate must satisfy KL <= kl_tolerance · max_kl.

    Returns:
      `(new_params, NaturalGradientStepInfo)`; `new_params` equals `params` if the search
      failed (`info.line_search.accepted` is False).
    """
    fn = "natural_gradient_step"
    params = _check_float_tree(fn, "params", params)
    _check_scalar_fn(fn, "loss_fn", loss_fn, params)
    _check_scalar_fn(fn, "kl_fn", kl_fn, params)
    _check_scalar(fn, "max_kl", max_kl, 0.0, strict=True)
    _check_cg_args(fn, cg_max_iterations, cg_damping, cg_residual_tol)
    _check_line_search_args(fn, "ls_", ls_max_iterations, ls_accept_ratio, ls_mode, ls_parameter)
    if kl_tolerance is not None:
        _check_scalar(fn, "kl_tolerance", kl_tolerance, 1.0)
    loss, grads = jax.value_and_grad(loss_fn)(params)
    step, ng_info = natural_gradient_direction(
        grads, kl_fn, params, max_kl, cg_max_iterations=cg_max_iterations, cg_damping=cg_damping,
        cg_residual_tol=cg_residual_tol,
    )
    new_params, ls_info = line_search(
        loss_fn, params, step, loss=loss, expected_improvement=ng_info.expected_improvement,
        max_iterations=ls_max_iterations, accept_ratio=ls_accept_ratio, mode=ls_mode,
        parameter=ls_parameter, constraint_fn=None if kl_tolerance is None else kl_fn,
        max_constraint=None if kl_tolerance is None else kl_tolerance * max_kl,
    )
    return new_params, NaturalGradientStepInfo(loss, ng_info, ls_info)


# --------------------------------------------------------------------------------------------
# Evolution strategies (TensorForce Evolutionary G3).


def centered_ranks(x: ArrayLike) -> Array:
    """Centered-rank fitness shaping: rank(x_i) / (n − 1) − ½, in [−½, ½].

    Salimans et al., 2017, "Evolution strategies as a scalable alternative to reinforcement
    learning": replacing fitnesses by their ranks makes the ES update invariant to monotone
    transformations of the fitness and robust to outliers. Ranks run over all n entries of `x`
    (any shape; the smallest gets rank 0). Tied entries share the mean of their ranks, so equal
    fitnesses weigh equally: an antithetic pair that scored the same moves nothing (as
    TensorForce's evolutionary optimizer, which signs each perturbation by its loss change, does
    not move on a tie). NaN ranks as the lowest fitness, so a failed evaluation is never favoured.
    The ranks are computed in float32 or wider: a bfloat16 or float16 array holds integers
    exactly only up to 256 or 2048.

    Args:
      x: numeric array with at least 2 entries.

    Returns:
      float array of `x`'s shape, in x's float dtype promoted to at least float32.
    """
    fn = "centered_ranks"
    x = check_array("x", x, kind="numeric", fn=fn)
    if x.size < 2:
        raise ValueError(f"{fn}: argument `x` must have at least 2 entries, got shape {x.shape}")
    flat = x.ravel()
    if jnp.issubdtype(x.dtype, jnp.floating):
        flat = jnp.where(jnp.isnan(flat), -jnp.inf, flat)
        dtype = jnp.promote_types(x.dtype, jnp.float32)
    else:
        dtype = jnp.float32
    ordered = jnp.sort(flat)
    # A value's tied block spans sorted positions [below, below + count); its mean rank is the middle.
    below = jnp.searchsorted(ordered, flat, side="left")
    not_above = jnp.searchsorted(ordered, flat, side="right")
    ranks = (below + not_above - 1).astype(dtype) / 2
    return (ranks / (x.size - 1) - 0.5).reshape(x.shape)


class ESInfo(NamedTuple):
    """Diagnostics of `es_gradient` / `es_step`."""

    fitness: Array  # [2·num_samples]: F(θ + σε_i) for i < num_samples, then F(θ − σε_i)
    aux: PyTree = ()  # with `has_aux`: the fitness function's aux per evaluation, leading axis [2·num_samples]


def es_gradient(
    key: PRNGKey,
    fitness_fn: LossFn,
    params: PyTree,
    *,
    num_samples: int,
    noise_std: Scalar,
    fitness_shaping: str = "centered_rank",
    has_aux: bool = False,
) -> tuple[PyTree, ESInfo]:
    """Evolution-strategies estimate of the fitness gradient from antithetic perturbations.

        g = 1 / (2nσ) · Σ_i (F̃(θ + σε_i) − F̃(θ − σε_i)) ε_i,   ε_i ~ N(0, I), i = 1..n

    (Salimans et al., 2017, "Evolution strategies as a scalable alternative to reinforcement
    learning", with mirrored sampling), where F̃ is the raw fitness ("none": an unbiased
    estimate of ∇_θ E_ε[F(θ + σε)], exactly ∇F in expectation for a quadratic F) or its
    `centered_ranks` over the 2n evaluations ("centered_rank", the paper's choice). The fitness
    is **maximised**: g is an ascent direction. The 2n evaluations run as one `vmap`.
    To drive an optax optimizer (the paper uses Adam), feed it the loss gradient −g.

    Args:
      key: PRNG key for the perturbations.
      fitness_fn: `params -> scalar` fitness (e.g. minus a loss, or an episode return).
      params: the pytree θ of float arrays (flattened to one vector for the noise).
      num_samples: Python int >= 1, antithetic pairs n (2n fitness evaluations).
      noise_std: σ > 0 (may be traced).
      fitness_shaping: "centered_rank" or "none".
      has_aux: `fitness_fn` returns `(fitness, aux)` (as `jax.grad`'s `has_aux`); the aux of
        every evaluation comes back in `ESInfo.aux`, e.g. episode statistics of the population.

    Returns:
      `(g, ESInfo)`, g shaped like `params`.
    """
    fn = "es_gradient"
    _check_key(fn, key)
    params = _check_float_tree(fn, "params", params)
    if not isinstance(has_aux, bool):
        raise ValueError(f"{fn}: argument `has_aux` must be a Python bool, got {has_aux!r}")
    fitness_only = (lambda p: fitness_fn(p)[0]) if has_aux else fitness_fn
    _check_scalar_fn(fn, "fitness_fn", fitness_only, params)
    _check_int(fn, "num_samples", num_samples, 1)
    _check_scalar(fn, "noise_std", noise_std, 0.0, strict=True)
    if fitness_shaping not in ("centered_rank", "none"):
        raise ValueError(
            f"{fn}: argument `fitness_shaping` must be 'centered_rank' or 'none', got {fitness_shaping!r}"
        )
    flat, unravel = ravel_pytree(params)
    eps = jax.random.normal(key, (num_samples, flat.size), flat.dtype)
    population = flat + noise_std * jnp.concatenate([eps, -eps])
    evaluated = jax.vmap(lambda theta: fitness_fn(unravel(theta)))(population)
    fitness, aux = evaluated if has_aux else (evaluated, ())
    shaped = centered_ranks(fitness) if fitness_shaping == "centered_rank" else fitness
    weights = shaped[:num_samples] - shaped[num_samples:]
    grad = (weights @ eps) / (2 * num_samples * noise_std)
    return unravel(grad.astype(flat.dtype)), ESInfo(fitness=fitness, aux=aux)


def es_step(
    key: PRNGKey,
    fitness_fn: LossFn,
    params: PyTree,
    *,
    learning_rate: Scalar,
    num_samples: int,
    noise_std: Scalar,
    fitness_shaping: str = "centered_rank",
    has_aux: bool = False,
) -> tuple[PyTree, ESInfo]:
    """One evolution-strategies ascent step θ' = θ + α·g with g from `es_gradient`.

    Salimans et al., 2017, "Evolution strategies as a scalable alternative to reinforcement
    learning". Maps TensorForce's `evolutionary` optimizer (G3; `learning_rate`, `num_samples`),
    which keeps, per sample, the perturbation ε ~ N(0, lr²) signed by whether it lowered the
    loss; here the perturbations are antithetic, shaped by rank, and the fitness (e.g. −loss)
    is **maximised**.

    Args:
      key, fitness_fn, params, num_samples, noise_std, fitness_shaping, has_aux: see `es_gradient`.
      learning_rate: α >= 0 (may be traced).

    Returns:
      `(new_params, ESInfo)`.
    """
    fn = "es_step"
    _check_scalar(fn, "learning_rate", learning_rate, 0.0)
    _check_int(fn, "num_samples", num_samples, 1)
    _check_scalar(fn, "noise_std", noise_std, 0.0, strict=True)
    grad, info = es_gradient(
        key, fitness_fn, params, num_samples=num_samples, noise_std=noise_std,
        fitness_shaping=fitness_shaping, has_aux=has_aux,
    )
    new_params = jax.tree.map(lambda p, g: (p + learning_rate * g).astype(p.dtype), params, grad)
    return new_params, info


# --------------------------------------------------------------------------------------------
# Meta-optimizers around any optax optimizer (TensorForce MultiStep G6, OptimizedStep G7,
# ClippedStep G8).


def _optax_update(optimizer, loss_fn: LossFn, params: PyTree, opt_state: PyTree):
    """Loss, gradient and the optimizer's step; optax line-search optimizers (e.g.
    `optax.lbfgs`) get the `value`, `grad`, `value_fn` extra arguments they require."""
    loss, grads = jax.value_and_grad(loss_fn)(params)
    tx = optax.with_extra_args_support(optimizer)
    updates, opt_state = tx.update(grads, opt_state, params, value=loss, grad=grads, value_fn=loss_fn)
    return loss, grads, updates, opt_state


def _check_optimizer(fn: str, optimizer: object) -> None:
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(
            f"{fn}: argument `optimizer` must be an optax.GradientTransformation, got "
            f"{type(optimizer).__name__}"
        )


def multi_step(
    optimizer: optax.GradientTransformation,
    loss_fn: LossFn,
    params: PyTree,
    opt_state: PyTree,
    num_steps: int = 5,
) -> tuple[PyTree, PyTree, Array]:
    """Takes `num_steps` optimizer steps on the same loss (the same batch), in one `lax.scan`.

        θ_{k+1} = θ_k + optimizer.update(∇L(θ_k), state_k, θ_k),   k = 0 .. num_steps − 1

    TensorForce's `MultiStep` meta-optimizer (G6, default `num_steps=5`; e.g. its baseline
    optimizer `multi_step(adam, 5)`). Not `optax.MultiSteps`, which *accumulates* gradients over
    several batches before one step.

    Args:
      optimizer: any optax optimizer (extra-args ones receive `value`, `grad`, `value_fn`).
      loss_fn: `params -> scalar` loss, closed over the batch.
      params: the parameters.
      opt_state: `optimizer.init(params)` or a later state.
      num_steps: Python int >= 1.

    Returns:
      `(params, opt_state, losses)` with `losses[k] = L(θ_k)`, the loss before step k.
    """
    fn = "multi_step"
    _check_optimizer(fn, optimizer)
    params = _check_float_tree(fn, "params", params)
    _check_scalar_fn(fn, "loss_fn", loss_fn, params)
    _check_int(fn, "num_steps", num_steps, 1)

    def one_step(carry, _):
        params, opt_state = carry
        loss, _, updates, opt_state = _optax_update(optimizer, loss_fn, params, opt_state)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, opt_state), losses = lax.scan(one_step, (params, opt_state), length=num_steps)
    return params, opt_state, losses


def optimized_step(
    optimizer: optax.GradientTransformation,
    loss_fn: LossFn,
    params: PyTree,
    opt_state: PyTree,
    *,
    ls_max_iterations: int = 10,
    ls_accept_ratio: Scalar = 0.9,
    ls_mode: str = "exponential",
    ls_parameter: Scalar = 0.5,
) -> tuple[PyTree, PyTree, LineSearchInfo]:
    """One optimizer step shortened by `line_search` (TensorForce `OptimizedStep`, G7).

    u = optimizer's step; θ' = θ + f·u with f the first fraction accepted against the linear
    prediction −∇L(θ)ᵀu of the loss decrease (TensorForce's defaults). The optimizer's state
    advances as if the whole step were taken, as in TensorForce. The natural gradient needs
    `kl_fn` and a KL check: use `natural_gradient_step` for it.

    Args:
      optimizer: any optax optimizer.
      loss_fn: `params -> scalar` loss, closed over the batch.
      params, opt_state: parameters and optimizer state.
      ls_max_iterations, ls_accept_ratio, ls_mode, ls_parameter: see `line_search`.

    Returns:
      `(params, opt_state, LineSearchInfo)`.
    """
    fn = "optimized_step"
    _check_optimizer(fn, optimizer)
    params = _check_float_tree(fn, "params", params)
    _check_scalar_fn(fn, "loss_fn", loss_fn, params)
    _check_line_search_args(fn, "ls_", ls_max_iterations, ls_accept_ratio, ls_mode, ls_parameter)
    loss, grads, updates, opt_state = _optax_update(optimizer, loss_fn, params, opt_state)
    params, info = line_search(
        loss_fn, params, updates, loss=loss, expected_improvement=-otu.tree_vdot(grads, updates),
        max_iterations=ls_max_iterations, accept_ratio=ls_accept_ratio, mode=ls_mode,
        parameter=ls_parameter,
    )
    return params, opt_state, info


def clipped_step(
    optimizer: optax.GradientTransformation, clipping_value: Scalar
) -> optax.GradientTransformationExtraArgs:
    """The optimizer's step clipped elementwise to [−clipping_value, clipping_value].

    TensorForce's `ClippedStep` meta-optimizer (G8): clips the *step* (the update added to the
    parameters), not the gradient — `optax.chain(optimizer, optax.clip(clipping_value))`.
    For gradient clipping put `optax.clip` / `optax.clip_by_global_norm` *before* the optimizer.

    Args:
      optimizer: any optax optimizer.
      clipping_value: > 0.

    Returns:
      An optax transformation (extra arguments pass through to `optimizer`).
    """
    fn = "clipped_step"
    _check_optimizer(fn, optimizer)
    _check_scalar(fn, "clipping_value", clipping_value, 0.0, strict=True)
    return optax.chain(optimizer, optax.clip(clipping_value))


# --------------------------------------------------------------------------------------------
# Minimizers: one calling convention for every optimizer (TensorForce `Optimizer.minimize`, G1),
# and TensorForce optimizer specs (G2–G8, Q1, Q5).

AuxLossFn = Callable[[PyTree], tuple[Array, PyTree]]


class MinimizeInfo(NamedTuple):
    """What `Minimizer.minimize` reports. `loss` and `aux` are `loss_fn(params)` at the params
    passed in (before the update) for every optimizer, so a recipe logs the same quantity
    whichever optimizer its config names."""

    loss: Array  # float scalar
    aux: PyTree  # loss_fn's auxiliary output (the recipe's metrics)
    details: PyTree  # the optimizer's own diagnostics; see `optimizer_from_spec`


class Minimizer(NamedTuple):
    """An optimizer of any kind behind one optax-style calling convention.

    * `init(params) -> state`
    * `minimize(loss_fn, params, state, key=None, **extra) -> (params, state, MinimizeInfo)`

    `loss_fn(params) -> (loss, aux)` returns a float scalar to minimise and any auxiliary pytree
    (the `has_aux=True` convention of `jax.value_and_grad`), closed over the batch: recipes keep
    their metrics, and loss-closure optimizers (line search, natural gradient, evolution
    strategies) can evaluate the loss at new points. `key` feeds stochastic optimizers
    (`evolutionary`; the others ignore it); `extra` carries what some optimizers need, e.g.
    `kl_fn(params) -> scalar` for `natural_gradient`. Unused extras are ignored, so a recipe may
    always pass them. Both functions are pure: `jit`, `vmap` and `lax.scan` apply.
    """

    init: Callable[[PyTree], PyTree]
    minimize: Callable[..., tuple[PyTree, PyTree, MinimizeInfo]]


class OptimizedStepInfo(NamedTuple):
    """`MinimizeInfo.details` of `optimized_step` around an optimizer other than the natural
    gradient (whose TRPO step reports a `NaturalGradientStepInfo`)."""

    line_search: LineSearchInfo
    inner: MinimizeInfo  # the inner optimizer's report on its proposed full step


def _check_aux_loss_fn(fn: str, loss_fn: AuxLossFn, params: PyTree) -> None:
    """`loss_fn(params)` must return `(float scalar, aux)`; checked abstractly (traced, not run)."""
    _check_callable(fn, "loss_fn", loss_fn)
    out = jax.eval_shape(loss_fn, params)
    loss = out[0] if isinstance(out, tuple) and len(out) == 2 else None
    if getattr(loss, "shape", None) != () or not jnp.issubdtype(loss.dtype, jnp.floating):
        raise ValueError(
            f"{fn}: argument `loss_fn` must return (float scalar loss, aux); wrap a scalar loss "
            f"as `lambda p: (f(p), ())`, got {out}"
        )


def _loss_only(loss_fn: AuxLossFn) -> LossFn:
    return lambda params: loss_fn(params)[0]


def _value_and_grad(loss_fn: AuxLossFn, params: PyTree) -> tuple[Array, PyTree, PyTree]:
    """Checked `(loss, aux, grads)` at `params` from one forward-backward pass."""
    fn = "Minimizer.minimize"
    params = _check_float_tree(fn, "params", params)
    _check_aux_loss_fn(fn, loss_fn, params)
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    return loss, aux, grads


def _empty_init(params: PyTree) -> optax.EmptyState:
    del params
    return optax.EmptyState()


def minimizer_from_optax(optimizer: optax.GradientTransformation) -> Minimizer:
    """Any optax optimizer as a `Minimizer`: one gradient step per `minimize` call.

        (L, aux), g = value_and_grad(loss_fn)(θ);   u, s' = optimizer.update(g, s, θ);   θ' = θ + u

    Extra-args optimizers receive `value`, `grad`, `value_fn` (what `optax.lbfgs`'s line search
    needs) and the caller's `extra` (so `fnrl.natural_gradient` gets its `kl_fn`); plain ones
    ignore them. `MinimizeInfo.details` is `()`.
    """
    _check_optimizer("minimizer_from_optax", optimizer)
    tx = optax.with_extra_args_support(optimizer)

    def minimize(loss_fn, params, state, key=None, **extra):
        del key
        loss, aux, grads = _value_and_grad(loss_fn, params)
        updates, state = tx.update(
            grads, state, params, value=loss, grad=grads, value_fn=_loss_only(loss_fn), **extra
        )
        return optax.apply_updates(params, updates), state, MinimizeInfo(loss, aux, ())

    return Minimizer(optimizer.init, minimize)


def _require_kl_fn(where: str, kl_fn: Optional[LossFn]) -> None:
    if kl_fn is None:
        raise ValueError(
            f"{where}: the natural gradient needs the extra argument `kl_fn`: call "
            "`minimize(loss_fn, params, state, key, kl_fn=kl_fn)` with `kl_fn(params) -> scalar` "
            "the mean KL from the data-collecting policy (e.g. built on `fnrl.mean_kl`)"
        )


def _natural_gradient_minimizer(where: str, max_kl: Scalar, **cg) -> Minimizer:
    """θ' = θ + `natural_gradient_direction` step (TensorForce `natural_gradient`, no search)."""

    def minimize(loss_fn, params, state, key=None, *, kl_fn=None, **extra):
        del key, extra
        _require_kl_fn(where, kl_fn)
        loss, aux, grads = _value_and_grad(loss_fn, params)
        step, info = natural_gradient_direction(grads, kl_fn, params, max_kl, **cg)
        return optax.apply_updates(params, step), state, MinimizeInfo(loss, aux, info)

    return Minimizer(_empty_init, minimize)


def _trpo_minimizer(where: str, options: Mapping) -> Minimizer:
    """`optimized_step(natural_gradient)`: exactly `natural_gradient_step(..., **options)` (TRPO)."""

    def minimize(loss_fn, params, state, key=None, *, kl_fn=None, **extra):
        del key, extra
        _require_kl_fn(where, kl_fn)
        _check_aux_loss_fn("Minimizer.minimize", loss_fn, params)
        _, aux = loss_fn(params)  # under jit XLA shares this forward pass with the gradient's
        new_params, info = natural_gradient_step(_loss_only(loss_fn), kl_fn, params, **options)
        return new_params, state, MinimizeInfo(info.loss, aux, info)

    return Minimizer(_empty_init, minimize)


def _evolutionary_minimizer(where: str, learning_rate: Scalar, num_samples: int) -> Minimizer:
    """TensorForce `evolutionary` on `es_step`; see `optimizer_from_spec` for the mapping."""

    def minimize(loss_fn, params, state, key=None, **extra):
        del extra
        if key is None:
            raise ValueError(f"{where}: the evolutionary optimizer needs a PRNG `key`")
        _check_aux_loss_fn("Minimizer.minimize", loss_fn, params)
        loss, aux = loss_fn(params)
        new_params, info = es_step(
            key, lambda p: -loss_fn(p)[0], params, learning_rate=2 * learning_rate**2,
            num_samples=num_samples, noise_std=learning_rate,
        )
        return new_params, state, MinimizeInfo(loss, aux, info)

    return Minimizer(_empty_init, minimize)


def _multi_step_minimizer(inner: Minimizer, num_steps: int) -> Minimizer:
    """`num_steps` inner steps on the same loss in one `lax.scan` (TensorForce `multi_step`).
    `details` stacks the inner reports; `loss`/`aux` are the first step's."""

    def minimize(loss_fn, params, state, key=None, **extra):
        keys = None if key is None else jax.random.split(key, num_steps)

        def one_step(carry, step_key):
            params, state = carry
            params, state, info = inner.minimize(loss_fn, params, state, step_key, **extra)
            return (params, state), info

        (params, state), infos = lax.scan(one_step, (params, state), keys, length=num_steps)
        first_aux = jax.tree.map(lambda x: x[0], infos.aux)
        return params, state, MinimizeInfo(infos.loss[0], first_aux, infos)

    return Minimizer(inner.init, minimize)


def _optimized_step_minimizer(inner: Minimizer, search: Mapping) -> Minimizer:
    """`line_search` back from the inner optimizer's proposed point (TensorForce
    `optimized_step`); the inner state advances as if the full step were taken, as in
    `optimized_step`."""

    def minimize(loss_fn, params, state, key=None, **extra):
        proposed, state, info = inner.minimize(loss_fn, params, state, key, **extra)
        new_params, ls_info = line_search(
            _loss_only(loss_fn), params, otu.tree_sub(proposed, params), loss=info.loss, **search
        )
        return new_params, state, MinimizeInfo(info.loss, info.aux, OptimizedStepInfo(ls_info, info))

    return Minimizer(inner.init, minimize)


def _clipped_minimizer(inner: Minimizer, clipping_value: Scalar) -> Minimizer:
    """The inner optimizer's step θ' − θ clipped elementwise (TensorForce `clipped_step`)."""

    def minimize(loss_fn, params, state, key=None, **extra):
        proposed, state, info = inner.minimize(loss_fn, params, state, key, **extra)
        step = jax.tree.map(
            lambda new, old: jnp.clip(new - old, -clipping_value, clipping_value), proposed, params
        )
        return optax.apply_updates(params, step), state, info

    return Minimizer(inner.init, minimize)


# Spec checking: every message names the key path, e.g. spec['optimizer']['num_steps'].


def _spec_fail(where: str, key: str, message: str) -> None:
    raise ValueError(f"optimizer_from_spec: {where}[{key!r}] {message}")


def _spec_number(
    where: str, key: str, value: object, low: Optional[float] = None, high: Optional[float] = None,
    *, open_low: bool = False, open_high: bool = False,
) -> None:
    """A finite real in the interval; a jax scalar (e.g. traced in a vmapped sweep) passes."""
    if isinstance(value, jax.Array) and value.ndim == 0 and jnp.issubdtype(value.dtype, jnp.number):
        return
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    ok = ok and bool(np.isfinite(value))
    if ok and low is not None:
        ok = value > low or (value == low and not open_low)
    if ok and high is not None:
        ok = value < high or (value == high and not open_high)
    if not ok:
        lo = "(-inf" if low is None else ("(" if open_low else "[") + str(low)
        hi = "inf)" if high is None else str(high) + (")" if open_high else "]")
        _spec_fail(where, key, f"must be a number in {lo}, {hi}, got {value!r}")


def _spec_int(where: str, key: str, value: object, low: int) -> None:
    """A Python int >= low: it sets a loop length, which must be static."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        _spec_fail(where, key, f"must be a Python int >= {low}, got {value!r}")


def _spec_learning_rate(where: str, value: object) -> None:
    """A number >= 0 or an optax schedule `step -> rate`."""
    if not callable(value):
        _spec_number(where, "learning_rate", value, 0.0)


def _spec_bool(where: str, key: str, value: object) -> None:
    if not isinstance(value, (bool, np.bool_)):
        _spec_fail(where, key, f"must be a bool, got {value!r}")


class _Built(NamedTuple):
    """A spec's minimizer, plus what an enclosing meta-optimizer may specialise on."""

    minimizer: Minimizer
    transformation: Optional[optax.GradientTransformation] = None  # set for optax optimizers
    natural_gradient: Optional[dict] = None  # natural_gradient's options, for the TRPO step


def _optax_built(optimizer: optax.GradientTransformation) -> _Built:
    return _Built(minimizer_from_optax(optimizer), transformation=optimizer)


# TensorFlow 1.x optimizers under TensorForce's names (G2). Keys are the TF constructors'
# arguments, with their defaults; `optimizer_from_spec` says where optax's math differs.


def _check_adam_spec(where: str, learning_rate, beta1, beta2, epsilon) -> None:
    _spec_learning_rate(where, learning_rate)
    _spec_number(where, "beta1", beta1, 0.0, 1.0, open_high=True)
    _spec_number(where, "beta2", beta2, 0.0, 1.0, open_high=True)
    _spec_number(where, "epsilon", epsilon, 0.0)


def _tf_adam(where: str, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8):
    _check_adam_spec(where, learning_rate, beta1, beta2, epsilon)
    return optax.adam(learning_rate, b1=beta1, b2=beta2, eps=epsilon)


def _tf_nadam(where: str, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8):
    _check_adam_spec(where, learning_rate, beta1, beta2, epsilon)
    return optax.nadam(learning_rate, b1=beta1, b2=beta2, eps=epsilon)


def _tf_adagrad(where: str, learning_rate, initial_accumulator_value=0.1):
    _spec_learning_rate(where, learning_rate)
    _spec_number(where, "initial_accumulator_value", initial_accumulator_value, 0.0, open_low=True)
    # TF divides by sqrt(accumulator), no epsilon: the accumulator starts > 0.
    return optax.adagrad(learning_rate, initial_accumulator_value, eps=0.0)


def _tf_adadelta(where: str, learning_rate=0.001, rho=0.95, epsilon=1e-8):
    _spec_learning_rate(where, learning_rate)
    _spec_number(where, "rho", rho, 0.0, 1.0)
    _spec_number(where, "epsilon", epsilon, 0.0)
    return optax.adadelta(learning_rate, rho=rho, eps=epsilon)


def _tf_gradient_descent(where: str, learning_rate):
    _spec_learning_rate(where, learning_rate)
    return optax.sgd(learning_rate)


def _tf_momentum(where: str, learning_rate, momentum, use_nesterov=False):
    _spec_learning_rate(where, learning_rate)
    _spec_number(where, "momentum", momentum, 0.0)
    _spec_bool(where, "use_nesterov", use_nesterov)
    return optax.sgd(learning_rate, momentum=momentum, nesterov=bool(use_nesterov))


def _tf_rmsprop(where: str, learning_rate, decay=0.9, momentum=0.0, epsilon=1e-10, centered=False):
    _spec_learning_rate(where, learning_rate)
    _spec_number(where, "decay", decay, 0.0, 1.0)
    _spec_number(where, "momentum", momentum, 0.0)
    _spec_number(where, "epsilon", epsilon, 0.0)
    _spec_bool(where, "centered", centered)
    # TF starts the mean square at 1 and adds epsilon inside the square root.
    return optax.rmsprop(
        learning_rate, decay=decay, eps=epsilon, initial_scale=1.0, eps_in_sqrt=True,
        centered=bool(centered), momentum=momentum,
    )


# TensorForce's own optimizers (G3, G4) and meta-optimizers (G6–G8).


def _spec_natural_gradient(
    where: str, learning_rate, cg_max_iterations=20, cg_damping=1e-3, cg_unroll_loop=False
) -> _Built:
    del cg_unroll_loop  # the CG loop is a lax.while_loop: nothing to unroll
    _spec_number(where, "learning_rate", learning_rate, 0.0, open_low=True)
    _spec_int(where, "cg_max_iterations", cg_max_iterations, 0)
    _spec_number(where, "cg_damping", cg_damping, 0.0)
    options = dict(max_kl=learning_rate, cg_max_iterations=cg_max_iterations, cg_damping=cg_damping)
    minimizer = _natural_gradient_minimizer(f"optimizer_from_spec: {where} (natural_gradient)", **options)
    return _Built(minimizer, natural_gradient=options)


def _spec_evolutionary(where: str, learning_rate, num_samples=1) -> _Built:
    _spec_number(where, "learning_rate", learning_rate, 0.0, open_low=True)
    _spec_int(where, "num_samples", num_samples, 1)
    where = f"optimizer_from_spec: {where} (evolutionary)"
    return _Built(_evolutionary_minimizer(where, learning_rate, num_samples))


def _spec_multi_step(where: str, optimizer, num_steps=5) -> _Built:
    inner = _build_optimizer(optimizer, f"{where}['optimizer']")
    _spec_int(where, "num_steps", num_steps, 1)
    return _Built(_multi_step_minimizer(inner.minimizer, num_steps))


def _spec_line_search(where: str, max_iterations, accept_ratio, mode, parameter) -> dict:
    """`line_search`'s keyword arguments from the `ls_*` keys."""
    _spec_int(where, "ls_max_iterations", max_iterations, 1)
    _spec_number(where, "ls_accept_ratio", accept_ratio, 0.0)
    if mode not in ("exponential", "linear"):
        _spec_fail(where, "ls_mode", f"must be 'exponential' or 'linear', got {mode!r}")
    _spec_number(where, "ls_parameter", parameter, 0.0, 1.0, open_low=True,
                 open_high=mode == "exponential")
    return dict(max_iterations=max_iterations, accept_ratio=accept_ratio, mode=mode, parameter=parameter)


_UNSET = "natural_gradient_step's default"  # a key left out of the spec


def _spec_optimized_step(
    where: str, optimizer, ls_max_iterations=10, ls_accept_ratio=0.9, ls_mode="exponential",
    ls_parameter=0.5, ls_unroll_loop=False, kl_tolerance=_UNSET,
) -> _Built:
    del ls_unroll_loop  # the search is a lax.while_loop: nothing to unroll
    inner = _build_optimizer(optimizer, f"{where}['optimizer']")
    search = _spec_line_search(where, ls_max_iterations, ls_accept_ratio, ls_mode, ls_parameter)
    if inner.natural_gradient is None:
        if kl_tolerance is not _UNSET:
            _spec_fail(where, "kl_tolerance", "applies only when the inner optimizer is a natural_gradient")
        return _Built(_optimized_step_minimizer(inner.minimizer, search))
    options = dict(inner.natural_gradient, **{f"ls_{name}": value for name, value in search.items()})
    if kl_tolerance is not _UNSET:
        if kl_tolerance is not None:
            _spec_number(where, "kl_tolerance", kl_tolerance, 1.0)
        options["kl_tolerance"] = kl_tolerance
    return _Built(_trpo_minimizer(f"optimizer_from_spec: {where} (optimized_step)", options))


def _spec_clipped_step(where: str, optimizer, clipping_value) -> _Built:
    inner = _build_optimizer(optimizer, f"{where}['optimizer']")
    _spec_number(where, "clipping_value", clipping_value, 0.0, open_low=True)
    if inner.transformation is not None:
        return _optax_built(clipped_step(inner.transformation, clipping_value))
    return _Built(_clipped_minimizer(inner.minimizer, clipping_value))


_SPEC_OPTIMIZERS: dict[str, Callable[..., Union[_Built, optax.GradientTransformation]]] = {
    "adadelta": _tf_adadelta,
    "adagrad": _tf_adagrad,
    "adam": _tf_adam,
    "nadam": _tf_nadam,
    "gradient_descent": _tf_gradient_descent,
    "momentum": _tf_momentum,
    "rmsprop": _tf_rmsprop,
    "evolutionary": _spec_evolutionary,
    "natural_gradient": _spec_natural_gradient,
    "multi_step": _spec_multi_step,
    "optimized_step": _spec_optimized_step,
    "clipped_step": _spec_clipped_step,
}
OPTIMIZER_TYPES: tuple[str, ...] = tuple(sorted(_SPEC_OPTIMIZERS))

# TensorForce / TensorFlow arguments with no meaning here (summaries, variable scopes, locking).
_SPEC_IGNORED_KEYS = ("summaries", "summary_labels", "scope", "use_locking", "name")


def _check_spec_keys(where: str, kind: str, builder: Callable, options: Mapping) -> None:
    """The spec's keys against the builder's signature: no unknown key, no missing one."""
    params = inspect.signature(builder).parameters
    valid = [name for name in params if name != "where"]
    for key in options:
        if key not in valid:
            _spec_fail(where, key, f"is not a key of type {kind!r}; valid keys: {', '.join(valid)} "
                                   f"(ignored: {', '.join(_SPEC_IGNORED_KEYS)})")
    for name in valid:
        if params[name].default is inspect.Parameter.empty and name not in options:
            _spec_fail(where, name, f"is required for type {kind!r}")


def _build_optimizer(spec: Any, where: str) -> _Built:
    """One (possibly nested) spec; `where` is its key path, e.g. "spec['optimizer']"."""
    if isinstance(spec, Minimizer):
        return _Built(spec)
    if isinstance(spec, optax.GradientTransformation):
        return _optax_built(spec)
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise ValueError(
            f"optimizer_from_spec: {where} must be an optimizer type name, a dict with a 'type' "
            f"key, an optax optimizer or a Minimizer, got {spec!r}"
        )
    kind = spec["type"]
    if kind == "synchronization":
        _spec_fail(where, "type", "is 'synchronization', a target-network update, not a loss "
                                  "minimizer: use fnrl.periodic_target_update(target, online, step, "
                                  "period=sync_frequency, tau=update_weight)")
    if not isinstance(kind, str) or kind not in _SPEC_OPTIMIZERS:
        _spec_fail(where, "type", f"is {kind!r}, not an optimizer type; valid types: "
                                  f"{', '.join(OPTIMIZER_TYPES)}")
    builder = _SPEC_OPTIMIZERS[kind]
    options = {k: v for k, v in spec.items() if k != "type" and k not in _SPEC_IGNORED_KEYS}
    _check_spec_keys(where, kind, builder, options)
    built = builder(where, **options)
    return built if isinstance(built, _Built) else _optax_built(built)


def optimizer_from_spec(spec: Any) -> Minimizer:
    """Builds a `Minimizer` from a TensorForce optimizer spec (`Optimizer.from_spec`, Q1/Q5).

    `spec` is a type name (`"adam"`), a dict `{"type": name, **keys}`, an optax optimizer or a
    `Minimizer`; meta-optimizers take another such spec under `"optimizer"`, nested freely:
    `{"type": "multi_step", "optimizer": {"type": "adam", "learning_rate": 1e-3}, "num_steps":
    5}` (PPO's / TensorForce's baseline optimizer), `{"type": "optimized_step", "optimizer":
    {"type": "natural_gradient", "learning_rate": 0.01}}` (TRPO's). Keys and defaults:

    * TensorFlow 1.x optimizers (G2); keys are the TF constructors'; `learning_rate` is a number
      or an optax schedule. Differences from TF are noted; the rest match TF's update exactly.
      - `adam`(learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8) → `optax.adam`
        (Kingma & Ba, 2015). TF's epsilon is the paper's "epsilon hat", added to the
        uncorrected √v_t; optax adds it to the bias-corrected √v̂_t (TF ≡ optax with eps =
        epsilon / √(1 − beta2ᵗ)): they differ only while √v̂ is near epsilon.
      - `nadam`(same keys) → `optax.nadam` (Dozat, 2016). TF's Nadam bias-corrects the
        look-ahead momentum β1·m_t + (1 − β1)·g by 1 − β1ᵗ; optax corrects β1·m_t by 1 − β1ᵗ⁺¹
        and the gradient term by 1 − β1ᵗ, plus the epsilon placement of adam.
      - `adagrad`(learning_rate, initial_accumulator_value=0.1) → `optax.adagrad(eps=0)`.
      - `adadelta`(learning_rate=0.001, rho=0.95, epsilon=1e-8) → `optax.adadelta`.
      - `gradient_descent`(learning_rate) → `optax.sgd`.
      - `momentum`(learning_rate, momentum, use_nesterov=False) → `optax.sgd(momentum=,
        nesterov=)`: a ← momentum·a + g, step −lr·a (Nesterov: −lr·(g + momentum·a)).
      - `rmsprop`(learning_rate, decay=0.9, momentum=0.0, epsilon=1e-10, centered=False) →
        `optax.rmsprop(initial_scale=1, eps_in_sqrt=True)`: as TF, the mean square starts at 1
        and epsilon goes inside the root, lr·g / √(ms + ε) (centered: √(ms − mg² + ε)),
        accumulated by momentum.
      `details` is `()`.
    * `natural_gradient`(learning_rate, cg_max_iterations=20, cg_damping=0.001): one
      `natural_gradient_direction` step, `learning_rate` being the KL bound. Needs the extra
      `kl_fn`. `details`: `NaturalGradientInfo`.
    * `evolutionary`(learning_rate, num_samples=1): `es_step` with `noise_std=learning_rate`
      and step size 2·learning_rate², so one sample moves θ by ±learning_rate·ε exactly like
      TensorForce, whose sign compares L(θ + σε) with L(θ) where `es_step` uses the antithetic
      L(θ − σε) (and centred ranks for several samples). Needs `key`. `details`: `ESInfo`.
    * `multi_step`(optimizer, num_steps=5): the inner optimizer `num_steps` times on the same
      loss (`lax.scan`; the key is split per step). `details`: the inner `MinimizeInfo`s
      stacked on a leading `[num_steps]` axis.
    * `optimized_step`(optimizer, ls_max_iterations=10, ls_accept_ratio=0.9,
      ls_mode='exponential', ls_parameter=0.5): `line_search` from the inner optimizer's
      proposed point back to θ. Around a `natural_gradient` this is exactly
      `natural_gradient_step` (TRPO), with the fnrl-only key `kl_tolerance` (default
      `natural_gradient_step`'s 1.5; `None` for TensorForce's search without KL check) and
      `details` a `NaturalGradientStepInfo`; otherwise `details` is an `OptimizedStepInfo`.
    * `clipped_step`(optimizer, clipping_value): the step θ' − θ clipped elementwise to
      ±clipping_value (`clipped_step` for an optax inner optimizer). `details`: the inner one's.

    `cg_unroll_loop` / `ls_unroll_loop` are accepted and ignored: the loops are
    `lax.while_loop`s, whose data-dependent exit XLA compiles once; unrolling was TensorFlow's
    way to get gradients through them, which nothing here needs. `summaries`,
    `summary_labels`, `scope`, `use_locking` and `name` are ignored too. `synchronization` is a
    target-network update (`periodic_target_update`), not a minimizer.

    Raises:
      ValueError naming the key path (e.g. `spec['optimizer']['num_steps']`) for an unknown
      type (listing the valid ones), an unknown or missing key (listing the valid keys) or an
      out-of-range value.
    """
    return _build_optimizer(spec, "spec").minimizer
