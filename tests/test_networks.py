"""fnrl.networks: output shapes, memory cells against NumPy implementations of their equations,
measured gradient clipping, augmentation semantics against plain Python, attention masks,
TensorForce layer specs against hand-built equivalents, and argument errors."""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fnrl import networks as nw
from fnrl.value_learning import naf_q_value
from tests.helpers import floats, jit_variants, variant

B, F0, F1, U = 3, 4, 2, 5  # batch, two input widths, units
KEY = jax.random.PRNGKey(0)
BIG = hk.initializers.RandomNormal(1.0)  # AgentNet's N(0, 0.01) would make every test trivial
RTOL, ATOL = 1e-4, 1e-5


def close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


def np_params(params):
    return jax.tree.map(lambda p: np.asarray(p, np.float64), params)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def masks(shape):
    return hnp.arrays(np.bool_, shape, elements=st.booleans())


# --------------------------------------------------------------------------------------------
# Shapes of torsos and heads.


def _all_modules(x, img, ids):
    return dict(
        mlp=nw.MLP([8, 6], activation="tanh", with_bias=False)(x),
        nature=nw.NatureCNN()(img),
        impala=nw.ImpalaCNN(channels=(4, 8), num_blocks=1, hidden_size=16)(img),
        embedding=nw.Embedding(10, 5)(ids),
        q=nw.QHead(3)(x),
        dueling=nw.DuelingQHead(3)(x),
        logits=nw.CategoricalPolicyHead(3)(x),
        bernoulli=nw.BernoulliPolicyHead(2)(x),
        value=nw.ValueHead()(x),
        c51=nw.DistributionalQHead(3, 7)(x),
        gaussian=nw.GaussianPolicyHead(2)(x),
        beta=nw.BetaPolicyHead(2)(x),
        naf=nw.NAFHead(3, mu_activation=jnp.tanh)(x),
    )


ALL = hk.transform(_all_modules)


def test_torso_and_head_shapes():
    # Abstract evaluation traces every module without compiling the (slow to build) convnets.
    x = jax.ShapeDtypeStruct((2, 3, F0), jnp.float32)  # two leading batch axes
    img = jax.ShapeDtypeStruct((2, 3, 36, 36, 2), jnp.float32)
    ids = jax.ShapeDtypeStruct((2, 3), jnp.int32)
    params = jax.eval_shape(ALL.init, KEY, x, img, ids)
    shapes = jax.tree.map(lambda a: a.shape, jax.eval_shape(ALL.apply, params, KEY, x, img, ids))
    assert shapes["mlp"] == (2, 3, 6) and set(params["mlp/linear_0"]) == {"w"}  # with_bias=False
    assert shapes["nature"] == (2, 3, 512) and shapes["impala"] == (2, 3, 16)
    assert shapes["embedding"] == (2, 3, 5)
    for name in ("q", "dueling", "logits"):
        assert shapes[name] == (2, 3, 3)
    assert shapes["bernoulli"] == (2, 3, 2) and shapes["value"] == (2, 3)
    assert shapes["c51"] == (2, 3, 3, 7)
    assert shapes["gaussian"] == nw.GaussianParams((2, 3, 2), (2, 3, 2))
    assert shapes["beta"] == nw.BetaParams((2, 3, 2), (2, 3, 2))
    assert shapes["naf"] == nw.NAFOutput((2, 3), (2, 3, 3), (2, 3, 6), (2, 3, 3, 3))
    # The Nature CNN's layer shapes (Mnih et al. 2015): 8x8/4, 4x4/2, 3x3/1 convs, 512 dense.
    assert [params[f"nature_cnn/conv2_d{s}"]["w"].shape for s in ("", "_1", "_2")] == [
        (8, 8, 2, 32), (4, 4, 32, 64), (3, 3, 64, 64)]
    assert params["nature_cnn/linear"]["w"].shape == (64, 512)
    # IMPALA: per stack one conv and two per residual block (Espeholt et al. 2018, fig. 3).
    assert sum(k.startswith("impala_cnn/conv2_d") for k in params) == 2 * 3


# --------------------------------------------------------------------------------------------
# Heads: dueling identity, NAF, gaussian log-std.


def np_dueling(value, adv):
    out = np.zeros(adv.shape)
    for idx in np.ndindex(value.shape):
        mean = sum(adv[idx]) / adv.shape[-1]
        for a in range(adv.shape[-1]):
            out[idx + (a,)] = value[idx] + adv[idx + (a,)] - mean
    return out


@jit_variants
@given(value=floats((2, 3)), adv=floats((2, 3, 4)))
def test_dueling_combine_matches_numpy_and_mean_is_value(use_jit, value, adv):
    q = variant(nw.dueling_combine, use_jit)(value, adv)
    close(q, np_dueling(value.astype(np.float64), adv.astype(np.float64)))
    close(np.mean(np.asarray(q), axis=-1), value)  # mean advantage is zero


