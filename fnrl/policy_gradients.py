"""Policy-gradient objectives: REINFORCE, A2C, PPO clip, DPG, TRPO surrogate and KL, entropy.

Every function here is distribution-agnostic: it takes the log-probabilities of the *taken*
actions (`log_prob_t`), entropies, values or KL values as arrays, never distribution objects, so
it composes with any policy head. Per-sample arrays may have any shape `[...]` (`[T]`, `[T, B]`,
...); all arguments that describe the same samples must have the same shape.

Losses are scalars: the (weighted) mean over every sample,

    mean_w(x) = sum_i w_i * x_i / sum_i w_i      (0 when sum_i w_i = 0),

where the optional `mask_t` supplies the weights `w` (bool, or non-negative numbers such as
AgentNet's `is_alive`; it must broadcast to the samples' shape). Masked-out samples (w = 0) are
replaced by zeros *before* any arithmetic, so whatever they hold (even NaN or inf) changes neither
the loss nor its gradients. For per-sample losses (AgentNet's elementwise objectives, TensorForce's
`loss_per_instance`), `jax.vmap` a loss over the samples: on a single sample the mean is the
sample's own loss (and 0 when it is masked out).

Every loss stops gradients where the estimator treats a quantity as a constant (advantages,
baselines, old log-probabilities, value targets, the DPG target), so `jax.grad` of the loss is the
estimator's gradient.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from fnrl._validation import check_array, check_broadcastable, check_same_shape, check_static_range
from fnrl.value_learning import huber_loss, l2_loss
from fnrl.types import Array, ArrayLike, PyTree, Scalar

_VALUE_LOSSES = ("l2", "huber")
CLIP_RANGES = ("symmetric", "tensorforce")  # `ppo_clip_loss`'s ratio ranges


class A2CLossParts(NamedTuple):
    """The unweighted terms of `a2c_loss`: total = policy + value_coef*value + entropy_coef*entropy."""

    policy: Array  # policy_gradient_loss
    value: Array  # value_loss
    entropy: Array  # entropy_loss, i.e. minus the mean entropy


class PPOClipInfo(NamedTuple):
    """Diagnostics of `ppo_clip_loss` (no gradient flows through them)."""

    clip_fraction: Array  # weighted fraction of samples whose ratio lies outside the clip range
    approx_kl: Array  # mean of (rho - 1) - log(rho), a non-negative estimate of KL(old || new)


def _weights(fn: str, mask_t: Optional[ArrayLike], like: Array, shape=None) -> Array:
    """Mask as weights of `like`'s float dtype, broadcast to `shape` (default: `like.shape`)."""
    shape = like.shape if shape is None else shape
    if mask_t is None:
        return jnp.ones(shape, like.dtype)
    mask = check_array("mask_t", mask_t, kind="bool_or_numeric", fn=fn)
    return check_broadcastable(fn, "mask_t", mask, shape).astype(like.dtype)


def _zero_masked(w: Array, *xs: Array) -> tuple[Array, ...]:
    # Zeroing masked inputs first (not multiplying the result) keeps NaN/inf held by masked
    # samples out of both the value and the backward pass.
    keep = w != 0
    return tuple(jnp.where(keep.reshape(keep.shape + (1,) * (x.ndim - keep.ndim)), x, 0) for x in xs)


def _masked_mean(x: Array, w: Array) -> Array:
    total = jnp.sum(w)
    return jnp.sum(w * x) / jnp.where(total > 0, total, 1)


def _float(fn: str, name: str, x: ArrayLike) -> Array:
    return check_array(name, x, kind="float", fn=fn)


def _policy_gradient(log_prob_t: Array, advantage_t: Array, w: Array) -> Array:
    log_prob_t, advantage_t = _zero_masked(w, log_prob_t, advantage_t)
    return -_masked_mean(log_prob_t * jax.lax.stop_gradient(advantage_t), w)


