"""Value-learning objectives: TD errors, state-value targets, regression losses, distributional
losses (C51, quantile regression), NAF and DQfD's large-margin loss.

Conventions (see DESIGN.md):
- Each function handles one transition and batches by broadcasting over leading dimensions.
  Q-values put the action axis last, `[..., A]`; actions are integer arrays `[...]` (the
  q-values' shape without the action axis, called the batch shape below); per-action
  distributions put the atom / quantile axis last, `[..., A, N]`.
- Rewards and discounts broadcast to the batch shape (a Python scalar discount is fine), with
  `discount_t = gamma * (1 - terminated_t)`.
- TD functions return `target - prediction`. With `stop_target_gradients=True` (the default) the
  target is wrapped in `lax.stop_gradient`, so gradients reach only the prediction
  (semi-gradient TD); with False they flow into the target too (residual gradient).
- Action ids cannot be range-checked at trace time: an out-of-range id (negative included)
  selects NaN, so a bad index fails loudly instead of wrapping around.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fnrl._validation import check_array, check_broadcastable, check_static_range
from fnrl.returns import _agentnet_reference, n_step_returns
from fnrl.types import Array, ArrayLike

# --------------------------------------------------------------------------------------------
# Private checks and plumbing shared by the functions below.
# --------------------------------------------------------------------------------------------


def _fail(fn: str, message: str) -> None:
    raise ValueError(f"{fn}: {message}")


def _check_positive(fn: str, name: str, value: ArrayLike) -> None:
    """Checks a static number is > 0 (traced values cannot be checked)."""
    if isinstance(value, (int, float, np.number)) and not value > 0:
        _fail(fn, f"argument `{name}` must be > 0, got {value}")


def _check_static_int(fn: str, name: str, value: int) -> None:
    """Checks a static Python int >= 1 (a size or step count fixed at trace time)."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        _fail(fn, f"argument `{name}` must be a static Python int >= 1, got {value!r}")


def _check_q_and_actions(fn: str, q_name: str, q: ArrayLike, a_name: str, a: ArrayLike,
                         event_rank: int = 1) -> tuple[Array, Array]:
    """Checks q `[..., A, *event]` (float) and actions `[...]` (integer) agree on the batch."""
    q = check_array(q_name, q, kind="float", min_rank=event_rank, fn=fn)
    a = check_array(a_name, a, kind="int", fn=fn)
    batch = q.shape[: q.ndim - event_rank]
    if a.shape != batch:
        _fail(fn, f"argument `{a_name}` must have shape {batch} (the shape of `{q_name}` "
                  f"without its trailing {event_rank} axes), got {a.shape}")
    return q, a


def _check_shape(fn: str, name: str, x: ArrayLike, shape: Sequence[int], like: str,
                 kind: str = "float") -> Array:
    """Checks `x` has exactly `shape` (that of argument `like`)."""
    x = check_array(name, x, kind=kind, fn=fn)
    if x.shape != tuple(shape):
        _fail(fn, f"argument `{name}` must have the shape of `{like}` {tuple(shape)}, got {x.shape}")
    return x


def _check_step(fn: str, r_t: ArrayLike, discount_t: ArrayLike, batch: Sequence[int],
                dtype: jnp.dtype) -> tuple[Array, Array]:
    """Checks rewards and discounts are numeric and broadcast to the batch shape."""
    r_t = check_array("r_t", r_t, kind="numeric", fn=fn).astype(dtype)
    discount_t = check_array("discount_t", discount_t, kind="numeric", fn=fn).astype(dtype)
    r_t = check_broadcastable(fn, "r_t", r_t, batch)
    discount_t = check_broadcastable(fn, "discount_t", discount_t, batch)
    return r_t, discount_t


def _select(q: Array, a: Array) -> Array:
    """q[..., a] for q `[..., A]`; out-of-range ids give NaN."""
    picked = jnp.take_along_axis(q, a[..., None], axis=-1, mode="fill", fill_value=jnp.nan,
                                 wrap_negative_indices=False)
    return picked[..., 0]


def _select_distribution(dist: Array, a: Array) -> Array:
    """dist[..., a, :] for dist `[..., A, N]`; out-of-range ids give NaN."""
    picked = jnp.take_along_axis(dist, a[..., None, None], axis=-2, mode="fill",
                                 fill_value=jnp.nan, wrap_negative_indices=False)
    return picked[..., 0, :]


def _maybe_stop(x: Array, stop: bool) -> Array:
    return jax.lax.stop_gradient(x) if stop else x


def _td_from_state_value(q_tm1: Array, a_tm1: Array, r_t: Array, discount_t: Array, v_t: Array,
                         stop: bool) -> Array:
    """r_t + discount_t * v_t - q_tm1[a_tm1], the core shared by all one-step Q targets."""
    target = _maybe_stop(r_t + discount_t * v_t, stop)
    return target - _select(q_tm1, a_tm1)


# --------------------------------------------------------------------------------------------
# Action values.
# --------------------------------------------------------------------------------------------


def select_action_values(q: ArrayLike, a: ArrayLike) -> Array:
    """Selects the values of the taken actions: `out[...] = q[..., a[...]]`.

    AgentNet's `get_values_for_actions` (`[batch, tick, action]` -> `[batch, tick]`) for any
    leading shape. Gradients flow into `q` at the selected entries.

    Args:
      q: values for every action, float `[..., A]`.
      a: action ids, integer `[...]` (the shape of `q` without its last axis).

    Returns:
      `[...]` values; NaN where an id lies outside `[0, A)`.
    """
    q, a = _check_q_and_actions("select_action_values", "q", q, "a", a)
    return _select(q, a)


# --------------------------------------------------------------------------------------------
# One-step TD errors (target - prediction).
# --------------------------------------------------------------------------------------------


def td_error(v_tm1: ArrayLike, r_t: ArrayLike, discount_t: ArrayLike, v_t: ArrayLike,
             stop_target_gradients: bool = True) -> Array:
    """TD(0) error of a state-value estimate (Sutton 1988):

        delta = r_t + discount_t * v_t - v_tm1.

    Args:
      v_tm1: V(s_{t-1}), float `[...]`; fixes the output shape.
      r_t, discount_t: numeric, broadcastable to `v_tm1`'s shape.
      v_t: V(s_t), float, broadcastable to `v_tm1`'s shape.
      stop_target_gradients: wrap the target in `lax.stop_gradient`.
    """
    fn = "td_error"
    v_tm1 = check_array("v_tm1", v_tm1, kind="float", fn=fn)
    v_t = check_broadcastable(fn, "v_t", check_array("v_t", v_t, kind="float", fn=fn), v_tm1.shape)
    r_t, discount_t = _check_step(fn, r_t, discount_t, v_tm1.shape, v_tm1.dtype)
    target = _maybe_stop(r_t + discount_t * v_t, stop_target_gradients)
    return target - v_tm1


