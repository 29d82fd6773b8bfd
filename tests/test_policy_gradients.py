"""Tests for fnrl/policy_gradients.py: NumPy-loop references, gradients, masks and checks."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fnrl import policy_gradients as pg
from tests.helpers import floats, jit_variants, variant

SHAPES = [(5,), (2, 3, 2)]  # few shapes keep compilations few; (5,)[:-1] covers rank 0
TOL = dict(rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------- strategies / refs


@st.composite
def masks(draw, shape):
    """None, random 0/1, exactly one valid sample, or 0/0.5/1/2 weights (float32, so that one
    compilation serves all array masks; bool masks are exercised by the mask tests below)."""
    kind = draw(st.sampled_from(["none", "bool", "all_but_one", "weights"]))
    if kind == "none":
        return None
    if kind == "bool":
        return np.asarray(draw(hnp.arrays(np.bool_, shape)), np.float32)
    if kind == "all_but_one":
        m = np.zeros(math.prod(shape), np.float32)
        m[draw(st.integers(0, m.size - 1))] = 1.0
        return m.reshape(shape)
    return np.asarray(draw(hnp.arrays(np.float32, shape, elements=st.sampled_from([0.0, 0.5, 1.0, 2.0]))))


def weight(mask, idx):
    return 1.0 if mask is None else float(mask[idx])


def np_wmean(per_sample, shape, mask):
    """Weighted mean by a python loop: per_sample(idx) -> float, over np.ndindex(shape)."""
    num = den = 0.0
    for idx in np.ndindex(*shape):
        w = weight(mask, idx)
        if w != 0:
            num += w * per_sample(idx)
            den += w
    return num / den if den > 0 else 0.0


def np_grad_weights(shape, mask):
    """w_i / sum(w), the derivative of the weighted mean w.r.t. each sample's loss."""
    w = np.ones(shape) if mask is None else np.asarray(mask, np.float64)
    return w / w.sum() if w.sum() > 0 else np.zeros(shape)


def draw_case(data, low=-5.0, high=5.0, n=1, shapes=SHAPES):
    shape = data.draw(st.sampled_from(shapes))
    arrays = [np.asarray(data.draw(floats(shape, low, high))) for _ in range(n)]
    return shape, arrays, data.draw(masks(shape))


def np_huber(x, delta):
    return 0.5 * x * x if abs(x) <= delta else delta * (abs(x) - 0.5 * delta)


def np_log_softmax(logits):
    z = logits - logits.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def categorical_kl(p_logits, q_logits):
    """KL(p || q) of categoricals over the last axis (the test's stand-in for a distribution)."""
    log_p = jax.nn.log_softmax(p_logits)
    return jnp.sum(jnp.exp(log_p) * (log_p - jax.nn.log_softmax(q_logits)), axis=-1)


# ---------------------------------------------------------------------------- values vs NumPy


@jit_variants
@given(data=st.data())
def test_policy_gradient_loss_matches_numpy(use_jit, data):
    shape, (lp, adv), mask = draw_case(data, n=2)
    got = variant(pg.policy_gradient_loss, use_jit)(lp, adv, mask)
    want = np_wmean(lambda i: -float(lp[i]) * float(adv[i]), shape, mask)
    np.testing.assert_allclose(got, want, **TOL)


@jit_variants
@given(data=st.data(), baseline_kind=st.sampled_from(["none", "array", "scalar", "row"]))
def test_reinforce_loss_matches_numpy(use_jit, data, baseline_kind):
    shape, (lp, ret, base), mask = draw_case(data, n=3)
    if baseline_kind == "none":
        base = None
    elif baseline_kind == "scalar":
        base = np.float32(base.flat[0])
    elif baseline_kind == "row":  # broadcasts along the leading (time) axis
        base = base[:1]
    b = np.zeros(shape) if base is None else np.broadcast_to(base, shape)
    got = variant(pg.reinforce_loss, use_jit)(lp, ret, base, mask)
    want = np_wmean(lambda i: -float(lp[i]) * (float(ret[i]) - float(b[i])), shape, mask)
    np.testing.assert_allclose(got, want, **TOL)


