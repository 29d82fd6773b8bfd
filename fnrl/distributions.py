"""Policy distributions: categorical, bernoulli, diagonal / tanh-squashed gaussian, beta.

A constructor (`categorical()`, `bernoulli()`, `diag_gaussian()`, `squashed_gaussian()`,
`beta_distribution()`) returns a `Distribution`: a NamedTuple of pure functions over a parameter
pytree, the functional form of TensorForce's `Distribution` (`tf_sample`, `tf_log_probability`,
`tf_entropy`, `tf_kl_divergence`; its `deterministic=True` sample is `mode`). Sampling takes an
explicit `jax.random` key and draws one action per parameter set; draw several with `jax.vmap`
over keys.

Parameters and events:

  categorical        logits `[..., A]`; actions int `[...]`; event = one of A ids.
  bernoulli          logits `[...]`; actions bool `[...]`; event shape () (elementwise, so a
                     `[B, D]` action gets `[B, D]` log-probs: sum the last axis for a joint one).
  diag_gaussian      `GaussianParams(mean [..., D], log_std)`; `log_std` may be anything that
                     broadcasts to `mean` (e.g. a state-independent `[D]`); event = last axis.
  squashed_gaussian  the same `GaussianParams`, of the gaussian *before* the tanh squashing.
  beta_distribution  `BetaParams(alpha [..., D], beta [..., D])`; event = last axis.

`log_prob`, `entropy` and `kl` return one value per event, i.e. shape `[...]` (the batch shape).
Everything runs in log space, works under `jax.jit`/`jax.vmap` and with any leading batch shape,
and every argument is checked at trace time (a ValueError names it).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy import special

from fnrl._validation import check_array, check_broadcastable, check_same_shape
from fnrl.types import Array, ArrayLike, PRNGKey

# TensorForce clips the gaussian log-std to [log(eps), -log(eps)] with eps = 1e-6.
TENSORFORCE_MIN_LOG_STD = math.log(1e-6)
TENSORFORCE_MAX_LOG_STD = -math.log(1e-6)

_LOG2 = math.log(2.0)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class Distribution(NamedTuple):
    """Pure functions of one distribution family; `params` is the family's parameter pytree.

    sample(key, params) -> x                     one draw per parameter set
    log_prob(params, x) -> log p(x)              one value per event
    entropy(params) -> H[p]                      one value per event
    kl(params_p, params_q) -> KL(p || q)         one value per event
    mode(params) -> the deterministic action     (TensorForce's `deterministic=True` sample)
    sample_and_log_prob(key, params) -> (x, log p(x))
    """

    sample: Callable[[PRNGKey, Any], Array]
    log_prob: Callable[[Any, ArrayLike], Array]
    entropy: Callable[[Any], Array]
    kl: Callable[[Any, Any], Array]
    mode: Callable[[Any], Array]
    sample_and_log_prob: Callable[[PRNGKey, Any], tuple[Array, Array]]


class GaussianParams(NamedTuple):
    """A diagonal gaussian: `mean [..., D]` and `log_std` broadcastable to it."""

    mean: Array
    log_std: Array


class BetaParams(NamedTuple):
    """Beta distributions with concentrations `alpha`, `beta` (> 0), both `[..., D]`."""

    alpha: Array
    beta: Array


# ------------------------------------------------------------------------------ shared checks


def _check_key(fn: str, key: Any) -> Array:
    """Accepts a typed key (`jax.random.key`) or a raw uint32 key (`jax.random.PRNGKey`)."""
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if key.ndim != 0:
            raise ValueError(f"{fn}: argument `key` must be a single PRNG key, got shape {key.shape}")
        return key
    return check_array("key", key, kind="int", rank=1, fn=fn)


def _p_times(p: Array, x: Array) -> Array:
    """p * x with 0 wherever p == 0, even if x is ±inf/NaN there (value and gradient)."""
    positive = p > 0
    return jnp.where(positive, p * jnp.where(positive, x, 0.0), 0.0)


def _check_bounds(fn: str, low: ArrayLike, high: ArrayLike) -> tuple[Array, Array]:
    """Checks the action bounds (numbers or per-dimension arrays) and that low < high."""
    low = check_array("low", low, kind="numeric", fn=fn)
    high = check_array("high", high, kind="numeric", fn=fn)
    concrete = not isinstance(low, jax.core.Tracer) and not isinstance(high, jax.core.Tracer)
    if concrete and not np.all(np.asarray(high) > np.asarray(low)):
        raise ValueError(f"{fn}: argument `high` must be greater than `low`, got low={low}, high={high}")
    return low, high


def _bounds_like(fn: str, low: Array, high: Array, like: Array) -> tuple[Array, Array]:
    """The bounds in `like`'s dtype, broadcast to its shape."""
    low = check_broadcastable(fn, "low", low.astype(like.dtype), like.shape)
    high = check_broadcastable(fn, "high", high.astype(like.dtype), like.shape)
    return low, high


def _split_last(fn: str, outputs: ArrayLike) -> tuple[Array, Array]:
    """Splits a network head `[..., 2D]` into two `[..., D]` halves."""
    outputs = check_array("outputs", outputs, kind="float", min_rank=1, fn=fn)
    if outputs.shape[-1] % 2:
        raise ValueError(f"{fn}: argument `outputs` must have an even last axis, got shape {outputs.shape}")
    return jnp.split(outputs, 2, axis=-1)


# -------------------------------------------------------------------------------- categorical


def _logits(fn: str, params: Any, name: str = "params", min_rank: int = 1) -> Array:
    return check_array(name, params, kind="float", min_rank=min_rank, fn=fn)


def _categorical_sample(key: PRNGKey, params: ArrayLike) -> Array:
    fn = "categorical.sample"
    key, logits = _check_key(fn, key), _logits(fn, params)
    # Gumbel-max, as TensorForce; int32 ids (as `mode`) even where jax_enable_x64 makes it int64.
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def _categorical_log_prob(params: ArrayLike, x: ArrayLike) -> Array:
    fn = "categorical.log_prob"
    logits = _logits(fn, params)
    x = check_array("x", x, kind="int", shape=logits.shape[:-1], fn=fn)
    num_actions = logits.shape[-1]
    log_p = jax.nn.log_softmax(logits, axis=-1)
    # Ids outside [0, A) have probability 0; gather a clamped id so the gradient stays finite.
    safe_x = jnp.clip(x, 0, num_actions - 1)
    picked = jnp.take_along_axis(log_p, safe_x[..., None], axis=-1)[..., 0]
    return jnp.where((x >= 0) & (x < num_actions), picked, -jnp.inf)


def _categorical_entropy(params: ArrayLike) -> Array:
    logits = _logits("categorical.entropy", params)
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.sum(_p_times(jnp.exp(log_p), log_p), axis=-1)


def _categorical_kl(params_p: ArrayLike, params_q: ArrayLike) -> Array:
    fn = "categorical.kl"
    logits_p = _logits(fn, params_p, "params_p")
    logits_q = _logits(fn, params_q, "params_q")
    check_same_shape(fn, params_p=logits_p, params_q=logits_q)
    log_p = jax.nn.log_softmax(logits_p, axis=-1)
    log_q = jax.nn.log_softmax(logits_q, axis=-1)
    return jnp.sum(_p_times(jnp.exp(log_p), log_p - log_q), axis=-1)


def _categorical_mode(params: ArrayLike) -> Array:
    return jnp.argmax(_logits("categorical.mode", params), axis=-1).astype(jnp.int32)


def _categorical_sample_and_log_prob(key: PRNGKey, params: ArrayLike) -> tuple[Array, Array]:
    x = _categorical_sample(key, params)
    return x, _categorical_log_prob(params, x)


def categorical() -> Distribution:
    """Categorical distribution over `A` actions, parameterized by unnormalized logits `[..., A]`.

        p(a) = softmax(logits)_a,   H = -sum_a p_a log p_a,   KL(p||q) = sum_a p_a (log p_a - log q_a).

    Sampling uses the Gumbel-max trick, argmax_a (logits_a + g_a) with g_a ~ Gumbel(0, 1)
    (Gumbel 1954; Maddison, Tarlow & Minka 2014, "A* Sampling"), as TensorForce's `Categorical`;
    `mode` is argmax_a logits_a (first maximum on ties). Samples and modes are int32 ids.

    Logits may be -inf (impossible / masked actions): sampling never picks them, `log_prob` gives
    -inf for them, and entropy, KL and their gradients stay finite (0 log 0 = 0). `log_prob` of an
    id outside [0, A) is -inf. Log-probabilities are valid logits (softmax is shift invariant), so
    a policy given as log-probs (AgentNet's `treat_policy_as_logpolicy`) is passed as is, and one
    given as probabilities goes through `categorical_logits_from_probs`.
    """
    return Distribution(
        sample=_categorical_sample,
        log_prob=_categorical_log_prob,
        entropy=_categorical_entropy,
        kl=_categorical_kl,
        mode=_categorical_mode,
        sample_and_log_prob=_categorical_sample_and_log_prob,
    )


def categorical_probs(logits: ArrayLike) -> Array:
    """Action probabilities softmax(logits) over the last axis (AgentNet's policy as probs)."""
    return jax.nn.softmax(_logits("categorical_probs", logits, "logits"), axis=-1)


def categorical_log_probs(logits: ArrayLike) -> Array:
    """Action log-probabilities log_softmax(logits), computed stably in log space."""
    return jax.nn.log_softmax(_logits("categorical_log_probs", logits, "logits"), axis=-1)


def categorical_logits_from_probs(probs: ArrayLike) -> Array:
    """Logits log(probs) of a policy given as probabilities `[..., A]` (0 becomes -inf)."""
    return jnp.log(check_array("probs", probs, kind="float", min_rank=1, fn="categorical_logits_from_probs"))


# ---------------------------------------------------------------------------------- bernoulli


def _bernoulli_sample(key: PRNGKey, params: ArrayLike) -> Array:
    fn = "bernoulli.sample"
    key, logits = _check_key(fn, key), _logits(fn, params, min_rank=0)
    return jax.random.bernoulli(key, jax.nn.sigmoid(logits))


def _bernoulli_log_prob(params: ArrayLike, x: ArrayLike) -> Array:
    fn = "bernoulli.log_prob"
    logits = _logits(fn, params, min_rank=0)
    x = check_array("x", x, kind="bool_or_numeric", shape=logits.shape, fn=fn)
    return jnp.where(x.astype(bool), jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits))


