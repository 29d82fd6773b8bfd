"""fnrl.envs.toy: MinimalTest against a plain-Python version of TensorForce's rules (R2),
boolean reasoning against AgentNet's rules, bandit reward statistics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fnrl.envs import toy
from fnrl.envs import wrappers as w
from fnrl.types import Spec
from tests.helpers import floats, jit_variants

LENGTH = 6
MULTI = {"bool": (), "int": (2,), "float": (1, 1), "bounded": (1,)}  # TensorForce's test_multi
MINIMAL = {kind: toy.minimal_test(kind) for kind in toy.MINIMAL_TEST_TYPES}
MINIMAL["multi"] = toy.minimal_test(MULTI)
NAMED = {"a": ("float", (3,)), "b": ("bounded", (2,)), "c": ("bool", (2, 2)), "d": ("int", (3,))}
MINIMAL["named"] = toy.minimal_test(NAMED)
CORRECT = {"bool": True, "int": 1, "float": 1.0, "bounded": 1.0}
DTYPES = {"bool": np.bool_, "int": np.int32, "float": np.float32, "bounded": np.float32}


def parts_of(name):
    if name == "multi":
        return {k: (k, s) for k, s in MULTI.items()}
    return NAMED if name == "named" else {name: (name, ())}


# ----------------------------------------------------------------------------- rollouts
def rollout(env, key, actions):
    """Reset, then one step per action (time-major pytree); returns (reset ts, stacked ts)."""
    state, first = env.reset(key)

    def body(state, a):
        state, ts = env.step(state, a)
        return state, ts

    return first, jax.lax.scan(body, state, actions)[1]


_rollout_jit = jax.jit(rollout, static_argnums=0)


def rollout_eager(env, key, actions):
    state, first = env.reset(key)
    outs = []
    for i in range(len(jax.tree.leaves(actions)[0])):
        state, ts = env.step(state, jax.tree.map(lambda x: x[i], actions))
        outs.append(ts)
    return first, jax.tree.map(lambda *xs: jnp.stack(xs), *outs)


def run(env, actions, use_jit=True, seed=0):
    fn = _rollout_jit if use_jit else rollout_eager
    return jax.device_get(fn(env, jax.random.key(seed), actions))


# ----------------------------------------------------------------------------- MinimalTest
class PyMinimalTest:
    """TensorForce MinimalTest's execute, written from seed-features R2 (terminal left out)."""

    def __init__(self, parts):
        self.parts = parts
        self.state = {name: (1.0, 0.0) for name in parts}

    def execute(self, actions):
        reward = 0.0
        for name, (kind, _) in self.parts.items():
            a = np.asarray(actions[name])
            if kind in ("bool", "int"):
                y = np.count_nonzero(a == 1) / a.size
                self.state[name] = (1.0 - y, y)
            else:
                step = float(np.sum(a, dtype=np.float64)) / a.size
                x, y = self.state[name]
                self.state[name] = (max(x - step, 0.0), min(y + step, 1.0))
            reward += max(min(self.state[name][1], 1.0), 0.0)
        return dict(self.state), reward / len(self.parts)


def action_part(kind, shape):
    full = (LENGTH,) + shape
    if kind == "bool":
        return hnp.arrays(np.bool_, full)
    if kind == "int":
        return hnp.arrays(np.int32, full, elements=st.integers(0, 1))
    return floats(full, -1.0, 2.0)


@jit_variants
@pytest.mark.parametrize("name", list(MINIMAL))
@given(data=st.data())
def test_minimal_test_matches_tensorforce_rules(use_jit, name, data):
    parts = parts_of(name)
    actions = {n: data.draw(action_part(*p), label=n) for n, p in parts.items()}
    single = name not in ("multi", "named")
    first, ts = run(MINIMAL[name], actions[name] if single else actions, use_jit)
    obs = {name: first.observation} if single else first.observation
    for n in parts:
        np.testing.assert_array_equal(obs[n], [1.0, 0.0])
    env = PyMinimalTest(parts)
    for i in range(LENGTH):
        state, reward = env.execute({n: a[i] for n, a in actions.items()})
        obs = {name: ts.observation[i]} if single else jax.tree.map(lambda x: x[i], ts.observation)
        for n in parts:
            np.testing.assert_allclose(obs[n], state[n], atol=1e-5)
        np.testing.assert_allclose(ts.reward[i], reward, atol=1e-5)
    assert ts.valid.all() and not ts.truncated.any()


