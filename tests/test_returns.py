"""fnrl.returns against plain NumPy loops written from the formulas."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnrl import returns
from tests.helpers import episode_flags, floats, jit_variants, variant

SHAPES = [(1,), (2,), (7,), (6, 3)]
RTOL, ATOL = 1e-4, 1e-4


# ----------------------------------------------------------------------------- NumPy references
def columns(*arrays):
    """Iterates over the independent streams of time-major arrays as 1-D columns."""
    flat = [np.asarray(a, np.float64).reshape(a.shape[0], -1) for a in arrays]
    for j in range(flat[0].shape[1]):
        yield j, [f[:, j] for f in flat]


def np_lambda_returns(r, d, v, lam, trunc, valid):
    lam = np.broadcast_to(lam, r.shape)
    out = np.zeros(r.shape, np.float64).reshape(r.shape[0], -1)
    for j, (r_, d_, v_, l_, tr_, va_) in columns(r, d, v, lam, trunc, valid):
        nxt = None
        for i in reversed(range(len(r_))):
            if not va_[i]:
                continue
            if nxt is None or tr_[i]:
                g = r_[i] + d_[i] * v_[i]
            else:
                g = r_[i] + d_[i] * ((1 - l_[i]) * v_[i] + l_[i] * nxt)
            out[i, j] = nxt = g
    return out.reshape(r.shape)


def np_n_step(r, d, v, n, lam, trunc, valid):
    lam = np.broadcast_to(lam, r.shape)
    out = np.zeros(r.shape, np.float64).reshape(r.shape[0], -1)
    for j, (r_, d_, v_, l_, tr_, va_) in columns(r, d, v, lam, trunc, valid):
        T = len(r_)
        for i in range(T):
            if not va_[i]:
                continue
            h = min(n, T - i)
            acc = v_[max(k for k in range(i, i + h) if va_[k])]  # the window's last valid step
            for k in reversed(range(i, i + h)):
                if not va_[k]:
                    continue
                if tr_[k]:
                    acc = r_[k] + d_[k] * v_[k]
                else:
                    acc = r_[k] + d_[k] * ((1 - l_[k]) * v_[k] + l_[k] * acc)
            out[i, j] = acc
    return out.reshape(r.shape)


def np_vtrace(v_tm1, v_t, r, d, rho, lam, clip_rho, clip_pg, trunc, valid):
    """Returns (targets, pg advantages)."""
    shape = r.shape
    tgt = np.zeros(shape, np.float64).reshape(shape[0], -1)
    adv = np.zeros_like(tgt)
    for j, (vm, vt, r_, d_, p_, tr_, va_) in columns(v_tm1, v_t, r, d, rho, trunc, valid):
        nxt_corr = 0.0  # correction of the next valid step, 0 past the end
        for i in reversed(range(len(r_))):
            if not va_[i]:
                continue
            delta = min(clip_rho, p_[i]) * (r_[i] + d_[i] * vt[i] - vm[i])
            cont = 0.0 if tr_[i] else 1.0
            corr = delta + d_[i] * lam * min(1.0, p_[i]) * cont * nxt_corr
            tgt[i, j] = vm[i] + corr
            vs_next = vt[i] + cont * nxt_corr
            adv[i, j] = min(clip_pg, p_[i]) * (r_[i] + d_[i] * vs_next - vm[i])
            nxt_corr = corr
    return tgt.reshape(shape), adv.reshape(shape)


def np_retrace(q_tm1, q_t, a_tm1, a_t, r, d, pi, mu, lam, trunc, valid):
    T = r.shape[0]
    out = np.zeros(T)
    nxt = None
    for i in reversed(range(T)):
        if not valid[i]:
            continue
        expected = float(np.dot(pi[i], q_t[i]))
        if nxt is None or trunc[i]:
            g = r[i] + d[i] * expected
        else:
            c = lam * min(1.0, pi[i, a_t[i]] / mu[i])
            g = r[i] + d[i] * (expected - c * q_t[i, a_t[i]] + c * nxt)
        nxt = g
        out[i] = g - q_tm1[i, a_tm1[i]]
    return out


def np_tf_cumulative(terminal, reward, gamma, final, horizon):
    N = len(reward)
    out = np.zeros(N)
    for i in range(N):
        end = next((k for k in range(i, N) if terminal[k]), None)
        steps_left = (end - i + 1) if end is not None else N - i
        m = steps_left if horizon == 0 else min(horizon, steps_left)
        out[i] = sum(gamma**k * reward[i + k] for k in range(m))
        if end is None and horizon != 1:
            out[i] += gamma ** (N - i) * final
    return out


def np_agentnet(values, rewards, alive, n, gamma, crop, after_end, end_at_tmax):
    B, T = values.shape
    ref = np.zeros((B, T))
    for b in range(B):
        ends = [alive[b, t] == 1 and alive[b, t + 1] == 0 for t in range(T - 1)]
        ends.append(end_at_tmax and not any(ends))
        nxt_ref = 0.0
        for t in reversed(range(T)):
            nxt_v = values[b, t + 1] if t + 1 < T else after_end[b]
            from_end = T - 1 - t + int(crop)
            boot = (t == T - 1 - int(crop)) if n is None else (from_end % n == 0)
            g = gamma[b, t]
            if ends[t]:
                val = rewards[b, t]
            elif boot:
                val = rewards[b, t] + g * nxt_v
            else:
                val = rewards[b, t] + g * nxt_ref
            ref[b, t] = nxt_ref = val
        if crop:
            ref[b, -1] = values[b, -1]
    return ref


# ----------------------------------------------------------------------------- strategies
@st.composite
def sequence(draw, shapes=SHAPES):
    shape = draw(st.sampled_from(shapes))
    r = draw(floats(shape))
    gamma = draw(st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0]))
    term, trunc, valid = draw(episode_flags(shape))
    d = (gamma * (1.0 - term)).astype(np.float32)
    v = draw(floats(shape, -10, 10))
    lam = draw(st.sampled_from([0.0, 0.5, 0.95, 1.0]))
    return r, d, v, lam, trunc, valid


# ----------------------------------------------------------------------------- tests
@jit_variants
@given(sequence(), st.booleans())
def test_lambda_returns_matches_numpy(use_jit, seq, with_flags):
    r, d, v, lam, trunc, valid = seq
    if not with_flags:
        trunc, valid = np.zeros_like(trunc), np.ones_like(valid)
    fn = variant(returns.lambda_returns, use_jit)
    got = fn(r, d, v, lam, truncated_t=trunc, valid_t=valid)
    np.testing.assert_allclose(got, np_lambda_returns(r, d, v, lam, trunc, valid), rtol=RTOL, atol=ATOL)


@jit_variants
@given(sequence())
def test_lambda_returns_per_step_lambda(use_jit, seq):
    r, d, v, _, trunc, valid = seq
    lam = np.linspace(0.0, 1.0, r.size, dtype=np.float32).reshape(r.shape)
    fn = variant(returns.lambda_returns, use_jit)
    np.testing.assert_allclose(
        fn(r, d, v, lam, truncated_t=trunc, valid_t=valid), np_lambda_returns(r, d, v, lam, trunc, valid), rtol=RTOL, atol=ATOL
    )


@jit_variants
@given(sequence(), st.booleans())
def test_discounted_returns_scalar_and_sequence_bootstrap(use_jit, seq, scalar):
    r, d, v, _, trunc, valid = seq
    if scalar:
        boot = np.float32(3.5)
        v_full = np.full(r.shape, boot, np.float32)
    else:
        boot = v_full = v
    fn = variant(returns.discounted_returns, use_jit)
    np.testing.assert_allclose(
        fn(r, d, boot, truncated_t=trunc, valid_t=valid), np_lambda_returns(r, d, v_full, 1.0, trunc, valid), rtol=RTOL, atol=ATOL
    )


@jit_variants
@given(sequence(), st.sampled_from([1, 2, 3, 8]))
def test_n_step_returns_matches_numpy(use_jit, seq, n):
    r, d, v, lam, trunc, valid = seq
    fn = variant(returns.n_step_returns, use_jit, static_argnames="n")
    np.testing.assert_allclose(
        fn(r, d, v, n, lam, truncated_t=trunc, valid_t=valid), np_n_step(r, d, v, n, lam, trunc, valid), rtol=RTOL, atol=ATOL
    )


@given(sequence())
def test_n_step_with_long_window_equals_lambda_returns(seq):
    r, d, v, lam, trunc, valid = seq
    np.testing.assert_allclose(
        returns.n_step_returns(r, d, v, r.shape[0], lam), returns.lambda_returns(r, d, v, lam), rtol=RTOL, atol=ATOL
    )
    np.testing.assert_allclose(
        returns.n_step_returns(r, d, v, r.shape[0], lam, truncated_t=trunc, valid_t=valid),
        returns.lambda_returns(r, d, v, lam, truncated_t=trunc, valid_t=valid), rtol=RTOL, atol=ATOL
    )


@jit_variants
@pytest.mark.parametrize("n", [1, 2, 3])
def test_n_step_never_reads_removed_steps(use_jit, n):
    """Padding (valid=False) at the end or inside a window, filled with NaN: the windows bootstrap
    from their last valid step's value and no NaN reaches any output."""
    r = np.array([1.0, 5.0, 2.0, np.nan, np.nan], np.float32)
    d = np.full(5, 0.9, np.float32)
    v = np.array([10.0, 100.0, 20.0, np.nan, np.nan], np.float32)
    valid = np.array([True, False, True, False, False])
    r[1], v[1] = np.nan, np.nan
    out = variant(returns.n_step_returns, use_jit, static_argnames="n")(r, d, v, n, valid_t=valid)
    expected = np_n_step(np.nan_to_num(r), d, np.nan_to_num(v), n, 1.0, np.zeros(5, bool), valid)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert float(out[0]) == pytest.approx({1: 10.0, 2: 10.0, 3: 1 + 0.9 * (2 + 0.9 * 20)}[n])