def _bernoulli_entropy(params: ArrayLike) -> Array:
    logits = _logits("bernoulli.entropy", params, min_rank=0)
    # -log p = softplus(-l), -log(1 - p) = softplus(l) and 1 - p = sigmoid(-l): nothing rounded
    # to 0 or 1 for large |l| (1 - sigmoid(l) is 0 in float32 from l ≈ 17).
    return jax.nn.sigmoid(logits) * jax.nn.softplus(-logits) + jax.nn.sigmoid(-logits) * jax.nn.softplus(logits)


def _bernoulli_kl(params_p: ArrayLike, params_q: ArrayLike) -> Array:
    fn = "bernoulli.kl"
    lp = _logits(fn, params_p, "params_p", min_rank=0)
    lq = _logits(fn, params_q, "params_q", min_rank=0)
    check_same_shape(fn, params_p=lp, params_q=lq)
    one = jax.nn.sigmoid(lp) * (jax.nn.softplus(-lq) - jax.nn.softplus(-lp))
    zero = jax.nn.sigmoid(-lp) * (jax.nn.softplus(lq) - jax.nn.softplus(lp))
    return one + zero


def _bernoulli_mode(params: ArrayLike) -> Array:
    return _logits("bernoulli.mode", params, min_rank=0) >= 0.0  # p >= 0.5, as TensorForce