def policy_gradient_loss(
    log_prob_t: ArrayLike, advantage_t: ArrayLike, mask_t: Optional[ArrayLike] = None
) -> Array:
    """Score-function (REINFORCE / A2C actor) loss.

        L = -mean_w( log pi(a_t|s_t) * stop_gradient(A_t) ),

    whose gradient is the likelihood-ratio policy gradient -E[A grad log pi] (Williams, 1992,
    "Simple statistical gradient-following algorithms for connectionist RL"; Mnih et al., 2016,
    "Asynchronous methods for deep RL"). No gradient flows into the advantage.

    Args:
      log_prob_t: log pi(a|s) of the taken actions, float `[...]`.
      advantage_t: advantages (or returns) of the same shape.
      mask_t: optional weights broadcastable to `[...]`.

    Returns:
      the scalar loss.
    """
    fn = "policy_gradient_loss"
    log_prob_t = _float(fn, "log_prob_t", log_prob_t)
    advantage_t = _float(fn, "advantage_t", advantage_t)
    check_same_shape(fn, log_prob_t=log_prob_t, advantage_t=advantage_t)
    return _policy_gradient(log_prob_t, advantage_t, _weights(fn, mask_t, log_prob_t))


def reinforce_loss(
    log_prob_t: ArrayLike,
    returns_t: ArrayLike,
    baseline_t: Optional[ArrayLike] = None,
    mask_t: Optional[ArrayLike] = None,
) -> Array:
    """REINFORCE with an optional baseline (Williams, 1992; TensorForce `VPGAgent`).

        L = -mean_w( log pi(a_t|s_t) * stop_gradient(R_t - b_t) ).

    The baseline (a learned V(s_t), or any estimate broadcastable to the returns, e.g. a scalar
    running mean) reduces variance without biasing the gradient; it receives no gradient here:
    fit it separately, e.g. with `value_loss(baseline_t, returns_t)`. TensorForce's no-GAE
    advantage "discounted return - V(s)" is exactly this with `baseline_t = V(s_t)`.

    Args:
      log_prob_t: log pi(a|s) of the taken actions, float `[...]`.
      returns_t: returns R_t of the same shape.
      baseline_t: optional baseline broadcastable to `[...]`.
      mask_t: optional weights broadcastable to `[...]`.

    Returns:
      the scalar loss.
    """
    fn = "reinforce_loss"
    log_prob_t = _float(fn, "log_prob_t", log_prob_t)
    returns_t = _float(fn, "returns_t", returns_t)
    check_same_shape(fn, log_prob_t=log_prob_t, returns_t=returns_t)
    advantage_t = returns_t
    if baseline_t is not None:
        baseline_t = _float(fn, "baseline_t", baseline_t)
        advantage_t = returns_t - check_broadcastable(fn, "baseline_t", baseline_t, returns_t.shape)
    return _policy_gradient(log_prob_t, advantage_t, _weights(fn, mask_t, log_prob_t))


def entropy_loss(entropy_t: ArrayLike, mask_t: Optional[ArrayLike] = None) -> Array:
    """Entropy regularizer L = -mean_w(H[pi(.|s_t)]) (Williams & Peng, 1991; Mnih et al., 2016).

    Adding `coef * entropy_loss` to a loss rewards exploration; this is TensorForce's
    `entropy_regularization` term. Gradients flow into the entropies.

    Args:
      entropy_t: policy entropies per sample, float `[...]`.
      mask_t: optional weights broadcastable to `[...]`.

    Returns:
      the scalar loss.
    """
    fn = "entropy_loss"
    entropy_t = _float(fn, "entropy_t", entropy_t)
    w = _weights(fn, mask_t, entropy_t)
    (entropy_t,) = _zero_masked(w, entropy_t)
    return -_masked_mean(entropy_t, w)


def _elementwise_value_loss(x: Array, loss: str, delta: Scalar) -> Array:
    return l2_loss(x) if loss == "l2" else huber_loss(x, delta)


def value_loss(
    v_t: ArrayLike,
    target_t: ArrayLike,
    mask_t: Optional[ArrayLike] = None,
    loss: str = "l2",
    delta: Scalar = 1.0,
    stop_target_gradient: bool = True,
) -> Array:
    """Critic / baseline regression loss L = mean_w( f(v_t - target_t) ).

    `loss="l2"`: f(x) = x^2 / 2. `loss="huber"`: f(x) = x^2 / 2 for |x| <= delta, else
    delta * (|x| - delta / 2) (Huber, 1964). Note AgentNet's default critic loss is the squared
    error x^2, i.e. twice "l2". With `stop_target_gradient` (AgentNet's
    `consider_value_reference_constant=True`) the target is a constant.

    Args:
      v_t: predicted values, float `[...]`.
      target_t: value targets of the same shape.
      mask_t: optional weights broadcastable to `[...]`.
      loss: "l2" or "huber" (static).
      delta: Huber threshold, > 0.
      stop_target_gradient: whether no gradient flows into `target_t` (static).

    Returns:
      the scalar loss.
    """
    fn = "value_loss"
    if loss not in _VALUE_LOSSES:
        raise ValueError(f"{fn}: argument `loss` must be one of {_VALUE_LOSSES}, got {loss!r}")
    check_static_range(fn, "delta", delta, low=0.0)
    v_t = _float(fn, "v_t", v_t)
    target_t = _float(fn, "target_t", target_t)
    check_same_shape(fn, v_t=v_t, target_t=target_t)
    w = _weights(fn, mask_t, v_t)
    v_t, target_t = _zero_masked(w, v_t, target_t)
    if stop_target_gradient:
        target_t = jax.lax.stop_gradient(target_t)
    return _masked_mean(_elementwise_value_loss(v_t - target_t, loss, delta), w)