def q_learning(q_tm1: ArrayLike, a_tm1: ArrayLike, r_t: ArrayLike, discount_t: ArrayLike,
               q_t: ArrayLike, stop_target_gradients: bool = True) -> Array:
    """Q-learning TD error (Watkins 1989; DQN: Mnih et al. 2015, with `q_t` from a target net):

        delta = r_t + discount_t * max_a q_t[a] - q_tm1[a_tm1].

    Args:
      q_tm1: Q(s_{t-1}, .), float `[..., A]`.
      a_tm1: taken actions, integer `[...]`.
      r_t, discount_t: numeric, broadcastable to `[...]`.
      q_t: Q(s_t, .), float `[..., A]` (same shape as `q_tm1`).
      stop_target_gradients: wrap the target in `lax.stop_gradient`.

    Returns:
      TD errors `[...]`.
    """
    fn = "q_learning"
    q_tm1, a_tm1 = _check_q_and_actions(fn, "q_tm1", q_tm1, "a_tm1", a_tm1)
    q_t = _check_shape(fn, "q_t", q_t, q_tm1.shape, "q_tm1")
    r_t, discount_t = _check_step(fn, r_t, discount_t, a_tm1.shape, q_tm1.dtype)
    v_t = jnp.max(q_t, axis=-1)
    return _td_from_state_value(q_tm1, a_tm1, r_t, discount_t, v_t, stop_target_gradients)


def double_q_learning(q_tm1: ArrayLike, a_tm1: ArrayLike, r_t: ArrayLike, discount_t: ArrayLike,
                      q_t_value: ArrayLike, q_t_selector: ArrayLike,
                      stop_target_gradients: bool = True) -> Array:
    """Double Q-learning TD error (van Hasselt et al. 2016, "Deep RL with Double Q-learning"):

        a* = argmax_a q_t_selector[a];   delta = r_t + discount_t * q_t_value[a*] - q_tm1[a_tm1].

    In Double DQN the selector is the online net and the value net the target net, which
    decouples choosing the bootstrap action from evaluating it (less maximisation bias).

    Args:
      q_tm1: Q(s_{t-1}, .), float `[..., A]`.
      a_tm1: taken actions, integer `[...]`.
      r_t, discount_t: numeric, broadcastable to `[...]`.
      q_t_value: Q(s_t, .) evaluating the chosen action, float `[..., A]`.
      q_t_selector: Q(s_t, .) choosing the action, float `[..., A]`.
      stop_target_gradients: wrap the target in `lax.stop_gradient`.
    """
    fn = "double_q_learning"
    q_tm1, a_tm1 = _check_q_and_actions(fn, "q_tm1", q_tm1, "a_tm1", a_tm1)
    q_t_value = _check_shape(fn, "q_t_value", q_t_value, q_tm1.shape, "q_tm1")
    q_t_selector = _check_shape(fn, "q_t_selector", q_t_selector, q_tm1.shape, "q_tm1")
    r_t, discount_t = _check_step(fn, r_t, discount_t, a_tm1.shape, q_tm1.dtype)
    v_t = _select(q_t_value, jnp.argmax(q_t_selector, axis=-1))
    return _td_from_state_value(q_tm1, a_tm1, r_t, discount_t, v_t, stop_target_gradients)


def sarsa(q_tm1: ArrayLike, a_tm1: ArrayLike, r_t: ArrayLike, discount_t: ArrayLike,
          q_t: ArrayLike, a_t: ArrayLike, stop_target_gradients: bool = True) -> Array:
    """SARSA TD error (Rummery & Niranjan 1994), bootstrapping on the next *taken* action:

        delta = r_t + discount_t * q_t[a_t] - q_tm1[a_tm1].

    Args:
      q_tm1: Q(s_{t-1}, .), float `[..., A]`.
      a_tm1: taken actions, integer `[...]`.
      r_t, discount_t: numeric, broadcastable to `[...]`.
      q_t: Q(s_t, .), float `[..., A]`.
      a_t: next taken actions, integer `[...]`.
      stop_target_gradients: wrap the target in `lax.stop_gradient`.
    """
    fn = "sarsa"
    q_tm1, a_tm1 = _check_q_and_actions(fn, "q_tm1", q_tm1, "a_tm1", a_tm1)
    q_t = _check_shape(fn, "q_t", q_t, q_tm1.shape, "q_tm1")
    a_t = _check_shape(fn, "a_t", a_t, a_tm1.shape, "a_tm1", kind="int")
    r_t, discount_t = _check_step(fn, r_t, discount_t, a_tm1.shape, q_tm1.dtype)
    return _td_from_state_value(q_tm1, a_tm1, r_t, discount_t, _select(q_t, a_t),
                                stop_target_gradients)


def expected_sarsa(q_tm1: ArrayLike, a_tm1: ArrayLike, r_t: ArrayLike, discount_t: ArrayLike,
                   q_t: ArrayLike, probs_a_t: ArrayLike,
                   stop_target_gradients: bool = True) -> Array:
    """Expected SARSA TD error (van Seijen et al. 2009), bootstrapping on E_{a~pi} Q(s_t, a):

        delta = r_t + discount_t * sum_a probs_a_t[a] q_t[a] - q_tm1[a_tm1].

    Args:
      q_tm1: Q(s_{t-1}, .), float `[..., A]`.
      a_tm1: taken actions, integer `[...]`.
      r_t, discount_t: numeric, broadcastable to `[...]`.
      q_t: Q(s_t, .), float `[..., A]`.
      probs_a_t: pi(. | s_t), float `[..., A]` (rows are assumed to sum to 1).
      stop_target_gradients: wrap the target (including `probs_a_t`) in `lax.stop_gradient`.
    """
    fn = "expected_sarsa"
    q_tm1, a_tm1 = _check_q_and_actions(fn, "q_tm1", q_tm1, "a_tm1", a_tm1)
    q_t = _check_shape(fn, "q_t", q_t, q_tm1.shape, "q_tm1")
    probs_a_t = _check_shape(fn, "probs_a_t", probs_a_t, q_tm1.shape, "q_tm1")
    r_t, discount_t = _check_step(fn, r_t, discount_t, a_tm1.shape, q_tm1.dtype)
    v_t = jnp.sum(probs_a_t * q_t, axis=-1)
    return _td_from_state_value(q_tm1, a_tm1, r_t, discount_t, v_t, stop_target_gradients)