@jit_variants
@given(data=st.data())
def test_entropy_loss_matches_numpy(use_jit, data):
    shape, (ent,), mask = draw_case(data, 0.0, 3.0)
    got = variant(pg.entropy_loss, use_jit)(ent, mask)
    np.testing.assert_allclose(got, np_wmean(lambda i: -float(ent[i]), shape, mask), **TOL)


@jit_variants
@given(data=st.data(), loss=st.sampled_from(["l2", "huber"]), delta=st.sampled_from([0.5, 1.0, 3.0]))
def test_value_loss_matches_numpy(use_jit, data, loss, delta):
    shape, (v, target), mask = draw_case(data, n=2)
    got = variant(pg.value_loss, use_jit, static_argnames=("loss",))(v, target, mask, loss=loss, delta=delta)
    f = (lambda x: 0.5 * x * x) if loss == "l2" else (lambda x: np_huber(x, delta))
    want = np_wmean(lambda i: f(float(v[i]) - float(target[i])), shape, mask)
    np.testing.assert_allclose(got, want, **TOL)


@jit_variants
@given(data=st.data(), epsilon=st.sampled_from([0.0, 0.2, 1.0]))
def test_clipped_value_loss_is_max_of_two_squared_errors(use_jit, data, epsilon):
    shape, (v, v_old, target), mask = draw_case(data, n=3)

    def per_sample(i):
        vi, oi, ti = float(v[i]), float(v_old[i]), float(target[i])
        v_clip = oi + min(max(vi - oi, -epsilon), epsilon)
        return 0.5 * max((vi - ti) ** 2, (v_clip - ti) ** 2)

    got = variant(pg.clipped_value_loss, use_jit)(v, v_old, target, epsilon, mask)
    np.testing.assert_allclose(got, np_wmean(per_sample, shape, mask), **TOL)


def test_clipped_value_loss_reduces_to_l2_when_unconstrained():
    v, v_old, target = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    np.testing.assert_allclose(
        pg.clipped_value_loss(v, v_old, target, 1e6), pg.value_loss(v, target), **TOL
    )
    # epsilon = 0 pins v_clip to v_old: the loss is never below the old values' loss.
    assert pg.clipped_value_loss(v, v_old, target, 0.0) >= pg.value_loss(v_old, target) - 1e-6


@jit_variants
@given(data=st.data(), with_entropy=st.booleans())
def test_a2c_loss_combines_parts(use_jit, data, with_entropy):
    loss = "huber"  # the l2 path is value_loss's default, tested there
    shape, (lp, adv, v, target, ent), mask = draw_case(data, n=5)
    ent = np.abs(ent) if with_entropy else None
    fn = variant(pg.a2c_loss, use_jit, static_argnames=("loss",))
    total, parts = fn(lp, adv, v, target, ent, 0.5, 0.01, mask, loss=loss, delta=1.0)
    f = (lambda x: 0.5 * x * x) if loss == "l2" else (lambda x: np_huber(x, 1.0))
    want_pol = np_wmean(lambda i: -float(lp[i]) * float(adv[i]), shape, mask)
    want_val = np_wmean(lambda i: f(float(v[i]) - float(target[i])), shape, mask)
    want_ent = np_wmean(lambda i: -float(ent[i]), shape, mask) if with_entropy else 0.0
    np.testing.assert_allclose(parts.policy, want_pol, **TOL)
    np.testing.assert_allclose(parts.value, want_val, **TOL)
    np.testing.assert_allclose(parts.entropy, want_ent, **TOL)
    np.testing.assert_allclose(total, want_pol + 0.5 * want_val + 0.01 * want_ent, **TOL)


def np_bounds(epsilon, clip_range):
    if clip_range == "symmetric":
        return 1.0 - epsilon, 1.0 + epsilon
    return 1.0 / (1.0 + epsilon), 1.0 + epsilon