def _bernoulli_sample_and_log_prob(key: PRNGKey, params: ArrayLike) -> tuple[Array, Array]:
    x = _bernoulli_sample(key, params)
    return x, _bernoulli_log_prob(params, x)


def bernoulli() -> Distribution:
    """Independent Bernoulli variables with logits `[...]` (event shape (), elementwise).

        p = sigmoid(l),   log p(x) = x log p + (1 - x) log(1 - p),
        H = p softplus(-l) + (1 - p) softplus(l),
        KL(p||q) = p (log p - log q) + (1 - p) (log(1 - p) - log(1 - q)),

    with log p = -softplus(-l) and log(1 - p) = -softplus(l) (stable for any finite logit).
    Actions are bool (`log_prob` also takes numbers: nonzero is True). `mode` is p >= 0.5, i.e.
    logit >= 0, as TensorForce's `Bernoulli` (ties go to True).
    """
    return Distribution(
        sample=_bernoulli_sample,
        log_prob=_bernoulli_log_prob,
        entropy=_bernoulli_entropy,
        kl=_bernoulli_kl,
        mode=_bernoulli_mode,
        sample_and_log_prob=_bernoulli_sample_and_log_prob,
    )


# ---------------------------------------------------------------------------------- gaussians


class _GaussianConfig(NamedTuple):
    name: str
    min_log_std: Optional[float]
    max_log_std: Optional[float]


def _check_log_std_bounds(fn: str, min_log_std: Any, max_log_std: Any) -> None:
    static = (int, float, np.number)
    if isinstance(min_log_std, static) and isinstance(max_log_std, static) and min_log_std >= max_log_std:
        raise ValueError(
            f"{fn}: argument `max_log_std` must be greater than `min_log_std`, got "
            f"{min_log_std} and {max_log_std}"
        )


def _gaussian_parts(cfg: _GaussianConfig, method: str, params: Any, name: str = "params"):
    """Checks `params` and returns (mean, log_std) with log_std clipped and broadcast to mean."""
    fn = f"{cfg.name}.{method}"
    if not isinstance(params, GaussianParams):
        raise ValueError(f"{fn}: argument `{name}` must be a GaussianParams, got {type(params).__name__}")
    mean = check_array(f"{name}.mean", params.mean, kind="float", min_rank=1, fn=fn)
    log_std = check_array(f"{name}.log_std", params.log_std, kind="float", fn=fn)
    log_std = check_broadcastable(fn, f"{name}.log_std", log_std, mean.shape)
    return mean, jnp.clip(log_std, cfg.min_log_std, cfg.max_log_std)