def clipped_value_loss(
    v_t: ArrayLike,
    v_old_t: ArrayLike,
    target_t: ArrayLike,
    epsilon: Scalar,
    mask_t: Optional[ArrayLike] = None,
) -> Array:
    """PPO's clipped value loss (Schulman et al., 2017, "Proximal policy optimization
    algorithms", as implemented in OpenAI baselines' `ppo2`).

        v_clip = v_old + clip(v - v_old, -epsilon, epsilon)
        L = mean_w( max((v - target)^2, (v_clip - target)^2) ) / 2

    The max makes the loss pessimistic: moving the value more than epsilon away from the value
    that collected the data earns no further credit. `v_old` and `target` are constants.

    Args:
      v_t: current value predictions, float `[...]`.
      v_old_t: the predictions made when the data was collected, same shape.
      target_t: value targets (e.g. GAE returns), same shape.
      epsilon: clip radius, >= 0.
      mask_t: optional weights broadcastable to `[...]`.

    Returns:
      the scalar loss.
    """
    fn = "clipped_value_loss"
    check_static_range(fn, "epsilon", epsilon, low=0.0)
    v_t = _float(fn, "v_t", v_t)
    v_old_t = _float(fn, "v_old_t", v_old_t)
    target_t = _float(fn, "target_t", target_t)
    check_same_shape(fn, v_t=v_t, v_old_t=v_old_t, target_t=target_t)
    w = _weights(fn, mask_t, v_t)
    v_t, v_old_t, target_t = _zero_masked(w, v_t, v_old_t, target_t)
    v_old_t, target_t = jax.lax.stop_gradient((v_old_t, target_t))
    v_clip = v_old_t + jnp.clip(v_t - v_old_t, -epsilon, epsilon)
    unclipped, clipped = jnp.square(v_t - target_t), jnp.square(v_clip - target_t)
    # A tie takes the unclipped branch whole (jnp.maximum would split the gradient between them).
    per_sample = jnp.where(unclipped >= clipped, unclipped, clipped)
    return 0.5 * _masked_mean(per_sample, w)


def a2c_loss(
    log_prob_t: ArrayLike,
    advantage_t: ArrayLike,
    v_t: ArrayLike,
    target_t: ArrayLike,
    entropy_t: Optional[ArrayLike],
    value_coef: Scalar,
    entropy_coef: Scalar,
    mask_t: Optional[ArrayLike] = None,
    loss: str = "l2",
    delta: Scalar = 1.0,
) -> tuple[Array, A2CLossParts]:
    """Advantage actor-critic loss (Mnih et al., 2016, "Asynchronous methods for deep RL").

        total = policy_gradient_loss(log_prob, A) + value_coef * value_loss(v, target)
                + entropy_coef * entropy_loss(entropy)

    The advantage and value target are constants; `entropy_t=None` drops the entropy term (as
    AgentNet's a2c objective, which has none). Returns `(total, parts)`, ready for
    `jax.value_and_grad(..., has_aux=True)`.

    Args:
      log_prob_t: log pi(a|s) of the taken actions, float `[...]`.
      advantage_t: advantages, same shape.
      v_t: value predictions, same shape.
      target_t: value targets, same shape.
      entropy_t: policy entropies, same shape, or None.
      value_coef: weight of the value loss.
      entropy_coef: weight of the entropy loss (>= 0 encourages exploration).
      mask_t: optional weights broadcastable to `[...]`.
      loss, delta: the value loss kind and Huber threshold, as in `value_loss`.

    Returns:
      `(total, A2CLossParts(policy, value, entropy))`.
    """
    fn = "a2c_loss"
    log_prob_t = _float(fn, "log_prob_t", log_prob_t)
    advantage_t = _float(fn, "advantage_t", advantage_t)
    v_t = _float(fn, "v_t", v_t)
    target_t = _float(fn, "target_t", target_t)
    check_same_shape(fn, log_prob_t=log_prob_t, advantage_t=advantage_t, v_t=v_t, target_t=target_t)
    _weights(fn, mask_t, log_prob_t)  # checked here, so an error names a2c_loss
    policy = policy_gradient_loss(log_prob_t, advantage_t, mask_t)
    value = value_loss(v_t, target_t, mask_t, loss=loss, delta=delta)
    if entropy_t is None:
        entropy = jnp.zeros((), policy.dtype)
    else:
        entropy_t = _float(fn, "entropy_t", entropy_t)
        check_same_shape(fn, log_prob_t=log_prob_t, entropy_t=entropy_t)
        entropy = entropy_loss(entropy_t, mask_t)
    total = policy + value_coef * value + entropy_coef * entropy
    return total, A2CLossParts(policy=policy, value=value, entropy=entropy)