def _heads(x, u, ids):
    naf = nw.NAFHead(2, mu_activation=jnp.tanh)(x)
    gauss = nw.GaussianPolicyHead(2, state_dependent_std=False, init_log_std=-0.5)(x)
    clipped = nw.GaussianPolicyHead(2, min_log_std=-0.1, max_log_std=0.1, w_init=BIG)(x)
    q, v = nw.DuelingQHead(4, w_init=BIG)(x), nw.ValueHead()(x)
    beta, embedded = nw.BetaPolicyHead(2, w_init=BIG)(x), nw.Embedding(10, 3)(ids)
    return naf, naf_q_value(naf.value, naf.mu, naf.l_matrix, u), gauss, clipped, q, beta, embedded


HEADS = hk.without_apply_rng(hk.transform(_heads))


def test_heads_semantics():
    x = jax.random.normal(KEY, (B, F0))
    u = jax.random.normal(jax.random.PRNGKey(1), (B, 2))
    ids = jnp.array([[1, 9], [0, 0], [5, 3]])
    params = jax.jit(HEADS.init)(KEY, x, u, ids)
    apply = jax.jit(HEADS.apply)
    naf, q_u, gauss, clipped, q, beta, embedded = apply(params, x, u, ids)
    _, q_mu, *_ = apply(params, x, naf.mu, ids)
    assert np.all(np.abs(np.asarray(naf.mu)) <= 1)
    close(q_mu, naf.value)  # the advantage vanishes at the greedy action
    assert np.all(np.asarray(q_u) <= np.asarray(naf.value) + 1e-6)
    l_matrix = np.asarray(naf.l_matrix)
    assert np.all(np.triu(l_matrix, 1) == 0) and np.all(np.diagonal(l_matrix, axis1=-2, axis2=-1) > 0)
    # State-independent log-std: one free parameter, broadcast over the batch.
    close(gauss.log_std, np.full((B, 2), -0.5))
    assert params["gaussian_policy_head"]["log_std"].shape == (2,)
    assert np.all(np.abs(np.asarray(clipped.log_std)) <= 0.1 + 1e-7)
    # Dueling head: V is the mean of Q over actions.
    p = np_params(params)
    v = np.asarray(x, np.float64) @ p["dueling_q_head/value"]["w"] + p["dueling_q_head/value"]["b"]
    close(np.mean(np.asarray(q), -1), v[:, 0])
    assert np.all(np.asarray(beta.alpha) > 1) and np.all(np.asarray(beta.beta) > 1)
    close(embedded[0, 1], params["embedding"]["embeddings"][9])  # rows of the table are the lookups


# --------------------------------------------------------------------------------------------
# Memory cells against NumPy.


def _cell(cls, name, **kwargs):
    def fn(inputs, state):
        return cls(U, name=name, **kwargs)(inputs, state)

    return hk.without_apply_rng(hk.transform(fn))


RNN_KW = dict(nonlinearity=jnp.tanh, w_hidden_init=BIG, w_input_init=BIG, b_init=BIG)
GATED_KW = dict(w_hidden_init=BIG, w_input_init=BIG, b_init=BIG)
RNN = _cell(nw.RNNCell, "rnn", **RNN_KW)
RNN_NOCLIP = _cell(nw.RNNCell, "rnn", grad_clipping=None, **RNN_KW)
GRU = _cell(nw.GRUCell, "gru", **GATED_KW)
GRU_NOCLIP = _cell(nw.GRUCell, "gru", grad_clipping=0, **GATED_KW)
LSTM = _cell(nw.LSTMCell, "lstm", peephole_init=BIG, **GATED_KW)
LSTM_NOCLIP = _cell(nw.LSTMCell, "lstm", grad_clipping=None, peephole_init=BIG, **GATED_KW)
LSTM_NOPEEP = _cell(nw.LSTMCell, "lstm", peepholes=False, **GATED_KW)


def np_rnn(p, x0, x1, h):
    return np.tanh(h @ p["w_hidden"] + p["b"] + x0 @ p["w_input_0"] + x1 @ p["w_input_1"])


def np_gru(p, x0, x1, h):
    hr, hz, hc = np.split(h @ p["w_hidden"], 3, -1)
    xr, xz, xc = np.split(x0 @ p["w_input_0"] + x1 @ p["w_input_1"] + p["b"], 3, -1)
    r, z = sigmoid(xr + hr), sigmoid(xz + hz)
    return (1 - z) * h + z * np.tanh(xc + r * hc)


def np_lstm(p, x0, x1, c, h, peepholes):
    pi, pf, pg, po = np.split(h @ p["w_hidden"] + x0 @ p["w_input_0"] + x1 @ p["w_input_1"] + p["b"], 4, -1)
    if peepholes:
        pi, pf = pi + p["peephole_i"] * c, pf + p["peephole_f"] * c
    new_c = sigmoid(pi) * np.tanh(pg) + sigmoid(pf) * c
    if peepholes:
        po = po + p["peephole_o"] * new_c
    return new_c, sigmoid(po) * np.tanh(new_c)


def _init(transformed, state):
    return transformed.init(KEY, (jnp.zeros((B, F0)), jnp.zeros((B, F1))), state)