def n_step_q_learning(q_tm1: ArrayLike, a_tm1: ArrayLike, r_t: ArrayLike, discount_t: ArrayLike,
                      q_t: ArrayLike, n: int, q_t_selector: ArrayLike | None = None, *,
                      truncated_t: ArrayLike | None = None, valid_t: ArrayLike | None = None,
                      stop_target_gradients: bool = True) -> Array:
    """n-step Q-learning TD errors over a time-major sequence (Sutton & Barto 2018, ch. 7; the
    asynchronous n-step Q-learning of Mnih et al. 2016 uses the same bootstrapped target):

        delta_i = G_i - q_tm1[i, a_tm1[i]],
        G_i = sum_{k<h} (prod_{j<k} d_{i+j}) r_{i+k} + (prod_{j<h} d_{i+j}) v_t[i+h-1],
        h = min(n, T - i),   v_t[i] = max_a q_t[i, a]

    (`fnrl.returns.n_step_returns`: a sliding window, shortened at the end of the sequence).
    With `q_t_selector` the bootstrap is double-Q: v_t[i] = q_t[i, argmax_a q_t_selector[i, a]].
    Episode boundaries follow `fnrl.returns`: a truncated step ends the windows that reach it
    (bootstrapping from its own v_t), and an invalid step has a zero TD error (no gradient).

    Args:
      q_tm1: Q(s_i, .) for the T steps, float `[T, ..., A]`.
      a_tm1: taken actions, integer `[T, ...]`.
      r_t, discount_t: numeric, broadcastable to `[T, ...]`; entry i belongs to step i -> i+1.
      q_t: Q(s_{i+1}, .), float `[T, ..., A]` (usually a target net's).
      n: number of steps, a static Python int >= 1.
      q_t_selector: optional Q(s_{i+1}, .) choosing the bootstrap action, float `[T, ..., A]`.
      truncated_t, valid_t: optional boundary flags `[T, ...]`, as in `fnrl.returns`.
      stop_target_gradients: wrap the targets in `lax.stop_gradient`.

    Returns:
      TD errors `[T, ...]`.
    """
    fn = "n_step_q_learning"
    q_tm1 = check_array("q_tm1", q_tm1, kind="float", min_rank=2, fn=fn)
    q_tm1, a_tm1 = _check_q_and_actions(fn, "q_tm1", q_tm1, "a_tm1", a_tm1)
    q_t = _check_shape(fn, "q_t", q_t, q_tm1.shape, "q_tm1")
    _check_static_int(fn, "n", n)
    r_t, discount_t = _check_step(fn, r_t, discount_t, a_tm1.shape, q_tm1.dtype)
    if q_t_selector is None:
        v_t = jnp.max(q_t, axis=-1)
    else:
        q_t_selector = _check_shape(fn, "q_t_selector", q_t_selector, q_tm1.shape, "q_tm1")
        v_t = _select(q_t, jnp.argmax(q_t_selector, axis=-1))
    target = n_step_returns(r_t, discount_t, v_t, int(n), truncated_t=truncated_t, valid_t=valid_t)
    td = _maybe_stop(target, stop_target_gradients) - _select(q_tm1, a_tm1)
    if valid_t is None:
        return td
    return jnp.where(jnp.asarray(valid_t, bool), td, 0.0)


# --------------------------------------------------------------------------------------------
# State-value targets V(s') (AgentNet's `state_values_target`).
#
# AgentNet's objectives bootstrap on V(s') = max_a Q_target(s', a) unless the user passes
# `state_values_target`; these helpers compute the documented alternatives. Knowledge transfer
# (a teacher network) needs no helper of its own: evaluate the teacher's parameters and reduce
# its outputs with any of these (or pass the teacher's V(s') directly); the value objectives
# stop gradients through their targets, so the teacher is never trained by the student's loss.
# --------------------------------------------------------------------------------------------


def max_state_value(q: ArrayLike) -> Array:
    """Greedy state value V(s) = max_a Q(s, a) (Q-learning's bootstrap), `[..., A]` -> `[...]`."""
    q = check_array("q", q, kind="float", min_rank=1, fn="max_state_value")
    return jnp.max(q, axis=-1)


def double_q_state_value(q_selector: ArrayLike, q_value: ArrayLike) -> Array:
    """Double-Q state value (van Hasselt et al. 2016), `[..., A]` -> `[...]`:

        V(s) = q_value[argmax_a q_selector[a]].

    AgentNet's recipe passes the *online* net as selector and the *target* (old) net as value.
    """
    fn = "double_q_state_value"
    q_selector = check_array("q_selector", q_selector, kind="float", min_rank=1, fn=fn)
    q_value = _check_shape(fn, "q_value", q_value, q_selector.shape, "q_selector")
    return _select(q_value, jnp.argmax(q_selector, axis=-1))


def expected_state_value(q: ArrayLike, probs: ArrayLike) -> Array:
    """Expected-SARSA state value (van Seijen et al. 2009), `[..., A]` -> `[...]`:

        V(s) = sum_a pi(a | s) Q(s, a),   with `probs` = pi(. | s).
    """
    fn = "expected_state_value"
    q = check_array("q", q, kind="float", min_rank=1, fn=fn)
    probs = _check_shape(fn, "probs", probs, q.shape, "q")
    return jnp.sum(probs * q, axis=-1)


def boltzmann_state_value(q: ArrayLike, temperature: ArrayLike) -> Array:
    """Boltzmann (softmax-weighted) state value, `[..., A]` -> `[...]`:

        V(s) = sum_a softmax(Q(s, .) / tau)_a Q(s, a).

    Tends to max_a Q as tau -> 0 and to the mean over actions as tau -> inf. Not a non-expansion
    (Asadi & Littman 2017), which is what motivates mellowmax.

    Args:
      q: float `[..., A]`.
      temperature: tau > 0, a scalar or numeric array broadcastable to `[...]`.
    """
    fn = "boltzmann_state_value"
    q = check_array("q", q, kind="float", min_rank=1, fn=fn)
    _check_positive(fn, "temperature", temperature)
    tau = check_array("temperature", temperature, kind="numeric", fn=fn).astype(q.dtype)
    tau = check_broadcastable(fn, "temperature", tau, q.shape[:-1])
    weights = jax.nn.softmax(q / tau[..., None], axis=-1)
    return jnp.sum(weights * q, axis=-1)


def mellowmax_state_value(q: ArrayLike, omega: ArrayLike) -> Array:
    """Mellowmax state value (Asadi & Littman 2017, "An Alternative Softmax Operator for RL"):

        V(s) = (1 / omega) * log( (1/A) sum_a exp(omega Q(s, a)) ),

    computed as (logsumexp(omega Q) - log A) / omega so large omega Q cannot overflow. A
    non-expansion that tends to max_a Q as omega -> inf and to the mean as omega -> 0
    (a negative omega gives the matching soft minimum).

    Args:
      q: float `[..., A]`.
      omega: nonzero scalar or numeric array broadcastable to `[...]`.
    """
    fn = "mellowmax_state_value"
    q = check_array("q", q, kind="float", min_rank=1, fn=fn)
    if isinstance(omega, (int, float, np.number)) and omega == 0:
        _fail(fn, "argument `omega` must be nonzero, got 0")
    omega = check_array("omega", omega, kind="numeric", fn=fn).astype(q.dtype)
    omega = check_broadcastable(fn, "omega", omega, q.shape[:-1])
    log_mean = jax.nn.logsumexp(omega[..., None] * q, axis=-1) - jnp.log(q.shape[-1])
    return log_mean / omega


