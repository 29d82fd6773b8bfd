"""State and reward preprocessing: TensorForce's preprocessors (I1-I12) as pure functions.

A constructor (`standardize()`, `grayscale()`, `frame_stack(4)`, ...) returns a `Preprocessor`, an
optax-style NamedTuple of pure functions, the functional form of TensorForce's `Preprocessor`
(`tf_process`, `processed_shape`, `reset`; its TF variables become an explicit state):

    state = pp.init(x)                   # x: an example batch [B, *obs_shape]
    state, y = pp.apply(state, x)        # TensorForce's process()
    state = pp.reset(state, reset_mask)  # episode start; reset_mask [B] bool, None = every env
    pp.processed_shape(obs_shape)        # the shape of one processed observation (no batch axis)

Every preprocessor works on a leading batch axis `B` (one entry per env, as TensorForce's tensors
carry a batch axis); rewards are batches of scalars (`[B]`, observation shape `()`). Stateless
preprocessors carry an `EmptyState`. Call `reset` before `apply` on the first observation of a new
episode: with fnrl's env convention that is `reset_mask = ~timestep.valid` on the step after a
done one (or `reset_mask = timestep.done` right after processing the final observation).

`stack(*pps)` chains preprocessors (TensorForce `PreprocessorStack`, I2) and `from_spec(spec)` builds
one from a TensorForce spec: a list of `{"type": ..., **options}` dicts, one dict, or a dict of
such per observation name (`states_preprocessing_spec`, I11; `reward_preprocessing_spec`, I12).

The running statistics (`RunningStats`) are the parallel variance algorithm of Chan, Golub &
LeVeque (1979), "Updating formulae and a pairwise algorithm for computing sample variances",
the batched generalisation of Welford (1962), "Note on a method for calculating corrected sums of
squares and products": mergeable across batches and devices, and stable in float32.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from fnrl._validation import TENSORFORCE_SCOPE_KEYS, check_array, check_positive_int
from fnrl.types import Array, ArrayLike

# TensorForce's `util.epsilon`, used by Standardize, Normalize and RunningStandardize.
TENSORFORCE_EPSILON = 1e-6


class EmptyState(NamedTuple):
    """The state of a stateless preprocessor."""


class Preprocessor(NamedTuple):
    """Pure functions of one preprocessor (see the module docstring for the protocol).

    init(x) -> state                          x: example batch [B, *obs_shape]
    apply(state, x) -> (state, y)             y: [B, *processed_shape(obs_shape)]
    reset(state, reset_mask=None) -> state    episode start for the envs where reset_mask is True
    processed_shape(obs_shape) -> shape       shapes without the batch axis
    """

    init: Callable[[Any], Any]
    apply: Callable[[Any, Any], tuple[Any, Any]]
    reset: Callable[..., Any]
    processed_shape: Callable[[Any], Any]


class RunningStats(NamedTuple):
    """Count, mean and sum of squared deviations `m2 = Σ (x − mean)²` of the samples seen.

    `count` is a float scalar (exact up to 2^24 samples in float32, then rounding by at most one
    part in 1e7); `variance` is the population variance `m2 / count` (NumPy's `ddof=0`).
    """

    count: Array
    mean: Array
    m2: Array

    @property
    def variance(self) -> Array:
        return self.m2 / jnp.maximum(self.count, 1.0)

    @property
    def std(self) -> Array:
        return jnp.sqrt(self.variance)


class FrameStackState(NamedTuple):
    """The last `length` observations concatenated on the last axis, oldest first, per env;
    `fresh[b]` marks envs whose next observation starts an episode (fills the whole history)."""

    frames: Array
    fresh: Array


class RewardNormalizeState(NamedTuple):
    """Running discounted return per env and the running statistics of those returns."""

    returns: Array
    stats: RunningStats


# ------------------------------------------------------------------------------ shared checks


def _static_number(fn: str, name: str, value: Any, low: float | None = None,
                   high: float | None = None, strict_low: bool = False) -> None:
    """Checks a Python number at construction time (preprocessor options are static)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if strict_low else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        bracket = "(" if strict_low else "["
        raise ValueError(f"{fn}: argument `{name}` must be a finite number in {bracket}{lo}, {hi}], "
                         f"got {value!r}")


def _batch(fn: str, x: Any, min_obs_rank: int = 0) -> Array:
    """Checks `x` is a numeric batch `[B, *obs_shape]` with at least `min_obs_rank` obs axes."""
    return check_array("x", x, kind="numeric", min_rank=1 + min_obs_rank, fn=fn)


def _obs_shape(fn: str, shape: Any, min_rank: int = 0) -> tuple[int, ...]:
    """Checks a `processed_shape` argument: a tuple of non-negative ints (no batch axis)."""
    try:
        shape = tuple(int(d) for d in shape)
    except TypeError as err:
        raise ValueError(f"{fn}: argument `shape` must be a tuple of ints, got {shape!r}") from err
    if len(shape) < min_rank or any(d < 0 for d in shape):
        raise ValueError(f"{fn}: argument `shape` must be a shape of rank >= {min_rank}, got {shape}")
    return shape


def _reset_mask(fn: str, reset_mask: Any, batch_size: int) -> Array | None:
    """Checks a per-env episode-start mask `[B]` (bool or 0/1); `None` means every env."""
    if reset_mask is None:
        return None
    mask = check_array("reset_mask", reset_mask, kind="bool_or_numeric", shape=(batch_size,), fn=fn)
    return mask.astype(bool)


def _as_float(x: Array) -> Array:
    """Integer / bool observations (e.g. uint8 frames) are processed in float32, as in TensorForce."""
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def _expand(x: Array, axes: tuple[int, ...]) -> Array:
    """Re-inserts reduced `axes` as size-1 axes so `x` broadcasts against the unreduced array."""
    return jnp.expand_dims(x, axes) if axes else x


def _stateless(fn: Callable[[Array], Array], shape_fn: Callable[[Any], Any]) -> Preprocessor:
    """A preprocessor without state: `apply` maps `fn` over the batch and `reset` is a no-op."""

    def init(x: Any) -> EmptyState:
        del x
        return EmptyState()

    def apply(state: EmptyState, x: Any) -> tuple[EmptyState, Array]:
        return state, fn(x)

    def reset(state: EmptyState, reset_mask: Any = None) -> EmptyState:
        del reset_mask
        return state

    return Preprocessor(init, apply, reset, shape_fn)


def _same_shape(shape: Any) -> tuple[int, ...]:
    return _obs_shape("processed_shape", shape)


# ------------------------------------------------------------------------------ running statistics


def running_stats_init(shape: Sequence[int] = (), dtype: Any = jnp.float32) -> RunningStats:
    """Empty running statistics (count 0) of per-element mean/variance of `shape`."""
    shape = _obs_shape("running_stats_init", shape)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"running_stats_init: argument `dtype` must be a float dtype, got {dtype}")
    zeros = jnp.zeros(shape, dtype)
    return RunningStats(count=jnp.zeros((), dtype), mean=zeros, m2=zeros)