ZERO_H = jnp.zeros((B, U))
ZERO_LSTM = nw.LSTMCellState(ZERO_H, ZERO_H)
RNN_PARAMS, GRU_PARAMS = _init(RNN, ZERO_H), _init(GRU, ZERO_H)
LSTM_PARAMS, LSTM_NOPEEP_PARAMS = _init(LSTM, ZERO_LSTM), _init(LSTM_NOPEEP, ZERO_LSTM)


@jit_variants
@given(x0=floats((B, F0), -2, 2), x1=floats((B, F1), -2, 2), h=floats((B, U), -1, 1))
def test_rnn_and_gru_match_numpy(use_jit, x0, x1, h):
    for transformed, params, reference in ((RNN, RNN_PARAMS, np_rnn), (GRU, GRU_PARAMS, np_gru)):
        out, new_h = variant(transformed.apply, use_jit)(params, (x0, x1), h)
        (p,) = np_params(params).values()
        close(new_h, reference(p, x0.astype(np.float64), x1.astype(np.float64), h.astype(np.float64)))
        close(out, new_h)


@jit_variants
@given(x0=floats((B, F0), -2, 2), x1=floats((B, F1), -2, 2), c=floats((B, U), -2, 2),
       h=floats((B, U), -1, 1))
def test_peephole_lstm_matches_numpy(use_jit, x0, x1, c, h):
    x0_, x1_, c_, h_ = (a.astype(np.float64) for a in (x0, x1, c, h))
    for transformed, params, peep in ((LSTM, LSTM_PARAMS, True), (LSTM_NOPEEP, LSTM_NOPEEP_PARAMS, False)):
        out, state = variant(transformed.apply, use_jit)(params, (x0, x1), nw.LSTMCellState(c, h))
        new_c, new_h = np_lstm(np_params(params)["lstm"], x0_, x1_, c_, h_, peep)
        close(state.cell, new_c)
        close(state.output, new_h)
        close(out, new_h)
    assert set(LSTM_NOPEEP_PARAMS["lstm"]) == {"w_hidden", "w_input_0", "w_input_1", "b"}


def _unrolled_lstm(xs):
    cell = nw.LSTMCell(U, peephole_init=BIG, name="lstm", **GATED_KW)
    return hk.dynamic_unroll(cell, xs, cell.initial_state(B))


UNROLLED_LSTM = hk.without_apply_rng(hk.transform(_unrolled_lstm))


def test_lstm_unrolls_as_rnn_core_like_a_numpy_loop():
    xs = np.random.default_rng(0).normal(size=(4, B, F0)).astype(np.float32)
    params = UNROLLED_LSTM.init(KEY, xs)
    outs, final = jax.jit(UNROLLED_LSTM.apply)(params, xs)
    p = dict(np_params(params)["lstm"], w_input_1=np.zeros((1, 4 * U)))
    c = h = np.zeros((B, U))
    for t in range(4):
        c, h = np_lstm(p, xs[t].astype(np.float64), np.zeros((B, 1)), c, h, True)
        close(outs[t], h)
    close(final.cell, c)


@pytest.mark.parametrize("cell", [nw.LSTMCell, nw.GRUCell, nw.RNNCell])
def test_cells_unroll_on_float64_inputs_in_x64_mode(cell):
    """The zero state has JAX's default float, so a scan over float64 inputs keeps its carry type."""
    with jax.enable_x64(True):
        unrolled = hk.without_apply_rng(hk.transform(
            lambda xs: hk.dynamic_unroll(cell(U), xs, cell(U).initial_state(B))))
        xs = jnp.ones((3, B, F0))
        outs, _ = unrolled.apply(unrolled.init(KEY, xs), xs)
        assert outs.dtype == jnp.float64 and outs.shape == (3, B, U)


def _per_gate_bias(x, state):
    inits = [hk.initializers.Constant(float(v)) for v in (1, 2, 3, 4)]
    return nw.LSTMCell(U, b_init=inits, peephole_init=[BIG, BIG, BIG])(x, state)


def test_lstm_per_gate_initializers():
    params = hk.transform(_per_gate_bias).init(KEY, jnp.zeros((B, F0)), ZERO_LSTM)
    close(params["lstm_cell"]["b"], np.repeat([1.0, 2.0, 3.0, 4.0], U))


# --------------------------------------------------------------------------------------------
# Gradient clipping, measured.


def _scaled_sum(w, x):
    return jnp.sum(w * nw.clip_gradient(x, 2.0))


_SCALED_SUM_GRAD = jax.grad(_scaled_sum, argnums=1)


@jit_variants
@given(w=floats((B, U)), x=floats((B, U)))
def test_clip_gradient_is_identity_forward_and_clips_backward(use_jit, w, x):
    grad = variant(_SCALED_SUM_GRAD, use_jit)(w, x)
    close(grad, np.clip(w, -2.0, 2.0))
    close(nw.clip_gradient(x, 2.0), x)


LOSS_W = 100.0 * jax.random.normal(jax.random.PRNGKey(7), (B, U))