@jit_variants
@given(sequence(), st.booleans())
def test_gae_matches_numpy(use_jit, seq, override):
    r, d, v, lam, trunc, valid = seq
    v0 = np.float32(0.7) * np.roll(v, 1, axis=0)
    values = np.concatenate([v0[:1], v], axis=0)
    boot = v if not override else v * np.float32(-1.5)  # values[1:] == v without override
    fn = variant(returns.gae, use_jit)
    want = np_gae(r, d, values[:-1], boot, lam, trunc, valid)
    got = fn(r, d, values, lam, truncated_t=trunc, valid_t=valid, bootstrap_values_t=boot)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def np_gae(r, d, v_now, v_next, lam, trunc, valid):
    """GAE with V(s_i) = v_now[i] and V(s_{i+1}) = v_next[i]."""
    out = np.zeros(r.shape, np.float64).reshape(r.shape[0], -1)
    for j, (r_, d_, vn, vx, tr_, va_) in columns(r, d, v_now, v_next, trunc, valid):
        nxt = 0.0
        for i in reversed(range(len(r_))):
            if not va_[i]:
                continue
            a = r_[i] + d_[i] * vx[i] - vn[i] + (0.0 if tr_[i] else d_[i] * lam * nxt)
            out[i, j] = nxt = a
    return out.reshape(r.shape)