@jit_variants
@given(
    data=st.data(),
    epsilon=st.sampled_from([None, 0.1, 0.2, 0.5]),
    clip_range=st.sampled_from(["symmetric", "tensorforce"]),
)
def test_ppo_clip_loss_matches_numpy(use_jit, data, epsilon, clip_range):
    shape, (lp, old, adv), mask = draw_case(data, -3.0, 0.0, n=3)
    adv = adv + np.float32(1.5)  # advantages of both signs
    fn = variant(pg.ppo_clip_loss, use_jit, static_argnames=("clip_range",))
    loss, info = fn(lp, old, adv, epsilon, mask, clip_range=clip_range)
    ratio = np.exp(lp.astype(np.float64) - old)

    def per_sample(i):
        if epsilon is None:
            return -ratio[i] * adv[i]
        lo, hi = np_bounds(epsilon, clip_range)
        return -min(ratio[i] * adv[i], min(max(ratio[i], lo), hi) * adv[i])

    def outside(i):
        if epsilon is None:
            return 0.0
        lo, hi = np_bounds(epsilon, clip_range)
        return float(ratio[i] < lo or ratio[i] > hi)

    kl = lambda i: (ratio[i] - 1.0) - math.log(ratio[i])  # noqa: E731
    np.testing.assert_allclose(loss, np_wmean(per_sample, shape, mask), **TOL)
    np.testing.assert_allclose(info.clip_fraction, np_wmean(outside, shape, mask), **TOL)
    np.testing.assert_allclose(info.approx_kl, np_wmean(kl, shape, mask), rtol=1e-4, atol=1e-4)


def test_ppo_tensorforce_range_differs_from_symmetric():
    # rho = 0.81 lies inside [0.8, 1.2] but below 1/1.2 = 0.833, so only TensorForce's range
    # clips it; with A < 0 the min then selects the clipped term.
    lp, old, adv = np.log(np.float32([0.81])), np.zeros(1, np.float32), -np.ones(1, np.float32)
    sym, _ = pg.ppo_clip_loss(lp, old, adv, 0.2)
    tf, info = pg.ppo_clip_loss(lp, old, adv, 0.2, clip_range="tensorforce")
    np.testing.assert_allclose(sym, 0.81, **TOL)
    np.testing.assert_allclose(tf, 1.0 / 1.2, **TOL)
    assert info.clip_fraction == 1.0


@jit_variants
@given(data=st.data(), clipping=st.sampled_from([None, 0.5, 2.0]))
def test_dpg_loss_matches_numpy(use_jit, data, clipping):
    shape, (a, dqda), _ = draw_case(data, n=2)
    mask = data.draw(masks(shape[:-1]))

    def per_sample(i):
        d = dqda[i] if clipping is None else np.clip(dqda[i], -clipping, clipping)
        return 0.5 * sum(float(x) ** 2 for x in d)  # target - a = clipped dqda

    got = variant(pg.dpg_loss, use_jit)(a, dqda, clipping, mask)
    np.testing.assert_allclose(got, np_wmean(per_sample, shape[:-1], mask), **TOL)


@jit_variants
@given(data=st.data())
def test_trpo_surrogate_matches_numpy(use_jit, data):
    shape, (lp, old, adv), mask = draw_case(data, -3.0, 0.0, n=3)
    got = variant(pg.trpo_surrogate, use_jit)(lp, old, adv, mask)
    want = np_wmean(lambda i: math.exp(float(lp[i]) - float(old[i])) * float(adv[i]), shape, mask)
    np.testing.assert_allclose(got, want, **TOL)


@jit_variants
@given(data=st.data())
def test_mean_kl_matches_numpy(use_jit, data):
    shape, (p, q), _ = draw_case(data, n=2)  # last axis = 2..5 categories
    mask = data.draw(masks(shape[:-1]))
    lp, lq = np_log_softmax(p.astype(np.float64)), np_log_softmax(q.astype(np.float64))
    kl = lambda i: float(np.sum(np.exp(lp[i]) * (lp[i] - lq[i])))  # noqa: E731
    got = variant(pg.mean_kl, use_jit, static_argnames="kl_fn")(categorical_kl, p, q, mask)
    np.testing.assert_allclose(got, np_wmean(kl, shape[:-1], mask), **TOL)


@jit_variants
@given(data=st.data())
def test_normalize_advantages_matches_numpy(use_jit, data):
    shape, (adv,), mask = draw_case(data)
    got = np.asarray(variant(pg.normalize_advantages, use_jit)(adv, mask))
    mean = np_wmean(lambda i: float(adv[i]), shape, mask)
    std = math.sqrt(np_wmean(lambda i: (float(adv[i]) - mean) ** 2, shape, mask))
    assert np.all(np.isfinite(got))
    for i in np.ndindex(*shape):
        if weight(mask, i) == 0:
            assert got[i] == 0
        elif std > 1e-3:  # a near-constant batch only standardises float32 rounding noise
            np.testing.assert_allclose(got[i], (float(adv[i]) - mean) / (std + 1e-8), rtol=1e-3, atol=1e-3)


