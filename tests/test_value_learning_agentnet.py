"""AgentNet-compatible elementwise objectives (fnrl.value_learning, rows B1–B4) against NumPy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnrl import value_learning as vl
from tests.helpers import floats, jit_variants, variant
from tests.test_returns import np_agentnet

STATIC = ("n_steps", "crop_last", "force_end_at_last_tick", "return_reference")


@st.composite
def sessions(draw):
    B, T, A = draw(st.sampled_from([(1, 1, 2), (2, 5, 3), (3, 8, 2)]))
    q = draw(floats((B, T, A)))
    q_target = draw(floats((B, T, A)))
    actions = np.asarray(draw(st.lists(st.integers(0, A - 1), min_size=B * T, max_size=B * T)),
                         np.int32).reshape(B, T)
    rewards = draw(floats((B, T)))
    lengths = draw(st.lists(st.integers(1, T), min_size=B, max_size=B))
    alive = (np.arange(T)[None] < np.asarray(lengths)[:, None]).astype(np.float32)
    gamma = draw(st.sampled_from([0.0, 0.9, 0.99]))
    after_end = draw(st.none() | floats((B,)))
    return q, q_target, actions, rewards, alive, gamma, after_end


def pick(q, a):
    return np.take_along_axis(q, a[..., None], axis=-1)[..., 0]


def np_value_objective(pred, v, rewards, alive, n, gamma, crop, after_end, force_end):
    B, T = pred.shape
    after = np.zeros(B) if after_end is None else after_end
    ref = np_agentnet(v, rewards, alive, n, np.full((B, T), gamma), crop, after, force_end)
    if crop:
        ref[:, -1] = pred[:, -1]
    return ref, (ref - pred) ** 2 * alive


@jit_variants
@given(sessions(), st.sampled_from([None, 1, 3]), st.booleans(), st.booleans(),
       st.sampled_from(["own", "qvalues_target", "state_values_target"]))
def test_qlearning_objective_matches_numpy(use_jit, data, n, crop, force_end, source):
    q, q_target, a, r, alive, gamma, after_end = data
    kwargs = dict(n_steps=n, gamma_or_gammas=gamma, crop_last=crop, force_end_at_last_tick=force_end,
                  state_values_target_after_end=after_end)
    v = {"own": q.max(-1), "qvalues_target": q_target.max(-1), "state_values_target": q_target[..., 0]}[source]
    if source == "qvalues_target":
        kwargs["qvalues_target"] = q_target
    elif source == "state_values_target":
        kwargs["state_values_target"] = q_target[..., 0]
    fn = variant(vl.agentnet_qlearning_objective, use_jit, static_argnames=STATIC)
    ref, loss = np_value_objective(pick(q, a), v, r, alive, n, gamma, crop, after_end, force_end)
    np.testing.assert_allclose(fn(q, a, r, alive, **kwargs), loss, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fn(q, a, r, alive, return_reference=True, **kwargs), ref, rtol=1e-4, atol=1e-4)


@jit_variants
@given(sessions(), st.sampled_from([None, 1, 2]), st.booleans(), st.booleans())
def test_sarsa_objective_matches_numpy(use_jit, data, n, crop, target_as_values):
    q, q_target, a, r, alive, gamma, after_end = data
    v = pick(q_target, a)
    given_target = v[..., None] if target_as_values else q_target
    fn = variant(vl.agentnet_sarsa_objective, use_jit, static_argnames=STATIC)
    got = fn(q, a, r, alive, qvalues_target=given_target, n_steps=n, gamma_or_gammas=gamma, crop_last=crop,
             state_values_target_after_end=after_end)
    _, loss = np_value_objective(pick(q, a), v, r, alive, n, gamma, crop, after_end, False)
    np.testing.assert_allclose(got, loss, rtol=1e-4, atol=1e-4)


@jit_variants
@given(sessions(), st.sampled_from([None, 1, 4]), st.booleans())
def test_dpg_critic_objective_matches_numpy(use_jit, data, n, crop):
    q, q_target, _, r, alive, gamma, after_end = data
    pred, v = q[..., 0], q_target[..., 0]
    fn = variant(vl.agentnet_dpg_critic_objective, use_jit, static_argnames=STATIC)
    got = fn(pred, v, r, alive, n_steps=n, gamma_or_gammas=gamma, crop_last=crop, state_values_after_end=after_end)
    np.testing.assert_allclose(got, np_value_objective(pred, v, r, alive, n, gamma, crop, after_end, False)[1],
                               rtol=1e-4, atol=1e-4)


@jit_variants
@given(sessions(), st.sampled_from([None, 1, 3]), st.sampled_from(["same", None, 2]), st.booleans(),
       st.sampled_from(["probs", "logprobs", "taken"]))
def test_a2c_objective_matches_numpy(use_jit, data, n, n_adv, crop, policy_kind):
    q, q_target, a, r, alive, gamma, after_end = data
    probs = np.exp(q) / np.exp(q).sum(-1, keepdims=True)
    values, target = q_target[..., 0], q_target[..., -1] * 0.5
    policy = {"probs": probs, "logprobs": np.log(probs), "taken": pick(probs, a)}[policy_kind]
    fn = variant(vl.agentnet_a2c_objective, use_jit,
                 static_argnames=("n_steps", "n_steps_advantage", "crop_last", "return_separate",
                                  "treat_policy_as_logpolicy"))
    actor, critic = fn(policy, values, a, r, alive, state_values_target=target, n_steps=n,
                       n_steps_advantage=n_adv, gamma_or_gammas=gamma, crop_last=crop,
                       state_values_after_end=after_end, return_separate=True,
                       treat_policy_as_logpolicy=policy_kind == "logprobs")
    B, T = values.shape
    gammas = np.full((B, T), gamma)
    zeros = np.zeros(B)
    after = zeros if after_end is None else after_end
    ref = np_agentnet(target, r, alive, n, gammas, crop, zeros, False)
    steps = n if n_adv == "same" else n_adv
    advantage = np_agentnet(values, r, alive, steps, gammas, crop, after, False) - values
    np.testing.assert_allclose(critic, (ref - values) ** 2 * alive, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(actor, -np.log(pick(probs, a)) * advantage * alive, rtol=1e-3, atol=1e-3)


def test_reference_gradients_are_stopped_unless_asked():
    q = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 3)), jnp.float32)
    a = jnp.asarray([[0, 1, 2, 0], [2, 2, 1, 0]], jnp.int32)
    r = jnp.ones((2, 4))

    def grad(constant):
        return jax.grad(lambda q: vl.agentnet_qlearning_objective(
            q, a, r, consider_reference_constant=constant, crop_last=False).sum())(q)

    g_const, g_free = grad(True), grad(False)
    # With a constant reference, only the taken actions receive gradient.
    taken = np.eye(3, dtype=bool)[np.asarray(a)]
    assert np.all(np.asarray(g_const)[~taken] == 0)
    assert np.any(np.asarray(g_free)[~taken] != 0)


def test_a2c_advantage_carries_no_gradient_into_values():
    values = jnp.linspace(0.0, 1.0, 6).reshape(2, 3)
    policy = jnp.full((2, 3, 2), 0.5)
    a = jnp.zeros((2, 3), jnp.int32)
    r = jnp.ones((2, 3))
    g = jax.grad(lambda v: vl.agentnet_a2c_objective(policy, v, a, r, return_separate=True)[0].sum())(values)
    assert np.all(np.asarray(g) == 0)
    g = jax.grad(lambda p: vl.agentnet_a2c_objective(p, values, a, r, return_separate=True)[0].sum())(policy)
    assert np.any(np.asarray(g) != 0)


@pytest.mark.parametrize("call, name", [
    (lambda: vl.agentnet_qlearning_objective(np.ones((2, 3, 2)), np.zeros((2, 3), np.float32), np.ones((2, 3))),
     "actions"),
    (lambda: vl.agentnet_qlearning_objective(np.ones((2, 3)), np.zeros((2, 3), np.int32), np.ones((2, 3))),
     "qvalues"),
    (lambda: vl.agentnet_qlearning_objective(np.ones((2, 3, 2)), np.zeros((2, 3), np.int32), np.ones((2, 3)),
                                             qvalues_target=np.ones((2, 3, 2)), state_values_target=np.ones((2, 3))),
     "state_values_target"),
    (lambda: vl.agentnet_qlearning_objective(np.ones((2, 3, 2)), np.zeros((2, 3), np.int32), np.ones((2, 3)),
                                             aggregation_function=max), "aggregation_function"),
    (lambda: vl.agentnet_sarsa_objective(np.ones((2, 3, 2)), np.zeros((2, 3), np.int32), np.ones((2, 3)),
                                         qvalues_target=np.ones((2, 3, 4))), "qvalues_target"),
    (lambda: vl.agentnet_dpg_critic_objective(np.ones((2, 3)), np.ones((2, 4)), np.ones((2, 3))), "state_values"),
    (lambda: vl.agentnet_a2c_objective(np.ones((2, 4, 2)), np.ones((2, 3)), np.zeros((2, 3), np.int32),
                                       np.ones((2, 3))), "policy"),
    (lambda: vl.agentnet_a2c_objective(np.ones((2, 3, 2)), np.ones((2, 3)), np.zeros((2, 3), np.int32),
                                       np.ones((2, 3)), is_alive=np.ones((3, 3))), "is_alive"),
])
def test_bad_arguments_are_named(call, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        call()


Q, A, R = np.ones((2, 3, 2)), np.zeros((2, 3), np.int32), np.ones((2, 3))


@pytest.mark.parametrize("call, fn, name", [
    (lambda: vl.agentnet_qlearning_objective(Q, A, R, is_alive=np.ones((2, 4))), "agentnet_qlearning_objective",
     "is_alive"),
    (lambda: vl.agentnet_qlearning_objective(Q, A, R, n_steps=0), "agentnet_qlearning_objective", "n_steps"),
    (lambda: vl.agentnet_sarsa_objective(Q, A, R, state_values_target_after_end=np.ones((2, 2))),
     "agentnet_sarsa_objective", "state_values_target_after_end"),
    (lambda: vl.agentnet_dpg_critic_objective(R, R, R, gamma_or_gammas=np.ones(3)), "agentnet_dpg_critic_objective",
     "gamma_or_gammas"),
    (lambda: vl.agentnet_dpg_critic_objective(R, R, R, state_values_after_end=np.ones(3)),
     "agentnet_dpg_critic_objective", "state_values_after_end"),
    (lambda: vl.agentnet_a2c_objective(Q, R, A, R, state_values_after_end=np.ones(3)), "agentnet_a2c_objective",
     "state_values_after_end"),
    (lambda: vl.agentnet_a2c_objective(Q, R, A, R, n_steps_advantage=0), "agentnet_a2c_objective",
     "n_steps_advantage"),
])
def test_the_n_step_reference_inside_an_objective_names_the_objective(call, fn, name):
    """The objectives compute their references with `agentnet_n_step_reference`'s code: a bad
    argument found there is reported as the objective's own."""
    with pytest.raises(ValueError, match=f"^{fn}: argument `{name}`"):
        call()


def test_float64_rewards_keep_their_precision_under_x64():
    """Rewards of 1 + 1e-12 (γ = 0, Q = 0) in float64: the loss must be (1 + 1e-12)², not the
    1.0 a float32 cast of the rewards gives; int rewards become the default float."""
    with jax.enable_x64(True):
        rewards = np.full((1, 2), 1.0 + 1e-12)
        q = np.zeros((1, 2, 1))
        loss = vl.agentnet_qlearning_objective(q, np.zeros((1, 2), np.int32), rewards, crop_last=False,
                                               gamma_or_gammas=0.0, qvalues_target=q)
        assert loss.dtype == np.float64
        np.testing.assert_allclose(np.asarray(loss), (1.0 + 1e-12) ** 2, rtol=1e-15)
        ints = vl.agentnet_qlearning_objective(q, np.zeros((1, 2), np.int32), np.ones((1, 2), np.int32),
                                               crop_last=False, gamma_or_gammas=0.0, qvalues_target=q)
        assert ints.dtype == np.float64