def _merge_shifted(a: RunningStats, count_b: Array, m2_b: Array, delta: Array) -> RunningStats:
    """Chan et al. (1979), with `delta = mean_b − mean_a` given directly:

        n = n_a + n_b,   mean = mean_a + δ n_b / n,   m2 = m2_a + m2_b + δ² n_a n_b / n.
    """
    count = a.count + count_b
    # n = 0 only when both sides are empty; then δ = m2 = 0 and any non-zero divisor is exact.
    safe = jnp.maximum(count, jnp.finfo(count.dtype).tiny)
    frac_b = count_b / safe
    mean = a.mean + delta * frac_b
    m2 = a.m2 + m2_b + jnp.square(delta) * (a.count * frac_b)
    return RunningStats(count, mean, m2)


def running_stats_merge(a: RunningStats, b: RunningStats) -> RunningStats:
    """Statistics of the union of two disjoint sample sets (Chan, Golub & LeVeque, 1979).

        n = n_a + n_b,  δ = mean_b − mean_a,  mean = mean_a + δ n_b/n,  m2 = m2_a + m2_b + δ² n_a n_b/n

    Exact in real arithmetic (so associative and commutative up to rounding); each side may come
    from a different batch, env group or device.
    """
    for name, s in (("a", a), ("b", b)):
        if not isinstance(s, RunningStats):
            raise ValueError(f"running_stats_merge: argument `{name}` must be RunningStats, "
                             f"got {type(s).__name__}")
    if jnp.shape(a.mean) != jnp.shape(b.mean):
        raise ValueError(f"running_stats_merge: arguments `a` and `b` must have the same mean shape, "
                         f"got {jnp.shape(a.mean)} and {jnp.shape(b.mean)}")
    return _merge_shifted(a, b.count, b.m2, b.mean - a.mean)