def test_normalize_advantages_standardises_valid_entries():
    rng = np.random.default_rng(1)
    adv = rng.normal(3.0, 5.0, size=(8, 4)).astype(np.float32)
    mask = rng.random((8, 4)) > 0.3
    out = np.asarray(pg.normalize_advantages(adv, mask))
    np.testing.assert_allclose(out[mask].mean(), 0.0, atol=1e-5)
    np.testing.assert_allclose(out[mask].std(), 1.0, rtol=1e-4)
    assert np.all(out[~mask] == 0)


@jit_variants
@given(data=st.data(), num_batch_dims=st.sampled_from([1, 2]))
def test_average_action_components_matches_numpy(use_jit, data, num_batch_dims):
    batch = (3, 2)[:num_batch_dims]
    tree = {
        "a": np.asarray(data.draw(floats(batch))),
        "b": np.asarray(data.draw(floats(batch + (2,)))),
        "c": [np.asarray(data.draw(floats(batch + (2, 3))))],
    }
    got = variant(pg.average_action_components, use_jit, static_argnames="num_batch_dims")(tree, num_batch_dims)
    assert got.shape == batch
    for i in np.ndindex(*batch):
        values = [float(tree["a"][i])] + [float(x) for x in tree["b"][i].ravel()]
        values += [float(x) for x in tree["c"][0][i].ravel()]
        np.testing.assert_allclose(got[i], sum(values) / len(values), **TOL)


# ---------------------------------------------------------------------------- gradients

# Jitted once at import so hypothesis examples reuse compilations instead of re-tracing.
_pg_grad = jax.jit(jax.grad(pg.policy_gradient_loss, argnums=(0, 1)))
_dpg_grad = jax.jit(jax.grad(pg.dpg_loss, argnums=(0, 1)), static_argnums=2)
_value_grad = jax.jit(jax.grad(pg.value_loss, argnums=(0, 1)), static_argnums=(3, 5))
_clipped_value_grad = jax.jit(jax.grad(pg.clipped_value_loss, argnums=(0, 1, 2)))
_trpo_grad = jax.jit(jax.grad(pg.trpo_surrogate, argnums=(0, 1)))


@given(data=st.data())
def test_policy_gradient_grad_flows_to_log_prob_only(data):
    shape, (lp, adv), mask = draw_case(data, n=2)
    g_lp, g_adv = _pg_grad(lp, adv, mask)
    np.testing.assert_allclose(g_lp, -adv * np_grad_weights(shape, mask), **TOL)
    assert np.all(np.asarray(g_adv) == 0)


def test_reinforce_baseline_and_returns_get_no_gradient():
    lp, ret, base = np.random.default_rng(2).normal(size=(3, 7)).astype(np.float32)
    g_lp, g_ret, g_base = jax.grad(pg.reinforce_loss, argnums=(0, 1, 2))(lp, ret, base)
    np.testing.assert_allclose(g_lp, -(ret - base) / 7, **TOL)
    assert np.all(np.asarray(g_ret) == 0) and np.all(np.asarray(g_base) == 0)


_ppo_grads = {
    r: jax.jit(jax.grad(lambda x, o, a, m, r=r: pg.ppo_clip_loss(x, o, a, 0.2, m, clip_range=r)[0], (0, 1, 2)))
    for r in ("symmetric", "tensorforce")
}