def test_minimal_test_terminates_with_probability_quarter():
    env = w.vectorize(MINIMAL["float"], 2000)
    _, ts = run(env, jnp.zeros((4, 2000), jnp.float32))
    rate, sigma = ts.terminated.mean(), np.sqrt(0.25 * 0.75 / ts.terminated.size)
    assert abs(rate - 0.25) < 4 * sigma
    per_step = ts.terminated.mean(axis=1)  # steps are independent draws, each at rate 0.25
    assert np.all(np.abs(per_step - 0.25) < 4 * np.sqrt(0.25 * 0.75 / 2000))


def constant_actions(value_of, num_envs, steps=30):
    return {n: np.full((steps, num_envs) + s, value_of[n], DTYPES[n]) for n, s in MULTI.items()}


WRONG = {"bool": False, "int": 0, "float": 0.0, "bounded": -0.5}


@pytest.mark.parametrize("policy, passes", [(CORRECT, True), (WRONG, False)])
def test_minimal_test_tensorforce_pass_rule(policy, passes):
    """R1: every one of >= 100 finished episodes must have return / length >= 0.8."""
    env = w.vectorize(w.episode_statistics(w.auto_reset(MINIMAL["multi"])), 64)
    state, _ = env.reset(jax.random.key(1))
    step = jax.jit(env.step)
    ratios = []
    actions = constant_actions(policy, 64)
    for i in range(30):
        state, ts = step(state, {n: a[i] for n, a in actions.items()})
        stats = w.episode_stats(state)
        done = np.asarray(ts.done & ts.valid)
        ratios.extend(np.asarray(stats.last_return / stats.last_length)[done])
    assert len(ratios) >= 100
    assert (min(ratios) >= 0.8) == passes
    if passes:
        np.testing.assert_allclose(ratios, 1.0)


def test_minimal_test_specs():
    spec = MINIMAL["multi"].spec()
    assert spec.observation == {n: Spec((2,), jnp.float32) for n in MULTI}
    assert spec.action["int"] == Spec((2,), jnp.int32, num_values=2)
    assert spec.action["bounded"] == Spec((1,), jnp.float32, minimum=-0.5, maximum=1.5)
    assert spec.action["float"].kind == "float" and spec.action["bool"].kind == "bool"
    assert MINIMAL["int"].spec().action == Spec((), jnp.int32, num_values=2)
    assert MINIMAL["bool"].spec().observation == Spec((2,), jnp.float32)
    named = toy.minimal_test({"a": "bounded", "b": ("int", (2,))}).spec().action
    assert named == {"a": spec.action["bounded"]._replace(shape=()), "b": spec.action["int"]}


@pytest.mark.parametrize(
    "specification", ["double", {}, {"a": ("int", (0,))}, {"a": 3}, ["bool"], {"a": ("float", "x")}]
)
def test_minimal_test_rejects_bad_specification(specification):
    with pytest.raises(ValueError, match="`specification`"):
        toy.minimal_test(specification)


@pytest.mark.parametrize(
    "name, action",
    [("int", jnp.float32(1.0)), ("float", jnp.ones((2,))), ("bool", jnp.int32(1)), ("multi", {"bool": True})],
)
def test_minimal_test_rejects_bad_action(name, action):
    env = MINIMAL[name]
    with pytest.raises(ValueError, match="`action"):
        env.step(env.reset(jax.random.key(0))[0], action)


# ----------------------------------------------------------------------------- boolean reasoning
REASONING = toy.boolean_reasoning(max_steps=6)