# --------------------------------------------------------------------------------------------
# Regression losses of a TD error x (AgentNet's `loss_function`, TensorForce's `huber_loss`).
# --------------------------------------------------------------------------------------------


def l2_loss(x: ArrayLike) -> Array:
    """Elementwise squared loss 0.5 * x**2 (its gradient is x)."""
    x = check_array("x", x, kind="float", fn="l2_loss")
    return 0.5 * jnp.square(x)


def huber_loss(x: ArrayLike, delta: float = 1.0) -> Array:
    """Elementwise Huber loss (Huber 1964), TensorForce's `huber_loss` threshold:

        L(x) = 0.5 x**2 if |x| <= delta else delta (|x| - 0.5 delta).

    Quadratic near 0, linear beyond `delta`: the gradient is x clipped to [-delta, delta], which
    is DQN's error clipping (Mnih et al. 2015).

    Args:
      x: float array (e.g. TD errors).
      delta: threshold, > 0.
    """
    fn = "huber_loss"
    x = check_array("x", x, kind="float", fn=fn)
    _check_positive(fn, "delta", delta)
    abs_x = jnp.abs(x)
    # Splitting |x| into a clipped and a residual part keeps the gradient exact on both sides.
    quadratic = jnp.minimum(abs_x, delta)
    linear = abs_x - quadratic
    return 0.5 * jnp.square(quadratic) + delta * linear


def absolute_loss(x: ArrayLike) -> Array:
    """Elementwise absolute loss |x| (AgentNet's MAE option)."""
    x = check_array("x", x, kind="float", fn="absolute_loss")
    return jnp.abs(x)


# --------------------------------------------------------------------------------------------
# Categorical distributional RL (C51: Bellemare, Dabney & Munos 2017).
# --------------------------------------------------------------------------------------------


def categorical_l2_project(z_p: ArrayLike, probs: ArrayLike, z_q: ArrayLike) -> Array:
    """Projects sum_i probs_i delta(z_p_i) onto the support z_q (C51's projection, Bellemare et
    al. 2017, eq. 7; the Cramer / L2 projection of Rowland et al. 2018):

        out_j = sum_i probs_i * clip(1 - |c_i - z_j| / g_j(c_i), 0, 1),
        c_i = clip(z_p_i, z_0, z_{M-1}),

    where g_j(c) is the gap from z_j to its neighbour on c's side. Each atom's mass is split
    between its two neighbouring support points in proportion to proximity, so total mass is
    preserved, and so is the mean when every atom lies inside [z_0, z_{M-1}]. On an evenly spaced
    support this is exactly C51's projection; uneven supports work too.

    Args:
      z_p: source atoms, float `[..., N]`, broadcastable to `probs`' shape.
      probs: source probabilities, float `[..., N]`.
      z_q: target support, float `[M]`, M >= 2, strictly increasing (not checked: it may be
        traced).

    Returns:
      probabilities `[..., M]` on `z_q`.
    """
    fn = "categorical_l2_project"
    probs = check_array("probs", probs, kind="float", min_rank=1, fn=fn)
    z_p = check_broadcastable(fn, "z_p", check_array("z_p", z_p, kind="float", min_rank=1, fn=fn),
                              probs.shape)
    z_q = check_array("z_q", z_q, kind="float", rank=1, fn=fn)
    if z_q.shape[0] < 2:
        _fail(fn, f"argument `z_q` must hold at least 2 atoms, got shape {z_q.shape}")
    gaps = jnp.diff(z_q)
    # The outer gaps only meet clipped atoms sitting exactly on the edge, so any positive value
    # works there; reusing the neighbouring gap avoids a division by zero.
    gap_below = jnp.concatenate([gaps[:1], gaps])
    gap_above = jnp.concatenate([gaps, gaps[-1:]])
    offset = jnp.clip(z_p, z_q[0], z_q[-1])[..., :, None] - z_q  # [..., N, M]
    gap = jnp.where(offset >= 0, gap_above, gap_below)
    weights = jnp.clip(1.0 - jnp.abs(offset) / gap, 0.0, 1.0)
    return jnp.sum(probs[..., :, None] * weights, axis=-2)


def _check_distributional(fn: str, dist_tm1: ArrayLike, a_tm1: ArrayLike, dist_t: ArrayLike,
                          names: tuple[str, str]) -> tuple[Array, Array, Array]:
    """Checks per-action distributions `[..., A, N]` at t-1 and t and actions `[...]`."""
    dist_tm1, a_tm1 = _check_q_and_actions(fn, names[0], dist_tm1, "a_tm1", a_tm1, event_rank=2)
    dist_t = check_array(names[1], dist_t, kind="float", min_rank=2, fn=fn)
    if dist_t.shape[:-1] != dist_tm1.shape[:-1]:
        _fail(fn, f"argument `{names[1]}` must have shape {dist_tm1.shape[:-1]} + (atoms,) like "
                  f"`{names[0]}`, got {dist_t.shape}")
    return dist_tm1, a_tm1, dist_t


def _categorical_td_loss(atoms: Array, logits_tm1: Array, a_tm1: Array, r_t: Array,
                         discount_t: Array, logits_t: Array, a_t: Array, stop: bool) -> Array:
    """Cross-entropy of logits_tm1[a_tm1] against Phi(r + d z, softmax(logits_t[a_t]))."""
    target_z = r_t[..., None] + discount_t[..., None] * atoms
    target_probs = _select_distribution(jax.nn.softmax(logits_t, axis=-1), a_t)
    target = _maybe_stop(categorical_l2_project(target_z, target_probs, atoms), stop)
    log_probs = jax.nn.log_softmax(_select_distribution(logits_tm1, a_tm1), axis=-1)
    return -jnp.sum(target * log_probs, axis=-1)