def running_stats_all_reduce(stats: RunningStats, axis_name: Any) -> RunningStats:
    """Merges the statistics held along a named axis (`pmap`/`shard_map`/`vmap` axis_name).

    The k-way form of Chan et al.'s merge, built from two `lax.psum`s:

        n = Σ_k n_k,   mean = Σ_k n_k mean_k / n,   m2 = Σ_k [m2_k + n_k (mean_k − mean)²]

    Every participant gets the merged statistics. Reduce the statistics of *disjoint* samples
    (e.g. each device's new batch, as `running_stats_update(..., axis_name=...)` does): all-reducing
    replicas of the same history would count it once per device.
    """
    if not isinstance(stats, RunningStats):
        raise ValueError(f"running_stats_all_reduce: argument `stats` must be RunningStats, "
                         f"got {type(stats).__name__}")
    count, weighted = lax.psum((stats.count, stats.count * stats.mean), axis_name)
    mean = weighted / jnp.maximum(count, jnp.finfo(count.dtype).tiny)
    m2 = lax.psum(stats.m2 + stats.count * jnp.square(stats.mean - mean), axis_name)
    return RunningStats(count, mean, m2)


def _reduce_axes(fn: str, axis: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    if not axes or any(not isinstance(a, int) or not -ndim <= a < ndim for a in axes):
        raise ValueError(f"{fn}: argument `axis` must be a non-empty int or tuple of ints in "
                         f"[-{ndim}, {ndim}), got {axis!r}")
    return tuple(sorted({a % ndim for a in axes}))


def running_stats_update(stats: RunningStats, x: ArrayLike, axis: int | Sequence[int] = 0, *,
                         where: ArrayLike | None = None, axis_name: Any = None) -> RunningStats:
    """Adds the samples of `x` (reduced over `axis`) to the running statistics.

    The batch moments are taken relative to the current mean (the shifted-data algorithm, Chan et
    al., 1983, "Algorithms for computing the sample variance: analysis and recommendations"; the
    first sample while the statistics are empty), so a large common offset costs no precision:
    with δ = mean(x) − mean_a and m2_b = Σ (x − mean(x))² the merge is `running_stats_merge`'s.
    With `axis_name`, the batch moments of every participant of that named axis are all-reduced
    first, so statistics replicated across devices stay identical everywhere.

    Args:
      stats: the statistics so far.
      x: samples; reducing `x` over `axis` must leave `stats.mean.shape`.
      axis: the sample axes of `x`.
      where: optional bool mask over the sample axes (their sizes in increasing axis order): only
        the samples where it is True count, e.g. a rollout's valid ticks. The others may hold
        anything, NaN included; a batch with none selected leaves `stats` unchanged.
      axis_name: optional named axis (pmap / shard_map / vmap) to merge the batch across.
    """
    fn = "running_stats_update"
    if not isinstance(stats, RunningStats):
        raise ValueError(f"{fn}: argument `stats` must be RunningStats, got {type(stats).__name__}")
    x = check_array("x", x, kind="numeric", fn=fn)
    axes = _reduce_axes(fn, axis, x.ndim)
    kept = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    if kept != stats.mean.shape:
        raise ValueError(f"{fn}: argument `x` of shape {x.shape} reduced over axes {axes} gives "
                         f"{kept}, but `stats` has shape {stats.mean.shape}")
    x = x.astype(stats.mean.dtype)
    old_mean = _expand(stats.mean, axes)
    if where is None:
        selected = None
        count_b = jnp.asarray(math.prod(x.shape[a] for a in axes), stats.count.dtype)
        # Shift by the running mean, or by a first sample while nothing has been seen (then a
        # constant batch gives exactly mean = x, m2 = 0 instead of rounding noise).
        first = x[tuple(slice(0, 1) if i in axes else slice(None) for i in range(x.ndim))]
    else:
        sample_shape = tuple(x.shape[a] for a in axes)
        mask = check_array("where", where, kind="bool_or_numeric", shape=sample_shape, fn=fn).astype(bool)
        selected = jnp.expand_dims(mask, tuple(i for i in range(x.ndim) if i not in axes))
        count_b = jnp.sum(mask).astype(stats.count.dtype)
        samples = jnp.moveaxis(x, axes, tuple(range(len(axes)))).reshape((-1,) + kept)
        first = _expand(samples[jnp.argmax(mask.ravel())], axes)  # the first selected sample
    shift = jnp.where(stats.count > 0, old_mean, first)
    if selected is None:
        shifted = x - shift
        shifted_mean = jnp.mean(shifted, axis=axes, keepdims=True)
        m2_b = jnp.sum(jnp.square(shifted - shifted_mean), axis=axes)
    else:  # unselected samples are selected away (not multiplied by 0), so NaN there stays out
        shifted = jnp.where(selected, x - shift, 0.0)
        shifted_mean = jnp.sum(shifted, axis=axes, keepdims=True) / jnp.maximum(count_b, 1).astype(x.dtype)
        m2_b = jnp.sum(jnp.where(selected, jnp.square(shifted - shifted_mean), 0.0), axis=axes)
    delta = jnp.squeeze((shift - old_mean) + shifted_mean, axis=axes)
    if selected is not None:  # an empty batch: any delta is harmless in exact arithmetic, not if NaN
        delta = jnp.where(count_b > 0, delta, 0.0)
    batch = RunningStats(count_b, delta, m2_b)  # the batch's mean is relative to stats.mean
    if axis_name is not None:
        batch = running_stats_all_reduce(batch, axis_name)
    return _merge_shifted(stats, batch.count, batch.m2, batch.mean)


# ------------------------------------------------------------------------------ standardization


def standardize(across_batch: bool = False, eps: float = TENSORFORCE_EPSILON) -> Preprocessor:
    """TensorForce `Standardize` (I3): `y = (x − mean) / max(std, eps)`.

    Mean and (population) std are taken per input over all its observation axes, or over the
    whole batch too with `across_batch=True` (TensorForce's `tf.nn.moments` over those axes).
    Stateless; a batch of scalars (rewards) needs `across_batch=True` to be meaningful.
    """
    fn = "standardize"
    if not isinstance(across_batch, bool):
        raise ValueError(f"{fn}: argument `across_batch` must be a bool, got {across_batch!r}")
    _static_number(fn, "eps", eps, low=0.0, strict_low=True)

    def process(x: Any) -> Array:
        x = _as_float(_batch(fn, x))
        axes = tuple(range(0 if across_batch else 1, x.ndim))
        # Shifting by one sample of each group first makes a constant input exactly 0 (instead
        # of float32 rounding of its mean divided by eps) and costs no precision on offsets.
        first = x[(slice(0, 1) if across_batch else slice(None),) + (slice(0, 1),) * (x.ndim - 1)]
        shifted = x - first
        mean = jnp.mean(shifted, axis=axes, keepdims=True)
        std = jnp.sqrt(jnp.mean(jnp.square(shifted - mean), axis=axes, keepdims=True))
        return (shifted - mean) / jnp.maximum(std, eps)

    return _stateless(process, _same_shape)


def running_standardize(axis: int | Sequence[int] | None = None, reset_after_batch: bool = True,
                        eps: float = TENSORFORCE_EPSILON, *, axis_name: Any = None) -> Preprocessor:
    """TensorForce `RunningStandardize` (I4): `y = (x − mean_run) / (std_run + eps)`.

    The running mean/std cover every sample processed so far *including* `x` (TensorForce appends
    the state to its history before standardizing), merged with `running_stats_update`.

    `axis` indexes the history array `[samples, *obs_shape]` whose axis 0 pools time and the
    batch, exactly the axes of `x`: `None` (default) pools everything into one scalar mean/std,
    `0` keeps a mean/std per observation element, `(0, 1)` pools axis 1 as well. It must contain 0.

    `reset_after_batch=True` clears the statistics on `reset`, as TensorForce does on each agent
    reset; the statistics are shared by the batch, so only a whole-batch reset clears them
    (`reset_mask=None` or all True; per-env episode starts keep them). Deviation: TensorForce
    0.3.5.1 divides by the std of the *current* state only, contradicting its own docstring
    ("divide by standard deviation of sequence of past states"); fnrl uses the running std.
    With `axis_name`, each batch is merged across that named axis (devices) before it is added.
    """
    fn = "running_standardize"
    if not isinstance(reset_after_batch, bool):
        raise ValueError(f"{fn}: argument `reset_after_batch` must be a bool, got {reset_after_batch!r}")
    _static_number(fn, "eps", eps, low=0.0, strict_low=True)

    def axes_for(ndim: int) -> tuple[int, ...]:
        axes = tuple(range(ndim)) if axis is None else _reduce_axes(fn, axis, ndim)
        if 0 not in axes:
            raise ValueError(f"{fn}: argument `axis` must contain the sample axis 0, got {axis!r}")
        return axes

    def init(x: Any) -> RunningStats:
        x = _batch(fn, x)
        axes = axes_for(x.ndim)
        return running_stats_init(tuple(d for i, d in enumerate(x.shape) if i not in axes),
                                  _as_float(x).dtype)

    def apply(stats: RunningStats, x: Any) -> tuple[RunningStats, Array]:
        x = _as_float(_batch(fn, x))
        axes = axes_for(x.ndim)
        stats = running_stats_update(stats, x, axes, axis_name=axis_name)
        y = (x - _expand(stats.mean, axes)) / (_expand(stats.std, axes) + eps)
        return stats, y

    def reset(stats: RunningStats, reset_mask: Any = None) -> RunningStats:
        if not reset_after_batch:
            return stats
        if reset_mask is None:
            return jax.tree_util.tree_map(jnp.zeros_like, stats)
        mask = check_array("reset_mask", reset_mask, kind="bool_or_numeric", rank=1, fn=fn)
        clear = jnp.all(mask.astype(bool))
        return jax.tree_util.tree_map(lambda s: jnp.where(clear, jnp.zeros_like(s), s), stats)

    return Preprocessor(init, apply, reset, _same_shape)


def normalize(eps: float = TENSORFORCE_EPSILON) -> Preprocessor:
    """TensorForce `Normalize` (I5): `y = (x − min) / (max − min + eps)`.

    Min and max are taken per input over all its observation axes (not across the batch), so
    each processed observation spans [0, 1). Stateless.
    """
    fn = "normalize"
    _static_number(fn, "eps", eps, low=0.0, strict_low=True)

    def process(x: Any) -> Array:
        x = _as_float(_batch(fn, x))
        axes = tuple(range(1, x.ndim))
        low = jnp.min(x, axis=axes, keepdims=True)
        high = jnp.max(x, axis=axes, keepdims=True)
        return (x - low) / (high - low + eps)

    return _stateless(process, _same_shape)


# ------------------------------------------------------------------------------ elementwise


def clip(min_value: float, max_value: float) -> Preprocessor:
    """TensorForce `Clip` (I10): `y = min(max(x, min_value), max_value)`.

    Keeps the dtype of `x` (JAX promotion: integer `x` with float bounds becomes float).

    Also the DQN reward clipping of Mnih et al. (2015), "Human-level control through deep
    reinforcement learning": `clip(-1.0, 1.0)` as a reward preprocessor.
    """
    fn = "clip"
    _static_number(fn, "min_value", min_value)
    _static_number(fn, "max_value", max_value, low=min_value)

    def process(x: Any) -> Array:
        return jnp.clip(_batch(fn, x), min_value, max_value)

    return _stateless(process, _same_shape)


def divide(scale: float) -> Preprocessor:
    """TensorForce `Divide` (I9): `y = x / scale` (e.g. `scale=255` for uint8 frames)."""
    fn = "divide"
    _static_number(fn, "scale", scale)
    if scale == 0:
        raise ValueError(f"{fn}: argument `scale` must be non-zero, got {scale!r}")

    def process(x: Any) -> Array:
        return _as_float(_batch(fn, x)) / scale

    return _stateless(process, _same_shape)


def scale(factor: float) -> Preprocessor:
    """Reward (or state) scaling `y = factor · x`, the fixed reward scale of e.g. Henderson et al.
    (2018), "Deep Reinforcement Learning that Matters"; `divide(1/factor)` in TensorForce terms."""
    fn = "scale"
    _static_number(fn, "factor", factor)

    def process(x: Any) -> Array:
        return _as_float(_batch(fn, x)) * factor

    return _stateless(process, _same_shape)


# ------------------------------------------------------------------------------ images


def grayscale(weights: Sequence[float] = (0.299, 0.587, 0.114),
              keep_channel_axis: bool = True) -> Preprocessor:
    """TensorForce `Grayscale` (I6): `y = Σ_c weights[c] · x[..., c]` (ITU-R BT.601 luma weights).

    `x` is `[B, ..., C]` with `C = len(weights)`. Like TensorForce, the channel axis is kept with
    size 1 by default (`[H, W, 3] → [H, W, 1]`), so a following `frame_stack` stacks frames as
    channels (`[H, W, length]`); `keep_channel_axis=False` drops it (`[H, W]`).
    """
    fn = "grayscale"
    weights = tuple(weights)
    if not weights or not all(isinstance(w, (int, float)) and math.isfinite(w) for w in weights):
        raise ValueError(f"{fn}: argument `weights` must be a non-empty sequence of finite numbers, "
                         f"got {weights!r}")
    if not isinstance(keep_channel_axis, bool):
        raise ValueError(f"{fn}: argument `keep_channel_axis` must be a bool, got {keep_channel_axis!r}")
    channels = len(weights)

    def process(x: Any) -> Array:
        x = check_array("x", x, kind="numeric", min_rank=2, fn=fn)
        if x.shape[-1] != channels:
            raise ValueError(f"{fn}: argument `x` must have {channels} channels on its last axis "
                             f"(one per weight), got shape {x.shape}")
        gray = jnp.tensordot(_as_float(x), jnp.asarray(weights, jnp.float32), axes=1)
        return gray[..., None] if keep_channel_axis else gray

    def processed_shape(shape: Any) -> tuple[int, ...]:
        shape = _obs_shape(fn, shape, min_rank=1)
        if shape[-1] != channels:
            raise ValueError(f"{fn}: argument `shape` must end in {channels} channels, got {shape}")
        return shape[:-1] + ((1,) if keep_channel_axis else ())

    return _stateless(process, processed_shape)


def image_resize(width: int, height: int, method: str = "bilinear",
                 antialias: bool = True) -> Preprocessor:
    """TensorForce `ImageResize` (I7) with `jax.image.resize`: `[B, H, W(, C)] → [B, height, width(, C)]`.

    Bilinear by default, the method of TensorForce's `tf.image.resize_images`, but sampled at
    half-pixel centres (TF 2 / Pillow) and, with `antialias`, with the kernel widened by the
    downsampling factor (a low-pass filter). TF 1.x, which TensorForce 0.3 ran on, sampled
    without the half-pixel offset and did not antialias, so its frames differ pixel by pixel;
    `antialias=False` is the closer of the two. Layout: fnrl returns rows = `height`, columns =
    `width`; TensorForce 0.3.5.1 passed `(width, height)` where TF expects `(height, width)`, i.e.
    it transposed the two (identical for the usual square 84×84). The output is float (uint8
    frames become float32).
    """
    fn = "image_resize"
    check_positive_int(fn, "width", width)
    check_positive_int(fn, "height", height)
    if not isinstance(antialias, bool):
        raise ValueError(f"{fn}: argument `antialias` must be a bool, got {antialias!r}")
    try:
        jax.image.ResizeMethod.from_string(method)
    except (ValueError, AttributeError) as err:
        raise ValueError(f"{fn}: argument `method` must be a jax.image.resize method such as "
                         f"'bilinear', 'nearest', 'cubic', got {method!r}") from err

    def process(x: Any) -> Array:
        x = _as_float(check_array("x", x, kind="numeric", rank=(3, 4), fn=fn))
        shape = (x.shape[0], height, width) + x.shape[3:]
        return jax.image.resize(x, shape, method, antialias=antialias)

    def processed_shape(shape: Any) -> tuple[int, ...]:
        shape = _obs_shape(fn, shape, min_rank=2)
        if len(shape) > 3:
            raise ValueError(f"{fn}: argument `shape` must be (H, W) or (H, W, C), got {shape}")
        return (height, width) + shape[2:]

    return _stateless(process, processed_shape)


# ------------------------------------------------------------------------------ stateful


def frame_stack(length: int = 2) -> Preprocessor:
    """TensorForce `Sequence` (I8): the last `length` observations concatenated on the last axis.

        y_t = concat(x_{t−length+1}, ..., x_{t−1}, x_t)   (oldest first, along axis −1)

    so `[B, ..., C] → [B, ..., C·length]` (with `grayscale()` first: `[H, W, 1] → [H, W, length]`,
    the Atari stack of Mnih et al., 2015). As in TensorForce, the first observation after a
    reset fills the whole history (`y = concat(x, ..., x)`) rather than zeros. Resets are per
    env: `reset(state, reset_mask)` marks the envs whose next observation starts an episode; the
    state starts with every env marked. The history keeps the observations' dtype (uint8 frames
    stay uint8), and `x` must keep the dtype it had at `init`.
    """
    fn = "frame_stack"
    check_positive_int(fn, "length", length)

    def init(x: Any) -> FrameStackState:
        x = _batch(fn, x, min_obs_rank=1)
        frames = jnp.zeros(x.shape[:-1] + (x.shape[-1] * length,), x.dtype)
        return FrameStackState(frames=frames, fresh=jnp.ones(x.shape[:1], bool))

    def apply(state: FrameStackState, x: Any) -> tuple[FrameStackState, Array]:
        x = _batch(fn, x, min_obs_rank=1)
        frames = state.frames
        want = frames.shape[:-1] + (frames.shape[-1] // length,)
        if x.shape != want or x.dtype != frames.dtype:
            raise ValueError(f"{fn}: argument `x` must have shape {want} and dtype {frames.dtype} "
                             f"(as at init), got {x.shape} {x.dtype}")
        shifted = jnp.concatenate([frames[..., x.shape[-1]:], x], axis=-1)
        filled = jnp.concatenate([x] * length, axis=-1)
        frames = jnp.where(_expand(state.fresh, tuple(range(1, x.ndim))), filled, shifted)
        return FrameStackState(frames=frames, fresh=jnp.zeros_like(state.fresh)), frames

    def reset(state: FrameStackState, reset_mask: Any = None) -> FrameStackState:
        mask = _reset_mask(fn, reset_mask, state.fresh.shape[0])
        fresh = jnp.ones_like(state.fresh) if mask is None else state.fresh | mask
        return state._replace(fresh=fresh)

    def processed_shape(shape: Any) -> tuple[int, ...]:
        shape = _obs_shape(fn, shape, min_rank=1)
        return shape[:-1] + (shape[-1] * length,)

    return Preprocessor(init, apply, reset, processed_shape)


def reward_normalize(discount: float = 0.99, eps: float = 1e-8, *,
                     axis_name: Any = None) -> Preprocessor:
    """Reward scaling by the running std of the discounted return, as in PPO implementations.

        R_t = discount · R_{t−1} + r_t   (per env, R = 0 at episode start)
        y_t = r_t / sqrt(Var[R] + eps)   (Var over every R seen so far, this step's included)

    The reward is divided, not centred. This is OpenAI Baselines' `VecNormalize` reward branch
    (Dhariwal et al., 2017) and the "reward scaling" studied by Engstrom et al. (2020),
    "Implementation Matters in Deep Policy Gradients: A Case Study on PPO and TRPO". Baselines
    then clips to ±10: follow with `clip(-10.0, 10.0)`, since the first steps, with little
    return variance seen, can give large values. `reset(state, reset_mask)` zeroes `R` for the
    envs starting an episode and keeps the statistics. `x` is the reward batch `[B]` (or
    `[B, ...]`, normalised per element); `axis_name` merges the statistics across devices.
    """
    fn = "reward_normalize"
    _static_number(fn, "discount", discount, low=0.0, high=1.0)
    _static_number(fn, "eps", eps, low=0.0, strict_low=True)

    def init(x: Any) -> RewardNormalizeState:
        x = _as_float(_batch(fn, x))
        return RewardNormalizeState(jnp.zeros_like(x), running_stats_init(x.shape[1:], x.dtype))

    def apply(state: RewardNormalizeState, x: Any) -> tuple[RewardNormalizeState, Array]:
        x = _as_float(_batch(fn, x))
        if x.shape != state.returns.shape:
            raise ValueError(f"{fn}: argument `x` must have shape {state.returns.shape} (as at "
                             f"init), got {x.shape}")
        returns = discount * state.returns + x
        stats = running_stats_update(state.stats, returns, 0, axis_name=axis_name)
        return RewardNormalizeState(returns, stats), x / jnp.sqrt(stats.variance + eps)

    def reset(state: RewardNormalizeState, reset_mask: Any = None) -> RewardNormalizeState:
        mask = _reset_mask(fn, reset_mask, state.returns.shape[0])
        if mask is None:
            return state._replace(returns=jnp.zeros_like(state.returns))
        keep = ~_expand(mask, tuple(range(1, state.returns.ndim)))
        return state._replace(returns=jnp.where(keep, state.returns, 0.0))

    return Preprocessor(init, apply, reset, _same_shape)


# ------------------------------------------------------------------------------ composition


def stack(*preprocessors: Preprocessor) -> Preprocessor:
    """TensorForce `PreprocessorStack` (I2): apply `preprocessors` in order; state = tuple.

    `processed_shape` chains the shapes and `reset` resets every member. `stack()` is the identity.
    """
    for i, pp in enumerate(preprocessors):
        if not isinstance(pp, Preprocessor):
            raise ValueError(f"stack: argument `preprocessors[{i}]` must be a Preprocessor, "
                             f"got {type(pp).__name__}")

    def init(x: Any) -> tuple:
        states = []
        for pp in preprocessors:
            state = pp.init(x)
            # The next member only needs the shape/dtype of this one's output.
            out = jax.eval_shape(pp.apply, state, x)[1]
            x = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), out)
            states.append(state)
        return tuple(states)

    def apply(states: tuple, x: Any) -> tuple[tuple, Any]:
        new_states = []
        for pp, state in zip(preprocessors, states):
            state, x = pp.apply(state, x)
            new_states.append(state)
        return tuple(new_states), x

    def reset(states: tuple, reset_mask: Any = None) -> tuple:
        return tuple(pp.reset(s, reset_mask) for pp, s in zip(preprocessors, states))

    def processed_shape(shape: Any) -> Any:
        for pp in preprocessors:
            shape = pp.processed_shape(shape)
        return shape

    return Preprocessor(init, apply, reset, processed_shape)


