"""fnrl.value_learning against plain NumPy loops written from the formulas."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fnrl import value_learning as vl
from tests.helpers import episode_flags, jit_variants, variant

BATCH_SHAPES = [(), (2, 3)]
N_ACTIONS = 4
RTOL, ATOL = 1e-4, 1e-5
STOP = ("stop_target_gradients",)


# ----------------------------------------------------------------------------- strategies
def floats(shape, low=-5.0, high=5.0):
    """float32 arrays without subnormals: XLA flushes those to zero under jit, which would make
    argmax ties differ between the jitted function and NumPy."""
    elements = st.floats(low, high, width=32, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    return hnp.arrays(np.float32, shape, elements=elements)


def actions(shape, n=N_ACTIONS):
    return hnp.arrays(np.int32, shape, elements=st.integers(0, n - 1))


def unit(shape):
    return floats(shape, 0.0, 1.0)


def probabilities(shape):
    """Rows (last axis) that sum to one."""
    return floats(shape, 0.0, 1.0).map(lambda x: (x + 0.1) / np.sum(x + 0.1, -1, keepdims=True))


@st.composite
def transitions(draw, event=(N_ACTIONS,)):
    """A batch of transitions: q-like arrays `[..., *event]`, actions, rewards, discounts."""
    batch = draw(st.sampled_from(BATCH_SHAPES))
    qshape = batch + tuple(event)
    return dict(
        batch=batch,
        q_tm1=draw(floats(qshape)),
        q_t=draw(floats(qshape)),
        q_x=draw(floats(qshape)),
        probs=draw(probabilities(batch + (N_ACTIONS,))),
        a_tm1=draw(actions(batch)),
        a_t=draw(actions(batch)),
        r_t=draw(floats(batch)),
        discount_t=draw(unit(batch)),
    )


def grad(fn, argnums=0):
    """jax.grad compiled as one program: much cheaper than differentiating op by op eagerly."""
    return jax.jit(jax.grad(fn, argnums=argnums))


def close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=rtol, atol=atol)


def clear_argmax(values):
    """Entries whose top-two values differ enough that float32 and float64 agree on argmax."""
    top = np.sort(values, axis=-1)
    return (top[..., -1] - top[..., -2]) > 1e-3


# ----------------------------------------------------------------------------- NumPy references
def np_one_step(q_tm1, a_tm1, r_t, discount_t, bootstrap):
    """r + d * bootstrap(idx) - q_tm1[idx][a_tm1[idx]], one transition at a time."""
    out = np.zeros(a_tm1.shape)
    for idx in np.ndindex(a_tm1.shape):
        out[idx] = r_t[idx] + discount_t[idx] * bootstrap(idx) - q_tm1[idx][a_tm1[idx]]
    return out


def np_project(z_p, probs, z_q):
    """Splits each atom's mass between the two support points that bracket it."""
    out = np.zeros(len(z_q))
    for z, p in zip(z_p, probs):
        z = min(max(z, z_q[0]), z_q[-1])
        j = np.searchsorted(z_q, z, side="right") - 1
        if j >= len(z_q) - 1:
            out[-1] += p
            continue
        frac = (z - z_q[j]) / (z_q[j + 1] - z_q[j])
        out[j] += p * (1 - frac)
        out[j + 1] += p * frac
    return out


def np_softmax(x):
    e = np.exp(x - np.max(x, -1, keepdims=True))
    return e / np.sum(e, -1, keepdims=True)


def np_quantile_loss(src, tau, target, kappa):
    total = 0.0
    for i in range(len(src)):
        for j in range(len(target)):
            u = target[j] - src[i]
            if kappa > 0:
                huber = 0.5 * u * u if abs(u) <= kappa else kappa * (abs(u) - 0.5 * kappa)
                elem = huber / kappa
            else:
                elem = abs(u)
            total += abs(tau[i] - (1.0 if u < 0 else 0.0)) * elem / len(target)
    return total


def np_lower_triangular(flat, dim):
    out = np.zeros((dim, dim))
    k = 0
    for r in range(dim):
        for c in range(r + 1):
            out[r, c] = np.exp(flat[k]) if r == c else flat[k]
            k += 1
    return out


# ----------------------------------------------------------------------------- action values
@jit_variants
@given(tr=transitions())
def test_select_action_values(use_jit, tr):
    out = variant(vl.select_action_values, use_jit)(tr["q_tm1"], tr["a_tm1"])
    expected = np.zeros(tr["batch"])
    for idx in np.ndindex(tr["batch"]):
        expected[idx] = tr["q_tm1"][idx][tr["a_tm1"][idx]]
    close(out, expected)