def _check_categorical(fn: str, atoms: ArrayLike, logits_tm1: ArrayLike, a_tm1: ArrayLike,
                       r_t: ArrayLike, discount_t: ArrayLike, logits_t: ArrayLike
                       ) -> tuple[Array, Array, Array, Array, Array, Array]:
    """Checks C51 arguments: support `[N]`, logits `[..., A, N]`, actions and step `[...]`."""
    atoms = check_array("atoms", atoms, kind="float", rank=1, fn=fn)
    logits_tm1, a_tm1, logits_t = _check_distributional(
        fn, logits_tm1, a_tm1, logits_t, ("logits_tm1", "logits_t"))
    if logits_tm1.shape[-1] != atoms.shape[0] or logits_t.shape[-1] != atoms.shape[0]:
        _fail(fn, f"arguments `logits_tm1` {logits_tm1.shape} and `logits_t` {logits_t.shape} "
                  f"must end in the number of `atoms` ({atoms.shape[0]})")
    r_t, discount_t = _check_step(fn, r_t, discount_t, a_tm1.shape, logits_tm1.dtype)
    return atoms, logits_tm1, a_tm1, r_t, discount_t, logits_t


def categorical_q_learning(atoms: ArrayLike, logits_tm1: ArrayLike, a_tm1: ArrayLike,
                           r_t: ArrayLike, discount_t: ArrayLike, logits_t: ArrayLike,
                           stop_target_gradients: bool = True) -> Array:
    """C51 loss (Bellemare, Dabney & Munos 2017, "A Distributional Perspective on RL", alg. 1):

        p_t(a) = softmax(logits_t[a]),  a* = argmax_a sum_i p_t(a)_i z_i,
        m = Phi(r_t + discount_t z, p_t(a*)),   loss = -sum_i m_i log softmax(logits_tm1[a_tm1])_i,

    with Phi = `categorical_l2_project` back onto the support z = `atoms`.

    Args:
      atoms: the support z, float `[N]`, strictly increasing.
      logits_tm1: per-action logits at s_{t-1}, float `[..., A, N]`.
      a_tm1: taken actions, integer `[...]`.
      r_t, discount_t: numeric, broadcastable to `[...]`.
      logits_t: per-action logits at s_t (usually a target net's), float `[..., A, N]`.
      stop_target_gradients: wrap the projected target in `lax.stop_gradient`.

    Returns:
      cross-entropy losses `[...]` (not TD errors: minimise them directly).
    """
    atoms, logits_tm1, a_tm1, r_t, discount_t, logits_t = _check_categorical(
        "categorical_q_learning", atoms, logits_tm1, a_tm1, r_t, discount_t, logits_t)
    q_t = jnp.sum(jax.nn.softmax(logits_t, axis=-1) * atoms, axis=-1)
    return _categorical_td_loss(atoms, logits_tm1, a_tm1, r_t, discount_t, logits_t,
                                jnp.argmax(q_t, axis=-1), stop_target_gradients)


def categorical_double_q_learning(atoms: ArrayLike, logits_tm1: ArrayLike, a_tm1: ArrayLike,
                                  r_t: ArrayLike, discount_t: ArrayLike, logits_t: ArrayLike,
                                  q_t_selector: ArrayLike,
                                  stop_target_gradients: bool = True) -> Array:
    """C51 loss with a double-Q bootstrap action (Bellemare et al. 2017; van Hasselt et al. 2016;
    as in Rainbow, Hessel et al. 2018): identical to `categorical_q_learning` except that
    a* = argmax_a q_t_selector[a] (e.g. the online net's mean Q at s_t).

    Args:
      atoms, logits_tm1, a_tm1, r_t, discount_t, logits_t: as in `categorical_q_learning`.
      q_t_selector: float `[..., A]`, the Q-values that choose the bootstrap action.
      stop_target_gradients: wrap the projected target in `lax.stop_gradient`.
    """
    fn = "categorical_double_q_learning"
    atoms, logits_tm1, a_tm1, r_t, discount_t, logits_t = _check_categorical(
        fn, atoms, logits_tm1, a_tm1, r_t, discount_t, logits_t)
    q_t_selector = _check_shape(fn, "q_t_selector", q_t_selector, logits_t.shape[:-1],
                                "logits_t without its atom axis")
    return _categorical_td_loss(atoms, logits_tm1, a_tm1, r_t, discount_t, logits_t,
                                jnp.argmax(q_t_selector, axis=-1), stop_target_gradients)


# --------------------------------------------------------------------------------------------
# Quantile regression (QR-DQN: Dabney, Rowland, Bellemare & Munos 2018).
# --------------------------------------------------------------------------------------------


def quantile_regression_loss(dist_src: ArrayLike, tau_src: ArrayLike, dist_target: ArrayLike,
                             huber_param: float = 1.0,
                             stop_target_gradients: bool = True) -> Array:
    """Quantile Huber loss (Dabney et al. 2018, "Distributional RL with Quantile Regression",
    eqs. 9-10), summed over source quantiles and averaged over target samples:

        u_ij = dist_target_j - dist_src_i,
        loss = sum_i mean_j |tau_i - 1{u_ij < 0}| * L_k(u_ij) / k,

    with L_k = `huber_loss(., k)`; for k = 0 the plain quantile loss |tau_i - 1{u_ij < 0}| |u_ij|.
    Dividing by k follows the paper, so k = 1 matches the usual QR-DQN loss and the loss stays
    on the scale of |u| as k varies.

    Args:
      dist_src: predicted quantile values, float `[..., N]`.
      tau_src: their quantile midpoints tau_i, float, broadcastable to `dist_src`'s shape.
      dist_target: target samples, float `[..., M]` (same leading shape as `dist_src`).
      huber_param: k >= 0, a static Python number.
      stop_target_gradients: wrap `dist_target` in `lax.stop_gradient`.

    Returns:
      losses `[...]`.
    """
    fn = "quantile_regression_loss"
    dist_src = check_array("dist_src", dist_src, kind="float", min_rank=1, fn=fn)
    tau_src = check_broadcastable(
        fn, "tau_src", check_array("tau_src", tau_src, kind="float", fn=fn), dist_src.shape)
    dist_target = check_array("dist_target", dist_target, kind="float", min_rank=1, fn=fn)
    if dist_target.shape[:-1] != dist_src.shape[:-1]:
        _fail(fn, f"argument `dist_target` must have leading shape {dist_src.shape[:-1]} like "
                  f"`dist_src`, got {dist_target.shape}")
    if not isinstance(huber_param, (int, float, np.number)) or huber_param < 0:
        _fail(fn, f"argument `huber_param` must be a static number >= 0, got {huber_param!r}")
    dist_target = _maybe_stop(dist_target, stop_target_gradients)
    u = dist_target[..., None, :] - dist_src[..., :, None]  # [..., N, M]
    weight = jnp.abs(tau_src[..., :, None] - (u < 0).astype(u.dtype))
    if huber_param > 0:
        elementwise = huber_loss(u, huber_param) / huber_param
    else:
        elementwise = jnp.abs(u)
    return jnp.sum(jnp.mean(weight * elementwise, axis=-1), axis=-1)