def by_name(preprocessors: Mapping[str, Preprocessor]) -> Preprocessor:
    """One preprocessor per named observation (TensorForce's dict `states_preprocessing_spec`, I11).

    Observations are dicts `{name: [B, ...]}`; names without a preprocessor pass through
    unchanged. State and `processed_shape` work on dicts of the processed names.
    """
    preprocessors = dict(preprocessors)
    for name, pp in preprocessors.items():
        if not isinstance(pp, Preprocessor):
            raise ValueError(f"by_name: argument `preprocessors[{name!r}]` must be a Preprocessor, "
                             f"got {type(pp).__name__}")

    def check(argument: str, x: Any) -> None:
        if not isinstance(x, Mapping) or not set(preprocessors) <= set(x):
            got = sorted(x) if isinstance(x, Mapping) else type(x).__name__
            raise ValueError(f"by_name: argument `{argument}` must be a dict with the keys "
                             f"{sorted(preprocessors)}, got {got}")

    def init(x: Any) -> dict:
        check("x", x)
        return {k: pp.init(x[k]) for k, pp in preprocessors.items()}

    def apply(states: dict, x: Any) -> tuple[dict, dict]:
        check("x", x)
        out, new_states = dict(x), {}
        for k, pp in preprocessors.items():
            new_states[k], out[k] = pp.apply(states[k], x[k])
        return new_states, out

    def reset(states: dict, reset_mask: Any = None) -> dict:
        return {k: pp.reset(states[k], reset_mask) for k, pp in preprocessors.items()}

    def processed_shape(shapes: Any) -> dict:
        check("shape", shapes)
        out = dict(shapes)
        for k, pp in preprocessors.items():
            out[k] = pp.processed_shape(shapes[k])
        return out

    return Preprocessor(init, apply, reset, processed_shape)