@jit_variants
def test_select_action_values_out_of_range_is_nan(use_jit):
    q = jnp.ones((3, N_ACTIONS))
    out = variant(vl.select_action_values, use_jit)(q, jnp.array([-1, N_ACTIONS, 1]))
    assert np.isnan(out[0]) and np.isnan(out[1]) and out[2] == 1.0


# ----------------------------------------------------------------------------- one-step TD errors
@jit_variants
@given(tr=transitions(event=()))
def test_td_error(use_jit, tr):
    out = variant(vl.td_error, use_jit)(tr["q_tm1"], tr["r_t"], tr["discount_t"], tr["q_t"])
    expected = np.zeros(tr["batch"])
    for idx in np.ndindex(tr["batch"]):
        expected[idx] = tr["r_t"][idx] + tr["discount_t"][idx] * tr["q_t"][idx] - tr["q_tm1"][idx]
    close(out, expected)


@jit_variants
@given(tr=transitions())
def test_q_learning(use_jit, tr):
    out = variant(vl.q_learning, use_jit)(tr["q_tm1"], tr["a_tm1"], tr["r_t"], tr["discount_t"], tr["q_t"])
    expected = np_one_step(tr["q_tm1"], tr["a_tm1"], tr["r_t"], tr["discount_t"], lambda i: max(tr["q_t"][i]))
    close(out, expected)


@jit_variants
@given(tr=transitions())
def test_double_q_learning(use_jit, tr):
    fn = variant(vl.double_q_learning, use_jit)
    out = fn(tr["q_tm1"], tr["a_tm1"], tr["r_t"], tr["discount_t"], tr["q_t"], tr["q_x"])
    # The selector picks the action, the value net scores it.
    boot = lambda i: tr["q_t"][i][int(np.argmax(tr["q_x"][i]))]
    close(out, np_one_step(tr["q_tm1"], tr["a_tm1"], tr["r_t"], tr["discount_t"], boot))


@jit_variants
@given(tr=transitions())
def test_sarsa(use_jit, tr):
    out = variant(vl.sarsa, use_jit)(tr["q_tm1"], tr["a_tm1"], tr["r_t"], tr["discount_t"], tr["q_t"], tr["a_t"])
    boot = lambda i: tr["q_t"][i][tr["a_t"][i]]
    close(out, np_one_step(tr["q_tm1"], tr["a_tm1"], tr["r_t"], tr["discount_t"], boot))


@jit_variants
@given(tr=transitions())
def test_expected_sarsa(use_jit, tr):
    fn = variant(vl.expected_sarsa, use_jit)
    out = fn(tr["q_tm1"], tr["a_tm1"], tr["r_t"], tr["discount_t"], tr["q_t"], tr["probs"])
    boot = lambda i: sum(p * q for p, q in zip(tr["probs"][i], tr["q_t"][i]))
    close(out, np_one_step(tr["q_tm1"], tr["a_tm1"], tr["r_t"], tr["discount_t"], boot))


def test_scalar_discount_and_int_rewards_broadcast():
    q_tm1, q_t = jnp.zeros((5, N_ACTIONS)), jnp.ones((5, N_ACTIONS))
    a = jnp.zeros(5, jnp.int32)
    out = vl.q_learning(q_tm1, a, jnp.arange(5), 0.5, q_t)
    close(out, np.arange(5) + 0.5)


def _fixed_transition(seed=0, batch=(5,)):
    rng = np.random.default_rng(seed)
    q = lambda: jnp.asarray(rng.normal(size=batch + (N_ACTIONS,)), jnp.float32)
    a = lambda: jnp.asarray(rng.integers(0, N_ACTIONS, batch), jnp.int32)
    return q(), a(), jnp.asarray(rng.normal(size=batch), jnp.float32), jnp.full(batch, 0.9), q(), q(), a()


def _probs(q):
    return jax.nn.softmax(q, axis=-1)


# name -> (fn, args builder from a fixed transition, argnums of target-side inputs)
TD_FNS = {
    "q_learning": (vl.q_learning, lambda q0, a0, r, d, q1, q2, a1: (q0, a0, r, d, q1), (4,)),
    "double_q_learning": (vl.double_q_learning, lambda q0, a0, r, d, q1, q2, a1: (q0, a0, r, d, q1, q2), (4,)),
    "sarsa": (vl.sarsa, lambda q0, a0, r, d, q1, q2, a1: (q0, a0, r, d, q1, a1), (4,)),
    "expected_sarsa": (vl.expected_sarsa, lambda q0, a0, r, d, q1, q2, a1: (q0, a0, r, d, q1, _probs(q2)), (4, 5)),
}