def _normal_log_pdf(z: Array, log_std: Array) -> Array:
    """log N(x; m, s^2) per dimension, given the standardized z = (x - m) / s."""
    return -0.5 * jnp.square(z) - log_std - _HALF_LOG_2PI


def _gaussian_sample(key: PRNGKey, params: GaussianParams, *, cfg: _GaussianConfig) -> Array:
    key = _check_key(f"{cfg.name}.sample", key)
    mean, log_std = _gaussian_parts(cfg, "sample", params)
    return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)


def _gaussian_log_prob(params: GaussianParams, x: ArrayLike, *, cfg: _GaussianConfig) -> Array:
    mean, log_std = _gaussian_parts(cfg, "log_prob", params)
    x = check_array("x", x, kind="float", shape=mean.shape, fn=f"{cfg.name}.log_prob")
    return jnp.sum(_normal_log_pdf((x - mean) * jnp.exp(-log_std), log_std), axis=-1)


def _gaussian_entropy(params: GaussianParams, *, cfg: _GaussianConfig) -> Array:
    _, log_std = _gaussian_parts(cfg, "entropy", params)
    return jnp.sum(0.5 + _HALF_LOG_2PI + log_std, axis=-1)


def _gaussian_kl(params_p: GaussianParams, params_q: GaussianParams, *, cfg: _GaussianConfig) -> Array:
    mean_p, log_std_p = _gaussian_parts(cfg, "kl", params_p, "params_p")
    mean_q, log_std_q = _gaussian_parts(cfg, "kl", params_q, "params_q")
    check_same_shape(f"{cfg.name}.kl", **{"params_p.mean": mean_p, "params_q.mean": mean_q})
    delta = log_std_p - log_std_q
    # 0.5 (s_p^2/s_q^2 - 1) - log(s_p/s_q) as 0.5 (expm1(2d) - 2d): exactly 0 when p == q.
    scale_term = 0.5 * (jnp.expm1(2.0 * delta) - 2.0 * delta)
    mean_term = 0.5 * jnp.square((mean_p - mean_q) * jnp.exp(-log_std_q))
    return jnp.sum(scale_term + mean_term, axis=-1)


def _gaussian_mode(params: GaussianParams, *, cfg: _GaussianConfig) -> Array:
    return _gaussian_parts(cfg, "mode", params)[0]


def _gaussian_sample_and_log_prob(key: PRNGKey, params: GaussianParams, *, cfg: _GaussianConfig):
    key = _check_key(f"{cfg.name}.sample_and_log_prob", key)
    mean, log_std = _gaussian_parts(cfg, "sample_and_log_prob", params)
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    return mean + jnp.exp(log_std) * eps, jnp.sum(_normal_log_pdf(eps, log_std), axis=-1)


def diag_gaussian(
    min_log_std: Optional[float] = TENSORFORCE_MIN_LOG_STD,
    max_log_std: Optional[float] = TENSORFORCE_MAX_LOG_STD,
) -> Distribution:
    """Diagonal gaussian N(mean, diag(exp(log_std))^2) over the last axis (TensorForce `Gaussian`).

        log p(x) = sum_d [-(x_d - m_d)^2 / (2 s_d^2) - log s_d - log(2 pi) / 2]
        H = sum_d [1/2 + log(2 pi) / 2 + log s_d]
        KL(p||q) = sum_d [log(s_q/s_p) + (s_p^2 + (m_p - m_q)^2) / (2 s_q^2) - 1/2]

    Every function first clips `log_std` to [min_log_std, max_log_std] (None: no bound); the
    defaults are TensorForce's [log 1e-6, -log 1e-6]. Clipping keeps exp(log_std) and 1/s finite;
    its gradient is zero outside the range. `sample` is reparameterized, x = m + s eps with
    eps ~ N(0, I) (Kingma & Welling 2014, "Auto-Encoding Variational Bayes"), so gradients flow
    from samples to the parameters. `sample_and_log_prob` computes log p from eps itself; its
    gradient is the pathwise total derivative of log p(x(params)) that SAC needs. `mode` = mean.
    """
    _check_log_std_bounds("diag_gaussian", min_log_std, max_log_std)
    cfg = _GaussianConfig("diag_gaussian", min_log_std, max_log_std)
    fns = (_gaussian_sample, _gaussian_log_prob, _gaussian_entropy, _gaussian_kl, _gaussian_mode,
           _gaussian_sample_and_log_prob)
    return Distribution(*(functools.partial(f, cfg=cfg) for f in fns))