def py_reasoning(factors, actions, max_steps):
    """AgentNet's rules: first opening pays ±1 (X) / ±3 (Y), "end" (5) pays 0 and terminates."""
    opened = [False] * 5
    rows = []
    for i, a in enumerate(actions):
        a = min(max(a, 0), 5)
        term = a == 5
        reward = 0.0
        if not term:
            if not opened[a]:
                reward = (1.0 if a < 3 else 3.0) * (1.0 if factors[a] else -1.0)
            opened[a] = True
        trunc = i + 1 >= max_steps and not term
        obs = [(1.0 if f else -1.0) if o else 0.0 for f, o in zip(factors, opened)]
        rows.append((obs, reward, term, trunc))
        if term or trunc:
            break
    return rows


@jit_variants
@given(actions=st.lists(st.integers(-1, 6), min_size=LENGTH, max_size=LENGTH), seed=st.integers(0, 2**16))
def test_boolean_reasoning_matches_agentnet_rules(use_jit, actions, seed):
    first, ts = run(REASONING, jnp.asarray(actions, jnp.int32), use_jit, seed)
    factors = np.asarray(REASONING.reset(jax.random.key(seed))[0].env_state.factors)
    np.testing.assert_array_equal(first.observation, np.zeros(5))
    for i, (obs, reward, term, trunc) in enumerate(py_reasoning(factors, actions, max_steps=6)):
        np.testing.assert_array_equal(ts.observation[i], obs)
        assert (ts.reward[i], ts.terminated[i], ts.truncated[i]) == (reward, term, trunc)


def reasoning_factors(keys):
    return jax.vmap(lambda k: REASONING.reset(k)[0].env_state.factors)(keys)


def test_boolean_reasoning_hidden_factors_follow_the_formula():
    f = np.asarray(jax.jit(reasoning_factors)(jax.random.split(jax.random.key(0), 4000)))
    x1, x2, y1, y2 = f[:, 0], f[:, 1], f[:, 3], f[:, 4]
    np.testing.assert_array_equal(y1, ~x1 & x2)
    np.testing.assert_array_equal(y2, ~y1)
    assert np.all(np.abs(f[:, :3].mean(0) - 0.5) < 4 * np.sqrt(0.25 / 4000))


def expert(obs):
    """Open X1; if X1 = 0 open X2; then open the Y that must be 1 (Y1 = ¬X1 ∧ X2), then end."""
    y1 = (obs[0] < 0) & (obs[1] > 0)
    target = jnp.where(y1, 3, 4)
    return jnp.select(
        [obs[0] == 0, (obs[0] < 0) & (obs[1] == 0), obs[target] == 0], [0, 1, target], 5
    ).astype(jnp.int32)


def expert_episode(key):
    state, ts = REASONING.reset(key)
    total = jnp.float32(0.0)
    for _ in range(5):
        state, ts = REASONING.step(state, expert(ts.observation))
        total += ts.reward
    return total, ts


def test_boolean_reasoning_expert_always_finds_the_true_category():
    totals, ts = jax.device_get(jax.jit(jax.vmap(expert_episode))(jax.random.split(jax.random.key(2), 500)))
    obs = ts.observation
    assert ts.terminated.all() and not ts.truncated.any()
    np.testing.assert_array_equal(obs[:, 3:].sum(1), 1.0)  # exactly one Y opened, and it was true
    np.testing.assert_array_equal(totals, obs[:, :3].sum(1) + 3.0)
    assert abs(totals.mean() - 3.0) < 0.25


def test_boolean_reasoning_time_limit_and_spec():
    ts = run(REASONING, jnp.zeros((LENGTH,), jnp.int32))[1]
    np.testing.assert_array_equal(ts.truncated, [False] * 5 + [True])
    np.testing.assert_array_equal(ts.reward[1:], 0.0)  # reopening pays nothing
    assert REASONING.spec().action == Spec((), jnp.int32, num_values=6)
    with pytest.raises(ValueError, match="`max_steps`"):
        toy.boolean_reasoning(max_steps=0)
    with pytest.raises(ValueError, match="`action`"):
        REASONING.step(REASONING.reset(jax.random.key(0))[0], 1.0)