@given(data=st.data(), clip_range=st.sampled_from(["symmetric", "tensorforce"]))
def test_ppo_gradient_vanishes_where_clipped_term_is_selected(data, clip_range):
    shape, (lp, old, adv), mask = draw_case(data, -3.0, 0.0, n=3)
    adv = adv + np.float32(1.5)
    eps = 0.2
    g_lp, g_old, g_adv = _ppo_grads[clip_range](lp, old, adv, mask)
    lo, hi = np_bounds(eps, clip_range)
    ratio = np.exp(lp.astype(np.float64) - old)
    # min picks the clipped (constant) term when the ratio left the range on the advantage's side.
    clipped = ((adv > 0) & (ratio > hi)) | ((adv < 0) & (ratio < lo))
    want = np.where(clipped, 0.0, -ratio * adv) * np_grad_weights(shape, mask)
    np.testing.assert_allclose(g_lp, want, rtol=1e-4, atol=1e-5)
    assert np.all(np.asarray(g_lp)[clipped] == 0)
    assert np.all(np.asarray(g_old) == 0) and np.all(np.asarray(g_adv) == 0)


def test_ppo_gradient_matches_finite_differences_inside_range():
    lp = np.float32([-1.0, -0.5, -2.0])
    old = lp - np.float32([0.05, -0.1, 0.3])  # ratios 1.05, 0.90, 1.35
    adv = np.float32([1.0, -2.0, 0.5])
    loss = jax.jit(lambda x: pg.ppo_clip_loss(x, old, adv, 0.2)[0])
    g = np.asarray(jax.jit(jax.grad(loss))(lp))
    h = 1e-2
    for i in range(3):
        e = np.zeros(3, np.float32)
        e[i] = h
        fd = (float(loss(lp + e)) - float(loss(lp - e))) / (2 * h)
        np.testing.assert_allclose(g[i], fd, rtol=1e-2, atol=1e-4)
    assert g[2] == 0 and g[0] != 0 and g[1] != 0  # only the third ratio is clipped (1.35 > 1.2)


def test_zero_clip_radius_keeps_the_whole_gradient_at_the_old_policy():
    """epsilon = 0 at ratio 1 (v = v_old): the two branches tie; the gradient is the unclipped
    one, −A/N for the surrogate and (v − target)/N for the value loss, not a split of it."""
    lp = np.float32([-1.0, -0.5, -2.0])
    adv = np.float32([1.0, -2.0, 0.5])
    g = jax.grad(lambda x: pg.ppo_clip_loss(x, lp, adv, 0.0)[0])(lp)
    np.testing.assert_allclose(g, -adv / 3, rtol=1e-6)
    v, target = np.float32([0.5, 1.0, -1.0]), np.float32([1.0, 0.0, 2.0])
    g = jax.grad(lambda x: pg.clipped_value_loss(x, v, target, 0.0))(v)
    np.testing.assert_allclose(g, (v - target) / 3, rtol=1e-6)


@given(data=st.data(), clipping=st.sampled_from([None, 1.0]))
def test_dpg_gradient_is_minus_dqda(data, clipping):
    shape, (a, dqda), _ = draw_case(data, n=2)
    mask = data.draw(masks(shape[:-1]))
    g_a, g_dqda = _dpg_grad(a, dqda, clipping, mask)
    d = dqda if clipping is None else np.clip(dqda, -clipping, clipping)
    np.testing.assert_allclose(g_a, -d * np_grad_weights(shape[:-1], mask)[..., None], **TOL)
    assert np.all(np.asarray(g_dqda) == 0)


def test_dpg_gradient_through_actor_is_the_deterministic_policy_gradient():
    # One sample, linear actor a = W s: dL/dW = -dQ/da s^T.
    w = jnp.asarray(np.random.default_rng(3).normal(size=(2, 3)), jnp.float32)
    s = jnp.float32([1.0, -2.0, 0.5])
    dqda = jnp.float32([0.3, -1.2])
    g = jax.grad(lambda w_: pg.dpg_loss(w_ @ s, dqda))(w)
    np.testing.assert_allclose(g, -np.outer(dqda, s), **TOL)


@given(data=st.data(), loss=st.sampled_from(["l2", "huber"]))
def test_value_loss_gradients(data, loss):
    shape, (v, target), mask = draw_case(data, n=2)
    g_v, g_t = _value_grad(v, target, mask, loss, 1.0, True)
    err = v.astype(np.float64) - target
    d = err if loss == "l2" else np.clip(err, -1.0, 1.0)
    np.testing.assert_allclose(g_v, d * np_grad_weights(shape, mask), **TOL)
    assert np.all(np.asarray(g_t) == 0)
    g_t_free = _value_grad(v, target, mask, loss, 1.0, False)[1]
    np.testing.assert_allclose(g_t_free, -np.asarray(g_v), **TOL)