@pytest.mark.parametrize("name", sorted(TD_FNS))
@pytest.mark.parametrize("stop", [True, False])
def test_td_gradients(name, stop):
    fn, build, target_argnums = TD_FNS[name]
    args = build(*_fixed_transition())
    loss = lambda *xs: jnp.sum(fn(*xs, stop_target_gradients=stop) ** 2)
    grads = grad(loss, argnums=(0,) + target_argnums)(*args)
    td = fn(*args)
    # The prediction always gets d(delta^2)/dq_tm1 = -2 delta at the taken action.
    expected = -2 * np.asarray(td)[:, None] * np.eye(N_ACTIONS)[np.asarray(args[1])]
    close(grads[0], expected, atol=1e-5)
    for g in grads[1:]:
        assert (np.abs(np.asarray(g)).max() == 0) == stop


def test_td_error_gradients():
    v_tm1, r, d, v_t = jnp.array([1.0, 2.0]), jnp.array([0.5, 1.0]), 0.9, jnp.array([3.0, -1.0])
    for stop in (True, False):
        g_pred, g_tgt = grad(lambda a, b: jnp.sum(vl.td_error(a, r, d, b, stop)), argnums=(0, 1))(v_tm1, v_t)
        close(g_pred, -np.ones(2))
        close(g_tgt, np.zeros(2) if stop else np.full(2, 0.9))


def test_vmap_matches_broadcasting():
    q0, a0, r, d, q1, q2, _ = _fixed_transition(batch=(6,))
    close(jax.vmap(vl.double_q_learning)(q0, a0, r, d, q1, q2), np.asarray(vl.double_q_learning(q0, a0, r, d, q1, q2)))
    close(jax.vmap(vl.select_action_values)(q0, a0), np.asarray(vl.select_action_values(q0, a0)))
    rng = np.random.default_rng(3)
    dist = jnp.asarray(rng.normal(size=(6, N_ACTIONS, 7)), jnp.float32)
    c51 = lambda x, a, y, z: vl.categorical_q_learning(UNIFORM_SUPPORT, x, a, y, z, x)
    close(jax.jit(jax.vmap(c51))(dist, a0, r, d), np.asarray(c51(dist, a0, r, d)), atol=1e-5)
    qr = lambda x, a, y, z: vl.quantile_q_learning(x, jnp.linspace(0.1, 0.9, 7), a, y, z, x, x)
    close(jax.jit(jax.vmap(qr))(dist, a0, r, d), np.asarray(qr(dist, a0, r, d)), atol=1e-5)
    L = vl.lower_triangular(dist[:, 0, :6], 3)
    close(jax.jit(jax.vmap(vl.naf_q_value))(r, q0[:, :3], L, q1[:, :3]), np.asarray(vl.naf_q_value(r, q0[:, :3], L, q1[:, :3])))


# ----------------------------------------------------------------------------- n-step Q-learning
def np_n_step_q(q_tm1, a_tm1, r, d, q_t, n, trunc, valid, selector=None):
    if selector is None:
        v = q_t.max(-1)
    else:
        v = np.take_along_axis(q_t, selector.argmax(-1)[..., None], -1)[..., 0]
    T = r.shape[0]
    out = np.zeros(r.shape)
    for col in np.ndindex(r.shape[1:]):
        for i in range(T):
            at = lambda x, j: x[(j,) + col]
            if not at(valid, i):
                continue
            h, g, disc, done, last = min(n, T - i), 0.0, 1.0, False, i
            for j in range(i, i + h):
                if not at(valid, j):
                    continue  # an invalid step is an identity step
                last = j  # the window bootstraps from its last valid step
                g += disc * at(r, j)
                disc *= at(d, j)
                if at(trunc, j):
                    g, done = g + disc * at(v, j), True
                    break
            if not done:
                g += disc * at(v, last)
            out[(i,) + col] = g - q_tm1[(i,) + col][at(a_tm1, i)]
    return out


@st.composite
def sequences(draw):
    T, batch, n = draw(st.sampled_from([(5, (), 1), (6, (2,), 3), (2, (2,), 3)]))
    shape = (T,) + batch
    term, trunc, valid = draw(episode_flags(shape))
    return dict(
        n=n, q_tm1=draw(floats(shape + (N_ACTIONS,))), q_t=draw(floats(shape + (N_ACTIONS,))),
        sel=draw(floats(shape + (N_ACTIONS,))), a_tm1=draw(actions(shape)), r_t=draw(floats(shape)),
        discount_t=(0.9 * ~term).astype(np.float32), trunc=trunc, valid=valid,
    )