# ----------------------------------------------------------------------------- bandit
MEANS = (0.1, 0.5, 0.9)
BERNOULLI = toy.bandit(MEANS)
GAUSSIAN = toy.bandit(np.array([-1.0, 2.0]), distribution="gaussian", stddev=0.5)
RANDOM = toy.bandit(num_arms=4)
GAUSSIAN3_MEANS = (-10.0, 0.0, 10.0)
GAUSSIAN3 = toy.bandit(np.array(GAUSSIAN3_MEANS), distribution="gaussian", stddev=0.5)


def pulls(env, arm, keys):
    """One pull of `arm` after a fresh reset per key: (rewards, timesteps, means)."""
    def one(key):
        state, _ = env.reset(key)
        return env.step(state, arm)[1], state.means

    ts, means = jax.vmap(one)(keys)
    return ts.reward, ts, means


_pulls = jax.jit(pulls, static_argnums=0)
KEYS = jax.random.split(jax.random.key(5), 4000)


def test_bernoulli_bandit_reward_frequencies():
    for arm, mu in enumerate(MEANS):
        rewards, ts, _ = jax.device_get(_pulls(BERNOULLI, jnp.int32(arm), KEYS))
        assert set(np.unique(rewards)) <= {0.0, 1.0}
        assert abs(rewards.mean() - mu) < 4 * np.sqrt(mu * (1 - mu) / len(KEYS))
        assert ts.terminated.all() and ts.valid.all() and not ts.truncated.any()
        np.testing.assert_array_equal(ts.observation, 0.0)


def test_bandit_clamps_out_of_range_arms_to_the_nearest():
    for action, nearest in ((-1, 0), (-7, 0), (3, 2), (99, 2)):
        rewards = np.asarray(_pulls(GAUSSIAN3, jnp.int32(action), KEYS[:50])[0])
        assert abs(rewards.mean() - GAUSSIAN3_MEANS[nearest]) < 0.5, (action, rewards.mean())


def test_gaussian_bandit_reward_moments():
    rewards = np.asarray(_pulls(GAUSSIAN, jnp.int32(1), KEYS)[0])
    assert abs(rewards.mean() - 2.0) < 4 * 0.5 / np.sqrt(len(KEYS))
    assert abs(rewards.std() - 0.5) < 0.05


def test_random_means_are_redrawn_at_each_reset():
    rewards, _, means = jax.device_get(_pulls(RANDOM, jnp.int32(2), KEYS))
    assert means.shape == (len(KEYS), 4) and means.min() >= 0 and means.max() <= 1
    assert len(np.unique(means[:, 0])) == len(KEYS)
    assert abs(rewards.mean() - means[:, 2].mean()) < 0.05
    fixed = jax.device_get(_pulls(BERNOULLI, jnp.int32(0), KEYS[:3])[2])
    np.testing.assert_allclose(fixed, np.tile(MEANS, (3, 1)))
    assert RANDOM.spec().action == Spec((), jnp.int32, num_values=4)


def test_bandit_with_auto_reset_alternates_pulls_and_reset_steps():
    ts = run(w.auto_reset(BERNOULLI), jnp.full((LENGTH,), 2, jnp.int32))[1]
    np.testing.assert_array_equal(ts.valid, [True, False] * (LENGTH // 2))
    np.testing.assert_array_equal(ts.reward[1::2], 0.0)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(means=[0.5, 1.5]), "means"),
        (dict(means=[[0.5]]), "means"),
        (dict(), "num_arms"),
        (dict(means=[0.5], num_arms=2), "num_arms"),
        (dict(num_arms=0), "num_arms"),
        (dict(num_arms=2, distribution="poisson"), "distribution"),
        (dict(num_arms=2, distribution="gaussian", stddev=0.0), "stddev"),
    ],
)
def test_bandit_errors_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        toy.bandit(**kwargs)


def test_bandit_rejects_a_float_action():
    with pytest.raises(ValueError, match="`action`"):
        BERNOULLI.step(BERNOULLI.reset(jax.random.key(0))[0], 1.0)
