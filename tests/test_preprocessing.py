"""Tests for fnrl.preprocessing: every transform against a NumPy version written from its formula."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

from fnrl import preprocessing as P
from tests.helpers import floats, jit_variants, variant

EPS = P.TENSORFORCE_EPSILON

# Module-level preprocessors: their functions keep one identity, so jitted variants compile once.
STANDARDIZE = P.standardize()
STANDARDIZE_ACROSS = P.standardize(across_batch=True)
NORMALIZE = P.normalize()
CLIP = P.clip(-1.0, 2.0)
DIVIDE = P.divide(255.0)
SCALE = P.scale(0.1)
GRAY = P.grayscale()
GRAY_FLAT = P.grayscale(keep_channel_axis=False)
RS_ALL = P.running_standardize()
RS_PER_ELEMENT = P.running_standardize(axis=0)
RS_POOL_1 = P.running_standardize(axis=(0, 1), reset_after_batch=False)
STACK3 = P.frame_stack(3)
REWARD_NORM = P.reward_normalize(discount=0.9)
ATARI_SPEC = [{"type": "grayscale"}, {"type": "image_resize", "width": 6, "height": 5},
              {"type": "sequence", "length": 4}]
ATARI = P.from_spec(ATARI_SPEC)


def run(pp, xs, masks=None, use_jit=False):
    """Applies `pp` to a sequence of batches, resetting with `masks[t]` (unless None) before step t."""
    apply, reset = variant(pp.apply, use_jit), variant(pp.reset, use_jit)
    state = pp.init(xs[0])
    outs = []
    for t, x in enumerate(xs):
        if masks is not None and masks[t] is not None:
            state = reset(state, masks[t])
        state, y = apply(state, x)
        outs.append(np.asarray(y))
    return state, outs


# ------------------------------------------------------------------------------ running statistics


def np_stats(x):
    x = np.asarray(x, np.float64)
    return x.shape[0], x.mean(axis=0), x.var(axis=0)


def assert_stats(stats, count, mean, var, rtol=1e-4, atol=1e-4):
    np.testing.assert_allclose(float(stats.count), count)
    np.testing.assert_allclose(stats.mean, mean, rtol=rtol, atol=atol)
    np.testing.assert_allclose(stats.variance, var, rtol=rtol, atol=atol)


def stats_of(x):
    return P.running_stats_update(P.running_stats_init(x.shape[1:]), x)


batches = st.lists(st.sampled_from([1, 5]).flatmap(lambda n: floats((n, 3), -50, 50)),
                   min_size=1, max_size=4)


@jit_variants
@given(xs=batches)
def test_welford_matches_numpy_over_batches(use_jit, xs):
    update = variant(P.running_stats_update, use_jit)
    stats = P.running_stats_init((3,))
    for x in xs:
        stats = update(stats, x)
    assert_stats(stats, *np_stats(np.concatenate(xs)))


@given(a=floats((4, 2), -1e3, 1e3), b=floats((1, 2)), c=floats((6, 2), 100, 200))
def test_merge_is_associative_commutative_and_equals_single_pass(a, b, c):
    sa, sb, sc = stats_of(a), stats_of(b), stats_of(c)
    left = P.running_stats_merge(P.running_stats_merge(sa, sb), sc)
    right = P.running_stats_merge(sa, P.running_stats_merge(sb, sc))
    swapped = P.running_stats_merge(sc, P.running_stats_merge(sb, sa))
    reference = np_stats(np.concatenate([a, b, c]))
    for stats in (left, right, swapped):
        assert_stats(stats, *reference, rtol=1e-4, atol=1e-2)
    empty = P.running_stats_init((2,))
    assert_stats(P.running_stats_merge(empty, sa), *np_stats(a), atol=1e-2)
    assert_stats(P.running_stats_merge(sa, empty), *np_stats(a), atol=1e-2)


def test_all_reduce_and_axis_name_equal_one_device_on_the_whole_batch():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(4, 5, 2)).astype(np.float32)  # 4 devices
    per_device = jax.vmap(stats_of)(x)
    reduced = jax.vmap(lambda s: P.running_stats_all_reduce(s, "d"), axis_name="d")(per_device)
    whole = np_stats(x.reshape(20, 2))
    for d in range(4):  # every participant holds the merged statistics
        assert_stats(jax.tree_util.tree_map(lambda a: a[d], reduced), *whole)
    prior = stats_of(x[0, :2] + 7.0)
    synced = jax.vmap(lambda xb: P.running_stats_update(prior, xb, axis_name="d"), axis_name="d")(x)
    expected = np_stats(np.concatenate([x[0, :2] + 7.0, x.reshape(20, 2)]))
    assert_stats(jax.tree_util.tree_map(lambda a: a[3], synced), *expected)
    # A preprocessor synced across 4 "devices" equals one device seeing the whole batch.
    sharded = P.running_standardize(axis=0, axis_name="d")
    state = jax.vmap(sharded.init)(x)
    _, y = jax.vmap(sharded.apply, axis_name="d")(state, x)
    _, whole_y = RS_PER_ELEMENT.apply(RS_PER_ELEMENT.init(x[0]), x.reshape(20, 2))
    np.testing.assert_allclose(np.asarray(y).reshape(20, 2), whole_y, rtol=1e-5, atol=1e-5)


def test_running_stats_stable_in_float32_over_a_million_samples():
    offset = 1e4
    x = offset + jax.random.normal(jax.random.PRNGKey(0), (1000, 1000), jnp.float32)

    def body(stats, batch):
        return P.running_stats_update(stats, batch, axis=0), None

    stats, _ = jax.lax.scan(body, P.running_stats_init(()), x)
    data = np.asarray(x, np.float64).ravel()
    assert float(stats.count) == 1e6
    assert abs(float(stats.mean) / data.mean() - 1.0) < 1e-6  # a few float32 ulps
    assert abs(float(stats.variance) / data.var() - 1.0) < 1e-3
    naive = float(jnp.mean(jnp.square(x)) - jnp.square(jnp.mean(x)))  # what the shift avoids
    assert abs(naive / data.var() - 1.0) > 1e-2


def test_running_stats_pooled_axes():
    x = np.random.default_rng(1).normal(size=(6, 3, 4)).astype(np.float32)
    stats = P.running_stats_update(P.running_stats_init((3,)), x, axis=(0, 2))
    assert_stats(stats, 24, x.mean(axis=(0, 2)), x.var(axis=(0, 2)))


@jit_variants
@given(x=floats((6, 3, 4), -50, 50), prior=floats((2, 3), -5, 5), seed=st.integers(0, 2**16))
def test_running_stats_update_where_counts_only_the_selected_samples(use_jit, x, prior, seed):
    mask = np.random.default_rng(seed).random((6, 4)) < 0.6
    x = np.where(mask[:, None, :], x, np.nan).astype(np.float32)  # unselected samples are NaN
    update = variant(lambda s, x, m: P.running_stats_update(s, x, axis=(0, 2), where=m), use_jit)
    for start, seen in ((P.running_stats_init((3,)), np.zeros((0, 3))), (stats_of(prior), prior)):
        stats = update(start, x, mask)
        picked = np.moveaxis(x, 1, 2)[mask]  # [selected, 3]
        assert_stats(stats, *np_stats(np.concatenate([seen, picked])), rtol=1e-4, atol=1e-3)
    unchanged = update(stats_of(prior), x, np.zeros((6, 4), bool))
    assert_stats(unchanged, *np_stats(prior))
    with pytest.raises(ValueError, match="`where`"):
        P.running_stats_update(P.running_stats_init((3,)), x, axis=(0, 2), where=mask.T)


def test_running_stats_errors_name_the_argument():
    stats = P.running_stats_init((3,))
    with pytest.raises(ValueError, match="`x`"):
        P.running_stats_update(stats, jnp.zeros((5, 4)))
    with pytest.raises(ValueError, match="`axis`"):
        P.running_stats_update(stats, jnp.zeros((5, 3)), axis=2)
    with pytest.raises(ValueError, match="`b`"):
        P.running_stats_merge(stats, (1.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="`a` and `b`"):
        P.running_stats_merge(stats, P.running_stats_init(()))
    with pytest.raises(ValueError, match="`dtype`"):
        P.running_stats_init((2,), jnp.int32)


# ------------------------------------------------------------------------------ stateless transforms


def np_standardize(x, across_batch):
    x = np.asarray(x, np.float64)
    out = np.empty_like(x)
    groups = [slice(None)] if across_batch else range(x.shape[0])
    for g in groups:
        v = x[g]
        out[g] = (v - v.mean()) / max(v.std(), EPS)
    return out


def np_normalize(x):
    x = np.asarray(x, np.float64)
    return np.stack([(v - v.min()) / (v.max() - v.min() + EPS) for v in x])


def np_grayscale(x, weights=(0.299, 0.587, 0.114)):
    x = np.asarray(x, np.float64)
    gray = np.zeros(x.shape[:-1])
    for c, w in enumerate(weights):
        gray += w * x[..., c]
    return gray


@jit_variants
@given(x=floats((4, 5, 3), -100, 100))
def test_elementwise_and_per_input_transforms_match_numpy(use_jit, x):
    def out(pp):
        return np.asarray(variant(pp.apply, use_jit)(P.EmptyState(), x)[1])

    np.testing.assert_allclose(out(STANDARDIZE), np_standardize(x, False), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out(STANDARDIZE_ACROSS), np_standardize(x, True), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out(NORMALIZE), np_normalize(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out(CLIP), np.minimum(np.maximum(x, -1.0), 2.0))
    # atol: XLA flushes float32 subnormals to zero.
    np.testing.assert_allclose(out(DIVIDE), x / 255.0, rtol=1e-6, atol=1e-37)
    np.testing.assert_allclose(out(SCALE), x * 0.1, rtol=1e-6, atol=1e-37)
    np.testing.assert_allclose(out(GRAY), np_grayscale(x)[..., None], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(out(GRAY_FLAT), np_grayscale(x), rtol=1e-5, atol=1e-4)


def test_uint8_frames_are_processed_in_float32_and_clip_keeps_dtype():
    x = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    _, y = DIVIDE.apply(P.EmptyState(), x)
    assert y.dtype == jnp.float32
    np.testing.assert_allclose(y, x / 255.0, rtol=1e-6)
    _, g = GRAY.apply(P.EmptyState(), x)
    np.testing.assert_allclose(g[..., 0], np_grayscale(x), rtol=1e-5)
    _, c = P.clip(0, 100).apply(P.EmptyState(), x)
    assert c.dtype == jnp.uint8 and int(c.max()) == 100


def np_resize_axis(x, axis, out_size, antialias):
    """Separable triangle filter: output pixel i samples input coordinate c = (i+½)·n/m − ½ with
    weights max(0, 1 − |c − j|/k), k = max(n/m, 1) if antialiasing else 1, normalised to sum 1."""
    n = x.shape[axis]
    if n == out_size:
        return x
    k = max(n / out_size, 1.0) if antialias else 1.0
    w = np.zeros((out_size, n))
    for i in range(out_size):
        c = (i + 0.5) * n / out_size - 0.5
        for j in range(n):
            w[i, j] = max(0.0, 1.0 - abs(c - j) / k)
        w[i] /= w[i].sum()
    return np.moveaxis(np.tensordot(w, np.moveaxis(x, axis, 0), axes=1), 0, axis)


@pytest.mark.parametrize("antialias", [False, True])
@pytest.mark.parametrize("in_hw,out_hw", [((9, 8), (4, 5)), ((3, 4), (7, 6))])
def test_image_resize_matches_numpy_bilinear(antialias, in_hw, out_hw):
    x = np.random.default_rng(2).uniform(0, 255, (2,) + in_hw + (3,)).astype(np.float32)
    pp = P.image_resize(width=out_hw[1], height=out_hw[0], antialias=antialias)
    _, y = jax.jit(pp.apply)(P.EmptyState(), x)
    ref = np_resize_axis(np_resize_axis(x.astype(np.float64), 1, out_hw[0], antialias), 2, out_hw[1], antialias)
    assert y.shape == (2,) + out_hw + (3,)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-3)


def test_image_resize_without_channel_axis_and_uint8():
    x = np.random.default_rng(3).integers(0, 255, (2, 8, 6), dtype=np.uint8)
    _, y = P.image_resize(width=3, height=4).apply(P.EmptyState(), x)
    assert y.dtype == jnp.float32
    ref = np_resize_axis(np_resize_axis(x.astype(np.float64), 1, 4, True), 2, 3, True)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-3)


# ------------------------------------------------------------------------------ running standardize


def np_running_standardize(xs, axes, masks=None, reset_after_batch=True):
    history, outs = [], []
    for t, x in enumerate(xs):
        if masks is not None and reset_after_batch and masks[t] is not None and np.all(masks[t]):
            history = []
        history.append(np.asarray(x, np.float64))
        h = np.concatenate(history)
        mean, std = h.mean(axis=axes, keepdims=True), h.std(axis=axes, keepdims=True)
        # float32 rounding of inputs of magnitude M moves y by about M·1e-7 / (std + eps).
        tol = 2e-3 + 1e-5 * np.abs(h).max() / (std.min() + EPS)
        outs.append(((x - mean) / (std + EPS), tol))
    return outs


@jit_variants
@pytest.mark.parametrize("pp,axes", [(RS_ALL, None), (RS_PER_ELEMENT, 0), (RS_POOL_1, (0, 1))],
                         ids=["all", "per_element", "pool_axis_1"])
@given(data=st.data())
def test_running_standardize_matches_numpy_history(use_jit, pp, axes, data):
    xs = [data.draw(floats((2, 3, 2), -20, 20)) + 5.0 for _ in range(4)]
    _, outs = run(pp, xs, use_jit=use_jit)
    for y, (ref, tol) in zip(outs, np_running_standardize(xs, axes)):
        np.testing.assert_allclose(y, ref, rtol=2e-3, atol=tol)


@jit_variants
def test_running_standardize_reset_after_batch(use_jit):
    xs = [np.random.default_rng(t).normal(t, 1 + t, (3, 2)).astype(np.float32) for t in range(5)]
    masks = [None, np.array([True, False, False]), np.ones(3, bool), None, np.array([0, 1, 0])]
    keep = P.running_standardize(axis=0, reset_after_batch=False)
    for pp, flag in ((RS_PER_ELEMENT, True), (keep, False)):
        _, outs = run(pp, xs, masks=masks, use_jit=use_jit)
        for y, (ref, tol) in zip(outs, np_running_standardize(xs, 0, masks, flag)):
            np.testing.assert_allclose(y, ref, rtol=1e-3, atol=tol)
    stats = RS_ALL.apply(RS_ALL.init(xs[0]), xs[0])[0]
    assert float(RS_ALL.reset(stats).count) == 0.0  # reset_mask=None: a whole-batch reset


# ------------------------------------------------------------------------------ frame stack


def np_frame_stack(xs, length, masks):
    """TensorForce Sequence per env: at episode start the history is `length` copies of x."""
    history = [None] * xs[0].shape[0]
    outs = []
    for t, x in enumerate(xs):
        for b in range(x.shape[0]):
            if history[b] is None or masks[t][b]:
                history[b] = [x[b]] * length
            else:
                history[b] = history[b][1:] + [x[b]]
        outs.append(np.stack([np.concatenate(h, axis=-1) for h in history]))
    return outs


@jit_variants
@given(flags=hnp.arrays(np.bool_, (6, 3)))
def test_frame_stack_matches_tensorforce_sequence_with_per_env_resets(use_jit, flags):
    xs = [np.full((3, 2), 10 * t, np.int32) + np.arange(3)[:, None] * 100 + np.arange(2) for t in range(6)]
    _, outs = run(STACK3, xs, masks=list(flags), use_jit=use_jit)
    for y, ref in zip(outs, np_frame_stack(xs, 3, flags)):
        np.testing.assert_array_equal(y, ref)
        assert y.dtype == np.int32


def test_frame_stack_reset_without_mask_restarts_every_env():
    xs = [np.full((2, 1), t, np.float32) for t in range(3)]
    state, _ = run(STACK3, xs)
    state = STACK3.reset(state)
    _, y = STACK3.apply(state, np.array([[7.0], [8.0]], np.float32))
    np.testing.assert_array_equal(y, [[7, 7, 7], [8, 8, 8]])


# ------------------------------------------------------------------------------ reward normalization


def np_reward_normalize(rs, masks, discount, eps=1e-8):
    ret = np.zeros(rs[0].shape)
    seen, outs = [], []
    for r, mask in zip(rs, masks):
        ret = np.where(mask, 0.0, ret)
        ret = discount * ret + r
        seen.append(ret.copy())
        outs.append(r / np.sqrt(np.var(np.concatenate(seen)) + eps))
    return outs


@jit_variants
@given(rs=hnp.arrays(np.float32, (8, 4), elements=st.floats(-3, 3, width=32)),
       flags=hnp.arrays(np.bool_, (8, 4)))
def test_reward_normalize_matches_running_std_of_discounted_returns(use_jit, rs, flags):
    _, outs = run(REWARD_NORM, list(rs), masks=list(flags), use_jit=use_jit)
    for y, ref in zip(outs, np_reward_normalize(list(rs), flags, 0.9)):
        np.testing.assert_allclose(y, ref, rtol=1e-3, atol=1e-3)


# ------------------------------------------------------------------------------ composition & specs


def test_spec_stack_equals_hand_composed():
    frames = [np.random.default_rng(t).integers(0, 255, (2, 10, 8, 3), dtype=np.uint8) for t in range(5)]
    masks = [None, None, np.array([True, False]), None, None]
    hand = P.stack(P.grayscale(), P.image_resize(width=6, height=5), P.frame_stack(4))
    _, from_spec = run(ATARI, frames, masks)
    _, composed = run(hand, frames, masks)
    for a, b in zip(from_spec, composed):
        np.testing.assert_array_equal(a, b)
    gray = [np_resize_axis(np_resize_axis(np_grayscale(f), 1, 5, True), 2, 6, True)[..., None] for f in frames]
    flags = [np.zeros(2, bool) if m is None else m for m in masks]
    for a, ref in zip(from_spec, np_frame_stack(gray, 4, flags)):
        np.testing.assert_allclose(a, ref, rtol=1e-4, atol=1e-3)
    assert ATARI.processed_shape((10, 8, 3)) == (5, 6, 4) == from_spec[0].shape[1:]


def test_spec_forms_dict_per_name_single_dict_reward_and_ignored_tf_options():
    obs = {"screen": np.ones((2, 4, 4, 3), np.float32), "pos": np.array([[1.0, 3.0], [2.0, 2.0]], np.float32)}
    pp = P.from_spec({"screen": {"type": "grayscale", "scope": "gray"}, "pos": [{"type": "divide", "scale": 2}]})
    state, out = pp.apply(pp.init(obs), obs)
    np.testing.assert_allclose(out["pos"], obs["pos"] / 2)
    np.testing.assert_allclose(out["screen"], np.ones((2, 4, 4, 1)), rtol=1e-6)
    assert pp.processed_shape({"screen": (4, 4, 3), "pos": (2,)}) == {"screen": (4, 4, 1), "pos": (2,)}
    assert set(pp.reset(state, np.ones(2, bool))) == {"screen", "pos"}
    reward = P.from_spec([{"type": "clip", "min_value": -1, "max_value": 1}])
    _, r = reward.apply(reward.init(np.zeros(3)), np.array([-5.0, 0.5, 3.0]))
    np.testing.assert_array_equal(r, [-1.0, 0.5, 1.0])
    rs = list(np.random.default_rng(5).normal(0, 3, (6, 4)).astype(np.float32))
    scaled = P.from_spec([{"type": "reward_normalize", "discount": 0.9},
                          {"type": "clip", "min_value": -2.0, "max_value": 2.0}])
    _, outs = run(scaled, rs)
    for y, ref in zip(outs, np_reward_normalize(rs, np.zeros((6, 4), bool), 0.9)):
        np.testing.assert_allclose(y, np.clip(ref, -2.0, 2.0), rtol=1e-4, atol=1e-4)
    identity = P.from_spec(None)
    np.testing.assert_array_equal(identity.apply(identity.init(obs["pos"]), obs["pos"])[1], obs["pos"])


PROCESSED = [STANDARDIZE, NORMALIZE, CLIP, DIVIDE, GRAY, GRAY_FLAT, RS_ALL, RS_POOL_1, STACK3,
             P.image_resize(width=3, height=2), ATARI]


@pytest.mark.parametrize("index", range(len(PROCESSED)))
def test_processed_shape_matches_output(index):
    pp = PROCESSED[index]
    x = np.random.default_rng(index).uniform(0, 1, (2, 6, 5, 3)).astype(np.float32)
    _, y = pp.apply(pp.init(x), x)
    assert pp.processed_shape((6, 5, 3)) == y.shape[1:]
    assert REWARD_NORM.processed_shape(()) == ()


def test_vmap_over_seeds_equals_loop():
    pp = P.stack(P.running_standardize(axis=0, reset_after_batch=False), P.frame_stack(2))
    xs = np.random.default_rng(4).normal(size=(3, 4, 2, 5)).astype(np.float32)  # [seed, T, B, D]
    apply = jax.jit(jax.vmap(pp.apply))
    state = jax.vmap(pp.init)(xs[:, 0])
    vmapped = []
    for t in range(4):
        state, y = apply(state, xs[:, t])
        vmapped.append(np.asarray(y))
    for seed in range(3):
        _, outs = run(pp, list(xs[seed]))
        for t in range(4):
            np.testing.assert_allclose(vmapped[t][seed], outs[t], rtol=1e-5, atol=1e-5)


def test_spec_errors():
    with pytest.raises(ValueError, match=r"spec\[1\].*'center'.*clip, divide, frame_stack"):
        P.from_spec([{"type": "grayscale"}, {"type": "center"}])
    with pytest.raises(ValueError, match=r"spec\[0\].*'image_resize'.*accepted: width, height"):
        P.from_spec([{"type": "image_resize", "size": 84}])
    with pytest.raises(ValueError, match=r"spec\['screen'\]\[0\].*'type'"):
        P.from_spec({"screen": [{"length": 4}]})
    with pytest.raises(ValueError, match="`length`"):
        P.from_spec([{"type": "sequence", "length": 0}])
    with pytest.raises(ValueError, match=r"`preprocessors\[1\]`"):
        P.stack(CLIP, "clip")
    pp = P.from_spec({"screen": [{"type": "grayscale"}]})
    with pytest.raises(ValueError, match="`x`.*screen"):
        pp.init({"pos": np.zeros((2, 3))})


def test_constructor_and_input_errors_name_the_argument():
    cases = [
        (lambda: P.clip(1.0, 0.0), "`max_value`"),
        (lambda: P.divide(0), "`scale`"),
        (lambda: P.image_resize(width=0, height=84), "`width`"),
        (lambda: P.image_resize(width=84, height=84, method="spline"), "`method`"),
        (lambda: P.frame_stack(1.5), "`length`"),
        (lambda: P.standardize(eps=0.0), "`eps`"),
        (lambda: P.reward_normalize(discount=1.5), "`discount`"),
        (lambda: P.grayscale(weights=()), "`weights`"),
        (lambda: RS_ALL.init(np.zeros(4) > 0), "`x`.*numeric"),
        (lambda: P.running_standardize(axis=1).init(np.zeros((2, 3))), "`axis`"),
        (lambda: GRAY.apply(P.EmptyState(), np.zeros((2, 4, 4))), "`x`.*3 channels"),
        (lambda: GRAY.processed_shape((4, 4)), "`shape`"),
        (lambda: CLIP.apply(P.EmptyState(), np.float32(1.0)), "`x`.*rank >= 1"),
        (lambda: P.image_resize(3, 3).apply(P.EmptyState(), np.zeros((2, 4))), "`x`"),
        (lambda: STACK3.reset(STACK3.init(np.zeros((2, 3))), np.ones(3, bool)), "`reset_mask`"),
        (lambda: STACK3.apply(STACK3.init(np.zeros((2, 3))), np.zeros((2, 4))), "`x`"),
        (lambda: STACK3.apply(STACK3.init(np.zeros((2, 3), np.uint8)), np.zeros((2, 3))), "`x`.*dtype"),
        (lambda: REWARD_NORM.apply(REWARD_NORM.init(np.zeros(3)), np.zeros(4)), "`x`"),
    ]
    for make, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            make()