@given(sequence())
def test_gae_plus_values_equals_lambda_returns(seq):
    """Without invalid steps, A + V(s) is the λ-return (a textbook identity)."""
    r, d, v, lam, trunc, _ = seq
    values = np.concatenate([v[:1] * 0.5, v], axis=0)
    adv = returns.gae(r, d, values, lam, truncated_t=trunc)
    lam_ret = returns.lambda_returns(r, d, values[1:], lam, truncated_t=trunc)
    np.testing.assert_allclose(adv + values[:-1], lam_ret, rtol=RTOL, atol=ATOL)


@jit_variants
@given(sequence(), floats((7,), 0.0, 3.0), st.sampled_from([1.0, 0.5, 2.0]))
def test_vtrace_and_pg_advantages_match_numpy(use_jit, seq, rho_src, clip):
    r, d, v_t, lam, trunc, valid = seq
    rho = np.resize(rho_src, r.shape).astype(np.float32)
    v_tm1 = (v_t * np.float32(0.8) + np.float32(0.3)).astype(np.float32)
    flags = dict(truncated_t=trunc, valid_t=valid)
    tgt_fn, adv_fn = variant(returns.vtrace, use_jit), variant(returns.vtrace_pg_advantages, use_jit)
    want_tgt, want_adv = np_vtrace(v_tm1, v_t, r, d, rho, lam, clip, 0.7, trunc, valid)
    np.testing.assert_allclose(tgt_fn(v_tm1, v_t, r, d, rho, lam, clip, **flags), want_tgt, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(adv_fn(v_tm1, v_t, r, d, rho, lam, clip, 0.7, **flags), want_adv, rtol=RTOL, atol=ATOL)


@given(sequence())
def test_vtrace_on_policy_equals_lambda_returns(seq):
    """With ρ = 1 and no clipping active, V-trace targets are λ-returns (Espeholt et al. §4.1)."""
    r, d, v_t, lam, trunc, _ = seq
    v_tm1 = np.concatenate([v_t[:1] * 0.3, v_t[:-1]], axis=0)
    got = returns.vtrace(v_tm1, v_t, r, d, np.ones_like(r), lam, truncated_t=trunc)
    want = returns.lambda_returns(r, d, v_t, lam, truncated_t=trunc)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-3)