@jit_variants
@pytest.mark.parametrize("double", [False, True])
@given(s=sequences())
def test_n_step_q_learning(use_jit, double, s):
    fn = variant(vl.n_step_q_learning, use_jit, static_argnames=("n",))
    sel = s["sel"] if double else None
    out = fn(s["q_tm1"], s["a_tm1"], s["r_t"], s["discount_t"], s["q_t"], s["n"], sel,
             truncated_t=s["trunc"], valid_t=s["valid"])
    expected = np_n_step_q(s["q_tm1"], s["a_tm1"], s["r_t"], s["discount_t"], s["q_t"], s["n"],
                           s["trunc"], s["valid"], sel)
    close(out, expected, atol=1e-4)


def test_n_step_q_learning_defaults_and_one_step():
    q0, a0, r, d, q1, _, _ = _fixed_transition(batch=(7,))
    flags = np.zeros(7, bool)
    no_flags = vl.n_step_q_learning(q0, a0, r, d, q1, 3)
    close(no_flags, np_n_step_q(np.asarray(q0), np.asarray(a0), np.asarray(r), np.asarray(d), np.asarray(q1), 3, flags, ~flags))
    # n = 1 is one-step Q-learning at every step.
    close(vl.n_step_q_learning(q0, a0, r, d, q1, 1), np.asarray(vl.q_learning(q0, a0, r, d, q1)))


@pytest.mark.parametrize("stop", [True, False])
def test_n_step_q_learning_gradients(stop):
    q0, a0, r, d, q1, _, _ = _fixed_transition(batch=(6,))
    g0, g1 = grad(lambda x, y: jnp.sum(vl.n_step_q_learning(x, a0, r, d, y, 2, stop_target_gradients=stop)), argnums=(0, 1))(q0, q1)
    close(g0, -np.eye(N_ACTIONS)[np.asarray(a0)])
    assert (np.abs(np.asarray(g1)).max() == 0) == stop


# ----------------------------------------------------------------------------- state-value targets
@jit_variants
@given(tr=transitions())
def test_max_and_double_q_state_values(use_jit, tr):
    out_max = variant(vl.max_state_value, use_jit)(tr["q_t"])
    out_double = variant(vl.double_q_state_value, use_jit)(tr["q_x"], tr["q_t"])
    exp_max, exp_double = np.zeros(tr["batch"]), np.zeros(tr["batch"])
    for idx in np.ndindex(tr["batch"]):
        exp_max[idx] = max(tr["q_t"][idx])
        exp_double[idx] = tr["q_t"][idx][int(np.argmax(tr["q_x"][idx]))]
    close(out_max, exp_max)
    close(out_double, exp_double)


@jit_variants
@given(tr=transitions())
def test_expected_state_value(use_jit, tr):
    out = variant(vl.expected_state_value, use_jit)(tr["q_t"], tr["probs"])
    expected = np.zeros(tr["batch"])
    for idx in np.ndindex(tr["batch"]):
        expected[idx] = sum(p * q for p, q in zip(tr["probs"][idx], tr["q_t"][idx]))
    close(out, expected)


@jit_variants
@given(tr=transitions(), tau=st.floats(0.1, 5.0))
def test_boltzmann_state_value(use_jit, tr, tau):
    out = variant(vl.boltzmann_state_value, use_jit)(tr["q_t"], tau)
    expected = np.zeros(tr["batch"])
    for idx in np.ndindex(tr["batch"]):
        q = tr["q_t"][idx].astype(np.float64)
        w = np.exp(q / tau) / np.sum(np.exp(q / tau))
        expected[idx] = np.sum(w * q)
    close(out, expected, atol=1e-4)
    assert np.all(np.asarray(out) <= tr["q_t"].max(-1) + 1e-4)


@jit_variants
@given(tr=transitions(), omega=st.sampled_from([-3.0, 0.5, 2.0, 10.0]))
def test_mellowmax_state_value(use_jit, tr, omega):
    out = variant(vl.mellowmax_state_value, use_jit)(tr["q_t"], omega)
    expected = np.zeros(tr["batch"])
    for idx in np.ndindex(tr["batch"]):
        q = tr["q_t"][idx].astype(np.float64)
        expected[idx] = np.log(np.mean(np.exp(omega * q))) / omega
    close(out, expected, atol=1e-4)


def test_mellowmax_is_stable_and_between_mean_and_max():
    q = jnp.array([[100.0, 99.0, -100.0], [1.0, 2.0, 3.0]])
    for omega in (0.1, 5.0, 1e3):
        out = np.asarray(vl.mellowmax_state_value(q, omega))
        assert np.all(np.isfinite(out))
        assert np.all(out <= np.asarray(q).max(-1) + 1e-3) and np.all(out >= np.asarray(q).mean(-1) - 1e-3)
    close(vl.mellowmax_state_value(q, 1e3), np.asarray(q).max(-1), atol=1e-2)