@given(data=st.data())
def test_clipped_value_loss_gradients(data):
    shape, (v, v_old, target), mask = draw_case(data, n=3)
    eps = 0.37  # an odd radius, so no drawn |v - v_old| sits exactly on the kink
    g_v, g_old, g_t = _clipped_value_grad(v, v_old, target, eps, mask)
    v64 = v.astype(np.float64)
    v_clip = v_old + np.clip(v64 - v_old, -eps, eps)
    inside = np.abs(v64 - v_old) < eps
    take_unclipped = (v64 - target) ** 2 >= (v_clip - target) ** 2
    d = np.where(take_unclipped, v64 - target, np.where(inside, v_clip - target, 0.0))
    np.testing.assert_allclose(g_v, d * np_grad_weights(shape, mask), **TOL)
    assert np.all(np.asarray(g_old) == 0) and np.all(np.asarray(g_t) == 0)


def test_entropy_and_a2c_gradients():
    rng = np.random.default_rng(4)
    lp, adv, v, target = rng.normal(size=(4, 6)).astype(np.float32)
    ent = np.abs(rng.normal(size=6)).astype(np.float32)
    np.testing.assert_allclose(jax.grad(pg.entropy_loss)(ent), -np.ones(6) / 6, **TOL)
    loss = lambda *xs: pg.a2c_loss(*xs, 0.5, 0.01)[0]  # noqa: E731
    g_lp, g_adv, g_v, g_t, g_ent = jax.grad(loss, argnums=(0, 1, 2, 3, 4))(lp, adv, v, target, ent)
    np.testing.assert_allclose(g_lp, -adv / 6, **TOL)
    np.testing.assert_allclose(g_v, 0.5 * (v - target) / 6, **TOL)
    np.testing.assert_allclose(g_ent, -0.01 * np.ones(6) / 6, **TOL)
    assert np.all(np.asarray(g_adv) == 0) and np.all(np.asarray(g_t) == 0)


@given(data=st.data())
def test_trpo_surrogate_gradient_at_old_policy_is_policy_gradient(data):
    shape, (lp, adv), mask = draw_case(data, -3.0, 0.0, n=2)
    g_lp, g_old = _trpo_grad(lp, lp, adv, mask)
    np.testing.assert_allclose(g_lp, adv * np_grad_weights(shape, mask), **TOL)
    assert np.all(np.asarray(g_old) == 0)


def test_mean_kl_gradients():
    rng = np.random.default_rng(5)
    old, new = rng.normal(size=(2, 4, 3)).astype(np.float32)
    g_old = jax.grad(pg.mean_kl, argnums=1)(categorical_kl, old, new)
    assert np.all(np.asarray(g_old) == 0)
    g_new = np.asarray(jax.grad(pg.mean_kl, argnums=2)(categorical_kl, old, new))
    assert np.abs(g_new).max() > 1e-3
    # KL(old || new) is minimal at new = old: zero value and zero gradient.
    np.testing.assert_allclose(pg.mean_kl(categorical_kl, old, old), 0.0, atol=1e-6)
    np.testing.assert_allclose(jax.grad(pg.mean_kl, argnums=2)(categorical_kl, old, old), 0.0, atol=1e-6)


# ---------------------------------------------------------------------------- masks


@functools.partial(jax.jit, static_argnums=0)
def _losses_and_grads(name, x, mask):
    """(loss, grads w.r.t. every array input) of one function on inputs `x` (a tuple)."""
    calls = {
        "pg": lambda lp, a: pg.policy_gradient_loss(lp, a, mask),
        "reinforce": lambda lp, r, b: pg.reinforce_loss(lp, r, b, mask),
        "entropy": lambda e: pg.entropy_loss(e, mask),
        "value": lambda v, t: pg.value_loss(v, t, mask, "huber", 1.0, False),
        "clipped_value": lambda v, o, t: pg.clipped_value_loss(v, o, t, 0.2, mask),
        "a2c": lambda lp, a, v, t, e: pg.a2c_loss(lp, a, v, t, e, 0.5, 0.01, mask)[0],
        "ppo": lambda lp, o, a: pg.ppo_clip_loss(lp, o, a, 0.2, mask)[0],
        "trpo": lambda lp, o, a: pg.trpo_surrogate(lp, o, a, mask),
        "dpg": lambda a, d: pg.dpg_loss(a[..., None], d[..., None], None, mask),
        "normalize": lambda a: jnp.sum(pg.normalize_advantages(a, mask) * jnp.arange(a.size).reshape(a.shape)),
    }
    fn = calls[name]
    x = x[: fn.__code__.co_argcount]
    return fn(*x), jax.grad(fn, argnums=tuple(range(len(x))))(*x)