@st.composite
def q_sequence(draw):
    T = draw(st.sampled_from([1, 3, 8]))
    A = draw(st.sampled_from([2, 4]))
    q_tm1, q_t = draw(floats((T, A))), draw(floats((T, A)))
    a_tm1 = np.asarray(draw(st.lists(st.integers(0, A - 1), min_size=T, max_size=T)), np.int32)
    a_t = np.asarray(draw(st.lists(st.integers(0, A - 1), min_size=T, max_size=T)), np.int32)
    r = draw(floats((T,)))
    term, trunc, valid = draw(episode_flags((T,)))
    d = (0.9 * (1.0 - term)).astype(np.float32)
    logits = draw(floats((T, A), -2, 2))
    pi = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    mu = np.asarray(draw(floats((T,), 0.05, 1.0)), np.float32)
    return q_tm1, q_t, a_tm1, a_t, r, d, pi.astype(np.float32), mu, trunc, valid


@jit_variants
@given(q_sequence(), st.sampled_from([0.0, 0.7, 1.0]))
def test_retrace_matches_numpy(use_jit, data, lam):
    q_tm1, q_t, a_tm1, a_t, r, d, pi, mu, trunc, valid = data
    fn = variant(returns.retrace, use_jit)
    want = np_retrace(q_tm1, q_t, a_tm1, a_t, r, d, pi, mu, lam, trunc, valid)
    got = fn(q_tm1, q_t, a_tm1, a_t, r, d, pi, mu, lam, truncated_t=trunc, valid_t=valid)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