def _cell_loss(transformed, params, x0, x1, state):
    out, _ = transformed.apply(params, (x0, x1), state)
    return jnp.sum(LOSS_W * out)


@jax.jit
def _rnn_grads(x0, x1, h):
    clipped = jax.grad(lambda *a: _cell_loss(RNN, RNN_PARAMS, *a), argnums=(0, 1, 2))(x0, x1, h)
    free = jax.grad(lambda *a: _cell_loss(RNN_NOCLIP, RNN_PARAMS, *a), argnums=(0, 1, 2))(x0, x1, h)
    return clipped, free


def test_rnn_clips_the_gradients_into_state_and_inputs():
    x0, x1 = jnp.ones((B, F0)) * 0.1, jnp.ones((B, F1)) * 0.1
    clipped, free = _rnn_grads(x0, x1, ZERO_H)
    for g_clip, g_free in zip(clipped, free):
        assert np.max(np.abs(g_free)) > 5.0  # the test would be vacuous otherwise
        close(g_clip, np.clip(g_free, -5.0, 5.0))  # AgentNet clips exactly these gradients
    close(RNN.apply(RNN_PARAMS, (x0, x1), ZERO_H)[0], RNN_NOCLIP.apply(RNN_PARAMS, (x0, x1), ZERO_H)[0])


@jax.jit
def _rnn_through_time(h0):
    def loss(transformed, h):
        for _ in range(4):
            _, h = transformed.apply(RNN_PARAMS, (jnp.zeros((B, F0)), jnp.zeros((B, F1))), h)
        return jnp.sum(LOSS_W * h)

    return jax.grad(lambda h: loss(RNN, h))(h0), jax.grad(lambda h: loss(RNN_NOCLIP, h))(h0)


def test_rnn_gradient_through_time_stays_bounded():
    clipped, free = _rnn_through_time(ZERO_H + 0.1)
    assert np.max(np.abs(free)) > 5.0
    assert np.max(np.abs(clipped)) <= 5.0 + 1e-5


@jax.jit
def _gru_input_grads(x0, x1, h):
    clipped = jax.grad(lambda *a: _cell_loss(GRU, GRU_PARAMS, *a), argnums=(0, 1))(x0, x1, h)
    free = jax.grad(lambda *a: _cell_loss(GRU_NOCLIP, GRU_PARAMS, *a), argnums=(0, 1))(x0, x1, h)
    return clipped, free


def test_gru_clips_the_gradients_into_inputs():
    clipped, free = _gru_input_grads(jnp.zeros((B, F0)), jnp.zeros((B, F1)), ZERO_H + 0.5)
    assert max(np.max(np.abs(g)) for g in free) > 5.0
    assert max(np.max(np.abs(g)) for g in clipped) <= 5.0 + 1e-5


@jax.jit
def _lstm_bias_grads(x0, x1, c, h):
    """Per-example gradients (vmap over unbatched cells) of the gate bias = of the pre-activations."""
    def per_example(transformed):
        def loss(params, x0, x1, c, h):
            out, _ = transformed.apply(params, (x0, x1), nw.LSTMCellState(c, h))
            return jnp.sum(LOSS_W[0] * out)

        return jax.vmap(jax.grad(loss), in_axes=(None, 0, 0, 0, 0))(LSTM_PARAMS, x0, x1, c, h)

    return per_example(LSTM)["lstm"]["b"], per_example(LSTM_NOCLIP)["lstm"]["b"]


def test_lstm_clips_the_gate_preactivation_gradients():
    rng = np.random.default_rng(1)
    x0, x1, c, h = (jnp.asarray(rng.normal(size=s), jnp.float32) for s in ((B, F0), (B, F1), (B, U), (B, U)))
    clipped, free = _lstm_bias_grads(x0, x1, c, h)
    assert np.max(np.abs(free)) > 5.0
    close(clipped, np.clip(free, -5.0, 5.0))


# --------------------------------------------------------------------------------------------
# Augmentations against plain Python.

WINDOW = nw.window_augmentation(3, item_shape=(2,))
STACK = nw.stack_augmentation(depth=4, width=2)
COUNTER, COUNTER_MOD = nw.counter(), nw.counter(k=3)


def _roll(update, state, *sequences):
    for inputs in zip(*sequences):
        state = update(state, *inputs)
    return state


@jit_variants
@given(items=floats((5, B, 2)))
def test_window_keeps_the_last_items_newest_first(use_jit, items):
    update = variant(WINDOW.update, use_jit)
    window = WINDOW.init(B)
    for t in range(5):
        window = np.asarray(update(window, items[t]))
        for j in range(3):  # slot j holds the item pushed j ticks ago, zeros before the start
            expected = items[t - j] if t - j >= 0 else np.zeros((B, 2))
            close(window[:, j], expected)


def np_stack(stack, item, controls):
    """Joulin & Mikolov 2015, eqs. 5-7, one entry at a time."""
    depth = stack.shape[1]
    new = np.zeros(stack.shape)
    for b in range(stack.shape[0]):
        push, pop, no_op = controls[b]
        for j in range(depth):
            above = item[b] if j == 0 else stack[b, j - 1]
            below = stack[b, j + 1] if j + 1 < depth else np.zeros(stack.shape[2])
            new[b, j] = push * above + pop * below + no_op * stack[b, j]
    return new