def gaussian_params_from_outputs(
    outputs: ArrayLike,
    min_log_std: Optional[float] = TENSORFORCE_MIN_LOG_STD,
    max_log_std: Optional[float] = TENSORFORCE_MAX_LOG_STD,
) -> GaussianParams:
    """Splits a linear head `[..., 2D]` into mean (first half) and clipped log-std (second half).

    TensorForce's `Gaussian.tf_parameterize`: mean and log-std are linear in the features and the
    log-std is clipped to [min_log_std, max_log_std] (default [log 1e-6, -log 1e-6]).
    """
    _check_log_std_bounds("gaussian_params_from_outputs", min_log_std, max_log_std)
    mean, log_std = _split_last("gaussian_params_from_outputs", outputs)
    return GaussianParams(mean, jnp.clip(log_std, min_log_std, max_log_std))


class _SquashedConfig(NamedTuple):
    gaussian: _GaussianConfig
    low: Array
    high: Array


def _squash_bounds(cfg: _SquashedConfig, method: str, like: Array) -> tuple[Array, Array]:
    """(low, log of the half range), broadcast to `like`."""
    low, high = _bounds_like(f"{cfg.gaussian.name}.{method}", cfg.low, cfg.high, like)
    return low, jnp.log(0.5 * (high - low))


def _log_sech2(u: Array) -> Array:
    """log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)): finite for every finite u."""
    return 2.0 * (_LOG2 - u - jax.nn.softplus(-2.0 * u))


def _squashed_log_prob_u(u: Array, mean: Array, log_std: Array, log_half_range: Array) -> Array:
    """log p(a) for a = low + (high - low)(tanh(u) + 1)/2, from the pre-squash u."""
    log_det = _log_sech2(u) + log_half_range
    return jnp.sum(_normal_log_pdf((u - mean) * jnp.exp(-log_std), log_std) - log_det, axis=-1)


def _squashed_sample(key: PRNGKey, params: GaussianParams, *, cfg: _SquashedConfig) -> Array:
    u = _gaussian_sample(key, params, cfg=cfg.gaussian)
    low, log_half_range = _squash_bounds(cfg, "sample", u)
    return low + jnp.exp(log_half_range) * (jnp.tanh(u) + 1.0)


def _squashed_sample_and_log_prob(key: PRNGKey, params: GaussianParams, *, cfg: _SquashedConfig):
    key = _check_key(f"{cfg.gaussian.name}.sample_and_log_prob", key)
    mean, log_std = _gaussian_parts(cfg.gaussian, "sample_and_log_prob", params)
    u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)
    low, log_half_range = _squash_bounds(cfg, "sample_and_log_prob", u)
    action = low + jnp.exp(log_half_range) * (jnp.tanh(u) + 1.0)
    return action, _squashed_log_prob_u(u, mean, log_std, log_half_range)


def _squashed_log_prob(params: GaussianParams, x: ArrayLike, *, cfg: _SquashedConfig) -> Array:
    fn = f"{cfg.gaussian.name}.log_prob"
    mean, log_std = _gaussian_parts(cfg.gaussian, "log_prob", params)
    x = check_array("x", x, kind="float", shape=mean.shape, fn=fn)
    low, log_half_range = _squash_bounds(cfg, "log_prob", x)
    # Keep atanh's argument inside (-1, 1): actions on (or rounded past) a bound stay finite.
    bound = 1.0 - jnp.finfo(x.dtype).eps
    y = jnp.clip((x - low) * jnp.exp(-log_half_range) - 1.0, -bound, bound)
    return _squashed_log_prob_u(jnp.arctanh(y), mean, log_std, log_half_range)


# Gauss-Hermite rule for E[f(u)], u ~ N(m, s^2): sum_i w_i f(m + sqrt(2) s x_i) / sqrt(pi).
_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite.hermgauss(48)
_GH_WEIGHTS = _GH_WEIGHTS / math.sqrt(math.pi)
_GH_MAX_STD = 2.5  # above it the quadrature misses the width-1 feature of log sech^2 at u = 0
# eta(2k) = (1 - 2^(1-2k)) zeta(2k), the alternating zeta values of the asymptotic expansion.
_ETA2, _ETA4, _ETA6 = math.pi**2 / 12, 7 * math.pi**4 / 720, 31 * math.pi**6 / 30240


def _log_sech2_quadrature(mean: Array, std: Array) -> Array:
    nodes = jnp.asarray(math.sqrt(2.0) * _GH_NODES, mean.dtype)
    u = mean[..., None] + std[..., None] * nodes
    return jnp.sum(jnp.asarray(_GH_WEIGHTS, mean.dtype) * _log_sech2(u), axis=-1)


