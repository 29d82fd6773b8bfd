"""Tests for fnrl/distributions.py: NumPy-loop / scipy references, sampling statistics, gradients
at the extremes, jit / vmap and argument checks."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import special as sps, stats

from fnrl import distributions as D
from tests.helpers import floats, jit_variants, variant

BATCHES = [(4,), (2, 3)]  # leading batch shapes; the event axis (D = 3 or A = 3) comes last
DIM = 3
TOL = dict(rtol=1e-4, atol=1e-5)
KEY = jax.random.key(0)

# Per-dimension bounds exercise broadcasting of `low`/`high` to the action.
SQ_LOW, SQ_HIGH = np.array([-1.0, 0.0, -3.0]), np.array([1.0, 2.0, 5.0])
BETA_LOW, BETA_HIGH = -2.0, 3.0

CAT = D.categorical()
BER = D.bernoulli()
GAU = D.diag_gaussian()
SQ = D.squashed_gaussian(SQ_LOW, SQ_HIGH)
BETA = D.beta_distribution(BETA_LOW, BETA_HIGH)


def draw_arrays(data, n, low=-5.0, high=5.0, event=(DIM,), batches=BATCHES):
    """n float32 arrays of one drawn shape batch + event."""
    shape = data.draw(st.sampled_from(batches)) + tuple(event)
    arrays = [np.asarray(data.draw(floats(shape, low, high))) for _ in range(n)]
    # XLA on CPU flushes subnormals to zero; so does the reference.
    return [np.where(np.abs(a) < 1e-30, 0.0, a).astype(np.float32) for a in arrays]


def draw_many(dist, params, n):
    """n independent `sample_and_log_prob` draws, by vmapping over keys under jit."""
    return jax.jit(jax.vmap(dist.sample_and_log_prob, in_axes=(0, None)))(jax.random.split(KEY, n), params)


def gparams(mean, log_std):
    return D.GaussianParams(jnp.asarray(mean), jnp.asarray(log_std))


def bparams(alpha, beta):
    return D.BetaParams(jnp.asarray(alpha), jnp.asarray(beta))


# ------------------------------------------------------------------------- numpy references


def np_log_softmax(row):
    row = np.asarray(row, np.float64)
    m = row.max()
    return row - (m + math.log(sum(math.exp(v - m) for v in row)))


def np_log_sigmoid(v):
    return -math.log1p(math.exp(-v)) if v >= 0 else v - math.log1p(math.exp(v))


def np_normal_logpdf(x, m, log_s):
    return -0.5 * ((x - m) / math.exp(log_s)) ** 2 - log_s - 0.5 * math.log(2 * math.pi)


def np_expected_log_sech2(m, s):
    """E[log(1 - tanh(u)^2)], u ~ N(m, s^2): trapezoid rule on a dense float64 grid over m +- 12 s."""
    u = np.linspace(m - 12 * s, m + 12 * s, 40_001)
    log_sech2 = -2.0 * (np.abs(u) + np.log1p(np.exp(-2.0 * np.abs(u))) - math.log(2.0))  # -2 log cosh u
    return np.trapezoid(log_sech2 * stats.norm.pdf(u, m, s), u)


def np_beta_kl(a1, b1, a2, b2):
    return (sps.betaln(a2, b2) - sps.betaln(a1, b1) + (a1 - a2) * sps.digamma(a1)
            + (b1 - b2) * sps.digamma(b1) + (a2 - a1 + b2 - b1) * sps.digamma(a1 + b1))


def np_beta_mode(a, b):
    if a > 1 and b > 1:
        return (a - 1) / (a + b - 2)
    return 0.0 if a < b else (1.0 if a > b else 0.5)


def per_event(shape, fn):
    """A python loop over the batch indices of `shape` (all but the last axis)."""
    out = np.zeros(shape[:-1])
    for idx in np.ndindex(*shape[:-1]):
        out[idx] = fn(idx)
    return out


# -------------------------------------------------------------------------------- categorical


@jit_variants
@given(data=st.data())
def test_categorical_log_prob_entropy_kl_mode_match_numpy(use_jit, data):
    logits, other = draw_arrays(data, 2)
    actions = np.asarray(data.draw(st.lists(st.integers(0, DIM - 1), min_size=logits[..., 0].size,
                                            max_size=logits[..., 0].size))).reshape(logits.shape[:-1])
    actions = actions.astype(np.int32)

    def ref_log_prob(i):
        return np_log_softmax(logits[i])[actions[i]]

    def ref_entropy(i):
        lp = np_log_softmax(logits[i])
        return -sum(math.exp(v) * v for v in lp)

    def ref_kl(i):
        lp, lq = np_log_softmax(logits[i]), np_log_softmax(other[i])
        return sum(math.exp(p) * (p - q) for p, q in zip(lp, lq))

    np.testing.assert_allclose(variant(CAT.log_prob, use_jit)(logits, actions),
                               per_event(logits.shape, ref_log_prob), **TOL)
    np.testing.assert_allclose(variant(CAT.entropy, use_jit)(logits),
                               per_event(logits.shape, ref_entropy), **TOL)
    kl = variant(CAT.kl, use_jit)(logits, other)
    np.testing.assert_allclose(kl, per_event(logits.shape, ref_kl), **TOL)
    assert np.all(np.asarray(kl) >= -1e-6)
    np.testing.assert_allclose(variant(CAT.kl, use_jit)(logits, logits), 0.0, atol=1e-6)
    mode = variant(CAT.mode, use_jit)(logits)
    assert mode.dtype == jnp.int32
    np.testing.assert_array_equal(mode, np.argmax(logits, -1))


@jit_variants
@given(data=st.data())
def test_categorical_probs_conversions_match_numpy(use_jit, data):
    (logits,) = draw_arrays(data, 1)
    ref_log = np.stack([np_log_softmax(logits[i]) for i in np.ndindex(*logits.shape[:-1])])
    ref_log = ref_log.reshape(logits.shape)
    np.testing.assert_allclose(variant(D.categorical_log_probs, use_jit)(logits), ref_log, **TOL)
    probs = variant(D.categorical_probs, use_jit)(logits)
    np.testing.assert_allclose(probs, np.exp(ref_log), **TOL)
    # A policy given as probabilities and turned back into logits keeps its log-probabilities.
    back = variant(D.categorical_logits_from_probs, use_jit)(probs)
    actions = jnp.zeros(logits.shape[:-1], jnp.int32) + 1
    np.testing.assert_allclose(CAT.log_prob(back, actions), ref_log[..., 1], rtol=1e-4, atol=1e-4)


@jit_variants
def test_categorical_masked_logits_stay_finite(use_jit):
    logits = jnp.array([[0.3, -jnp.inf, 1.2], [-jnp.inf, -jnp.inf, 0.0]])
    finite = jnp.array([[0.3, 1.2], [0.0, 0.0]])
    # Masked actions: entropy and KL equal those of the unmasked categorical over the rest.
    ent = variant(CAT.entropy, use_jit)(logits)
    np.testing.assert_allclose(ent, [CAT.entropy(finite[0]), 0.0], **TOL)
    kl = variant(CAT.kl, use_jit)(logits, jnp.zeros((2, 3)))
    np.testing.assert_allclose(kl, [CAT.kl(finite[0], jnp.zeros(2)) + math.log(1.5), math.log(3.0)], **TOL)
    lp = variant(CAT.log_prob, use_jit)(logits, jnp.array([1, 2]))
    assert lp[0] == -jnp.inf and lp[1] == 0.0
    grads = jax.jit(jax.grad(lambda l: jnp.sum(CAT.entropy(l) + CAT.kl(l, jnp.zeros((2, 3)))
                                               + CAT.log_prob(l, jnp.array([0, 2])))))(logits)
    assert np.all(np.isfinite(grads))
    assert np.all(np.asarray(grads)[~np.isfinite(np.asarray(logits))] == 0.0)


@jit_variants
def test_categorical_out_of_range_actions_have_zero_probability(use_jit):
    logits = jnp.zeros((4, 3))
    lp = variant(CAT.log_prob, use_jit)(logits, jnp.array([-1, 0, 2, 3], jnp.int32))
    np.testing.assert_allclose(lp, [-np.inf, -math.log(3), -math.log(3), -np.inf])


def test_categorical_sample_frequencies():
    logits = jnp.array([1.0, -0.5, 0.2, -jnp.inf])
    n = 40_000
    samples, logp = draw_many(CAT, logits, n)
    assert samples.dtype == jnp.int32 and samples.shape == (n,)
    freq = np.bincount(np.asarray(samples), minlength=4) / n
    p = np.asarray(jax.nn.softmax(logits))
    np.testing.assert_array_less(np.abs(freq - p), 5 * np.sqrt(p * (1 - p) / n) + 1e-9)
    assert freq[3] == 0.0
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(logp, np.log(p)[np.asarray(samples)], rtol=1e-5)


def test_categorical_ids_are_int32_also_in_x64_mode():
    with jax.enable_x64(True):
        logits = jnp.zeros((2, 3))
        assert CAT.sample(KEY, logits).dtype == jnp.int32 and CAT.mode(logits).dtype == jnp.int32


def test_categorical_gradient_finite_at_extreme_logits():
    logits = jnp.array([[1e4, -1e4, 0.0]])
    g = jax.jit(jax.grad(lambda l: jnp.sum(CAT.log_prob(l, jnp.array([1])) + CAT.entropy(l)
                                           + CAT.kl(l, -l))))(logits)
    assert np.all(np.isfinite(g))
    # d log p_1 / d logits = onehot(1) - p = [-1, 1, 0].
    np.testing.assert_allclose(jax.jit(jax.grad(lambda l: CAT.log_prob(l, jnp.array([1]))[0]))(logits),
                               [[-1.0, 1.0, 0.0]], atol=1e-6)


# ---------------------------------------------------------------------------------- bernoulli


@jit_variants
@given(data=st.data())
def test_bernoulli_log_prob_entropy_kl_mode_match_numpy(use_jit, data):
    logits, other, u = draw_arrays(data, 3, event=())
    x = u > 0
    p = lambda v: 1.0 / (1.0 + math.exp(-v))
    ref_lp = np.vectorize(lambda l, a: np_log_sigmoid(l) if a else np_log_sigmoid(-l))(logits, x)
    ref_ent = np.vectorize(lambda l: -(p(l) * np_log_sigmoid(l) + (1 - p(l)) * np_log_sigmoid(-l)))(logits)
    ref_kl = np.vectorize(lambda a, b: p(a) * (np_log_sigmoid(a) - np_log_sigmoid(b))
                          + (1 - p(a)) * (np_log_sigmoid(-a) - np_log_sigmoid(-b)))(logits, other)
    np.testing.assert_allclose(variant(BER.log_prob, use_jit)(logits, x), ref_lp, **TOL)
    # Numbers are accepted too: nonzero is True.
    np.testing.assert_allclose(variant(BER.log_prob, use_jit)(logits, x.astype(np.int32)), ref_lp, **TOL)
    np.testing.assert_allclose(variant(BER.entropy, use_jit)(logits), ref_ent, **TOL)
    kl = variant(BER.kl, use_jit)(logits, other)
    np.testing.assert_allclose(kl, ref_kl, rtol=1e-4, atol=1e-5)
    assert np.all(np.asarray(kl) >= -1e-6)
    np.testing.assert_allclose(variant(BER.kl, use_jit)(logits, logits), 0.0, atol=1e-7)
    mode = variant(BER.mode, use_jit)(logits)
    assert mode.dtype == jnp.bool_
    np.testing.assert_array_equal(mode, logits >= 0)


def test_bernoulli_mode_tie_and_extremes():
    np.testing.assert_array_equal(BER.mode(jnp.array([0.0, -1e-7, 1e-7])), [True, False, True])
    ext = jnp.array([60.0, -60.0])
    g = jax.jit(jax.grad(lambda l: jnp.sum(BER.log_prob(l, jnp.array([False, True])) + BER.entropy(l)
                                           + BER.kl(l, -l))))(ext)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(BER.log_prob(ext, jnp.array([False, True])), [-60.0, -60.0], rtol=1e-6)


def test_bernoulli_entropy_and_kl_keep_precision_at_large_logits():
    """1 − sigmoid(l) rounds to 0 in float32 from l ≈ 17; the tail terms must not."""
    logits, other = np.array([17.0, 25.0, -17.0], np.float32), np.array([30.0, 20.0, -30.0], np.float32)
    p = lambda v: 1.0 / (1.0 + math.exp(-float(v)))
    for l, o, ent, kl in zip(logits, other, BER.entropy(jnp.asarray(logits)), BER.kl(jnp.asarray(logits), other)):
        ref_ent = -(p(l) * np_log_sigmoid(l) + p(-l) * np_log_sigmoid(-l))
        ref_kl = (p(l) * (np_log_sigmoid(l) - np_log_sigmoid(o))
                  + p(-l) * (np_log_sigmoid(-l) - np_log_sigmoid(-o)))
        assert float(ent) == pytest.approx(ref_ent, rel=1e-4) and float(kl) == pytest.approx(ref_kl, rel=1e-4)


def test_bernoulli_sample_frequencies():
    logits = jnp.array([-2.0, 0.0, 1.5])
    n = 40_000
    samples, logp = draw_many(BER, logits, n)
    assert samples.dtype == jnp.bool_ and samples.shape == (n, 3)
    p = np.asarray(jax.nn.sigmoid(logits))
    np.testing.assert_array_less(np.abs(np.asarray(samples).mean(0) - p), 5 * np.sqrt(p * (1 - p) / n))
    np.testing.assert_allclose(logp, np.log(np.where(samples, p, 1 - p)), rtol=1e-5)


# ------------------------------------------------------------------------------ diag gaussian


@jit_variants
@given(data=st.data())
def test_diag_gaussian_matches_numpy(use_jit, data):
    mean, mean_q, x = draw_arrays(data, 3)
    log_std, log_std_q = draw_arrays(data, 2, -3.0, 2.0, batches=[mean.shape[:-1]])

    def ref_lp(i):
        return sum(np_normal_logpdf(x[i][d], mean[i][d], log_std[i][d]) for d in range(DIM))

    def ref_ent(i):
        return sum(0.5 + 0.5 * math.log(2 * math.pi) + log_std[i][d] for d in range(DIM))

    def ref_kl(i):
        out = 0.0
        for d in range(DIM):
            sp, sq = math.exp(log_std[i][d]), math.exp(log_std_q[i][d])
            out += math.log(sq / sp) + (sp**2 + (mean[i][d] - mean_q[i][d]) ** 2) / (2 * sq**2) - 0.5
        return out

    p, q = gparams(mean, log_std), gparams(mean_q, log_std_q)
    np.testing.assert_allclose(variant(GAU.log_prob, use_jit)(p, x), per_event(x.shape, ref_lp), **TOL)
    np.testing.assert_allclose(variant(GAU.entropy, use_jit)(p), per_event(x.shape, ref_ent), **TOL)
    kl = variant(GAU.kl, use_jit)(p, q)
    np.testing.assert_allclose(kl, per_event(x.shape, ref_kl), rtol=1e-4, atol=1e-4)
    assert np.all(np.asarray(kl) >= -1e-6)
    np.testing.assert_array_equal(variant(GAU.kl, use_jit)(p, p), 0.0)
    np.testing.assert_array_equal(variant(GAU.mode, use_jit)(p), mean)


@jit_variants
def test_diag_gaussian_state_independent_log_std_broadcasts(use_jit):
    mean = jnp.arange(12.0).reshape(4, 3) / 10
    log_std = jnp.array([-1.0, 0.0, 0.5])
    x = jnp.ones((4, 3))
    full = gparams(mean, jnp.broadcast_to(log_std, (4, 3)))
    for name in ("log_prob", "entropy"):
        args = (x,) if name == "log_prob" else ()
        got = variant(getattr(GAU, name), use_jit)(gparams(mean, log_std), *args)
        np.testing.assert_allclose(got, getattr(GAU, name)(full, *args), **TOL)
        assert got.shape == (4,)


def test_diag_gaussian_log_std_clip_and_gradient():
    x = jnp.zeros((1, 2))
    lp = lambda ls: GAU.log_prob(gparams(jnp.ones((1, 2)), ls), x)[0]
    value_and_grad = jax.jit(jax.value_and_grad(lp))
    clipped = jnp.array([[40.0, -40.0]])
    at_bounds = jnp.array([[D.TENSORFORCE_MAX_LOG_STD, D.TENSORFORCE_MIN_LOG_STD]], jnp.float32)
    (v_clipped, g_clipped), (v_bounds, _) = value_and_grad(clipped), value_and_grad(at_bounds)
    np.testing.assert_allclose(v_clipped, v_bounds, rtol=1e-6)
    # Outside the clip range the log-std receives no gradient; inside it does.
    np.testing.assert_array_equal(g_clipped, 0.0)
    assert np.all(value_and_grad(jnp.full((1, 2), 0.5))[1] != 0.0)
    # Without bounds nothing is clipped: the log-stds 40 and -40 cancel in the entropy.
    unclipped = D.diag_gaussian(None, None).entropy(gparams(x, clipped))[0]
    assert unclipped == pytest.approx(2 * (0.5 + 0.5 * math.log(2 * math.pi)))


def test_diag_gaussian_sample_moments_and_reparameterization():
    mean, log_std = jnp.array([0.5, -1.0, 2.0]), jnp.array([-1.0, 0.0, 0.5])
    n = 20_000
    x, logp = draw_many(GAU, gparams(mean, log_std), n)
    x = np.asarray(x, np.float64)
    std = np.exp(np.asarray(log_std, np.float64))
    np.testing.assert_array_less(np.abs(x.mean(0) - mean), 5 * std / math.sqrt(n))
    np.testing.assert_allclose(x.std(0), std, rtol=0.03)
    ref = (-0.5 * ((x - np.asarray(mean)) / std) ** 2 - np.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)
    np.testing.assert_allclose(logp, ref, rtol=1e-4, atol=1e-4)
    # Reparameterized: d sample / d mean = 1, d sample / d log_std = sample - mean.
    two = gparams(jnp.broadcast_to(mean, (2, 3)), log_std)
    sample = GAU.sample(KEY, two)
    g_mean, g_log_std = jax.jit(jax.grad(lambda m, s: jnp.sum(GAU.sample(KEY, gparams(m, s))), (0, 1)))(*two)
    np.testing.assert_allclose(g_mean, 1.0, rtol=1e-6)
    np.testing.assert_allclose(g_log_std, np.sum(sample - mean, 0), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------- squashed gaussian


def squash_np(u, low, high):
    return low + (high - low) * (np.tanh(u) + 1) / 2


@jit_variants
@given(data=st.data())
def test_squashed_gaussian_log_prob_and_mode_match_numpy(use_jit, data):
    mean, u = draw_arrays(data, 2, -3.0, 3.0)
    (log_std,) = draw_arrays(data, 1, -2.0, 1.0, batches=[mean.shape[:-1]])
    x = squash_np(u.astype(np.float64), SQ_LOW, SQ_HIGH).astype(np.float32)

    def ref_lp(i):
        out = 0.0
        for d in range(DIM):
            half = (SQ_HIGH[d] - SQ_LOW[d]) / 2
            y = (float(x[i][d]) - SQ_LOW[d]) / half - 1
            ud = math.atanh(y)
            out += np_normal_logpdf(ud, mean[i][d], log_std[i][d]) - math.log(1 - y * y) - math.log(half)
        return out

    p = gparams(mean, log_std)
    # atanh amplifies the float32 rounding of actions near the bounds (|u| up to 3): looser atol.
    np.testing.assert_allclose(variant(SQ.log_prob, use_jit)(p, x), per_event(x.shape, ref_lp),
                               rtol=1e-4, atol=2e-3)
    mode = variant(SQ.mode, use_jit)(p)
    np.testing.assert_allclose(mode, squash_np(mean, SQ_LOW, SQ_HIGH), rtol=1e-5, atol=1e-5)


@jit_variants
@given(data=st.data())
def test_squashed_gaussian_entropy_matches_quadrature_and_kl_is_base_kl(use_jit, data):
    mean, mean_q = draw_arrays(data, 2, -6.0, 6.0, batches=[(2,)])
    log_std, log_std_q = draw_arrays(data, 2, -4.0, 3.0, batches=[(2,)])

    def ref_ent(i):
        out = 0.0
        for d in range(DIM):
            s = math.exp(log_std[i][d])
            out += (0.5 + 0.5 * math.log(2 * math.pi) + log_std[i][d]
                    + math.log((SQ_HIGH[d] - SQ_LOW[d]) / 2) + np_expected_log_sech2(float(mean[i][d]), s))
        return out

    p, q = gparams(mean, log_std), gparams(mean_q, log_std_q)
    # The documented accuracy of the expectation is ~3e-4 per dimension (3 dimensions here).
    np.testing.assert_allclose(variant(SQ.entropy, use_jit)(p), per_event(mean.shape, ref_ent),
                               rtol=1e-4, atol=1e-3)
    # KL is invariant under the squashing bijection (checked by Monte Carlo in the sampling test).
    np.testing.assert_allclose(variant(SQ.kl, use_jit)(p, q), GAU.kl(p, q), rtol=1e-6)
    np.testing.assert_array_equal(variant(SQ.kl, use_jit)(p, p), 0.0)


def test_squashed_gaussian_sampling_statistics():
    mean, log_std = jnp.array([0.3, -1.0, 1.5]), jnp.array([-0.5, 0.0, 0.7])
    mean_q, log_std_q = jnp.array([0.0, -0.5, 1.0]), jnp.array([0.0, -0.3, 0.2])
    n = 20_000
    p, q = gparams(mean, log_std), gparams(jnp.broadcast_to(mean_q, (n, 3)), log_std_q)
    a, logp = draw_many(SQ, p, n)
    a_np = np.asarray(a, np.float64)
    assert a.shape == (n, 3) and logp.shape == (n,)
    assert np.all((a_np >= SQ_LOW) & (a_np <= SQ_HIGH))
    u = np.arctanh(np.clip((a_np - SQ_LOW) / ((SQ_HIGH - SQ_LOW) / 2) - 1, -1 + 1e-7, 1 - 1e-7))
    np.testing.assert_array_less(np.abs(u.mean(0) - mean), 5 * np.exp(log_std) / math.sqrt(n))
    np.testing.assert_allclose(u.std(0), np.exp(log_std), rtol=0.03)
    # Monte Carlo: H = E[-log p(a)], KL = E[log p(a) - log q(a)].
    logp = np.asarray(logp, np.float64)
    se = logp.std() / math.sqrt(n)
    assert abs(-logp.mean() - float(SQ.entropy(p))) < 5 * se
    diff = logp - np.asarray(SQ.log_prob(q, a), np.float64)
    assert abs(diff.mean() - float(SQ.kl(p, gparams(mean_q, log_std_q)))) < 5 * diff.std() / math.sqrt(n)


def test_squashed_gaussian_sample_and_log_prob_is_pathwise():
    params = gparams(jnp.array([[0.3, -0.2, 0.1]]), jnp.array([[-0.5, 0.2, -1.0]]))
    joint = jax.jit(jax.grad(lambda p: SQ.sample_and_log_prob(KEY, p)[1][0]))(params)
    composed = jax.jit(jax.grad(lambda p: SQ.log_prob(p, SQ.sample(KEY, p))[0]))(params)
    for got, want in zip(joint, composed):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    x, lp = SQ.sample_and_log_prob(KEY, params)
    np.testing.assert_allclose(lp, SQ.log_prob(params, x), rtol=1e-4)


@jit_variants
def test_squashed_gaussian_finite_at_and_beyond_bounds(use_jit):
    params = gparams(jnp.array([[0.5, -0.5, 0.0]]), jnp.array([[-1.0, 0.0, 0.5]]))
    value_and_grad = variant(jax.value_and_grad(lambda p, a: SQ.log_prob(p, a)[0], argnums=(0, 1)), use_jit)
    for x in (SQ_HIGH, SQ_LOW, SQ_HIGH + 1e-3, SQ_LOW - 1.0):
        lp, grads = value_and_grad(params, jnp.asarray(x[None], jnp.float32))
        assert np.isfinite(lp)
        assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    # Far-out pre-squash samples (tanh rounds to +-1) keep a finite, exact log-prob.
    wide = gparams(jnp.full((1, 3), 30.0), jnp.zeros((1, 3)))
    x, lp = variant(SQ.sample_and_log_prob, use_jit)(KEY, wide)
    np.testing.assert_allclose(x, SQ_HIGH[None], rtol=1e-6)
    eps = np.asarray(jax.random.normal(KEY, (1, 3)), np.float64)  # the draw behind the sample
    u, half = 30.0 + eps, (SQ_HIGH - SQ_LOW) / 2
    log_sech2 = 2 * math.log(2) - 2 * u  # exact to ~e^-60 at u ~ 30
    ref = np.sum(-0.5 * eps**2 - 0.5 * math.log(2 * math.pi) - log_sech2 - np.log(half), -1)
    np.testing.assert_allclose(lp, ref, rtol=1e-5)


def test_squashed_gaussian_entropy_gradients_finite_across_std_range():
    grad = jax.jit(jax.grad(lambda p: SQ.entropy(p)[0]))
    for log_std in (-13.0, -2.0, math.log(2.5), 1.5, 10.0):
        g = grad(gparams(jnp.array([[0.7, -0.1, 3.0]]), jnp.full((1, 3), log_std, jnp.float32)))
        assert all(np.all(np.isfinite(v)) for v in g)
    # The entropy is continuous where the quadrature hands over to the asymptotic expansion.
    entropy = jax.jit(SQ.entropy)

    def at(std):
        return float(entropy(gparams(jnp.full((1, 3), 0.4), jnp.full((1, 3), math.log(std), jnp.float32)))[0])

    assert abs(at(2.5 * (1 + 1e-6)) - at(2.5)) < 1e-3


# --------------------------------------------------------------------------------------- beta


@jit_variants
@given(data=st.data())
def test_beta_matches_scipy_and_formulas(use_jit, data):
    alpha, beta, alpha_q, beta_q = draw_arrays(data, 4, 0.5, 8.0)
    (u,) = draw_arrays(data, 1, 0.01, 0.99, batches=[alpha.shape[:-1]])
    x = (BETA_LOW + (BETA_HIGH - BETA_LOW) * u).astype(np.float32)
    scale = BETA_HIGH - BETA_LOW
    a64, b64 = alpha.astype(np.float64), beta.astype(np.float64)
    ref_lp = stats.beta.logpdf(x.astype(np.float64), a64, b64, loc=BETA_LOW, scale=scale).sum(-1)
    ref_ent = stats.beta.entropy(a64, b64, loc=BETA_LOW, scale=scale).sum(-1)
    ref_kl = per_event(alpha.shape, lambda i: sum(
        np_beta_kl(alpha[i][d], beta[i][d], alpha_q[i][d], beta_q[i][d]) for d in range(DIM)))
    ref_mode = np.vectorize(np_beta_mode)(a64, b64) * scale + BETA_LOW
    p, q = bparams(alpha, beta), bparams(alpha_q, beta_q)
    np.testing.assert_allclose(variant(BETA.log_prob, use_jit)(p, x), ref_lp, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(variant(BETA.entropy, use_jit)(p), ref_ent, rtol=1e-4, atol=1e-4)
    kl = variant(BETA.kl, use_jit)(p, q)
    np.testing.assert_allclose(kl, ref_kl, rtol=1e-3, atol=1e-4)
    assert np.all(np.asarray(kl) >= -1e-5)
    np.testing.assert_allclose(variant(BETA.kl, use_jit)(p, p), 0.0, atol=1e-5)
    np.testing.assert_allclose(variant(BETA.mode, use_jit)(p), ref_mode, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(variant(D.beta_mean, use_jit)(p, BETA_LOW, BETA_HIGH),
                               BETA_LOW + scale * a64 / (a64 + b64), rtol=1e-5, atol=1e-5)


def test_beta_mode_is_density_argmax():
    grid = np.linspace(0.0, 1.0, 20001)
    cases = [(2.0, 5.0), (6.0, 1.5), (1.0, 3.0), (0.5, 2.0), (3.0, 0.7), (0.5, 0.8)]
    mode = np.asarray(D.beta_distribution().mode(bparams([a for a, _ in cases], [b for _, b in cases])))
    for (a, b), got in zip(cases, mode):
        with np.errstate(divide="ignore"):
            want = grid[np.argmax(stats.beta.logpdf(grid, a, b))]
        assert got == pytest.approx(want, abs=1e-4), (a, b)
    assert float(D.beta_distribution().mode(bparams([0.5], [0.5]))[0]) == 0.5


def test_beta_sampling_statistics():
    alpha, beta = jnp.array([2.0, 0.8, 5.0]), jnp.array([3.0, 1.2, 1.5])
    alpha_q, beta_q = jnp.array([1.5, 1.0, 4.0]), jnp.array([3.0, 1.0, 2.0])
    n = 20_000
    p, q = bparams(alpha, beta), bparams(alpha_q, beta_q)
    x, logp = draw_many(BETA, p, n)
    assert x.shape == (n, 3) and logp.shape == (n,)
    x = np.asarray(x, np.float64)
    assert np.all((x >= BETA_LOW) & (x <= BETA_HIGH))
    z = (x - BETA_LOW) / (BETA_HIGH - BETA_LOW)
    a, b = np.asarray(alpha, np.float64), np.asarray(beta, np.float64)
    var = a * b / ((a + b) ** 2 * (a + b + 1))
    np.testing.assert_array_less(np.abs(z.mean(0) - a / (a + b)), 5 * np.sqrt(var / n))
    np.testing.assert_allclose(z.var(0), var, rtol=0.05)
    logp = np.asarray(logp, np.float64)
    assert abs(-logp.mean() - float(BETA.entropy(p))) < 5 * logp.std() / math.sqrt(n)
    q_n = jax.tree.map(lambda v: jnp.broadcast_to(v, (n, 3)), q)
    diff = logp - np.asarray(BETA.log_prob(q_n, jnp.asarray(x, jnp.float32)), np.float64)
    assert abs(diff.mean() - float(BETA.kl(p, q))) < 5 * diff.std() / math.sqrt(n)


def test_beta_log_prob_exact_near_the_bounds():
    """Draws within machine eps of a bound (common when alpha or beta < 1) keep their density."""
    unit = D.beta_distribution(0.0, 1.0)
    params = bparams(jnp.array([[0.3, 2.0]]), jnp.array([[1.0, 0.4]]))
    x = np.array([1e-9, np.nextafter(np.float32(1), np.float32(0))], np.float32)  # 1 − 6e-8
    got = float(unit.log_prob(params, jnp.asarray(x[None]))[0])
    z = x.astype(np.float64)
    want = stats.beta.logpdf(z[0], 0.3, 1.0) + stats.beta.logpdf(z[1], 2.0, 0.4)
    assert got == pytest.approx(want, rel=1e-5)


def test_beta_gradients_finite_at_bounds_and_through_samples():
    params = bparams(jnp.array([[0.7, 2.0, 1.0]]), jnp.array([[3.0, 0.6, 1.0]]))
    value_and_grad = jax.jit(jax.value_and_grad(lambda p, x: BETA.log_prob(p, x)[0]))
    for x in (np.full(3, BETA_LOW), np.full(3, BETA_HIGH), np.array([BETA_LOW, BETA_HIGH, 0.0])):
        lp, grads = value_and_grad(params, jnp.asarray(x[None], jnp.float32))
        assert np.isfinite(lp) and all(np.all(np.isfinite(g)) for g in grads)
    # Samples are reparameterized: the mean of many samples has the mean's gradient.
    n = 20_000
    mean_of = lambda a: jnp.mean(BETA.sample(KEY, bparams(jnp.full((n, 1), a), jnp.full((n, 1), 3.0))))
    got = float(jax.jit(jax.grad(mean_of))(2.0))
    want = (BETA_HIGH - BETA_LOW) * 3.0 / 25.0  # d/da [a / (a + 3)] at a = 2, rescaled
    assert got == pytest.approx(want, rel=0.05)


# ------------------------------------------------------------------------------ param helpers


@jit_variants
@given(data=st.data())
def test_params_from_outputs_match_numpy(use_jit, data):
    (out,) = draw_arrays(data, 1, -20.0, 20.0, event=(2 * DIM,))
    make = variant(D.gaussian_params_from_outputs, use_jit, static_argnames=("min_log_std", "max_log_std"))
    g = make(out, min_log_std=-5.0, max_log_std=2.0)
    np.testing.assert_allclose(g.mean, out[..., :DIM], rtol=0, atol=1e-30)
    np.testing.assert_allclose(g.log_std, np.clip(out[..., DIM:], -5.0, 2.0), rtol=0, atol=1e-30)
    b = variant(D.beta_params_from_outputs, use_jit)(out)
    softplus = np.vectorize(lambda v: max(v, 0.0) + math.log1p(math.exp(-abs(v))))
    np.testing.assert_allclose(b.alpha, softplus(out[..., :DIM].astype(np.float64)) + 1, **TOL)
    np.testing.assert_allclose(b.beta, softplus(out[..., DIM:].astype(np.float64)) + 1, **TOL)
    assert np.all(np.asarray(b.alpha) >= 1.0) and np.all(np.asarray(b.beta) >= 1.0)


# ----------------------------------------------------------------------- every family: jit/vmap


def family_cases():
    logits = jnp.linspace(-2.0, 2.0, 12).reshape(4, 3)
    gp = gparams(logits, jnp.full((4, 3), -0.3))
    bp = bparams(jnp.exp(logits), jnp.exp(-logits) + 0.5)
    return [("categorical", CAT, logits), ("bernoulli", BER, logits), ("diag_gaussian", GAU, gp),
            ("squashed_gaussian", SQ, gp), ("beta", BETA, bp)]


@pytest.mark.parametrize("name,dist,params", family_cases(), ids=[c[0] for c in family_cases()])
def test_jit_vmap_and_sample_and_log_prob_agree(name, dist, params):
    x = dist.sample(KEY, params)
    np.testing.assert_allclose(jax.jit(dist.sample)(KEY, params), x, rtol=1e-6, atol=1e-6)
    x2, lp = dist.sample_and_log_prob(KEY, params)  # same key, same draw
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_allclose(lp, dist.log_prob(params, x), rtol=1e-4, atol=1e-5)
    # vmap over the leading batch axis reproduces the batched call (vmap over keys: draw_many).
    for fn, args in ((dist.log_prob, (params, x)), (dist.entropy, (params,)), (dist.mode, (params,)),
                     (dist.kl, (params, jax.tree.map(lambda v: v[::-1], params)))):
        np.testing.assert_allclose(jax.jit(jax.vmap(fn))(*args), fn(*args), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- argument checks


def _error_cases():
    key, logits = KEY, jnp.zeros((4, 3))
    gp, bp = gparams(logits, logits), bparams(logits + 1, logits + 1)
    return [
        (lambda: CAT.log_prob(logits.astype(jnp.int32), jnp.zeros(4, jnp.int32)), "`params`"),
        (lambda: CAT.entropy(jnp.float32(1.0)), "`params` must have rank"),
        (lambda: CAT.log_prob(logits, jnp.zeros(4)), "`x` must be an integer"),
        (lambda: CAT.log_prob(logits, jnp.zeros(3, jnp.int32)), "`x` must have shape"),
        (lambda: CAT.sample(jnp.zeros(2), logits), "`key`"),
        (lambda: CAT.kl(logits, jnp.zeros((4, 2))), "`params_p`"),
        (lambda: D.categorical_probs(jnp.zeros(3, jnp.int32)), "`logits`"),
        (lambda: D.categorical_logits_from_probs(jnp.float32(0.5)), "`probs`"),
        (lambda: BER.log_prob(logits, jnp.zeros((4, 2), bool)), "`x` must have shape"),
        (lambda: BER.entropy(jnp.zeros(3, jnp.int32)), "`params`"),
        (lambda: GAU.log_prob((logits, logits), logits), "`params` must be a GaussianParams"),
        (lambda: GAU.entropy(gparams(jnp.zeros((4, 3), jnp.int32), logits)), "`params.mean`"),
        (lambda: GAU.mode(gparams(jnp.float32(0.0), jnp.float32(0.0))), "`params.mean` must have rank"),
        (lambda: GAU.entropy(gparams(logits, jnp.zeros(2))), "`params.log_std`"),
        (lambda: GAU.log_prob(gp, jnp.zeros((4, 3), jnp.int32)), "`x` must be a floating"),
        (lambda: GAU.kl(gp, gparams(jnp.zeros((4, 2)), jnp.zeros(2))), "`params_p.mean`"),
        (lambda: GAU.sample(jnp.zeros((2, 2), jnp.uint32), gp), "`key`"),
        (lambda: SQ.log_prob(gp, jnp.zeros((4, 2))), "`x` must have shape"),
        (lambda: D.squashed_gaussian(jnp.zeros(2), jnp.ones(2)).sample(key, gp), "`low`"),
        (lambda: D.squashed_gaussian(1.0, 1.0), "`high` must be greater"),
        (lambda: D.squashed_gaussian(0.0, "x"), "`high`"),
        (lambda: D.diag_gaussian(1.0, 0.0), "`max_log_std`"),
        (lambda: D.beta_distribution(2.0, np.array([3.0, 1.0])), "`high` must be greater"),
        (lambda: BETA.log_prob(bparams(logits, jnp.zeros((4, 2))), logits), "`params.alpha`"),
        (lambda: BETA.log_prob(bp, jnp.zeros((4, 3), jnp.int32)), "`x`"),
        (lambda: BETA.entropy(gp), "`params` must be a BetaParams"),
        (lambda: BETA.kl(bp, bparams(jnp.zeros((2, 3)), jnp.zeros((2, 3)))), "`params_p.alpha`"),
        (lambda: D.beta_mean(bparams(jnp.float32(1.0), jnp.float32(1.0))), "`params.alpha`"),
        (lambda: D.gaussian_params_from_outputs(jnp.zeros((4, 5))), "`outputs`"),
        (lambda: D.beta_params_from_outputs(jnp.zeros((4, 6), jnp.int32)), "`outputs`"),
    ]


@pytest.mark.parametrize("case", range(len(_error_cases())))
def test_wrong_arguments_raise_naming_them(case):
    fn, match = _error_cases()[case]
    with pytest.raises(ValueError, match=match):
        fn()


@pytest.mark.parametrize("use_jit", [False, True], ids=["nojit", "jit"])
def test_checks_also_fire_under_jit(use_jit):
    with pytest.raises(ValueError, match="`x` must have shape"):
        variant(GAU.log_prob, use_jit)(gparams(jnp.zeros((4, 3)), jnp.zeros(3)), jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="`params.beta`"):
        variant(BETA.entropy, use_jit)(bparams(jnp.ones((4, 3)), jnp.ones((4, 3), jnp.int32)))


def test_default_distribution_per_action_type():
    logits = jnp.array([[0.2, -1.0, 3.0]])
    np.testing.assert_array_equal(D.default_distribution("int").mode(logits), [2])
    np.testing.assert_array_equal(D.default_distribution("bool").mode(logits), [[True, False, True]])
    gp = gparams(logits, jnp.zeros((1, 3)))
    np.testing.assert_array_equal(D.default_distribution("float").mode(gp), logits)
    bounded = D.default_distribution("float", min_value=-2.0, max_value=3.0)
    bp = bparams(jnp.full((1, 3), 2.0), jnp.full((1, 3), 4.0))
    np.testing.assert_allclose(bounded.mode(bp), BETA.mode(bp))
    np.testing.assert_allclose(bounded.entropy(bp), BETA.entropy(bp))
    for kwargs, match in ((dict(action_type="str"), "`action_type`"),
                          (dict(action_type="float", min_value=0.0), "`min_value` and `max_value`"),
                          (dict(action_type="int", min_value=0.0, max_value=1.0), "`min_value`")):
        with pytest.raises(ValueError, match=match):
            D.default_distribution(**kwargs)
