"""Value references: discounted, n-step, λ-returns, GAE, V-trace, Retrace, Q(λ), and the two
classic toolkits' own flavours (TensorForce's horizon-limited cumulative reward, AgentNet's
blocked n-step reference).

Alignment (DESIGN.md): sequences are time-major `[T, ...]`, any trailing batch shape. For the
transition at step i, `r_t[i]` is its reward, `discount_t[i] = γ·(1 − terminated[i])` its
discount and `v_t[i] = V(s_{i+1})` the value of the state it reached.

Episode boundaries, shared by every sequence function here:
- terminated: encode in `discount_t` (zero discount), nothing propagates across.
- `truncated_t[i]` (time limit): the step keeps its discount and bootstraps from `v_t[i]` (the
  value of the final observation), but nothing propagates from later steps into it.
- `valid_t[i] = False` removes step i from the computation: it adds no reward, applies no
  discount, and passes later information through unchanged (envpool's post-done reset step, or
  padding); its output is 0.

Every backward recursion here is the linear form `acc_i = base_i + coef_i · acc_{i+1}`, run by
one reverse `lax.scan` (`_backward_recursion`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import lax

from fnrl._validation import check_array, check_broadcastable, check_same_shape, check_static_range
from fnrl.types import Array, ArrayLike


class _Boundaries(NamedTuple):
    """Episode-boundary flags as floats; `None` when not given, so the common case stays lean."""

    cut: Array | None  # 1 where propagation from later steps stops (truncation)
    valid: Array | None  # 0 where the step is removed

    def keep(self) -> Array | float:
        """1 − cut: where later steps may propagate into this one."""
        return 1.0 if self.cut is None else 1.0 - self.cut

    def mask(self, x: Array) -> Array:
        """x with removed steps set to 0 (selected, so NaN padding there does not leak)."""
        return x if self.valid is None else jnp.where(self.valid > 0, x, 0.0)

    def later_valid(self, like: Array) -> Array:
        """1 where some later step is valid, i.e. the recursion has something to carry back."""
        if self.valid is None:
            return (_time_index(like) < like.shape[0] - 1).astype(like.dtype)
        later = lax.cummax(self.valid[::-1], axis=0)[::-1]
        return jnp.concatenate([later[1:], jnp.zeros_like(later[:1])], axis=0)


def _sequence_args(fn: str, r_t: ArrayLike, discount_t: ArrayLike, **others: ArrayLike):
    """Checks the common `r_t`, `discount_t` pair (float, rank >= 1, same shape)."""
    r_t = check_array("r_t", r_t, min_rank=1, fn=fn)
    discount_t = check_array("discount_t", discount_t, min_rank=1, fn=fn)
    check_same_shape(fn, r_t=r_t, discount_t=discount_t)
    checked = {}
    for name, value in others.items():
        arr = check_array(name, value, min_rank=1, fn=fn)
        check_same_shape(fn, r_t=r_t, **{name: arr})
        checked[name] = arr
    return r_t, discount_t, checked


def _boundaries(fn: str, shape, truncated_t, valid_t, dtype) -> _Boundaries:
    """Checks optional truncated/valid flags (bool or 0/1 numbers) and converts them to floats."""

    def flag(name, value):
        if value is None:
            return None
        arr = check_array(name, value, kind="bool_or_numeric", min_rank=1, fn=fn)
        if arr.shape != tuple(shape):
            raise ValueError(f"{fn}: argument `{name}` must have shape {tuple(shape)}, got {arr.shape}")
        return arr.astype(dtype)

    return _Boundaries(cut=flag("truncated_t", truncated_t), valid=flag("valid_t", valid_t))


def _time_index(x: Array) -> Array:
    """The time index broadcast against `x` ([T, 1, 1, ...])."""
    return jnp.arange(x.shape[0]).reshape((-1,) + (1,) * (x.ndim - 1))


def _backward_recursion(base: Array, coef: Array, valid: Array | None = None) -> Array:
    """acc_i = base_i + coef_i·acc_{i+1} (acc_T = 0); invalid steps pass acc through, output 0.

    `coef` (and `valid`) may have size-1 trailing axes that broadcast against `base`.
    """
    if valid is None:

        def step(acc, xs):
            acc = xs[0] + xs[1] * acc
            return acc, acc

        _, out = lax.scan(step, jnp.zeros_like(base[0]), (base, coef), reverse=True)
        return out

    def masked_step(acc, xs):
        b, c, v = xs
        new = b + c * acc
        return jnp.where(v > 0, new, acc), jnp.where(v > 0, new, 0.0)

    # Removed steps' inputs are zeroed first: their `b + c·acc` is still computed (then not
    # selected), and a NaN there would turn the zero cotangent into NaN gradients for valid steps.
    base = jnp.where(valid > 0, base, 0.0)
    coef = jnp.where(valid > 0, coef, 0.0)
    _, out = lax.scan(masked_step, jnp.zeros_like(base[0]), (base, coef, valid), reverse=True)
    return out


def _maybe_stop(x: Array, stop: bool) -> Array:
    return lax.stop_gradient(x) if stop else x


def lambda_returns(
    r_t: ArrayLike,
    discount_t: ArrayLike,
    v_t: ArrayLike,
    lambda_: ArrayLike = 1.0,
    *,
    truncated_t: ArrayLike | None = None,
    valid_t: ArrayLike | None = None,
    stop_target_gradients: bool = False,
) -> Array:
    """λ-returns, bootstrapped from `v_t` (Sutton & Barto 2018, §12.1; Watkins 1989).

        G_i = r_i + d_i·[(1 − λ_i)·v_i + λ_i·G_{i+1}],   G at the last step = r + d·v

    where λ_i is forced to 0 at truncated steps and at the last (valid) step, so those bootstrap
    from their own `v_t[i]`.

    Args:
      r_t: rewards `[T, ...]`.
      discount_t: discounts `[T, ...]`, γ·(1 − terminated).
      v_t: values of the states reached, `[T, ...]`.
      lambda_: scalar or `[T, ...]` mixing parameter in [0, 1].
      truncated_t: optional `[T, ...]` bool, time-limit ends (bootstrap, no propagation).
      valid_t: optional `[T, ...]` bool; False removes the step (output 0).
      stop_target_gradients: wrap the result in `stop_gradient`.

    Returns:
      λ-returns `[T, ...]`.
    """
    fn = "lambda_returns"
    r_t, discount_t, args = _sequence_args(fn, r_t, discount_t, v_t=v_t)
    v_t = args["v_t"]
    check_static_range(fn, "lambda_", lambda_, 0.0, 1.0)
    lam = check_broadcastable(fn, "lambda_", check_array("lambda_", lambda_, fn=fn), r_t.shape)
    flags = _boundaries(fn, r_t.shape, truncated_t, valid_t, r_t.dtype)
    lam = lam * flags.keep() * flags.later_valid(r_t)
    base = r_t + discount_t * (1.0 - lam) * v_t
    out = _backward_recursion(base, discount_t * lam, flags.valid)
    return _maybe_stop(out, stop_target_gradients)


def discounted_returns(
    r_t: ArrayLike,
    discount_t: ArrayLike,
    v_t: ArrayLike,
    *,
    truncated_t: ArrayLike | None = None,
    valid_t: ArrayLike | None = None,
    stop_target_gradients: bool = False,
) -> Array:
    """Discounted returns bootstrapped from the end of the sequence (Sutton & Barto 2018, §3.3).

        G_i = r_i + d_i·G_{i+1},   G at the last step = r + d·v

    `v_t` is a scalar bootstrap, a `[...]` per-stream bootstrap, or `[T, ...]` values of the reached
    states (then used at the last step and at truncated steps). Also TensorForce's
    `util.cumulative_discount` (cumulative_start = `v_t`, discount_t = γ·(1 − terminal)).
    """
    fn = "discounted_returns"
    r_t, discount_t, _ = _sequence_args(fn, r_t, discount_t)  # errors name this function
    v_t = check_broadcastable(fn, "v_t", check_array("v_t", v_t, fn=fn), r_t.shape)
    return lambda_returns(
        r_t,
        discount_t,
        v_t,
        1.0,
        truncated_t=truncated_t,
        valid_t=valid_t,
        stop_target_gradients=stop_target_gradients,
    )


def n_step_returns(
    r_t: ArrayLike,
    discount_t: ArrayLike,
    v_t: ArrayLike,
    n: int,
    lambda_: ArrayLike = 1.0,
    *,
    truncated_t: ArrayLike | None = None,
    valid_t: ArrayLike | None = None,
    stop_target_gradients: bool = False,
) -> Array:
    """Sliding-window n-step returns, truncated at the end of the sequence (Sutton & Barto §7.1).

        G_i = Σ_{k<h} (Π_{j<k} d_{i+j})·r_{i+k} + (Π_{j<h} d_{i+j})·v_{i+h−1},  h = min(n, T − i)

    With λ < 1 each step inside the window mixes as in `lambda_returns`. A truncated step inside
    the window ends it there (bootstrapping from its `v_t`); an invalid step inside the window is
    an identity step that still counts towards the n, so a window whose last steps are invalid
    bootstraps from the `v_t` of its last valid step (an invalid step's own `v_t` is never read).
    """
    fn = "n_step_returns"
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"{fn}: argument `n` must be a Python int >= 1, got {n!r}")
    r_t, discount_t, args = _sequence_args(fn, r_t, discount_t, v_t=v_t)
    v_t = args["v_t"]
    check_static_range(fn, "lambda_", lambda_, 0.0, 1.0)
    lam = check_broadcastable(fn, "lambda_", check_array("lambda_", lambda_, fn=fn), r_t.shape)
    flags = _boundaries(fn, r_t.shape, truncated_t, valid_t, r_t.dtype)
    lam, r, d = lam * flags.keep(), r_t, discount_t
    if flags.valid is not None:
        # An invalid step becomes the identity: no reward, unit discount, full propagation, and
        # as a window's end it stands for the last valid step before it (forward-filled v).
        r = flags.mask(r_t)
        d = jnp.where(flags.valid > 0, discount_t, 1.0)
        lam = jnp.where(flags.valid > 0, lam, 1.0)
        last_valid = lax.cummax(jnp.where(flags.valid > 0, _time_index(r_t), 0) * jnp.ones_like(r_t, jnp.int32))
        v_t = jnp.where(flags.valid > 0, v_t, jnp.take_along_axis(flags.mask(v_t), last_valid, axis=0))
    seq_len = r_t.shape[0]
    pad = [(0, n - 1)] + [(0, 0)] * (r_t.ndim - 1)
    r, d, lam, v = (jnp.pad(x, pad, mode="edge" if x is v_t else "constant") for x in (r, d, lam, v_t))
    # Beyond the sequence end the window shrinks: identity steps carry v_{T-1} back.
    tail = jnp.arange(seq_len + n - 1) >= seq_len
    tail = tail.reshape((-1,) + (1,) * (r_t.ndim - 1))
    d, lam = jnp.where(tail, 1.0, d), jnp.where(tail, 1.0, lam)
    acc = v[n - 1 : n - 1 + seq_len]
    mixing = not (isinstance(lambda_, (int, float)) and lambda_ == 1.0 and flags.cut is None)
    for k in reversed(range(n)):
        window = slice(k, k + seq_len)
        if mixing:
            acc = r[window] + d[window] * ((1.0 - lam[window]) * v[window] + lam[window] * acc)
        else:
            acc = r[window] + d[window] * acc
    return _maybe_stop(flags.mask(acc), stop_target_gradients)


def gae(
    r_t: ArrayLike,
    discount_t: ArrayLike,
    values: ArrayLike,
    lambda_: ArrayLike,
    *,
    truncated_t: ArrayLike | None = None,
    valid_t: ArrayLike | None = None,
    bootstrap_values_t: ArrayLike | None = None,
    stop_target_gradients: bool = True,
) -> Array:
    """Generalized advantage estimation (Schulman et al. 2016, arXiv:1506.02438).

        δ_i = r_i + d_i·V(s_{i+1}) − V(s_i),   A_i = δ_i + d_i·λ·A_{i+1}

    The trace is cut at truncated steps (A_i = δ_i, which still bootstraps) and at the end.

    Args:
      r_t: rewards `[T, ...]`.
      discount_t: discounts `[T, ...]`.
      values: `[T+1, ...]` values V(s_0..s_T).
      lambda_: scalar or `[T, ...]` in [0, 1].
      truncated_t, valid_t: episode boundary flags, see the module docstring.
      bootstrap_values_t: optional `[T, ...]` V(s_{i+1}) to use instead of `values[1:]`: pass it
        when the env resets inside a step, so `values[i+1]` belongs to the next episode and the
        truncated step must bootstrap from its final observation.
      stop_target_gradients: stop gradients through the advantages (default True).

    Returns:
      advantages `[T, ...]`.
    """
    fn = "gae"
    r_t, discount_t, _ = _sequence_args(fn, r_t, discount_t)
    values = check_array("values", values, min_rank=1, fn=fn)
    want = (r_t.shape[0] + 1,) + r_t.shape[1:]
    if values.shape != want:
        raise ValueError(f"{fn}: argument `values` must have shape {want} ([T+1, ...]), got {values.shape}")
    v_next = values[1:]
    if bootstrap_values_t is not None:
        v_next = check_array("bootstrap_values_t", bootstrap_values_t, shape=r_t.shape, fn=fn)
    check_static_range(fn, "lambda_", lambda_, 0.0, 1.0)
    lam = check_broadcastable(fn, "lambda_", check_array("lambda_", lambda_, fn=fn), r_t.shape)
    flags = _boundaries(fn, r_t.shape, truncated_t, valid_t, r_t.dtype)
    delta = r_t + discount_t * v_next - values[:-1]
    out = _backward_recursion(delta, discount_t * lam * flags.keep(), flags.valid)
    return _maybe_stop(out, stop_target_gradients)


def vtrace(
    v_tm1: ArrayLike,
    v_t: ArrayLike,
    r_t: ArrayLike,
    discount_t: ArrayLike,
    rho_tm1: ArrayLike,
    lambda_: ArrayLike = 1.0,
    clip_rho_threshold: float = 1.0,
    clip_c_threshold: float = 1.0,
    *,
    truncated_t: ArrayLike | None = None,
    valid_t: ArrayLike | None = None,
    stop_target_gradients: bool = True,
) -> Array:
    """V-trace targets (Espeholt et al. 2018, IMPALA, arXiv:1802.01561, eq. 1).

        δ_i = min(ρ̄, ρ_i)·(r_i + d_i·v_t[i] − v_tm1[i]),  c_i = λ·min(c̄, ρ_i)
        vs_i = v_tm1[i] + δ_i + d_i·c_i·(vs_{i+1} − v_tm1[i+1])

    `rho_tm1` are importance ratios π(a_i|s_i)/μ(a_i|s_i) (not logs). Traces are cut at truncated
    steps and at the end of the sequence.
    """
    fn = "vtrace"
    r_t, discount_t, args = _sequence_args(fn, r_t, discount_t, v_tm1=v_tm1, v_t=v_t, rho_tm1=rho_tm1)
    v_tm1, v_t, rho = args["v_tm1"], args["v_t"], args["rho_tm1"]
    check_static_range(fn, "lambda_", lambda_, 0.0, 1.0)
    lam = check_broadcastable(fn, "lambda_", check_array("lambda_", lambda_, fn=fn), r_t.shape)
    flags = _boundaries(fn, r_t.shape, truncated_t, valid_t, r_t.dtype)
    delta = jnp.minimum(clip_rho_threshold, rho) * (r_t + discount_t * v_t - v_tm1)
    c = lam * jnp.minimum(clip_c_threshold, rho) * flags.keep()
    corrections = _backward_recursion(delta, discount_t * c, flags.valid)
    out = flags.mask(v_tm1 + corrections)
    return _maybe_stop(out, stop_target_gradients)


def vtrace_pg_advantages(
    v_tm1: ArrayLike,
    v_t: ArrayLike,
    r_t: ArrayLike,
    discount_t: ArrayLike,
    rho_tm1: ArrayLike,
    lambda_: ArrayLike = 1.0,
    clip_rho_threshold: float = 1.0,
    clip_pg_rho_threshold: float = 1.0,
    *,
    truncated_t: ArrayLike | None = None,
    valid_t: ArrayLike | None = None,
) -> Array:
    """V-trace policy-gradient advantages (Espeholt et al. 2018, §4.2), gradient-stopped.

        A_i = min(ρ̄_pg, ρ_i)·(r_i + d_i·vs_{i+1} − v_tm1[i])

    where vs_{i+1} is the V-trace target of the next state: `v_t[i]` plus the next valid step's
    correction, or `v_t[i]` alone at truncated steps and at the end of the sequence.
    """
    fn = "vtrace_pg_advantages"
    r_t, discount_t, args = _sequence_args(fn, r_t, discount_t, v_tm1=v_tm1, v_t=v_t, rho_tm1=rho_tm1)
    v_tm1, v_t, rho = args["v_tm1"], args["v_t"], args["rho_tm1"]
    targets = vtrace(
        v_tm1, v_t, r_t, discount_t, rho, lambda_, clip_rho_threshold, 1.0,
        truncated_t=truncated_t, valid_t=valid_t,
    )
    flags = _boundaries(fn, r_t.shape, truncated_t, valid_t, r_t.dtype)
    # Correction of the next valid step: invalid steps carry it through, the end contributes 0.
    corrections = flags.mask(targets - v_tm1)
    next_correction = jnp.concatenate([corrections[1:], jnp.zeros_like(corrections[:1])], axis=0)
    if flags.valid is not None:
        # Invalid steps hand on the correction of the next valid one.
        next_valid = jnp.concatenate([flags.valid[1:], jnp.zeros_like(flags.valid[:1])], axis=0)
        next_correction = _backward_recursion(next_correction, 1.0 - next_valid)
    vs_next = v_t + flags.keep() * next_correction
    adv = jnp.minimum(clip_pg_rho_threshold, rho) * (r_t + discount_t * vs_next - v_tm1)
    return lax.stop_gradient(flags.mask(adv))


def _select(values: Array, actions: Array) -> Array:
    """values[..., a] for values `[..., A]` and int ids a `[...]`; ids outside [0, A) give NaN
    (not a wrapped or clamped pick, so a bad id shows)."""
    picked = jnp.take_along_axis(values, actions[..., None].astype(jnp.int32), axis=-1, mode="fill",
                                 fill_value=jnp.nan, wrap_negative_indices=False)
    return picked[..., 0]


def _q_sequence_args(fn: str, q_tm1, a_tm1, r_t, discount_t, q_t, a_t=None):
    r_t, discount_t, _ = _sequence_args(fn, r_t, discount_t)
    q_tm1 = check_array("q_tm1", q_tm1, rank=r_t.ndim + 1, fn=fn)
    q_t = check_array("q_t", q_t, rank=r_t.ndim + 1, fn=fn)
    for name, q in (("q_tm1", q_tm1), ("q_t", q_t)):
        if q.shape[:-1] != r_t.shape:
            raise ValueError(f"{fn}: argument `{name}` must have shape {r_t.shape + ('A',)}, got {q.shape}")
    check_same_shape(fn, q_tm1=q_tm1, q_t=q_t)
    actions = [check_array("a_tm1", a_tm1, kind="int", shape=r_t.shape, fn=fn)]
    if a_t is not None:
        actions.append(check_array("a_t", a_t, kind="int", shape=r_t.shape, fn=fn))
    return (q_tm1, q_t, r_t, discount_t, *actions)


def retrace(
    q_tm1: ArrayLike,
    q_t: ArrayLike,
    a_tm1: ArrayLike,
    a_t: ArrayLike,
    r_t: ArrayLike,
    discount_t: ArrayLike,
    pi_t: ArrayLike,
    mu_t: ArrayLike,
    lambda_: ArrayLike,
    eps: float = 1e-8,
    *,
    truncated_t: ArrayLike | None = None,
    valid_t: ArrayLike | None = None,
    stop_target_gradients: bool = True,
) -> Array:
    """Retrace(λ) TD errors (Munos et al. 2016, arXiv:1606.02647).

        c_i = λ·min(1, π_i(a_t[i]) / μ_i)
        G_i = r_i + d_i·(Σ_a π_i(a)·q_t[i, a] − c_i·q_t[i, a_t[i]] + c_i·G_{i+1})
        returns G_i − q_tm1[i, a_tm1[i]]

    `q_t[i]`, `pi_t[i]` (`[T, ..., A]` target-policy probabilities) and `a_t[i]` belong to the
    state reached by step i, where `mu_t[i]` is the behaviour probability of `a_t[i]`. Traces are
    cut at truncated steps and at the end.
    """
    fn = "retrace"
    q_tm1, q_t, r_t, discount_t, a_tm1, a_t = _q_sequence_args(fn, q_tm1, a_tm1, r_t, discount_t, q_t, a_t)
    pi_t = check_array("pi_t", pi_t, shape=q_t.shape, fn=fn)
    mu_t = check_array("mu_t", mu_t, shape=r_t.shape, fn=fn)
    check_static_range(fn, "lambda_", lambda_, 0.0, 1.0)
    lam = check_broadcastable(fn, "lambda_", check_array("lambda_", lambda_, fn=fn), r_t.shape)
    flags = _boundaries(fn, r_t.shape, truncated_t, valid_t, r_t.dtype)
    c = lam * jnp.minimum(1.0, _select(pi_t, a_t) / (mu_t + eps))
    c = c * flags.keep() * flags.later_valid(r_t)
    base = r_t + discount_t * (jnp.sum(pi_t * q_t, axis=-1) - c * _select(q_t, a_t))
    targets = _maybe_stop(_backward_recursion(base, discount_t * c, flags.valid), stop_target_gradients)
    return flags.mask(targets - _select(q_tm1, a_tm1))


def q_lambda(
    q_tm1: ArrayLike,
    a_tm1: ArrayLike,
    r_t: ArrayLike,
    discount_t: ArrayLike,
    q_t: ArrayLike,
    lambda_: ArrayLike,
    *,
    truncated_t: ArrayLike | None = None,
    valid_t: ArrayLike | None = None,
    stop_target_gradients: bool = True,
) -> Array:
    """Q(λ) TD errors: λ-returns bootstrapped from max_a q_t (Peng & Williams 1996).

        G = lambda_returns(r_t, discount_t, max_a q_t, λ),   returns G − q_tm1[a_tm1]

    With a constant λ this is Peng's Q(λ); pass `lambda_ = λ·[a_t is greedy]` per step for
    Watkins's Q(λ) (Watkins 1989), which cuts the trace after exploratory actions.
    """
    fn = "q_lambda"
    q_tm1, q_t, r_t, discount_t, a_tm1 = _q_sequence_args(fn, q_tm1, a_tm1, r_t, discount_t, q_t)
    targets = lambda_returns(
        r_t, discount_t, jnp.max(q_t, axis=-1), lambda_,
        truncated_t=truncated_t, valid_t=valid_t, stop_target_gradients=stop_target_gradients,
    )
    td = targets - _select(q_tm1, a_tm1)
    return td if valid_t is None else jnp.where(jnp.asarray(valid_t).astype(bool), td, 0.0)


def discounted_cumulative_reward(
    terminal: ArrayLike,
    reward: ArrayLike,
    discount: float,
    final_reward: ArrayLike = 0.0,
    horizon: int = 0,
) -> Array:
    """TensorForce's `discounted_cumulative_reward` (Model.tf_discounted_cumulative_reward, 0.3.x).

    Over a flat time-major batch of transitions with several episodes (`terminal` marks the
    last step of each):

        R_i = Σ_{k<m_i} γ^k·r_{i+k} + [no terminal in i..N−1]·γ^{N−i}·final_reward

    with m_i the steps left in i's episode, capped at `horizon` (0 = no cap). As in TensorForce,
    `final_reward` (the bootstrap for an unfinished last episode) is discounted by its full
    distance and not cut by the horizon, and is ignored when `horizon == 1`.
    Doc example: r=[2,1,0,.5,1,−1], terminal=[F,F,F,F,T,F], γ=.95, final_reward=100, horizon=3
    gives [2.95, 1.45, 1.38, 1.45, 1.0, 94.0].

    Args:
      terminal: `[N, ...]` bool (or 0/1) episode ends.
      reward: `[N, ...]` float rewards.
      discount: γ, a Python float or scalar array.
      final_reward: scalar or `[...]` value appended after the last step if it is not terminal.
      horizon: Python int >= 0, the n of the n-step sum (0 = until the episode ends).
    """
    fn = "discounted_cumulative_reward"
    reward = check_array("reward", reward, min_rank=1, fn=fn)
    terminal = check_array("terminal", terminal, kind="bool_or_numeric", shape=reward.shape, fn=fn)
    if not isinstance(horizon, int) or horizon < 0:
        raise ValueError(f"{fn}: argument `horizon` must be a Python int >= 0, got {horizon!r}")
    check_static_range(fn, "discount", discount, 0.0, 1.0)
    gamma = check_array("discount", discount, kind="numeric", rank=0, fn=fn).astype(reward.dtype)
    final = check_broadcastable(fn, "final_reward", check_array("final_reward", final_reward, fn=fn), reward.shape[1:])
    ends = terminal.astype(reward.dtype)
    size = reward.shape[0]
    inside = gamma * (1.0 - ends)
    with_final = horizon != 1
    if with_final:
        # One scan for both sums: the rewards, and γ^(N−i) for steps whose episode is still
        # running at the end of the batch (the weight of `final_reward`).
        is_last = _time_index(reward) == size - 1
        both = jnp.stack([reward, jnp.where(is_last, inside, 0.0)], axis=-1)
        totals, reach = jnp.moveaxis(_backward_recursion(both, inside[..., None]), -1, 0)
    else:
        totals = _backward_recursion(reward, inside)
    if 0 < horizon < size:
        # Remove what lies beyond the horizon when that part is still in the same episode.
        later = jnp.concatenate([totals[horizon:], jnp.zeros_like(totals[:horizon])], axis=0)
        totals = totals - _no_end_within(ends, horizon) * gamma**horizon * later
    return totals + reach * final if with_final else totals


def _no_end_within(ends: Array, horizon: int) -> Array:
    """1 where no terminal lies in steps i..i+horizon−1 (via cumulative counts)."""
    counts = jnp.cumsum(ends, axis=0)
    padded = jnp.concatenate([jnp.zeros_like(counts[:1]), counts], axis=0)
    upper = jnp.minimum(_time_index(ends) + horizon, ends.shape[0])
    window = jnp.take_along_axis(padded, jnp.broadcast_to(upper, ends.shape), axis=0) - padded[:-1]
    return (window == 0).astype(ends.dtype)


def agentnet_end_indicator(is_alive: ArrayLike, force_end_at_t_max: bool = False) -> Array:
    """AgentNet's `get_end_indicator` (B8), `[batch, tick]` layout.

        end[b, t] = alive[b, t] ∧ ¬alive[b, t+1]  (t < T−1)
        end[b, T−1] = force_end_at_t_max ∧ no earlier end in row b

    Returns a float `[batch, tick]` array of 0/1.
    """
    fn = "agentnet_end_indicator"
    alive = check_array("is_alive", is_alive, kind="bool_or_numeric", rank=2, fn=fn).astype(jnp.float32)
    ends = (alive[:, :-1] - alive[:, 1:] == 1.0).astype(jnp.float32)
    if force_end_at_t_max:
        last = (jnp.sum(ends, axis=1, keepdims=True) == 0).astype(jnp.float32)
    else:
        last = jnp.zeros_like(alive[:, :1])
    return jnp.concatenate([ends, last], axis=1)


def agentnet_n_step_reference(
    state_values: ArrayLike,
    rewards: ArrayLike,
    is_alive: ArrayLike | str | None = None,
    n_steps: int | None = None,
    gamma_or_gammas: ArrayLike = 0.99,
    crop_last: bool = True,
    state_values_after_end: ArrayLike | str | None = None,
    end_at_tmax: bool = False,
    force_n_step: bool = False,
) -> Array:
    """AgentNet's blocked n-step value reference (`get_n_step_value_reference`, B5/B6).

    Layout `[batch, tick]`. Going backwards in time,

        ref_t = r_t                          if tick t ends the session (`agentnet_end_indicator`)
        ref_t = r_t + γ_t·V_{t+1}            on "bootstrap" ticks
        ref_t = r_t + γ_t·ref_{t+1}          otherwise (ref after the last tick is 0)

    Bootstrap ticks are every n-th tick counted from the last one (from the pre-last one when
    `crop_last`), or only that tick when `n_steps is None` (whole-session returns): blocks of
    1..n steps, not a sliding window (Mnih et al. 2016, arXiv:1602.01783). `V_{t+1}` after the
    last tick is `state_values_after_end` (zeros by default). With `crop_last`, ref[:, −1] =
    V[:, −1]. As in AgentNet, with `crop_last` and n ≥ 3 the pre-last tick sums r_{T−2} + γ·r_{T−1}
    without a bootstrap. `force_n_step` is accepted for compatibility: AgentNet's 1-step fast path
    computes the same numbers.

    Args:
      state_values: `[batch, tick]` V(s_t) (for Q-learning: the target V(s)).
      rewards: `[batch, tick]`.
      is_alive: `[batch, tick]` 1 while the session runs; None or "always" = all ones.
      n_steps: block length (Python int >= 1) or None for whole sessions.
      gamma_or_gammas: scalar, `[batch]` or `[batch, tick]` discounts.
      crop_last: see above.
      state_values_after_end: `[batch]` or `[batch, 1]`; None or "zeros" = 0.
      end_at_tmax: force a session end at the last tick when none happened earlier.
    """
    del force_n_step
    return _agentnet_reference("agentnet_n_step_reference", state_values, rewards, is_alive, n_steps,
                               gamma_or_gammas, crop_last, state_values_after_end, end_at_tmax)


def _agentnet_reference(fn: str, state_values: ArrayLike, rewards: ArrayLike, is_alive: ArrayLike | str | None,
                        n_steps: int | None, gamma_or_gammas: ArrayLike, crop_last: bool,
                        state_values_after_end: ArrayLike | str | None, end_at_tmax: bool,
                        n_steps_name: str = "n_steps", after_end_name: str = "state_values_after_end") -> Array:
    """`agentnet_n_step_reference` for the objective `fn` that computes it (`fnrl.value_learning`):
    errors name `fn` and its own arguments, `n_steps_name` and `after_end_name` for the block
    length and the values after the end."""
    values = check_array("state_values", state_values, rank=2, fn=fn)
    rewards = check_array("rewards", rewards, rank=2, fn=fn)
    check_same_shape(fn, state_values=values, rewards=rewards)
    if n_steps is not None and (not isinstance(n_steps, int) or n_steps < 1):
        raise ValueError(f"{fn}: argument `{n_steps_name}` must be None or a Python int >= 1, got {n_steps!r}")
    batch, ticks = values.shape
    alive = _agentnet_alive(fn, is_alive, values.shape)
    gamma = _agentnet_gammas(fn, gamma_or_gammas, values.shape)
    after_end = _agentnet_after_end(fn, after_end_name, state_values_after_end, batch, values.dtype)
    next_values = jnp.concatenate([values[:, 1:], after_end[:, None]], axis=1)
    if n_steps is None:
        bootstrap = jnp.arange(ticks) == ticks - 1 - int(crop_last)
    else:
        # Blocks are anchored at the last tick (the pre-last one with crop_last).
        bootstrap = (ticks - 1 - jnp.arange(ticks) + int(crop_last)) % n_steps == 0
    base = jnp.where(bootstrap, rewards + gamma * next_values, rewards)
    coef = jnp.where(bootstrap, 0.0, gamma)
    if alive is not None or end_at_tmax:
        ends = agentnet_end_indicator(_agentnet_alive_or_ones(alive, values.shape), end_at_tmax) > 0
        base, coef = jnp.where(ends, rewards, base), jnp.where(ends, 0.0, coef)
    ref = _backward_recursion(base.T, jnp.broadcast_to(coef, (coef.shape[0], ticks)).T).T
    if crop_last:
        ref = ref.at[:, -1].set(values[:, -1])
    return ref


def _agentnet_alive_or_ones(alive: Array | None, shape) -> Array:
    return jnp.ones(shape, jnp.float32) if alive is None else alive


def _agentnet_alive(fn: str, is_alive, shape) -> Array | None:
    """The checked `is_alive` as floats, or None when every session is always alive."""
    if is_alive is None or (isinstance(is_alive, str) and is_alive == "always"):
        return None
    alive = check_array("is_alive", is_alive, kind="bool_or_numeric", rank=2, fn=fn)
    if alive.shape != tuple(shape):
        raise ValueError(f"{fn}: argument `is_alive` must have shape {tuple(shape)}, got {alive.shape}")
    return alive.astype(jnp.float32)


def _agentnet_gammas(fn: str, gamma_or_gammas, shape) -> Array:
    gamma = check_array("gamma_or_gammas", gamma_or_gammas, rank=(0, 1, 2), fn=fn)
    if gamma.ndim == 1:
        if gamma.shape[0] != shape[0]:
            raise ValueError(
                f"{fn}: argument `gamma_or_gammas` of rank 1 must have shape ({shape[0]},) [batch], "
                f"got {gamma.shape}"
            )
        gamma = gamma[:, None]
    check_broadcastable(fn, "gamma_or_gammas", gamma, shape)
    # Kept in its own broadcastable shape (rank 2): a scalar discount stays one number per tick.
    return gamma.reshape((1, 1)) if gamma.ndim == 0 else gamma


def _agentnet_after_end(fn: str, name: str, after_end, batch: int, dtype) -> Array:
    if after_end is None or (isinstance(after_end, str) and after_end == "zeros"):
        return jnp.zeros((batch,), dtype)
    arr = check_array(name, after_end, rank=(1, 2), fn=fn)
    if arr.ndim == 2:
        if arr.shape[1] != 1:
            raise ValueError(f"{fn}: argument `{name}` must be [batch] or [batch, 1], got {arr.shape}")
        arr = arr[:, 0]
    return check_broadcastable(fn, name, arr, (batch,))