@jit_variants
@given(items=floats((6, B, 2)), raw=floats((6, B, 3)))
def test_stack_matches_the_paper_equations(use_jit, items, raw):
    controls = np.asarray(jax.nn.softmax(raw, axis=-1))
    got = _roll(variant(STACK.update, use_jit), STACK.init(B), items, controls)
    expected = np.zeros((B, 4, 2))
    for t in range(6):  # more ticks than the depth, so items reach the bottom and pop exposes 0
        expected = np_stack(expected, items[t].astype(np.float64), controls[t].astype(np.float64))
    close(got, expected)


def test_stack_hard_controls_push_and_pop():
    def one_hot(op):
        return jnp.tile(jax.nn.one_hot(op, 3), (B, 1))

    stack = STACK.init(B)
    for v in (1.0, 2.0, 3.0, 4.0, 5.0):  # the fifth push drops the oldest item
        stack = STACK.update(stack, jnp.full((B, 2), v), one_hot(0))
    close(stack[0, :, 0], [5.0, 4.0, 3.0, 2.0])
    stack = STACK.update(stack, jnp.zeros((B, 2)), one_hot(1))
    close(stack[0, :, 0], [4.0, 3.0, 2.0, 0.0])
    close(STACK.update(stack, jnp.full((B, 2), 9.0), one_hot(2)), stack)


@jit_variants
def test_counter_counts_and_loops(use_jit):
    count, looped = COUNTER.init(B), COUNTER_MOD.init()
    for tick in range(1, 8):
        count = variant(COUNTER.update, use_jit)(count)
        looped = variant(COUNTER_MOD.update, use_jit)(looped)
        assert count.dtype == jnp.int32 and np.all(np.asarray(count) == tick)
        assert int(looped) == tick % 3


@jit_variants
@given(cond=hnp.arrays(np.int32, (B,), elements=st.integers(-2, 2)), a=floats((B, 2, 2)),
       b=floats((B, 2, 2)))
def test_switch_selects_per_sample(use_jit, cond, a, b):
    got = np.asarray(variant(nw.switch, use_jit)(cond, a, b))
    for i in range(B):
        close(got[i], a[i] if cond[i] != 0 else b[i])


# --------------------------------------------------------------------------------------------
# Gate and attention.


def _gate(controller0, controller1, channel):
    return nw.Gate(gate_nonlinearities=[jax.nn.sigmoid, None], w_init=BIG, b_init=BIG)(
        [controller0, controller1], [3, channel])


GATE = hk.without_apply_rng(hk.transform(_gate))


def test_gate_matches_numpy():
    rng = np.random.default_rng(2)
    c0, c1, channel = (rng.normal(size=s).astype(np.float32) for s in ((B, F0), (B, 2, 2), (B, U)))
    params = GATE.init(KEY, c0, c1, channel)
    gate_only, gated = GATE.apply(params, c0, c1, channel)
    p = np_params(params)["gate"]
    pre = c0 @ p["w_0"] + c1.reshape(B, 4) @ p["w_1"] + p["b"]
    close(gate_only, sigmoid(pre[:, :3]))
    close(gated, pre[:, 3:] * channel)  # None = identity nonlinearity


def _soft_attention(enc, dec, mask):
    return nw.BahdanauAttention(6, w_init=BIG, name="attention")(enc, dec, mask)


def _hard_attention(enc, dec, mask):
    return nw.BahdanauAttention(6, w_init=BIG, name="attention")(enc, dec, mask, hard=True)


SOFT_ATTENTION = hk.without_apply_rng(hk.transform(_soft_attention))
HARD_ATTENTION = hk.without_apply_rng(hk.transform(_hard_attention))
T, E, D = 5, 3, 4
ATTENTION_PARAMS = SOFT_ATTENTION.init(KEY, jnp.zeros((B, T, E)), jnp.zeros((B, D)), jnp.ones((B, T)))


def np_attention(p, enc, dec, mask):
    probs, attn = np.zeros((B, T)), np.zeros((B, E))
    logits = np.tanh(enc @ p["w_enc"] + (dec @ p["w_dec"])[:, None, :]) @ p["w_out"][:, 0]
    for b in range(B):
        keep = [t for t in range(T) if mask[b, t]]
        total = sum(np.exp(logits[b, t] - logits[b].max()) for t in keep)
        for t in keep:
            probs[b, t] = np.exp(logits[b, t] - logits[b].max()) / total
            attn[b] += probs[b, t] * enc[b, t]
    return probs, attn, logits