def _ratio_bounds(fn: str, epsilon: Scalar, clip_range: str) -> tuple[Any, Any]:
    check_static_range(fn, "epsilon", epsilon, low=0.0)
    if clip_range == "symmetric":
        return 1.0 - epsilon, 1.0 + epsilon
    return 1.0 / (1.0 + epsilon), 1.0 + epsilon


def ppo_clip_loss(
    log_prob_t: ArrayLike,
    old_log_prob_t: ArrayLike,
    advantage_t: ArrayLike,
    epsilon: Optional[Scalar],
    mask_t: Optional[ArrayLike] = None,
    clip_range: str = "symmetric",
) -> tuple[Array, PPOClipInfo]:
    """PPO's clipped surrogate loss (Schulman et al., 2017, "Proximal policy optimization
    algorithms").

        rho_t = exp(log pi(a_t|s_t) - stop_gradient(log pi_old(a_t|s_t)))
        L = -mean_w( min(rho_t * A_t, clip(rho_t, lo, hi) * A_t) )

    with [lo, hi] = [1 - eps, 1 + eps] (`clip_range="symmetric"`, the paper) or
    [1 / (1 + eps), 1 + eps] (`clip_range="tensorforce"`, TensorForce 0.3's
    `likelihood_ratio_clipping`). The min is a pessimistic bound: a sample whose ratio has left
    the range in the direction its advantage favours contributes no gradient.
    `epsilon=None` disables clipping (L = -mean_w(rho A), TensorForce's default).

    Args:
      log_prob_t: log pi(a|s) of the taken actions under the current policy, float `[...]`.
      old_log_prob_t: the same under the policy that collected the data, same shape.
      advantage_t: advantages, same shape (a constant).
      epsilon: clip parameter >= 0, or None.
      mask_t: optional weights broadcastable to `[...]`.
      clip_range: "symmetric" or "tensorforce" (static).

    Returns:
      `(loss, PPOClipInfo(clip_fraction, approx_kl))`.
    """
    fn = "ppo_clip_loss"
    log_prob_t = _float(fn, "log_prob_t", log_prob_t)
    old_log_prob_t = _float(fn, "old_log_prob_t", old_log_prob_t)
    advantage_t = _float(fn, "advantage_t", advantage_t)
    check_same_shape(fn, log_prob_t=log_prob_t, old_log_prob_t=old_log_prob_t, advantage_t=advantage_t)
    if clip_range not in CLIP_RANGES:
        raise ValueError(f"{fn}: argument `clip_range` must be one of {CLIP_RANGES}, got {clip_range!r}")
    bounds = None if epsilon is None else _ratio_bounds(fn, epsilon, clip_range)
    w = _weights(fn, mask_t, log_prob_t)
    log_prob_t, old_log_prob_t, advantage_t = _zero_masked(w, log_prob_t, old_log_prob_t, advantage_t)
    log_ratio = log_prob_t - jax.lax.stop_gradient(old_log_prob_t)
    ratio = jnp.exp(log_ratio)
    advantage_t = jax.lax.stop_gradient(advantage_t)
    surrogate = ratio * advantage_t
    outside = jnp.zeros_like(ratio)
    if bounds is not None:
        clipped = jnp.clip(ratio, *bounds) * advantage_t
        # A tie takes the unclipped branch whole (jnp.minimum would split the gradient between them).
        surrogate = jnp.where(surrogate <= clipped, surrogate, clipped)
        outside = ((ratio < bounds[0]) | (ratio > bounds[1])).astype(ratio.dtype)
    info = PPOClipInfo(
        clip_fraction=_masked_mean(outside, w),
        approx_kl=_masked_mean(jnp.expm1(log_ratio) - log_ratio, w),
    )
    return -_masked_mean(surrogate, w), jax.lax.stop_gradient(info)