def quantile_q_learning(dist_q_tm1: ArrayLike, tau_q_tm1: ArrayLike, a_tm1: ArrayLike,
                        r_t: ArrayLike, discount_t: ArrayLike, dist_q_t_selector: ArrayLike,
                        dist_q_t: ArrayLike, huber_param: float = 1.0,
                        stop_target_gradients: bool = True) -> Array:
    """QR-DQN loss (Dabney et al. 2018, alg. 1):

        a* = argmax_a mean_j dist_q_t_selector[a, j],
        target_j = r_t + discount_t * dist_q_t[a*, j],
        loss = quantile_regression_loss(dist_q_tm1[a_tm1], tau_q_tm1, target, huber_param).

    Passing the target net's quantiles as both `dist_q_t_selector` and `dist_q_t` is the paper's
    algorithm; the online net's as selector gives the double-Q variant.

    Args:
      dist_q_tm1: per-action quantile values at s_{t-1}, float `[..., A, N]`.
      tau_q_tm1: quantile midpoints (2i + 1) / (2N), float `[N]` or `[..., N]`.
      a_tm1: taken actions, integer `[...]`.
      r_t, discount_t: numeric, broadcastable to `[...]`.
      dist_q_t_selector: per-action quantiles at s_t choosing a*, float `[..., A, M]`.
      dist_q_t: per-action quantiles at s_t giving the target, float `[..., A, M]`.
      huber_param: k >= 0, a static Python number.
      stop_target_gradients: wrap the target in `lax.stop_gradient`.

    Returns:
      losses `[...]`.
    """
    fn = "quantile_q_learning"
    dist_q_tm1, a_tm1, dist_q_t = _check_distributional(
        fn, dist_q_tm1, a_tm1, dist_q_t, ("dist_q_tm1", "dist_q_t"))
    _, _, dist_q_t_selector = _check_distributional(
        fn, dist_q_tm1, a_tm1, dist_q_t_selector, ("dist_q_tm1", "dist_q_t_selector"))
    r_t, discount_t = _check_step(fn, r_t, discount_t, a_tm1.shape, dist_q_tm1.dtype)
    dist_src = _select_distribution(dist_q_tm1, a_tm1)
    tau_q_tm1 = check_broadcastable(
        fn, "tau_q_tm1", check_array("tau_q_tm1", tau_q_tm1, kind="float", fn=fn), dist_src.shape)
    a_star = jnp.argmax(jnp.mean(dist_q_t_selector, axis=-1), axis=-1)
    target = r_t[..., None] + discount_t[..., None] * _select_distribution(dist_q_t, a_star)
    return quantile_regression_loss(dist_src, tau_q_tm1, target, huber_param,
                                    stop_target_gradients)


# --------------------------------------------------------------------------------------------
# Normalized advantage functions (NAF: Gu, Lillicrap, Sutskever & Levine 2016).
# --------------------------------------------------------------------------------------------


def lower_triangular(flat: ArrayLike, dim: int) -> Array:
    """Builds NAF's lower-triangular L `[..., dim, dim]` from `[..., dim (dim + 1) / 2]` entries
    (AgentNet's `LowerTriangularLayer`; Gu et al. 2016, sec. 3.2).

    Entries fill the lower triangle row by row, (0,0), (1,0), (1,1), (2,0), ... (numpy's
    `tril_indices` order). Diagonal entries are exponentiated, as in the paper, so L has a
    positive diagonal and P = L L^T is positive definite; the upper triangle is zero.

    Args:
      flat: float `[..., dim (dim + 1) / 2]`.
      dim: the action dimension, a static Python int >= 1.
    """
    fn = "lower_triangular"
    _check_static_int(fn, "dim", dim)
    size = dim * (dim + 1) // 2
    flat = check_array("flat", flat, kind="float", min_rank=1, fn=fn)
    if flat.shape[-1] != size:
        _fail(fn, f"argument `flat` must end in dim * (dim + 1) / 2 = {size} entries, "
                  f"got shape {flat.shape}")
    rows, cols = np.tril_indices(dim)
    diag_pos = np.flatnonzero(rows == cols)
    # Exponentiate only the diagonal slots: exp of an unused large entry would overflow and
    # poison gradients through a `where`.
    flat = flat.at[..., diag_pos].set(jnp.exp(flat[..., diag_pos]))
    out = jnp.zeros(flat.shape[:-1] + (dim, dim), flat.dtype)
    return out.at[..., rows, cols].set(flat)


def naf_advantage(mu: ArrayLike, L: ArrayLike, action: ArrayLike) -> Array:
    """NAF advantage (Gu et al. 2016, eq. 5), maximal (zero) at u = mu:

        A(s, u) = -1/2 (u - mu)^T L L^T (u - mu) = -1/2 ||L^T (u - mu)||^2.

    Args:
      mu: the greedy action mu(s), float `[..., D]`.
      L: lower-triangular factor, float `[..., D, D]` (see `lower_triangular`).
      action: the action u, float `[..., D]`.

    Returns:
      advantages `[...]`, all <= 0.
    """
    fn = "naf_advantage"
    mu = check_array("mu", mu, kind="float", min_rank=1, fn=fn)
    L = _check_shape(fn, "L", L, mu.shape + mu.shape[-1:], "mu plus a trailing D axis")
    action = _check_shape(fn, "action", action, mu.shape, "mu")
    projected = jnp.einsum("...ji,...j->...i", L, action - mu)  # L^T (u - mu)
    return -0.5 * jnp.sum(jnp.square(projected), axis=-1)


def naf_q_value(v: ArrayLike, mu: ArrayLike, L: ArrayLike, action: ArrayLike) -> Array:
    """NAF action value Q(s, u) = V(s) + A(s, u) (Gu et al. 2016, eq. 4); see `naf_advantage`.

    Args:
      v: V(s), float `[...]`; mu, L, action: as in `naf_advantage`.
    """
    advantage = naf_advantage(mu, L, action)
    v = _check_shape("naf_q_value", "v", v, advantage.shape, "mu without its last axis")
    return v + advantage


# --------------------------------------------------------------------------------------------
# Learning from demonstrations (DQfD: Hester et al. 2018).
# --------------------------------------------------------------------------------------------


def large_margin_loss(q: ArrayLike, a_expert: ArrayLike, margin: float = 0.5) -> Array:
    """DQfD's supervised large-margin classification loss (Hester et al. 2018, eq. 2; TensorForce
    QDemoModel, `expert_margin`):

        J_E = max_a [Q(s, a) + l(a_E, a)] - Q(s, a_E),   l(a_E, a) = margin * 1{a != a_E}.

    J_E >= 0 and is 0 exactly when Q(s, a_E) beats every other action by at least `margin`.
    Gradients flow into both terms. TensorForce minimises mean(J_E ** 2) over demo transitions
    (weighted by `supervised_weight`); the paper adds J_E itself, which is what this returns.

    Args:
      q: Q(s, .), float `[..., A]`.
      a_expert: the demonstrator's actions, integer `[...]`.
      margin: l for non-expert actions, >= 0.
    """
    fn = "large_margin_loss"
    q, a_expert = _check_q_and_actions(fn, "q", q, "a_expert", a_expert)
    check_static_range(fn, "margin", margin, low=0.0)
    penalty = margin * (1.0 - jax.nn.one_hot(a_expert, q.shape[-1], dtype=q.dtype))
    return jnp.max(q + penalty, axis=-1) - _select(q, a_expert)