# Spec `type` names: TensorForce 0.3.5.1's registry, plus fnrl's `frame_stack` (= `sequence`),
# `scale` and `reward_normalize`.
PREPROCESSORS: dict[str, Callable[..., Preprocessor]] = {
    "sequence": frame_stack,
    "frame_stack": frame_stack,
    "standardize": standardize,
    "running_standardize": running_standardize,
    "normalize": normalize,
    "grayscale": grayscale,
    "image_resize": image_resize,
    "divide": divide,
    "clip": clip,
    "scale": scale,
    "reward_normalize": reward_normalize,
}



def _from_entry(entry: Any, where: str) -> Preprocessor:
    """One spec entry: a Preprocessor, or `{"type": name or factory, **options}`."""
    if isinstance(entry, Preprocessor):
        return entry
    if not isinstance(entry, Mapping) or "type" not in entry:
        raise ValueError(f"from_spec: argument `{where}` must be a dict with a 'type' key or a "
                         f"Preprocessor, got {entry!r}")
    kind = entry["type"]
    factory = PREPROCESSORS.get(kind) if isinstance(kind, str) else kind
    if not callable(factory):
        raise ValueError(f"from_spec: argument `{where}` has unknown type {kind!r}; valid types: "
                         f"{', '.join(sorted(PREPROCESSORS))}")
    options = {k: v for k, v in entry.items() if k != "type" and k not in TENSORFORCE_SCOPE_KEYS}
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as err:
        accepted = ", ".join(inspect.signature(factory).parameters)
        raise ValueError(f"from_spec: argument `{where}` (type {kind!r}) has options "
                         f"{sorted(options)}; accepted: {accepted}") from err
    pp = factory(**options)
    if not isinstance(pp, Preprocessor):
        raise ValueError(f"from_spec: the factory of `{where}` returned {type(pp).__name__}, "
                         f"not a Preprocessor")
    return pp