MASKED_FNS = ["pg", "reinforce", "entropy", "value", "clipped_value", "a2c", "ppo", "trpo", "dpg", "normalize"]


@pytest.mark.parametrize("name", MASKED_FNS)
@given(data=st.data(), garbage=st.sampled_from([np.nan, np.inf, 1e30, -7.0]))
def test_masked_out_entries_have_no_effect(name, data, garbage):
    shape, x, _ = draw_case(data, -2.0, 0.0, n=5, shapes=[(4, 3)])
    mask = np.asarray(data.draw(hnp.arrays(np.bool_, shape)))
    loss, grads = _losses_and_grads(name, tuple(x), mask)
    changed = tuple(np.where(mask, xi, np.float32(garbage)) for xi in x)
    loss2, grads2 = _losses_and_grads(name, changed, mask)
    np.testing.assert_allclose(loss2, loss, rtol=1e-6, atol=1e-6)
    for g, g2 in zip(grads, grads2):
        np.testing.assert_allclose(g2, g, rtol=1e-6, atol=1e-6)
        assert np.all(np.asarray(g)[~mask] == 0)


def test_fully_masked_losses_are_zero():
    x = np.ones((3, 2), np.float32)
    none = np.zeros((3, 2), bool)
    assert pg.policy_gradient_loss(x, x, none) == 0
    assert pg.ppo_clip_loss(x, x, x, 0.2, none)[0] == 0
    assert pg.value_loss(x, 2 * x, none) == 0


def test_mask_broadcasts_over_trailing_axes():
    rng = np.random.default_rng(6)
    lp, adv = rng.normal(size=(2, 4, 3)).astype(np.float32)
    row_mask = np.array([[True], [False], [True], [True]])
    full = np.broadcast_to(row_mask, (4, 3))
    np.testing.assert_allclose(
        pg.policy_gradient_loss(lp, adv, row_mask), pg.policy_gradient_loss(lp, adv, full), **TOL
    )


def test_vmap_gives_per_instance_losses():
    rng = np.random.default_rng(7)
    lp, adv = rng.normal(size=(2, 3, 5)).astype(np.float32)
    alive = rng.random((3, 5)) > 0.3
    per = jax.vmap(jax.vmap(pg.policy_gradient_loss))(lp, adv, alive)
    np.testing.assert_allclose(per, np.where(alive, -lp * adv, 0.0), **TOL)
    rows = jax.vmap(pg.policy_gradient_loss)(lp, adv, alive)
    for b in range(3):
        np.testing.assert_allclose(rows[b], np_wmean(lambda i: -lp[b][i] * adv[b][i], (5,), alive[b]), **TOL)


def test_traced_epsilon_under_jit():
    lp, old, adv = np.log(np.float32([1.5, 0.5])), np.zeros(2, np.float32), np.ones(2, np.float32)
    f = jax.jit(lambda e: pg.ppo_clip_loss(lp, old, adv, e)[0])
    np.testing.assert_allclose(f(0.2), -(1.2 + 0.5) / 2, **TOL)
    np.testing.assert_allclose(f(0.6), -(1.5 + 0.5) / 2, **TOL)


# ---------------------------------------------------------------------------- argument checks

F = np.ones((4, 3), np.float32)
I = np.ones((4, 3), np.int32)
G = np.ones((4, 2), np.float32)