def _log_sech2_asymptotic(mean: Array, std: Array) -> Array:
    """E[log sech^2 u] for wide N(m, s^2): log sech^2 u = 2 log 2 - 2|u| - 2 g(u).

    E|u| = s sqrt(2/pi) exp(-z^2/2) + m erf(z/sqrt 2), z = m/s (folded normal mean), and
    g(u) = log(1 + exp(-2|u|)) is a bump of width ~1, so E[g] = sum_j N^(2j)(0) int g u^2j/(2j)!
    = (phi(z)/s) sum_j He_2j(z) eta(2j+2) / (4 s^2)^j, truncated after j = 2 (error O(s^-7)).
    """
    z = mean / std
    gauss = jnp.exp(-0.5 * jnp.square(z))
    abs_mean = std * math.sqrt(2.0 / math.pi) * gauss + mean * jax.lax.erf(z / math.sqrt(2.0))
    z2, r = jnp.square(z), 0.25 / jnp.square(std)
    series = _ETA2 + _ETA4 * (z2 - 1.0) * r + _ETA6 * (z2 * z2 - 6.0 * z2 + 3.0) * r * r
    bump = gauss / (math.sqrt(2.0 * math.pi) * std) * series
    return 2.0 * _LOG2 - 2.0 * abs_mean - 2.0 * bump


def _expected_log_sech2(mean: Array, std: Array) -> Array:
    """E[log(1 - tanh(u)^2)] for u ~ N(mean, std^2), elementwise (abs. error < ~3e-4)."""
    # Each branch sees a std inside its own range so that neither produces inf/NaN gradients.
    quad = _log_sech2_quadrature(mean, jnp.minimum(std, _GH_MAX_STD))
    asym = _log_sech2_asymptotic(mean, jnp.maximum(std, _GH_MAX_STD))
    return jnp.where(std <= _GH_MAX_STD, quad, asym)


def _squashed_entropy(params: GaussianParams, *, cfg: _SquashedConfig) -> Array:
    mean, log_std = _gaussian_parts(cfg.gaussian, "entropy", params)
    _, log_half_range = _squash_bounds(cfg, "entropy", mean)
    log_det = log_half_range + _expected_log_sech2(mean, jnp.exp(log_std))
    return jnp.sum(0.5 + _HALF_LOG_2PI + log_std + log_det, axis=-1)


def _squashed_kl(params_p: GaussianParams, params_q: GaussianParams, *, cfg: _SquashedConfig) -> Array:
    return _gaussian_kl(params_p, params_q, cfg=cfg.gaussian)


def _squashed_mode(params: GaussianParams, *, cfg: _SquashedConfig) -> Array:
    mean, _ = _gaussian_parts(cfg.gaussian, "mode", params)
    low, log_half_range = _squash_bounds(cfg, "mode", mean)
    return low + jnp.exp(log_half_range) * (jnp.tanh(mean) + 1.0)


def squashed_gaussian(
    low: ArrayLike = -1.0,
    high: ArrayLike = 1.0,
    min_log_std: Optional[float] = TENSORFORCE_MIN_LOG_STD,
    max_log_std: Optional[float] = TENSORFORCE_MAX_LOG_STD,
) -> Distribution:
    """Tanh-squashed diagonal gaussian on [low, high] (Haarnoja et al. 2018, SAC, Appendix C).

        u ~ N(mean, diag(s)^2),   a = low + (high - low) (tanh(u) + 1) / 2,
        log p(a) = log N(u) - sum_d [log(1 - tanh(u_d)^2) + log((high_d - low_d) / 2)],

    with log(1 - tanh^2 u) = 2 (log 2 - u - softplus(-2u)), stable for large |u|. `params` are
    the gaussian's (log-std clipped as in `diag_gaussian`); `low`/`high` are numbers or arrays
    broadcastable to the action. `log_prob(params, a)` inverts the squashing with atanh after
    clipping its argument to +-(1 - machine eps), so actions on the bounds give finite values and
    gradients; prefer `sample_and_log_prob`, which uses u itself (exact even where tanh(u) rounds
    to +-1) and is reparameterized for SAC's actor loss.

    `entropy` has no closed form: it returns H[a] = H[u] + sum_d E[log |da_d/du_d|] with the
    expectation computed deterministically (48-point Gauss-Hermite quadrature for s <= 2.5, an
    asymptotic expansion above; absolute error < ~3e-4 nats per dimension), differentiable and
    key-free. `kl` is the base gaussians' KL, exact because tanh and the affine rescale are the
    same bijection for p and q (KL is invariant under bijections). `mode` is the squashed mean,
    low + (high - low)(tanh(mean) + 1)/2: the median of each action dimension and SAC's greedy
    action, not the density's argmax (which the Jacobian pushes to the bounds when s is large).
    """
    _check_log_std_bounds("squashed_gaussian", min_log_std, max_log_std)
    low, high = _check_bounds("squashed_gaussian", low, high)
    cfg = _SquashedConfig(_GaussianConfig("squashed_gaussian", min_log_std, max_log_std), low, high)
    fns = (_squashed_sample, _squashed_log_prob, _squashed_entropy, _squashed_kl, _squashed_mode,
           _squashed_sample_and_log_prob)
    return Distribution(*(functools.partial(f, cfg=cfg) for f in fns))