# ----------------------------------------------------------------------------- regression losses
@jit_variants
@given(x=floats((7,)), delta=st.sampled_from([0.5, 1.0, 2.0]))
def test_losses(use_jit, x, delta):
    huber = variant(vl.huber_loss, use_jit)(x, delta)
    expected = [0.5 * v * v if abs(v) <= delta else delta * (abs(v) - 0.5 * delta) for v in x.astype(np.float64)]
    close(huber, np.array(expected))
    close(variant(vl.l2_loss, use_jit)(x), 0.5 * x.astype(np.float64) ** 2)
    close(variant(vl.absolute_loss, use_jit)(x), np.abs(x.astype(np.float64)))


def test_huber_gradient_is_clipped_error():
    x = jnp.array([-3.0, -0.5, 0.0, 0.2, 1.5])
    close(grad(lambda v: jnp.sum(vl.huber_loss(v, 1.0)))(x), np.clip(np.asarray(x), -1, 1))


# ----------------------------------------------------------------------------- C51
UNIFORM_SUPPORT = np.linspace(-3.0, 3.0, 7).astype(np.float32)
UNEVEN_SUPPORT = np.array([-4.0, -1.0, -0.5, 0.0, 2.0, 5.0], np.float32)


@jit_variants
@given(batch=st.sampled_from(BATCH_SHAPES), data=st.data(), uneven=st.booleans())
def test_categorical_l2_project(use_jit, batch, data, uneven):
    z_q = UNEVEN_SUPPORT if uneven else UNIFORM_SUPPORT
    z_p = data.draw(floats(batch + (5,), -6.0, 6.0))
    probs = data.draw(probabilities(batch + (5,)))
    out = np.asarray(variant(vl.categorical_l2_project, use_jit)(z_p, probs, z_q))
    expected = np.zeros(batch + (len(z_q),))
    for idx in np.ndindex(batch):
        expected[idx] = np_project(z_p[idx].astype(np.float64), probs[idx], z_q.astype(np.float64))
    close(out, expected, atol=1e-5)
    close(out.sum(-1), np.ones(batch), atol=1e-5)  # mass is preserved
    inside = np.all((z_p >= z_q[0]) & (z_p <= z_q[-1]), -1)
    mean_in, mean_out = np.sum(probs * z_p, -1), np.sum(out * z_q, -1)
    close(mean_out[inside], mean_in[inside], atol=1e-4)  # and so is the mean, inside the support


def test_categorical_l2_project_is_identity_on_the_support():
    probs = np.array([0.1, 0.2, 0.3, 0.1, 0.1, 0.2], np.float32)
    close(vl.categorical_l2_project(UNEVEN_SUPPORT, probs, UNEVEN_SUPPORT), probs)


def np_categorical(atoms, logits_tm1, a_tm1, r, d, logits_t, a_star):
    out = np.zeros(a_tm1.shape)
    for idx in np.ndindex(a_tm1.shape):
        p_t = np_softmax(logits_t[idx][a_star[idx]].astype(np.float64))
        target = np_project(r[idx] + d[idx] * atoms, p_t, atoms)
        log_p = np.log(np_softmax(logits_tm1[idx][a_tm1[idx]].astype(np.float64)))
        out[idx] = -np.sum(target * log_p)
    return out


@jit_variants
@given(tr=transitions(event=(N_ACTIONS, len(UNIFORM_SUPPORT))))
def test_categorical_q_learning(use_jit, tr):
    atoms = UNIFORM_SUPPORT.astype(np.float64)
    fn = variant(vl.categorical_q_learning, use_jit)
    out = fn(UNIFORM_SUPPORT, tr["q_tm1"], tr["a_tm1"], tr["r_t"], tr["discount_t"], tr["q_t"])
    mean_q = np.sum(np_softmax(tr["q_t"].astype(np.float64)) * atoms, -1)
    expected = np_categorical(atoms, tr["q_tm1"], tr["a_tm1"], tr["r_t"], tr["discount_t"], tr["q_t"], mean_q.argmax(-1))
    ok = clear_argmax(mean_q)
    close(np.asarray(out)[ok], expected[ok], atol=1e-4)


@jit_variants
@given(tr=transitions(event=(N_ACTIONS, len(UNIFORM_SUPPORT))))
def test_categorical_double_q_learning(use_jit, tr):
    atoms = UNIFORM_SUPPORT.astype(np.float64)
    sel = tr["q_x"][..., 0]
    fn = variant(vl.categorical_double_q_learning, use_jit)
    out = fn(UNIFORM_SUPPORT, tr["q_tm1"], tr["a_tm1"], tr["r_t"], tr["discount_t"], tr["q_t"], sel)
    expected = np_categorical(atoms, tr["q_tm1"], tr["a_tm1"], tr["r_t"], tr["discount_t"], tr["q_t"], sel.argmax(-1))
    close(out, expected, atol=1e-4)