BAD_CALLS = [
    (lambda: pg.policy_gradient_loss(I, F), "log_prob_t"),
    (lambda: pg.policy_gradient_loss(F, I), "advantage_t"),
    (lambda: pg.policy_gradient_loss(F, G), "log_prob_t.*advantage_t"),
    (lambda: pg.policy_gradient_loss(F, F, np.ones((2, 3), bool)), "mask_t"),
    (lambda: pg.policy_gradient_loss(F, F, np.ones((4, 3, 1), bool)), "mask_t"),
    (lambda: pg.policy_gradient_loss(F, F, "x"), "mask_t"),
    (lambda: pg.reinforce_loss(F, I), "returns_t"),
    (lambda: pg.reinforce_loss(F, F, G), "baseline_t"),
    (lambda: pg.reinforce_loss(F, F, np.ones(3, np.int32)), "baseline_t"),
    (lambda: pg.entropy_loss(I), "entropy_t"),
    (lambda: pg.value_loss(I, F), "v_t"),
    (lambda: pg.value_loss(F, G), "v_t.*target_t"),
    (lambda: pg.value_loss(F, F, loss="l1"), "loss"),
    (lambda: pg.value_loss(F, F, loss="huber", delta=-1.0), "delta"),
    (lambda: pg.clipped_value_loss(F, G, F, 0.2), "v_old_t"),
    (lambda: pg.clipped_value_loss(F, F, I, 0.2), "target_t"),
    (lambda: pg.clipped_value_loss(F, F, F, -0.2), "epsilon"),
    (lambda: pg.a2c_loss(F, F, G, F, F, 0.5, 0.01), "v_t"),
    (lambda: pg.a2c_loss(F, F, F, F, G, 0.5, 0.01), "entropy_t"),
    (lambda: pg.a2c_loss(F, F, F, F, I, 0.5, 0.01), "entropy_t"),
    (lambda: pg.a2c_loss(F, G, F, F, F, 0.5, 0.01), "a2c_loss: .*advantage_t"),
    (lambda: pg.a2c_loss(F, F, F, G, F, 0.5, 0.01), "a2c_loss: .*target_t"),
    (lambda: pg.a2c_loss(F, F, F, F, F, 0.5, 0.01, np.ones((2, 3), bool)), "a2c_loss: .*mask_t"),
    (lambda: pg.ppo_clip_loss(F, I, F, 0.2), "old_log_prob_t"),
    (lambda: pg.ppo_clip_loss(F, F, G, 0.2), "advantage_t"),
    (lambda: pg.ppo_clip_loss(F, F, F, -0.1), "epsilon"),
    (lambda: pg.ppo_clip_loss(F, F, F, 0.2, clip_range="asym"), "clip_range"),
    (lambda: pg.ppo_clip_loss(F, F, F, None, clip_range="asym"), "clip_range"),
    (lambda: pg.dpg_loss(np.float32(1.0), np.float32(1.0)), "a_t"),
    (lambda: pg.dpg_loss(F, G), "dqda_t"),
    (lambda: pg.dpg_loss(F, I), "dqda_t"),
    (lambda: pg.dpg_loss(F, F, -1.0), "dqda_clipping"),
    (lambda: pg.dpg_loss(F, F, None, np.ones((4, 3), bool)), "mask_t"),
    (lambda: pg.trpo_surrogate(F, F, G), "advantage_t"),
    (lambda: pg.trpo_surrogate(I, F, F), "log_prob_t"),
    (lambda: pg.mean_kl("kl", F, F), "kl_fn"),
    (lambda: pg.mean_kl(lambda p, q: jnp.ones(4, jnp.int32), F, F), "kl_fn"),
    (lambda: pg.mean_kl(categorical_kl, F, F, np.ones(3, bool)), "mask_t"),
    (lambda: pg.normalize_advantages(I), "advantage_t"),
    (lambda: pg.normalize_advantages(F, eps=-1.0), "eps"),
    (lambda: pg.average_action_components({"a": F, "b": np.ones((5, 2), np.float32)}), r"per_component\['b'\]"),
    (lambda: pg.average_action_components({"a": F, "b": I}), r"per_component\['b'\]"),
    (lambda: pg.average_action_components({"a": F}, num_batch_dims=3), r"per_component\['a'\]"),
    (lambda: pg.average_action_components({}), "per_component"),
    (lambda: pg.average_action_components(F, num_batch_dims=-1), "num_batch_dims"),
]


@pytest.mark.parametrize("call,match", BAD_CALLS, ids=[f"{i}-{m}" for i, (_, m) in enumerate(BAD_CALLS)])
def test_bad_arguments_raise_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