@jit_variants
@given(enc=floats((B, T, E)), dec=floats((B, D)), mask=masks((B, T)))
def test_attention_matches_numpy_and_respects_the_mask(use_jit, enc, dec, mask):
    soft = variant(SOFT_ATTENTION.apply, use_jit)(ATTENTION_PARAMS, enc, dec, mask)
    probs, attn, logits = np_attention(np_params(ATTENTION_PARAMS)["attention"], enc.astype(np.float64),
                                       dec.astype(np.float64), mask)
    close(soft.probs, probs, atol=1e-4)
    close(soft.attn, attn, atol=1e-3)
    close(np.sum(np.asarray(soft.probs), -1), mask.any(-1).astype(float), atol=1e-5)
    assert np.all(np.asarray(soft.probs)[~mask] == 0)
    hard = variant(HARD_ATTENTION.apply, use_jit)(ATTENTION_PARAMS, enc, dec, mask)
    hard_probs = np.asarray(hard.probs)
    for b in range(B):
        if not mask[b].any():
            assert np.all(hard_probs[b] == 0)
            continue
        t = int(np.argmax(hard_probs[b]))
        assert sorted(hard_probs[b]) == [0.0] * (T - 1) + [1.0] and mask[b, t]
        assert logits[b, t] >= np.max(logits[b][mask[b]]) - 1e-4
        close(hard.attn[b], enc[b, t])


# --------------------------------------------------------------------------------------------
# TensorForce layer specs against hand-built networks.


def _spec_net(spec, **call):
    def fn(x, *args):
        net = nw.network_from_spec(spec)
        return net(x, *args, **call), net.regularization_loss()

    return hk.transform(fn)


DENSE_SPEC = [dict(type="dense", size=5, l2_regularization=0.1, l1_regularization=0.01),
              dict(type="linear", size=3, bias=False), dict(type="nonlinearity")]


def test_dense_linear_nonlinearity_defaults_and_regularization():
    net = _spec_net(DENSE_SPEC)
    x = np.random.default_rng(3).normal(size=(B, F0)).astype(np.float32)
    params = net.init(KEY, x)
    y, reg = jax.jit(net.apply)(params, None, x)
    dense, linear = (np_params(params)[f"layered_network/~/{k}"] for k in ("dense_0/~/linear", "linear_1"))
    assert set(linear) == {"W"}  # bias=False
    scoped = _spec_net([dict(type="dense", size=3, scope="hidden", summary_labels=["activations"])])
    assert [set(p) for p in scoped.init(KEY, x).values()] == [{"W", "b"}]  # TF-only arguments are ignored
    for no_bias in (False, None):  # TensorForce: a bias only if True or a value
        params = _spec_net([dict(type="linear", size=3, bias=no_bias)]).init(KEY, x)
        assert [set(p) for p in params.values()] == [{"W"}]
    expected = np.maximum(np.tanh(x @ dense["W"] + dense["b"]) @ linear["W"], 0.0)  # tanh, relu defaults
    close(y, expected)
    weights = [dense["W"], dense["b"]]
    close(reg, 0.1 * sum(np.sum(w ** 2) / 2 for w in weights) + 0.01 * sum(np.sum(np.abs(w)) for w in weights))


CONV_SPEC = [dict(type="conv2d", size=4), dict(type="pool2d", pooling_type="average"),
             dict(type="flatten"), dict(type="dense", skip=True)]


def np_conv_same(x, w, b):
    """3x3, stride 1, SAME padding, then relu (TensorForce's conv2d defaults)."""
    k = w.shape[0]
    pad = np.pad(x, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)))
    out = np.zeros(x.shape[:3] + (w.shape[-1],))
    for i in range(x.shape[1]):
        for j in range(x.shape[2]):
            out[:, i, j] = np.einsum("bhwc,hwco->bo", pad[:, i:i + k, j:j + k], w) + b
    return np.maximum(out, 0.0)