@jit_variants
@given(q_sequence(), st.sampled_from([0.0, 0.7, 1.0]))
def test_q_lambda_matches_numpy(use_jit, data, lam):
    q_tm1, q_t, a_tm1, _, r, d, _, _, trunc, valid = data
    fn = variant(returns.q_lambda, use_jit)
    want = np_lambda_returns(r, d, q_t.max(-1), lam, trunc, valid) - q_tm1[np.arange(len(r)), a_tm1]
    want = want * valid
    got = fn(q_tm1, a_tm1, r, d, q_t, lam, truncated_t=trunc, valid_t=valid)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_tensorforce_doc_vector():
    got = returns.discounted_cumulative_reward(
        terminal=np.array([False, False, False, False, True, False]),
        reward=np.array([2.0, 1.0, 0.0, 0.5, 1.0, -1.0], np.float32),
        discount=0.95,
        final_reward=100.0,
        horizon=3,
    )
    np.testing.assert_allclose(got, [2.95, 1.45, 1.38, 1.45, 1.0, 94.0], atol=6e-3)
    np.testing.assert_allclose(np.asarray(got)[[0, 2, 3]], [2.95, 1.3775, 1.45], rtol=1e-6)
    undiscounted = returns.discounted_cumulative_reward(np.zeros(3, bool), np.ones(3, np.float32), 1)  # an int γ
    np.testing.assert_allclose(undiscounted, [3.0, 2.0, 1.0])


@jit_variants
@given(
    st.integers(1, 12).flatmap(lambda n: st.tuples(floats((n,)), st.lists(st.booleans(), min_size=n, max_size=n))),
    st.sampled_from([0.0, 0.5, 0.95, 1.0]),
    st.sampled_from([0.0, 100.0, -3.0]),
    st.sampled_from([0, 1, 2, 3, 20]),
)
def test_discounted_cumulative_reward_matches_numpy(use_jit, data, gamma, final, horizon):
    reward, terminal = data
    terminal = np.asarray(terminal)
    fn = variant(returns.discounted_cumulative_reward, use_jit, static_argnames="horizon")
    want = np_tf_cumulative(terminal, reward.astype(np.float64), gamma, final, horizon)
    np.testing.assert_allclose(fn(terminal, reward, gamma, final, horizon), want, rtol=1e-4, atol=1e-3)


@st.composite
def agentnet_batch(draw):
    B, T = draw(st.sampled_from([(1, 1), (2, 4), (3, 7)]))
    values, rewards = draw(floats((B, T))), draw(floats((B, T)))
    lengths = draw(st.lists(st.integers(0, T), min_size=B, max_size=B))
    alive = (np.arange(T)[None, :] < np.asarray(lengths)[:, None]).astype(np.float32)
    gamma_kind = draw(st.sampled_from(["scalar", "batch", "batch_tick"]))
    gammas = {"scalar": np.float32(0.9), "batch": np.linspace(0.5, 1.0, B, dtype=np.float32),
              "batch_tick": np.asarray(draw(floats((B, T), 0.0, 1.0)))}[gamma_kind]
    after_end = draw(st.none() | floats((B,)))
    return values, rewards, alive, gammas, after_end


@jit_variants
@given(agentnet_batch(), st.sampled_from([None, 1, 2, 3, 5]), st.booleans(), st.booleans(), st.booleans())
def test_agentnet_n_step_reference_matches_numpy(use_jit, data, n, crop, end_at_tmax, always_alive):
    values, rewards, alive, gammas, after_end = data
    if always_alive:
        alive = np.ones_like(alive)
    fn = variant(returns.agentnet_n_step_reference, use_jit, static_argnames=("n_steps", "crop_last", "end_at_tmax"))
    B, T = values.shape
    gamma_full = np.broadcast_to(gammas if np.ndim(gammas) != 1 else gammas[:, None], (B, T))
    after = np.zeros(B) if after_end is None else after_end
    want = np_agentnet(values, rewards, alive, n, gamma_full, crop, after, end_at_tmax)
    got = fn(values, rewards, alive, n, gammas, crop_last=crop, state_values_after_end=after_end, end_at_tmax=end_at_tmax)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_agentnet_end_indicator_examples():
    alive = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    np.testing.assert_array_equal(
        returns.agentnet_end_indicator(alive), [[0, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]]
    )
    np.testing.assert_array_equal(
        returns.agentnet_end_indicator(alive, force_end_at_t_max=True), [[0, 1, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0]]
    )