@pytest.mark.parametrize("stop", [True, False])
def test_categorical_gradients(stop):
    rng = np.random.default_rng(1)
    lt0, lt1 = (jnp.asarray(rng.normal(size=(3, N_ACTIONS, 7)), jnp.float32) for _ in range(2))
    a, r, d = jnp.array([0, 2, 3]), jnp.array([0.5, -1.0, 0.0]), jnp.full(3, 0.9)
    loss = lambda x, y: jnp.sum(vl.categorical_q_learning(UNIFORM_SUPPORT, x, a, r, d, y, stop))
    g0, g1 = grad(loss, argnums=(0, 1))(lt0, lt1)
    g0 = np.asarray(g0)
    # Only the taken action's logits learn, and a cross-entropy gradient sums to zero per row.
    for b, act in enumerate(np.asarray(a)):
        assert np.abs(g0[b, act]).max() > 0 and np.abs(np.delete(g0[b], act, 0)).max() == 0
    close(g0.sum(-1), np.zeros((3, N_ACTIONS)), atol=1e-6)
    assert (np.abs(np.asarray(g1)).max() == 0) == stop


# ----------------------------------------------------------------------------- quantile regression
@jit_variants
@given(batch=st.sampled_from(BATCH_SHAPES), data=st.data(), kappa=st.sampled_from([0.0, 1.0, 2.0]))
def test_quantile_regression_loss(use_jit, batch, data, kappa):
    src, target = data.draw(floats(batch + (5,))), data.draw(floats(batch + (3,)))
    tau = (2 * np.arange(5) + 1) / 10.0
    fn = variant(vl.quantile_regression_loss, use_jit, static_argnames=("huber_param",))
    out = fn(src, tau.astype(np.float32), target, huber_param=kappa)
    expected = np.zeros(batch)
    for idx in np.ndindex(batch):
        expected[idx] = np_quantile_loss(src[idx].astype(np.float64), tau, target[idx].astype(np.float64), kappa)
    close(out, expected, atol=1e-4)
    assert np.all(np.asarray(out) >= 0)


@jit_variants
@given(tr=transitions(event=(N_ACTIONS, 5)), kappa=st.sampled_from([0.0, 1.0]))
def test_quantile_q_learning(use_jit, tr, kappa):
    tau = ((2 * np.arange(5) + 1) / 10.0).astype(np.float32)
    fn = variant(vl.quantile_q_learning, use_jit, static_argnames=("huber_param",))
    out = fn(tr["q_tm1"], tau, tr["a_tm1"], tr["r_t"], tr["discount_t"], tr["q_x"], tr["q_t"], kappa)
    mean_sel = tr["q_x"].astype(np.float64).mean(-1)
    expected = np.zeros(tr["batch"])
    for idx in np.ndindex(tr["batch"]):
        a_star = int(np.argmax(mean_sel[idx]))
        target = tr["r_t"][idx] + tr["discount_t"][idx] * tr["q_t"][idx][a_star].astype(np.float64)
        expected[idx] = np_quantile_loss(tr["q_tm1"][idx][tr["a_tm1"][idx]].astype(np.float64), tau, target, kappa)
    ok = clear_argmax(mean_sel)
    close(np.asarray(out)[ok], expected[ok], atol=1e-4)


@pytest.mark.parametrize("stop", [True, False])
def test_quantile_gradients(stop):
    rng = np.random.default_rng(2)
    q0, q1 = (jnp.asarray(rng.normal(size=(3, N_ACTIONS, 5)), jnp.float32) for _ in range(2))
    tau = (2 * jnp.arange(5) + 1) / 10.0
    a, r, d = jnp.array([1, 0, 3]), jnp.array([0.5, -1.0, 0.0]), jnp.full(3, 0.9)
    loss = lambda x, y: jnp.sum(vl.quantile_q_learning(x, tau, a, r, d, y, y, 1.0, stop))
    g0, g1 = grad(loss, argnums=(0, 1))(q0, q1)
    assert np.abs(np.asarray(g0)[np.arange(3), np.asarray(a)]).max() > 0
    assert (np.abs(np.asarray(g1)).max() == 0) == stop