def np_avg_pool_same(x):
    """2x2 windows, stride 2, SAME: average over the entries inside the input."""
    h, w = -(-x.shape[1] // 2), -(-x.shape[2] // 2)
    out = np.zeros((x.shape[0], h, w, x.shape[3]))
    for i in range(h):
        for j in range(w):
            out[:, i, j] = x[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean(axis=(1, 2))
    return out


def test_conv_pool_flatten_skip_dense_match_hand_built():
    net = _spec_net(CONV_SPEC)
    x = np.random.default_rng(4).normal(size=(2, 5, 5, 2)).astype(np.float32)
    params = net.init(KEY, x)
    y, reg = jax.jit(net.apply)(params, None, x)
    p = np_params(params)
    conv = p["layered_network/~/conv2d_0/~/conv"]
    h = np_avg_pool_same(np_conv_same(x.astype(np.float64), conv["w"], conv["b"])).reshape(2, -1)
    l1, l2 = p["layered_network/~/dense_3/~/linear"], p["layered_network/~/dense_3/~/linear_skip"]
    h1 = np.tanh(h @ l1["W"] + l1["b"])
    close(y, np.tanh(h1 @ l2["W"] + l2["b"] + h), atol=1e-4)
    assert y.shape == (2, 3 * 3 * 4) and float(reg) == 0.0


EMBED_SPEC = [dict(type="embedding", indices=7, size=3), dict(type="flatten"),
              dict(type="dueling", size=4), dict(type=hk.Linear, output_size=2)]


def test_embedding_dueling_and_custom_layer_match_hand_built():
    net = _spec_net(EMBED_SPEC)
    ids = np.array([[0, 6], [3, 3]], np.int32)
    params = net.init(KEY, ids)
    y, _ = jax.jit(net.apply)(params, None, ids)
    p = np_params(params)
    h = p["layered_network/~/embedding_0/~/embedding"]["embeddings"][ids].reshape(2, 6)
    expectation, advantage = (p[f"layered_network/~/dueling_2/~/{k}"] for k in ("expectation", "advantage"))
    assert set(expectation) == set(advantage) == {"W"}  # no biases by default
    value, adv = h @ expectation["W"], h @ advantage["W"]
    q = np_dueling(value[:, 0], adv)
    custom = p["layered_network/~/linear"]  # a haiku module as the layer type
    close(y, q @ custom["w"] + custom["b"])


def np_tf_lstm_step(p, x, c, h):
    """TensorFlow's LSTMCell (forget bias 1, no peepholes) with haiku's [i, g, f, o] layout."""
    i, g, f, o = np.split(np.concatenate([x, h], -1) @ p["w"] + p["b"], 4, -1)
    c = sigmoid(f + 1.0) * c + sigmoid(i) * np.tanh(g)
    return c, sigmoid(o) * np.tanh(c)


def np_tf_lstm_sequence(p, x, lengths):
    """TensorFlow's dynamic_rnn: steps past a row's length keep the state and output zeros."""
    final, outs = np.zeros((x.shape[0], 6)), np.zeros(x.shape[:2] + (3,))
    for b in range(x.shape[0]):
        c = h = np.zeros(3)
        for t in range(lengths[b]):
            c, h = np_tf_lstm_step(p, x[b, t].astype(np.float64), c, h)
            outs[b, t] = h
        final[b] = np.concatenate([c, h])
    return final, outs


def _lstm_specs(x, lengths):
    final = nw.network_from_spec([dict(type="lstm", size=3)], name="final")(x, sequence_length=lengths)
    outs = nw.network_from_spec([dict(type="lstm", size=3, return_final_state=False)], name="outs")(
        x, sequence_length=lengths)
    return final, outs


LSTM_SPECS = hk.transform(_lstm_specs)


def test_sequence_lstm_matches_numpy_with_sequence_lengths():
    x = np.random.default_rng(5).normal(size=(2, 4, 3)).astype(np.float32)
    lengths = np.array([2, 4], np.int32)
    params = LSTM_SPECS.init(KEY, x, lengths)
    final, outs = jax.jit(LSTM_SPECS.apply)(params, None, x, lengths)
    p = np_params(params)
    expected_final, _ = np_tf_lstm_sequence(p["final/~/lstm_0/~/lstm/linear"], x, lengths)
    _, expected_outs = np_tf_lstm_sequence(p["outs/~/lstm_0/~/lstm/linear"], x, lengths)
    close(final, expected_final)
    close(outs, expected_outs)


def _internal(x, internals):
    net = nw.network_from_spec([dict(type="internal_lstm", size=3), dict(type="linear", size=2)])
    return net(x, internals, return_internals=True), net.initial_internals(x.shape[0])


INTERNAL = hk.without_apply_rng(hk.transform(_internal))


def test_internal_lstm_carries_explicit_state():
    xs = np.random.default_rng(6).normal(size=(3, 2, 4)).astype(np.float32)
    zeros = (hk.LSTMState(jnp.zeros((2, 3)), jnp.zeros((2, 3))),)
    params = INTERNAL.init(KEY, xs[0], zeros)
    apply = jax.jit(INTERNAL.apply)
    p = np_params(params)
    cell, head = p["layered_network/~/internal_lstm_0/~/lstm/linear"], p["layered_network/~/linear_1"]
    internals, c, h = zeros, np.zeros((2, 3)), np.zeros((2, 3))
    for t in range(3):
        (y, internals), initial = apply(params, xs[t], internals)
        c, h = np_tf_lstm_step(cell, xs[t].astype(np.float64), c, h)
        close(internals[0].cell, c)
        close(y, h @ head["W"] + head["b"])
    close(jax.tree.leaves(initial), jax.tree.leaves(zeros))


DROPOUT = _spec_net([dict(type="dropout", rate=0.5)], is_training=True)
NO_DROPOUT = _spec_net([dict(type="dropout", rate=0.5)])


def test_dropout_only_while_training():
    x = jnp.ones((1000,))
    train, _ = DROPOUT.apply({}, KEY, x)
    values = np.asarray(train)
    assert set(np.unique(values)) <= {0.0, 2.0} and 0.4 < np.mean(values == 0) < 0.6
    close(NO_DROPOUT.apply({}, KEY, x)[0], x)


# --------------------------------------------------------------------------------------------
# Errors name the argument.


def _init_error(fn, *args):
    return hk.transform(fn).init(KEY, *args)


@pytest.mark.parametrize("spec, match", [
    ([dict(type="dense", size=3), dict(type="convolution")], r"layers_spec\[1\].*'convolution'.*internal_lstm"),
    ([dict(type="dense", sise=3)], r"layers_spec\[0\].*unknown argument `sise`.*size"),
    ([dict(type="linear")], r"missing required argument `size`"),
    ([dict(type="dense", size=3, skip=True)], r"argument `size` must be None"),
    ([dict(type="dense", activation="gelu")], r"argument `activation`.*tanh"),
    ([dict(type="pool2d", pooling_type="min")], r"argument `pooling_type`"),
    ([dict(type="dropout", rate=1.5)], r"argument `rate`"),
    ([dict(size=3)], r"layers_spec\[0\]` must be a dict with a 'type' key"),
    ([dict(type="linear", size=3, bias="zeros")], r"argument `bias` must be a number"),
    ({"type": "dense"}, r"argument `layers_spec` must be a non-empty list"),
])
def test_bad_specs_name_the_argument(spec, match):
    with pytest.raises(ValueError, match=match):
        _init_error(lambda x: nw.network_from_spec(spec)(x), jnp.ones((2, 3)))


def test_shape_errors_name_the_argument():
    conv = [dict(type="conv2d", size=2)]
    with pytest.raises(ValueError, match=r"layers_spec\[0\] \('conv2d'\): argument `x` must have rank 4"):
        _init_error(lambda x: nw.network_from_spec(conv)(x), jnp.ones((2, 3)))
    fixed = [dict(type="linear", size=2, weights=np.ones((4, 2)))]
    with pytest.raises(ValueError, match=r"argument `weights` must have shape \(3, 2\)"):
        _init_error(lambda x: nw.network_from_spec(fixed)(x), jnp.ones((2, 3)))
    internal = [dict(type="internal_lstm", size=2)]
    with pytest.raises(ValueError, match=r"argument `internals` must hold 1 states"):
        _init_error(lambda x: nw.network_from_spec(internal)(x, ()), jnp.ones((2, 3)))
    with pytest.raises(ValueError, match=r"RNNCell: argument `inputs\[1\]` must have leading shape"):
        _init_error(lambda x: nw.RNNCell(U)((x, x[:2]), jnp.zeros((B, U))), jnp.ones((B, 2)))
    with pytest.raises(ValueError, match=r"LSTMCell: argument `prev_state` must be an LSTMCellState"):
        _init_error(lambda x: nw.LSTMCell(U)(x, hk.LSTMState(x, x)), jnp.ones((B, U)))
    with pytest.raises(ValueError, match=r"GRUCell: argument `prev_state` must end in num_units = 5"):
        _init_error(lambda x: nw.GRUCell(U)(x, x), jnp.ones((B, 3)))
    with pytest.raises(ValueError, match=r"BahdanauAttention: argument `mask` must have shape"):
        _init_error(lambda x: nw.BahdanauAttention(3)(x, x[:, 0], jnp.ones((B, 2))), jnp.ones((B, 4, 2)))
    with pytest.raises(ValueError, match=r"NatureCNN: argument `x` must be a floating-point"):
        _init_error(lambda x: nw.NatureCNN()(x), jnp.ones((36, 36, 1), jnp.uint8))
    with pytest.raises(ValueError, match=r"Gate: argument `gate_nonlinearities` must be one callable or 2"):
        _init_error(lambda x: nw.Gate([None] * 3)(x, [2, 2]), jnp.ones((B, 2)))


def test_function_errors_name_the_argument():
    cases = [
        (lambda: nw.clip_gradient(jnp.ones(3), -1.0), r"clip_gradient: argument `bound` must be"),
        (lambda: nw.dueling_combine(jnp.ones(3), jnp.ones((2, 4))), r"argument `value` must have shape \(2,\)"),
        (lambda: WINDOW.update(jnp.zeros((B, 2, 2)), jnp.ones((B, 2))), r"argument `window` must have shape \(3, 3, 2\)"),
        (lambda: WINDOW.update(jnp.zeros((B, 3, 2)), jnp.ones((B, 3))), r"argument `item` must end in"),
        (lambda: STACK.update(STACK.init(B), jnp.ones((B, 2)), jnp.ones((B, 2))), r"argument `controls` must have shape"),
        (lambda: COUNTER.update(jnp.zeros(2)), r"counter: argument `count` must be an integer"),
        (lambda: nw.switch(jnp.ones(2), jnp.ones((B, 2)), jnp.ones((B, 2))), r"argument `condition` must have shape \(3,\)"),
        (lambda: nw.switch(jnp.ones(B), jnp.ones((B, 2)), jnp.ones((B, 3))), r"arguments must have the same shape"),
        (lambda: nw.window_augmentation(0), r"argument `window_size` must be a static Python int >= 1"),
        (lambda: nw.counter(k=0), r"counter: argument `k`"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()
    for grad_clipping in (-1.0, "5"):
        with pytest.raises(ValueError, match=r"RNNCell: argument `grad_clipping` must be a static number > 0"):
            _init_error(lambda x: nw.RNNCell(U, grad_clipping=grad_clipping)(x, jnp.zeros((B, U))), jnp.ones((B, 2)))