def dpg_loss(
    a_t: ArrayLike,
    dqda_t: ArrayLike,
    dqda_clipping: Optional[Scalar] = None,
    mask_t: Optional[ArrayLike] = None,
) -> Array:
    """Deterministic policy gradient loss (Silver et al., 2014, "Deterministic policy gradient
    algorithms"; Lillicrap et al., 2015, "Continuous control with deep RL", DDPG).

        L = mean_w( 1/2 * || stop_gradient(a_t + clip(dQ/da_t)) - a_t ||^2 )

    The squared error is summed over the action dimension. Its gradient w.r.t. sample i's action
    is -w_i * dQ/da_i / sum(w), so back-propagating it through the actor a = mu_theta(s) gives the
    (mean) deterministic policy gradient -E[dQ/da * dmu/dtheta] without differentiating the critic
    again. `dqda_clipping = c` clips dQ/da elementwise to [-c, c].

    Args:
      a_t: the actor's actions, float `[..., action_dim]` (rank >= 1).
      dqda_t: dQ(s, a)/da at those actions, same shape (a constant).
      dqda_clipping: optional clip bound > 0.
      mask_t: optional weights broadcastable to `[...]` (the shape without the action axis).

    Returns:
      the scalar loss.
    """
    fn = "dpg_loss"
    a_t = check_array("a_t", a_t, kind="float", min_rank=1, fn=fn)
    dqda_t = _float(fn, "dqda_t", dqda_t)
    check_same_shape(fn, a_t=a_t, dqda_t=dqda_t)
    w = _weights(fn, mask_t, a_t, shape=a_t.shape[:-1])
    a_t, dqda_t = _zero_masked(w, a_t, dqda_t)
    if dqda_clipping is not None:
        check_static_range(fn, "dqda_clipping", dqda_clipping, low=0.0)
        dqda_t = jnp.clip(dqda_t, -dqda_clipping, dqda_clipping)
    target = jax.lax.stop_gradient(a_t + dqda_t)
    return _masked_mean(0.5 * jnp.sum(jnp.square(target - a_t), axis=-1), w)


def trpo_surrogate(
    log_prob_t: ArrayLike,
    old_log_prob_t: ArrayLike,
    advantage_t: ArrayLike,
    mask_t: Optional[ArrayLike] = None,
) -> Array:
    """TRPO's surrogate advantage (the "gain" to *maximise*; Schulman et al., 2015, "Trust region
    policy optimization"; TensorForce `tf_compare`).

        gain = mean_w( exp(log pi(a_t|s_t) - stop_gradient(log pi_old(a_t|s_t))) * A_t )

    At pi = pi_old its gradient equals the policy gradient. The old log-probabilities (TensorForce's
    `tf_reference`) and the advantages are constants.

    Args:
      log_prob_t: log pi(a|s) under the candidate policy, float `[...]`.
      old_log_prob_t: the same under the data-collecting policy, same shape.
      advantage_t: advantages, same shape.
      mask_t: optional weights broadcastable to `[...]`.

    Returns:
      the scalar gain.
    """
    fn = "trpo_surrogate"
    log_prob_t = _float(fn, "log_prob_t", log_prob_t)
    old_log_prob_t = _float(fn, "old_log_prob_t", old_log_prob_t)
    advantage_t = _float(fn, "advantage_t", advantage_t)
    check_same_shape(fn, log_prob_t=log_prob_t, old_log_prob_t=old_log_prob_t, advantage_t=advantage_t)
    w = _weights(fn, mask_t, log_prob_t)
    log_prob_t, old_log_prob_t, advantage_t = _zero_masked(w, log_prob_t, old_log_prob_t, advantage_t)
    old_log_prob_t, advantage_t = jax.lax.stop_gradient((old_log_prob_t, advantage_t))
    return _masked_mean(jnp.exp(log_prob_t - old_log_prob_t) * advantage_t, w)