# --------------------------------------------------------------------------------------------
# AgentNet-compatible elementwise objectives (`[batch, tick]` layout).
#
# Drop-in equivalents of AgentNet's `learning.{qlearning, sarsa, a2c, dpg}` objectives: each
# returns the loss per `[batch, tick]` (the user reduces and optimizes), already multiplied by
# `is_alive`. They are thin layers over `fnrl.returns.agentnet_n_step_reference` (blocked n-step
# references, B5) and the action-value helpers above.
# --------------------------------------------------------------------------------------------


def agentnet_squared_error(reference: Array, predicted: Array) -> Array:
    """AgentNet's default `loss_function(reference, predicted) = (reference − predicted)²`."""
    return jnp.square(reference - predicted)


def _agentnet_session(fn: str, rewards: ArrayLike, actions: ArrayLike | None = None):
    rewards = check_array("rewards", rewards, kind="numeric", rank=2, fn=fn)
    if not jnp.issubdtype(rewards.dtype, jnp.floating):  # float rewards keep their precision (x64)
        rewards = rewards.astype(jnp.result_type(float))
    if actions is None:
        return rewards, None
    actions = check_array("actions", actions, kind="int", shape=rewards.shape, fn=fn)
    return rewards, actions


def _agentnet_values(fn: str, name: str, values: ArrayLike, shape: Sequence[int]) -> Array:
    """Accepts `[batch, tick]` or AgentNet's `[batch, tick, 1]` state values."""
    values = check_array(name, values, kind="float", rank=(2, 3), fn=fn)
    if values.ndim == 3:
        if values.shape[2] != 1:
            _fail(fn, f"argument `{name}` must be [batch, tick] or [batch, tick, 1], got {values.shape}")
        values = values[..., 0]
    if values.shape != tuple(shape):
        _fail(fn, f"argument `{name}` must have shape {tuple(shape)} [batch, tick], got {values.shape}")
    return values


def _agentnet_alive_mask(is_alive, shape) -> Array:
    if is_alive is None or (isinstance(is_alive, str) and is_alive == "always"):
        return jnp.ones(shape, jnp.float32)
    return jnp.asarray(is_alive).astype(jnp.float32)


def _agentnet_value_loss(fn, predicted, reference_values, rewards, is_alive, n_steps, gamma_or_gammas,
                         crop_last, values_after_end, consider_reference_constant,
                         force_end_at_last_tick, return_reference, loss_function,
                         after_end_name="state_values_target_after_end"):
    """Shared tail of the Q-learning, SARSA and DPG-critic objectives (`values_after_end` is the
    objective's argument `after_end_name`)."""
    reference = _agentnet_reference(fn, reference_values, rewards, is_alive, n_steps, gamma_or_gammas, crop_last,
                                    values_after_end, force_end_at_last_tick, after_end_name=after_end_name)
    reference = _maybe_stop(reference, consider_reference_constant)
    if crop_last:
        # Zero loss at the last tick: the reference there is the prediction itself.
        reference = reference.at[:, -1].set(jax.lax.stop_gradient(predicted[:, -1]))
    if return_reference:
        return reference
    return loss_function(reference, predicted) * _agentnet_alive_mask(is_alive, predicted.shape)


def agentnet_qlearning_objective(
    qvalues: ArrayLike, actions: ArrayLike, rewards: ArrayLike, is_alive: ArrayLike | str | None = None,
    qvalues_target: ArrayLike | None = None, state_values_target: ArrayLike | None = None,
    n_steps: int | None = 1, gamma_or_gammas: ArrayLike = 0.99, crop_last: bool = True,
    state_values_target_after_end: ArrayLike | str | None = None,
    consider_reference_constant: bool = True, aggregation_function: str = "deprecated",
    force_end_at_last_tick: bool = False, return_reference: bool = False,
    loss_function=agentnet_squared_error,
) -> Array:
    """AgentNet's n-step Q-learning elementwise objective (B1; Watkins 1989, Mnih et al. 2016).

        Q_ref(s_t, a_t) = r_t + γ r_{t+1} + … + γ^k V(s_{t+k})   (blocked n-step, see B5)
        loss[b, t] = loss_function(Q_ref, Q(s_t, a_t)) · is_alive[b, t]

    V(s) is `state_values_target` when given (double-Q, expected SARSA, boltzmann, mellowmax or a
    teacher network: see the `*_state_value` helpers), else max_a of `qvalues_target` (a target
    network), else max_a of `qvalues`. `qvalues_target` and `state_values_target` are mutually
    exclusive. With `return_reference` the `[batch, tick]` Q_ref is returned instead.
    """
    fn = "agentnet_qlearning_objective"
    if aggregation_function != "deprecated":
        _fail(fn, "argument `aggregation_function` was removed in AgentNet: compute V(s) yourself "
                  "(e.g. fnrl.mellowmax_state_value) and pass it as `state_values_target`")
    if qvalues_target is not None and state_values_target is not None:
        _fail(fn, "pass at most one of `qvalues_target` and `state_values_target`")
    rewards, actions = _agentnet_session(fn, rewards, actions)
    qvalues = check_array("qvalues", qvalues, kind="float", rank=3, fn=fn)
    if qvalues.shape[:2] != rewards.shape:
        _fail(fn, f"argument `qvalues` must have shape {rewards.shape + ('A',)}, got {qvalues.shape}")
    if state_values_target is not None:
        v = _agentnet_values(fn, "state_values_target", state_values_target, rewards.shape)
    else:
        q_ref = qvalues if qvalues_target is None else _check_shape(
            fn, "qvalues_target", qvalues_target, qvalues.shape, "qvalues")
        v = max_state_value(q_ref)
    return _agentnet_value_loss(
        fn, _select(qvalues, actions), v, rewards, is_alive, n_steps, gamma_or_gammas, crop_last,
        state_values_target_after_end, consider_reference_constant, force_end_at_last_tick,
        return_reference, loss_function)