# ----------------------------------------------------------------------------- gradients
def test_stop_target_gradients():
    r, d, v = jnp.ones(5), jnp.full(5, 0.9), jnp.arange(5.0)
    for stop, want_zero in [(True, True), (False, False)]:
        g = jax.grad(lambda v: returns.lambda_returns(r, d, v, 0.5, stop_target_gradients=stop).sum())(v)
        assert bool(jnp.all(g == 0)) == want_zero
    values = jnp.arange(6.0)
    g = jax.grad(lambda vals: returns.gae(r, d, vals, 0.9).sum())(values)
    assert jnp.all(g == 0)
    g = jax.grad(lambda vals: returns.gae(r, d, vals, 0.9, stop_target_gradients=False).sum())(values)
    assert jnp.any(g != 0)
    q = jnp.ones((5, 3))
    a = jnp.zeros(5, jnp.int32)
    g = jax.grad(lambda q: returns.q_lambda(q, a, r, d, q, 0.5).sum())(q)
    # Only the prediction term carries gradient: −1 at each taken action, 0 elsewhere.
    np.testing.assert_allclose(g, np.eye(3)[np.zeros(5, int)] * -1.0)


def test_lambda_returns_gradient_wrt_rewards_is_discount_weights():
    r, d, v = jnp.zeros(4), jnp.full(4, 0.5), jnp.zeros(4)
    g = jax.grad(lambda r: returns.lambda_returns(r, d, v, 1.0)[0])(r)
    np.testing.assert_allclose(g, [1.0, 0.5, 0.25, 0.125])


# ----------------------------------------------------------------------------- argument errors
@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: returns.lambda_returns(np.ones(3, np.int32), np.ones(3), np.ones(3)), "r_t"),
        (lambda: returns.lambda_returns(np.ones(3), np.ones(4), np.ones(3)), "discount_t"),
        (lambda: returns.lambda_returns(np.ones(3), np.ones(3), np.ones(2)), "v_t"),
        (lambda: returns.lambda_returns(np.ones(3), np.ones(3), np.ones(3), 1.5), "lambda_"),
        (lambda: returns.lambda_returns(np.ones(3), np.ones(3), np.ones(3), truncated_t=np.ones(2)), "truncated_t"),
        (lambda: returns.lambda_returns(np.float32(1.0), np.float32(1.0), np.float32(1.0)), "r_t"),
        (lambda: returns.discounted_returns(np.ones(3), np.ones(3), np.ones(2)), "v_t"),
        (lambda: returns.discounted_returns(np.ones(3), np.ones(2), 0.0),
         "discounted_returns: .*discount_t"),
        (lambda: returns.n_step_returns(np.ones(3), np.ones(3), np.ones(3), 0), "n"),
        (lambda: returns.gae(np.ones(3), np.ones(3), np.ones(3), 0.9), "values"),
        (lambda: returns.gae(np.ones(3), np.ones(3), np.ones(4), 0.9, valid_t=np.ones(5)), "valid_t"),
        (lambda: returns.vtrace(np.ones(3), np.ones(3), np.ones(3), np.ones(3), np.ones((3, 1))), "rho_tm1"),
        (lambda: returns.retrace(np.ones((3, 2)), np.ones((3, 2)), np.zeros(3, np.float32), np.zeros(3, np.int32),
                                 np.ones(3), np.ones(3), np.ones((3, 2)), np.ones(3), 0.9), "a_tm1"),
        (lambda: returns.retrace(np.ones((3, 2)), np.ones((3, 2)), np.zeros(3, np.int32), np.zeros(3, np.int32),
                                 np.ones(3), np.ones(3), np.ones((3, 3)), np.ones(3), 0.9), "pi_t"),
        (lambda: returns.q_lambda(np.ones(3), np.zeros(3, np.int32), np.ones(3), np.ones(3), np.ones(3), 0.5), "q_tm1"),
        (lambda: returns.discounted_cumulative_reward(np.zeros(3, bool), np.ones(3), 0.9, horizon=-1), "horizon"),
        (lambda: returns.discounted_cumulative_reward(np.zeros(2, bool), np.ones(3), 0.9), "terminal"),
        (lambda: returns.agentnet_n_step_reference(np.ones(3), np.ones(3)), "state_values"),
        (lambda: returns.agentnet_n_step_reference(np.ones((2, 3)), np.ones((2, 3)), gamma_or_gammas=np.ones(3)),
         "gamma_or_gammas"),
        (lambda: returns.agentnet_n_step_reference(np.ones((2, 3)), np.ones((2, 3)), n_steps=0), "n_steps"),
        (lambda: returns.agentnet_n_step_reference(np.ones((2, 3)), np.ones((2, 3)), is_alive=np.ones((2, 2))),
         "is_alive"),
    ],
)
def test_bad_arguments_are_named(call, name):
    with pytest.raises(ValueError, match=name if ":" in name else f"`{name}`"):
        call()