# ----------------------------------------------------------------------------- NAF
@jit_variants
@given(batch=st.sampled_from(BATCH_SHAPES), dim=st.sampled_from([1, 3]), data=st.data())
def test_naf(use_jit, batch, dim, data):
    flat = data.draw(floats(batch + (dim * (dim + 1) // 2,), -2.0, 2.0))
    mu, u, v = data.draw(floats(batch + (dim,))), data.draw(floats(batch + (dim,))), data.draw(floats(batch))
    L = np.asarray(variant(vl.lower_triangular, use_jit, static_argnames=("dim",))(flat, dim=dim))
    adv = np.asarray(variant(vl.naf_advantage, use_jit)(mu, L, u))
    q = variant(vl.naf_q_value, use_jit)(v, mu, L, u)
    exp_adv = np.zeros(batch)
    for idx in np.ndindex(batch):
        close(L[idx], np_lower_triangular(flat[idx].astype(np.float64), dim), rtol=1e-5)
        diff = (u[idx] - mu[idx]).astype(np.float64)
        P = L[idx].astype(np.float64) @ L[idx].T.astype(np.float64)
        exp_adv[idx] = -0.5 * diff @ P @ diff
    close(adv, exp_adv, rtol=1e-4, atol=1e-3)
    close(q, v + exp_adv, rtol=1e-4, atol=1e-3)
    assert np.all(adv <= 0)
    close(vl.naf_advantage(mu, L, mu), np.zeros(batch))  # maximal at u = mu


def test_lower_triangular_gradient_is_finite_for_large_off_diagonal():
    g = grad(lambda f: jnp.sum(vl.lower_triangular(f, 2)))(jnp.array([0.0, 500.0, 0.0]))
    close(g, np.array([1.0, 1.0, 1.0]))


# ----------------------------------------------------------------------------- DQfD
@jit_variants
@given(tr=transitions(), margin=st.sampled_from([0.0, 0.5, 0.8]))
def test_large_margin_loss(use_jit, tr, margin):
    out = np.asarray(variant(vl.large_margin_loss, use_jit)(tr["q_t"], tr["a_tm1"], margin))
    expected = np.zeros(tr["batch"])
    for idx in np.ndindex(tr["batch"]):
        q, ae = tr["q_t"][idx].astype(np.float64), tr["a_tm1"][idx]
        expected[idx] = max(q[a] + (0.0 if a == ae else margin) for a in range(N_ACTIONS)) - q[ae]
    close(out, expected)
    assert np.all(out >= 0)


def test_large_margin_loss_is_zero_when_expert_wins_by_margin():
    q = jnp.array([[1.0, 2.0, 0.5], [1.0, 1.2, 0.0]])
    out = vl.large_margin_loss(q, jnp.array([1, 1]), margin=0.5)
    close(out, np.array([0.0, 0.3]))  # 2.0 beats 1.0 by 1.0; 1.2 beats 1.0 by only 0.2
    g = grad(lambda x: jnp.sum(vl.large_margin_loss(x, jnp.array([1, 1]), 0.5)))(q)
    close(g, np.array([[0.0, 0.0, 0.0], [1.0, -1.0, 0.0]]))


# ----------------------------------------------------------------------------- argument errors
Q, A_, R, D = np.zeros((3, 4), np.float32), np.zeros(3, np.int32), np.zeros(3, np.float32), np.ones(3, np.float32)
DIST = np.zeros((3, 4, 7), np.float32)
ATOMS = UNIFORM_SUPPORT
TAU = np.full(7, 0.5, np.float32)
ERROR_CASES = [
    ("select float actions", lambda: vl.select_action_values(Q, A_.astype(np.float32)), "`a`"),
    ("select action shape", lambda: vl.select_action_values(Q, A_[:2]), "`a`"),
    ("select int q", lambda: vl.select_action_values(Q.astype(np.int32), A_), "`q`"),
    ("td v_tm1 int", lambda: vl.td_error(A_, R, D, R), "`v_tm1`"),
    ("td v_t shape", lambda: vl.td_error(R, R, D, np.zeros(4, np.float32)), "`v_t`"),
    ("td discount bool", lambda: vl.td_error(R, R, D > 0, R), "`discount_t`"),
    ("q q_t shape", lambda: vl.q_learning(Q, A_, R, D, Q[:2]), "`q_t`"),
    ("q r_t shape", lambda: vl.q_learning(Q, A_, np.zeros(4, np.float32), D, Q), "`r_t`"),
    ("q a_tm1 float", lambda: vl.q_learning(Q, R, R, D, Q), "`a_tm1`"),
    ("q q_tm1 scalar", lambda: vl.q_learning(np.float32(0), np.int32(0), 0.0, 1.0, np.float32(0)), "`q_tm1`"),
    ("double selector", lambda: vl.double_q_learning(Q, A_, R, D, Q, Q[:, :2]), "`q_t_selector`"),
    ("sarsa a_t", lambda: vl.sarsa(Q, A_, R, D, Q, R), "`a_t`"),
    ("expected probs", lambda: vl.expected_sarsa(Q, A_, R, D, Q, Q[0]), "`probs_a_t`"),
    ("n-step rank", lambda: vl.n_step_q_learning(Q[0], A_[0], R[0], D[0], Q[0], 1), "`q_tm1`"),
    ("n-step n=0", lambda: vl.n_step_q_learning(Q, A_, R, D, Q, 0), "`n`"),
    ("n-step n float", lambda: vl.n_step_q_learning(Q, A_, R, D, Q, 1.5), "`n`"),
    ("n-step selector", lambda: vl.n_step_q_learning(Q, A_, R, D, Q, 2, Q[:1]), "`q_t_selector`"),
    ("max scalar", lambda: vl.max_state_value(np.float32(1)), "`q`"),
    ("double value shape", lambda: vl.double_q_state_value(Q, Q[:1]), "`q_value`"),
    ("expected probs shape", lambda: vl.expected_state_value(Q, Q[:, :1]), "`probs`"),
    ("boltzmann tau 0", lambda: vl.boltzmann_state_value(Q, 0.0), "`temperature`"),
    ("boltzmann tau shape", lambda: vl.boltzmann_state_value(Q, np.ones(5, np.float32)), "`temperature`"),
    ("mellowmax omega 0", lambda: vl.mellowmax_state_value(Q, 0), "`omega`"),
    ("huber int", lambda: vl.huber_loss(A_), "`x`"),
    ("huber delta", lambda: vl.huber_loss(R, 0.0), "`delta`"),
    ("l2 int", lambda: vl.l2_loss(A_), "`x`"),
    ("abs int", lambda: vl.absolute_loss(A_), "`x`"),
    ("project z_q rank", lambda: vl.categorical_l2_project(R, R, Q), "`z_q`"),
    ("project z_q size", lambda: vl.categorical_l2_project(R, R, R[:1]), "`z_q`"),
    ("project z_p size", lambda: vl.categorical_l2_project(R[:2], R, ATOMS), "`z_p`"),
    ("project probs int", lambda: vl.categorical_l2_project(R, A_, ATOMS), "`probs`"),
    ("c51 atoms", lambda: vl.categorical_q_learning(ATOMS[:5], DIST, A_, R, D, DIST), "`atoms`"),
    ("c51 logits_t", lambda: vl.categorical_q_learning(ATOMS, DIST, A_, R, D, DIST[:2]), "`logits_t`"),
    ("c51 a_tm1", lambda: vl.categorical_q_learning(ATOMS, DIST, A_[:2], R, D, DIST), "`a_tm1`"),
    ("c51 logits_tm1 rank", lambda: vl.categorical_q_learning(ATOMS, DIST[0, 0], A_, R, D, DIST), "`logits_tm1`"),
    ("c51 double selector", lambda: vl.categorical_double_q_learning(ATOMS, DIST, A_, R, D, DIST, Q[:, :2]), "`q_t_selector`"),
    ("qr tau shape", lambda: vl.quantile_regression_loss(Q, TAU[:5], Q), "`tau_src`"),
    ("qr target shape", lambda: vl.quantile_regression_loss(Q, TAU[:4], Q[:2]), "`dist_target`"),
    ("qr huber", lambda: vl.quantile_regression_loss(Q, TAU[:4], Q, -1.0), "`huber_param`"),
    ("qrdqn tau", lambda: vl.quantile_q_learning(DIST, TAU[:3], A_, R, D, DIST, DIST), "`tau_q_tm1`"),
    ("qrdqn dist_q_t", lambda: vl.quantile_q_learning(DIST, TAU, A_, R, D, DIST, DIST[:, :2]), "`dist_q_t`"),
    ("qrdqn selector", lambda: vl.quantile_q_learning(DIST, TAU, A_, R, D, DIST[:2], DIST), "`dist_q_t_selector`"),
    ("tril flat size", lambda: vl.lower_triangular(np.zeros(5, np.float32), 2), "`flat`"),
    ("tril dim", lambda: vl.lower_triangular(np.zeros(1, np.float32), 0), "`dim`"),
    ("naf mu int", lambda: vl.naf_advantage(A_, np.zeros((3, 3), np.float32), R), "`mu`"),
    ("naf L shape", lambda: vl.naf_advantage(R, np.zeros((3, 2), np.float32), R), "`L`"),
    ("naf action shape", lambda: vl.naf_advantage(R, np.zeros((3, 3), np.float32), R[:2]), "`action`"),
    ("naf v shape", lambda: vl.naf_q_value(R, R, np.zeros((3, 3), np.float32), R), "`v`"),
    ("margin float actions", lambda: vl.large_margin_loss(Q, R), "`a_expert`"),
    ("margin negative", lambda: vl.large_margin_loss(Q, A_, -0.1), "`margin`"),
]


@pytest.mark.parametrize("call,match", [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_argument_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