def agentnet_sarsa_objective(
    qvalues: ArrayLike, actions: ArrayLike, rewards: ArrayLike, is_alive: ArrayLike | str | None = None,
    qvalues_target: ArrayLike | None = None, n_steps: int | None = 1, gamma_or_gammas: ArrayLike = 0.99,
    crop_last: bool = True, state_values_target_after_end: ArrayLike | str | None = None,
    consider_reference_constant: bool = True, force_end_at_last_tick: bool = False,
    return_reference: bool = False, loss_function=agentnet_squared_error,
) -> Array:
    """AgentNet's n-step SARSA elementwise objective (B2; Rummery & Niranjan 1994).

    As `agentnet_qlearning_objective` with V(s_{t+1}) = Q(s_{t+1}, a_{t+1}), the value of the
    action actually taken next. `qvalues_target` is `[batch, tick, A]` (Q of a target network,
    indexed by the taken actions) or `[batch, tick, 1]` (already the values of taken actions).
    """
    fn = "agentnet_sarsa_objective"
    rewards, actions = _agentnet_session(fn, rewards, actions)
    qvalues = check_array("qvalues", qvalues, kind="float", rank=3, fn=fn)
    if qvalues.shape[:2] != rewards.shape:
        _fail(fn, f"argument `qvalues` must have shape {rewards.shape + ('A',)}, got {qvalues.shape}")
    q_ref = qvalues if qvalues_target is None else check_array(
        "qvalues_target", qvalues_target, kind="float", rank=3, fn=fn)
    if q_ref.shape[:2] != rewards.shape or q_ref.shape[2] not in (1, qvalues.shape[2]):
        _fail(fn, f"argument `qvalues_target` must have shape {qvalues.shape} or "
                  f"{rewards.shape + (1,)}, got {q_ref.shape}")
    v = q_ref[..., 0] if q_ref.shape[2] == 1 and qvalues.shape[2] != 1 else _select(q_ref, actions)
    return _agentnet_value_loss(
        fn, _select(qvalues, actions), v, rewards, is_alive, n_steps, gamma_or_gammas, crop_last,
        state_values_target_after_end, consider_reference_constant, force_end_at_last_tick,
        return_reference, loss_function)


def agentnet_dpg_critic_objective(
    action_qvalues: ArrayLike, state_values: ArrayLike, rewards: ArrayLike,
    is_alive: ArrayLike | str | None = None, n_steps: int | None = 1, gamma_or_gammas: ArrayLike = 0.99,
    crop_last: bool = True, state_values_after_end: ArrayLike | str | None = None,
    force_end_at_last_tick: bool = False, consider_reference_constant: bool = True,
    return_reference: bool = False, loss_function=agentnet_squared_error,
) -> Array:
    """AgentNet's DPG / NAF critic elementwise objective (B4; Silver et al. 2014, Lillicrap et al.
    2016, Gu et al. 2016).

        Q_ref(s_t, a_t) = blocked n-step reference over V(s) = Q(s, μ(s))
        loss[b, t] = loss_function(Q_ref, Q(s_t, a_t)) · is_alive[b, t]

    `action_qvalues` `[batch, tick]` are the critic's Q of the taken actions, `state_values`
    `[batch, tick]` the critic applied to the actor's actions (V(s) = Q(s, μ(s))).
    """
    fn = "agentnet_dpg_critic_objective"
    rewards, _ = _agentnet_session(fn, rewards)
    predicted = _agentnet_values(fn, "action_qvalues", action_qvalues, rewards.shape)
    v = _agentnet_values(fn, "state_values", state_values, rewards.shape)
    return _agentnet_value_loss(
        fn, predicted, v, rewards, is_alive, n_steps, gamma_or_gammas, crop_last,
        state_values_after_end, consider_reference_constant, force_end_at_last_tick,
        return_reference, loss_function, after_end_name="state_values_after_end")


def agentnet_a2c_objective(
    policy: ArrayLike, state_values: ArrayLike, actions: ArrayLike, rewards: ArrayLike,
    is_alive: ArrayLike | str | None = None, state_values_target: ArrayLike | None = None,
    n_steps: int | None = 1, n_steps_advantage: int | None | str = "same",
    gamma_or_gammas: ArrayLike = 0.99, crop_last: bool = True,
    state_values_target_after_end: ArrayLike | str | None = None,
    state_values_after_end: ArrayLike | str | None = None,
    consider_value_reference_constant: bool = True, force_end_at_last_tick: bool = False,
    return_separate: bool = False, treat_policy_as_logpolicy: bool = False,
    loss_function=agentnet_squared_error,
) -> Array | tuple[Array, Array]:
    """AgentNet's advantage actor-critic elementwise objective (B3; Mnih et al. 2016,
    arXiv:1602.01783, with k-step advantages of Schulman et al. 2016, arXiv:1506.02438).

        critic[b, t] = loss_function(V_ref, V(s_t)) · alive,  V_ref from `state_values_target`
        A[b, t] = stop_grad(V_adv(s_t) − V(s_t)),  V_adv: `n_steps_advantage` reference over V
        actor[b, t] = −log π(a_t | s_t) · A[b, t] · alive

    `policy` is `[batch, tick, A]` probabilities (log-probabilities with
    `treat_policy_as_logpolicy`) or `[batch, tick]` of the taken actions. Returns actor + critic,
    or `(actor, critic)` with `return_separate`. No entropy term, as in AgentNet.
    """
    fn = "agentnet_a2c_objective"
    rewards, actions = _agentnet_session(fn, rewards, actions)
    policy = check_array("policy", policy, kind="float", rank=(2, 3), fn=fn)
    if policy.shape[:2] != rewards.shape:
        _fail(fn, f"argument `policy` must have shape {rewards.shape + ('A',)} or {rewards.shape}, "
                  f"got {policy.shape}")
    values = _agentnet_values(fn, "state_values", state_values, rewards.shape)
    target = values if state_values_target is None else _agentnet_values(
        fn, "state_values_target", state_values_target, rewards.shape)
    alive = _agentnet_alive_mask(is_alive, rewards.shape)
    reference = _agentnet_reference(fn, target, rewards, is_alive, n_steps, gamma_or_gammas, crop_last,
                                    state_values_target_after_end, force_end_at_last_tick,
                                    after_end_name="state_values_target_after_end")
    reference = _maybe_stop(reference, consider_value_reference_constant)
    critic = loss_function(reference, values) * alive
    same = isinstance(n_steps_advantage, str) and n_steps_advantage == "same"
    observed = _agentnet_reference(fn, values, rewards, is_alive, n_steps if same else n_steps_advantage,
                                   gamma_or_gammas, crop_last, state_values_after_end, force_end_at_last_tick,
                                   n_steps_name="n_steps" if same else "n_steps_advantage")
    advantage = jax.lax.stop_gradient(observed - values)
    log_policy = policy if treat_policy_as_logpolicy else jnp.log(policy)
    taken = log_policy if log_policy.ndim == 2 else _select(log_policy, actions)
    actor = -taken * advantage * alive
    return (actor, critic) if return_separate else actor + critic