def _stack_from(spec: Any, where: str) -> Preprocessor:
    """A list of entries or a single entry (TensorForce wraps a lone dict in a list)."""
    if isinstance(spec, (Mapping, Preprocessor)):
        return stack(_from_entry(spec, where))
    if isinstance(spec, (list, tuple)):
        return stack(*(_from_entry(e, f"{where}[{i}]") for i, e in enumerate(spec)))
    raise ValueError(f"from_spec: argument `{where}` must be a list of preprocessor specs, "
                     f"got {type(spec).__name__}")


def from_spec(spec: Any) -> Preprocessor:
    """Builds a preprocessor from a TensorForce spec (`PreprocessorStack.from_spec`, I2/I11/I12).

    - `None` or `[]`: the identity;
    - a list of `{"type": name, **options}` dicts (or ready `Preprocessor`s): a `stack`, e.g.
      `[{"type": "grayscale"}, {"type": "image_resize", "width": 84, "height": 84},
      {"type": "sequence", "length": 4}]`; a single dict is a one-element list;
    - a dict without `"type"`, `{observation_name: list or dict}`: `by_name` of the stacks.

    `type` is a key of `PREPROCESSORS` or a factory returning a `Preprocessor`; options are the
    factory's arguments (TensorForce's `scope`/`summary_labels` are ignored). The same specs serve
    rewards (`reward_preprocessing_spec`), e.g. `[{"type": "clip", "min_value": -1, "max_value": 1}]`.
    Raises a ValueError naming the entry for an unknown type (listing the valid ones) or option.
    """
    if spec is None:
        return stack()
    if isinstance(spec, Mapping) and "type" not in spec:
        return by_name({name: _stack_from(sub, f"spec[{name!r}]") for name, sub in spec.items()})
    return _stack_from(spec, "spec")