def test_nan_padding_in_removed_steps_reaches_neither_values_nor_gradients():
    """Removed steps (valid=False) may hold anything, NaN included: outputs there are 0 and the
    gradients of the valid steps equal those of the same data padded with zeros."""
    valid = np.array([True, True, False, True, True])
    rng = np.random.default_rng(0)
    r, v_tm1, v_t = (rng.normal(size=5).astype(np.float32) for _ in range(3))
    d, rho = np.full(5, 0.9, np.float32), np.exp(rng.normal(size=5)).astype(np.float32)

    def padded(x, fill):
        return np.where(valid, x, fill).astype(np.float32)

    def vtrace_loss(v_tm1, v_t, fill):
        targets = returns.vtrace(v_tm1, v_t, padded(r, fill), padded(d, fill), padded(rho, fill),
                                 valid_t=valid, stop_target_gradients=False)
        return jnp.sum(jnp.where(valid, jnp.square(targets - v_tm1), 0.0)), targets

    def lambda_loss(v_t, fill):
        out = returns.lambda_returns(padded(r, fill), padded(d, fill), v_t, 0.8, valid_t=valid)
        return jnp.sum(out), out

    for loss, args in ((vtrace_loss, (v_tm1, v_t)), (lambda_loss, (v_t,))):
        (_, clean), clean_grads = jax.value_and_grad(loss, argnums=tuple(range(len(args))), has_aux=True)(*args, 0.0)
        (_, dirty), dirty_grads = jax.value_and_grad(loss, argnums=tuple(range(len(args))), has_aux=True)(
            *(padded(a, np.nan) for a in args), np.nan)
        np.testing.assert_array_equal(dirty, clean)
        for g_clean, g_dirty in zip(clean_grads, dirty_grads):
            np.testing.assert_allclose(np.asarray(g_dirty)[valid], np.asarray(g_clean)[valid], rtol=1e-6)

    q = rng.normal(size=(5, 3)).astype(np.float32)
    a = np.array([0, 2, 1, 1, 0], np.int32)
    clean = returns.q_lambda(q, a, r, d, q, 0.5, valid_t=valid)
    dirty = returns.q_lambda(np.where(valid[:, None], q, np.nan), a, padded(r, np.nan), padded(d, np.nan),
                             np.where(valid[:, None], q, np.nan), 0.5, valid_t=valid)
    np.testing.assert_array_equal(dirty, clean)
    assert float(clean[2]) == 0.0
    # An out-of-range action id is NaN where it counts (a valid step), and harmless where it doesn't.
    bad = a.copy()
    bad[2] = -1
    np.testing.assert_array_equal(returns.q_lambda(q, bad, r, d, q, 0.5, valid_t=valid), clean)
    bad[0] = -1
    assert np.isnan(np.asarray(returns.q_lambda(q, bad, r, d, q, 0.5, valid_t=valid))[0])