# --------------------------------------------------------------------------------------- beta


class _BetaConfig(NamedTuple):
    low: Array
    high: Array


def _beta_parts(fn: str, params: Any, name: str = "params") -> tuple[Array, Array]:
    if not isinstance(params, BetaParams):
        raise ValueError(f"{fn}: argument `{name}` must be a BetaParams, got {type(params).__name__}")
    alpha = check_array(f"{name}.alpha", params.alpha, kind="float", min_rank=1, fn=fn)
    beta = check_array(f"{name}.beta", params.beta, kind="float", min_rank=1, fn=fn)
    check_same_shape(fn, **{f"{name}.alpha": alpha, f"{name}.beta": beta})
    return alpha, beta


def _beta_sample(key: PRNGKey, params: BetaParams, *, cfg: _BetaConfig) -> Array:
    key = _check_key("beta_distribution.sample", key)
    alpha, beta = _beta_parts("beta_distribution.sample", params)
    low, high = _bounds_like("beta_distribution.sample", cfg.low, cfg.high, alpha)
    # jax.random.beta has implicit reparameterization gradients (Figurnov et al. 2018).
    return low + (high - low) * jax.random.beta(key, alpha, beta, dtype=alpha.dtype)


def _beta_log_prob(params: BetaParams, x: ArrayLike, *, cfg: _BetaConfig) -> Array:
    fn = "beta_distribution.log_prob"
    alpha, beta = _beta_parts(fn, params)
    x = check_array("x", x, kind="float", shape=alpha.shape, fn=fn)
    low, high = _bounds_like(fn, cfg.low, cfg.high, x)
    # z and 1 − z each from its own bound (1 − z rounded near z = 1 would lose the tail), kept
    # >= the smallest normal float: actions on a bound keep a finite log-density and gradient.
    tiny = jnp.finfo(x.dtype).tiny
    z = jnp.clip((x - low) / (high - low), tiny, 1.0)
    one_minus_z = jnp.clip((high - x) / (high - low), tiny, 1.0)
    log_pdf = (alpha - 1.0) * jnp.log(z) + (beta - 1.0) * jnp.log(one_minus_z) - special.betaln(alpha, beta)
    return jnp.sum(log_pdf - jnp.log(high - low), axis=-1)


def _beta_entropy(params: BetaParams, *, cfg: _BetaConfig) -> Array:
    alpha, beta = _beta_parts("beta_distribution.entropy", params)
    low, high = _bounds_like("beta_distribution.entropy", cfg.low, cfg.high, alpha)
    dg = special.digamma
    unit = (special.betaln(alpha, beta) - (alpha - 1.0) * dg(alpha) - (beta - 1.0) * dg(beta)
            + (alpha + beta - 2.0) * dg(alpha + beta))
    return jnp.sum(unit + jnp.log(high - low), axis=-1)


def _beta_kl(params_p: BetaParams, params_q: BetaParams, *, cfg: _BetaConfig) -> Array:
    fn = "beta_distribution.kl"
    a1, b1 = _beta_parts(fn, params_p, "params_p")
    a2, b2 = _beta_parts(fn, params_q, "params_q")
    check_same_shape(fn, **{"params_p.alpha": a1, "params_q.alpha": a2})
    dg = special.digamma
    kl = (special.betaln(a2, b2) - special.betaln(a1, b1) + (a1 - a2) * dg(a1)
          + (b1 - b2) * dg(b1) + (a2 - a1 + b2 - b1) * dg(a1 + b1))
    return jnp.sum(kl, axis=-1)


def _beta_mode(params: BetaParams, *, cfg: _BetaConfig) -> Array:
    alpha, beta = _beta_parts("beta_distribution.mode", params)
    low, high = _bounds_like("beta_distribution.mode", cfg.low, cfg.high, alpha)
    interior = (alpha > 1.0) & (beta > 1.0)
    # Safe denominator: the interior formula is only selected where it is positive.
    inner = (alpha - 1.0) / jnp.where(interior, alpha + beta - 2.0, 1.0)
    # Otherwise the density peaks (unboundedly or not) at the end with the smaller exponent.
    edge = jnp.where(alpha < beta, 0.0, jnp.where(alpha > beta, 1.0, 0.5))
    return low + (high - low) * jnp.where(interior, inner, edge)