def mean_kl(
    kl_fn: Callable[[PyTree, PyTree], ArrayLike],
    old_params: PyTree,
    new_params: PyTree,
    mask_t: Optional[ArrayLike] = None,
) -> Array:
    """Mean KL divergence mean_w( KL(pi_old(.|s_t) || pi_new(.|s_t)) ), TRPO's trust-region
    constraint (Schulman et al., 2015; TensorForce's `fn_kl_divergence`).

    `kl_fn(p, q) -> [...]` is any distribution's KL between distribution-parameter pytrees; the
    old parameters are constants, so the Hessian of this function w.r.t. the new parameters at
    new = old is the Fisher information used by natural-gradient / conjugate-gradient steps.
    Masked samples are averaged out but `kl_fn` still sees their parameters: keep them finite.

    Args:
      kl_fn: maps (old_params, new_params) to per-sample KL values, float `[...]`.
      old_params: distribution parameters of the data-collecting policy.
      new_params: distribution parameters of the candidate policy.
      mask_t: optional weights broadcastable to `[...]`.

    Returns:
      the scalar mean KL.
    """
    fn = "mean_kl"
    if not callable(kl_fn):
        raise ValueError(f"{fn}: argument `kl_fn` must be callable, got {type(kl_fn).__name__}")
    kl_t = kl_fn(jax.lax.stop_gradient(old_params), new_params)
    kl_t = check_array("kl_fn(old_params, new_params)", kl_t, fn=fn)
    w = _weights(fn, mask_t, kl_t)
    (kl_t,) = _zero_masked(w, kl_t)
    return _masked_mean(kl_t, w)


def normalize_advantages(
    advantage_t: ArrayLike, mask_t: Optional[ArrayLike] = None, eps: Scalar = 1e-8
) -> Array:
    """Standardises advantages over the (weighted) batch: (A - mean_w A) / (std_w A + eps).

    A common variance-reduction step of PPO recipes (OpenAI baselines `ppo2`); std is the
    population (ddof=0) weighted standard deviation. Masked-out entries are returned as 0.

    Args:
      advantage_t: advantages, float `[...]`.
      mask_t: optional weights broadcastable to `[...]`.
      eps: added to the std to avoid dividing by 0, >= 0.

    Returns:
      the normalized advantages, shape `[...]`.
    """
    fn = "normalize_advantages"
    check_static_range(fn, "eps", eps, low=0.0)
    advantage_t = _float(fn, "advantage_t", advantage_t)
    w = _weights(fn, mask_t, advantage_t)
    (advantage_t,) = _zero_masked(w, advantage_t)
    centered = advantage_t - _masked_mean(advantage_t, w)
    std = jnp.sqrt(_masked_mean(jnp.square(centered), w))
    return jnp.where(w != 0, centered / (std + eps), 0)


def average_action_components(per_component: PyTree, num_batch_dims: int = 1) -> Array:
    """Averages a per-action-component quantity over all components (TensorForce's PG models).

    Each leaf of `per_component` (e.g. a dict action name -> log-probs `[*batch, ...]`) is
    flattened to `[*batch, n_leaf]`; the result is the mean over all sum(n_leaf) entries, shape
    `[*batch]`. TensorForce's VPG loss, `tf_reference` and `tf_compare` combine log-probs of
    multi-component actions this way (so e.g. a 3-dim Gaussian action contributes the mean, not
    the sum, of its 3 coordinate log-probs); its PPO loss averages the per-component *ratios*.

    Args:
      per_component: a pytree of float arrays sharing the leading `num_batch_dims` axes.
      num_batch_dims: how many leading axes are sample axes (static, >= 0).

    Returns:
      the per-sample component mean, shape `[*batch]`.
    """
    fn = "average_action_components"
    if not isinstance(num_batch_dims, int) or num_batch_dims < 0:
        raise ValueError(f"{fn}: argument `num_batch_dims` must be an int >= 0, got {num_batch_dims!r}")
    leaves = jax.tree_util.tree_leaves_with_path(per_component)
    if not leaves:
        raise ValueError(f"{fn}: argument `per_component` must hold at least one array")
    flat = []
    for path, leaf in leaves:
        name = f"per_component{jax.tree_util.keystr(path)}"
        leaf = check_array(name, leaf, kind="float", min_rank=num_batch_dims, fn=fn)
        batch_shape = leaf.shape[:num_batch_dims]
        if flat and batch_shape != flat[0].shape[:-1]:
            raise ValueError(
                f"{fn}: argument `{name}` has batch shape {batch_shape}, other components have "
                f"{flat[0].shape[:-1]} (num_batch_dims={num_batch_dims})"
            )
        flat.append(leaf.reshape(batch_shape + (math.prod(leaf.shape[num_batch_dims:]),)))
    return jnp.mean(jnp.concatenate(flat, axis=-1), axis=-1)