def _beta_sample_and_log_prob(key: PRNGKey, params: BetaParams, *, cfg: _BetaConfig):
    x = _beta_sample(key, params, cfg=cfg)
    return x, _beta_log_prob(params, x, cfg=cfg)


def beta_distribution(low: ArrayLike = 0.0, high: ArrayLike = 1.0) -> Distribution:
    """Beta policy rescaled to [low, high] (Chou, Maturana & Scherer 2017; TensorForce `Beta`).

    With z = (a - low) / (high - low) ~ Beta(alpha, beta) per dimension:

        log p(a) = sum_d [(alpha-1) log z + (beta-1) log(1-z) - log B(alpha, beta) - log(high-low)]
        H = sum_d [log B - (alpha-1) psi(alpha) - (beta-1) psi(beta) + (alpha+beta-2) psi(alpha+beta)
                   + log(high - low)]
        KL(p||q) = sum_d [log B(a_q, b_q) - log B(a_p, b_p) + (a_p - a_q) psi(a_p)
                          + (b_p - b_q) psi(b_p) + (a_q - a_p + b_q - b_p) psi(a_p + b_p)]

    (log-gamma based, psi = digamma; e.g. Johnson, Kotz & Balakrishnan 1995, ch. 25). `low`/`high`
    are numbers or arrays broadcastable to the action. `log_prob` takes z and 1 − z each from its
    own bound and keeps them >= the smallest normal float, so actions on the bounds stay finite
    and draws near a bound (likely when alpha or beta < 1) keep their exact density. Samples are
    reparameterized.

    `mode` is the density's argmax: (alpha-1)/(alpha+beta-2) when alpha, beta > 1 (always so with
    `beta_params_from_outputs`), otherwise the end where the density peaks (low if alpha < beta,
    high if alpha > beta, the midpoint when alpha == beta <= 1). The mean is `beta_mean`.
    TensorForce's deterministic action is beta/(alpha+beta) (rescaled): neither mode nor mean but
    the mean of the mirrored distribution, a known quirk not reproduced here; if needed it equals
    `low + high - beta_mean(params, low, high)`.
    """
    low, high = _check_bounds("beta_distribution", low, high)
    cfg = _BetaConfig(low, high)
    fns = (_beta_sample, _beta_log_prob, _beta_entropy, _beta_kl, _beta_mode, _beta_sample_and_log_prob)
    return Distribution(*(functools.partial(f, cfg=cfg) for f in fns))


def beta_mean(params: BetaParams, low: ArrayLike = 0.0, high: ArrayLike = 1.0) -> Array:
    """Mean of the rescaled beta: low + (high - low) alpha / (alpha + beta), per dimension."""
    alpha, beta = _beta_parts("beta_mean", params)
    low, high = _check_bounds("beta_mean", low, high)
    low, high = _bounds_like("beta_mean", low, high, alpha)
    return low + (high - low) * alpha / (alpha + beta)


def beta_params_from_outputs(outputs: ArrayLike) -> BetaParams:
    """Splits a linear head `[..., 2D]` into alpha = softplus(first half) + 1, beta likewise.

    TensorForce's `Beta.tf_parameterize`; the +1 keeps alpha, beta > 1, so the density is unimodal
    and vanishes at both bounds (Chou et al. 2017).
    """
    raw_alpha, raw_beta = _split_last("beta_params_from_outputs", outputs)
    return BetaParams(jax.nn.softplus(raw_alpha) + 1.0, jax.nn.softplus(raw_beta) + 1.0)


# ------------------------------------------------------------------------- default per action


def default_distribution(
    action_type: str, min_value: Optional[ArrayLike] = None, max_value: Optional[ArrayLike] = None
) -> Distribution:
    """TensorForce's default policy distribution for an action type.

    bool -> `bernoulli()`, int -> `categorical()`, float -> `diag_gaussian()`, and float with
    `min_value` and `max_value` -> `beta_distribution(min_value, max_value)`. TensorForce's
    per-action `distributions_spec` override is simply choosing another `Distribution` for that
    action (e.g. a dict of them for multi-part actions).
    """
    fn = "default_distribution"
    if action_type not in ("bool", "int", "float"):
        raise ValueError(
            f"{fn}: argument `action_type` must be 'bool', 'int' or 'float', got {action_type!r}"
        )
    if (min_value is None) != (max_value is None):
        raise ValueError(f"{fn}: arguments `min_value` and `max_value` must be given both or neither")
    if min_value is not None and action_type != "float":
        raise ValueError(f"{fn}: argument `min_value`/`max_value` only applies to 'float' actions")
    if action_type == "bool":
        return bernoulli()
    if action_type == "int":
        return categorical()
    return diag_gaussian() if min_value is None else beta_distribution(min_value, max_value)
