"""Tests for fnrl.exploration: schedules, selectors and action noise against NumPy references."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnrl import exploration as ex
from hypothesis.extra import numpy as hnp

from tests.helpers import jit_variants, variant

N_SAMPLES = 20_000
KEY = jax.random.key(42)


def floats(shape, low=-5.0, high=5.0):
    """Like tests.helpers.floats, without subnormals: XLA on CPU flushes them to zero, so NumPy
    and jax would disagree on ties such as argmax([-5e-43, 0.0])."""
    elements = st.floats(low, high, width=32, allow_subnormal=False)
    return hnp.arrays(np.float32, shape, elements=elements)


# --------------------------------------------------------------------------------------------
# Reference helpers.


def assert_frequencies(actions, probs):
    """Per-action counts within 5.5 binomial standard deviations (+4 counts of slack for tiny
    probabilities, where the normal approximation is poor); impossible actions never drawn."""
    actions = np.asarray(actions).ravel()
    probs = np.asarray(probs, np.float64)
    n = actions.size
    assert actions.min() >= 0 and actions.max() < probs.size
    counts = np.bincount(actions, minlength=probs.size)
    expected = n * probs
    tolerance = 5.5 * np.sqrt(n * probs * (1 - probs)) + 4
    assert np.all(np.abs(counts - expected) <= tolerance), (counts, expected)
    assert np.all(counts[probs == 0] == 0), (counts, probs)


def np_epsilon_greedy_probs(q, eps):
    q = np.asarray(q, np.float64)
    out = np.empty_like(q)
    for idx in np.ndindex(q.shape[:-1]):
        row = q[idx]
        e = float(np.broadcast_to(eps, q.shape[:-1])[idx])
        best = int(np.argmax(row))  # first maximum, like greedy
        for a in range(row.size):
            out[idx + (a,)] = e / row.size + (1 - e) * (a == best)
    return out


def np_softmax(x):
    z = np.exp(x - x.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def np_linear_anneal(t, initial_epsilon, final_epsilon, timesteps, start_timestep):
    initial, final, start = initial_epsilon, final_epsilon, start_timestep
    if t < start:
        return initial
    if t > start + timesteps:
        return final
    return initial + (t - start) / timesteps * (final - initial)


def np_half_life_decay(t, initial_epsilon, final_epsilon, timesteps, start_timestep, half_lives):
    initial, final, start = initial_epsilon, final_epsilon, start_timestep
    if t < start:
        return initial
    if t > start + timesteps:
        return final
    half_life = timesteps / half_lives
    return final + 2.0 ** (-(t - start) / half_life) * (initial - final)


def sample_many(fn, q, *args):
    """Calls `fn(KEY, q broadcast to [N_SAMPLES, ...], *args)`: N_SAMPLES i.i.d. draws per row."""
    q = jnp.broadcast_to(jnp.asarray(q), (N_SAMPLES,) + jnp.shape(q))
    return np.asarray(fn(KEY, q, *args))


# --------------------------------------------------------------------------------------------
# Schedules.

schedule_params = st.fixed_dictionaries({
    "initial_epsilon": st.floats(-2, 2, width=32),
    "final_epsilon": st.floats(-2, 2, width=32),
    "timesteps": st.sampled_from([1, 50, 10_000]),
    "start_timestep": st.sampled_from([0, 1000]),
})


def _steps(data, params):
    start, span = params["start_timestep"], params["timesteps"]
    edges = [max(start - 1, 0), start, start + 1, start + span - 1, start + span, start + span + 1]
    drawn = data.draw(st.lists(st.integers(0, start + 2 * span + 5), min_size=10, max_size=10))
    return np.asarray(edges + drawn, np.int32)


# Arguments that must stay static (Python numbers); the others are traced under jit.
STATIC_SCHEDULE_ARGS = ("timesteps", "start_timestep")


def _evaluate_schedule(factory, params, steps, use_jit):
    """Eagerly: the schedule at all steps at once. Under jit: built from traced values (as when
    vmapping over hyperparameters), at all steps at once and at one traced scalar step at a time
    (as inside a jitted training loop)."""
    if not use_jit:
        return (factory(**params)(steps),)
    static = tuple((k, v) for k, v in params.items() if k in STATIC_SCHEDULE_ARGS)
    traced = {k: jnp.float32(v) for k, v in params.items() if k not in STATIC_SCHEDULE_ARGS}
    return _jitted_schedule(factory, static, traced, jnp.asarray(steps))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _jitted_schedule(factory, static, traced, steps):
    schedule = factory(**dict(static), **traced)
    return schedule(steps), jax.lax.map(schedule, steps)


@jit_variants
@given(params=schedule_params, data=st.data())
def test_linear_anneal_matches_numpy(use_jit, params, data):
    steps = _steps(data, params)
    want = [np_linear_anneal(int(t), **params) for t in steps]
    for got in _evaluate_schedule(ex.linear_anneal, params, steps, use_jit):
        assert got.dtype == jnp.float32 and got.shape == steps.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@jit_variants
@given(params=schedule_params, half_lives=st.sampled_from([1, 2.5, 10]), data=st.data())
def test_half_life_decay_matches_numpy(use_jit, params, half_lives, data):
    steps = _steps(data, params)
    want = [np_half_life_decay(int(t), **params, half_lives=half_lives) for t in steps]
    params = dict(params, half_lives=half_lives)
    for got in _evaluate_schedule(ex.half_life_decay, params, steps, use_jit):
        assert got.dtype == jnp.float32 and got.shape == steps.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_half_life_decay_tensorforce_jump_and_defaults():
    schedule = ex.half_life_decay()  # TF defaults: 1.0 -> 0.1 over 10000 steps, 10 half-lives
    np.testing.assert_allclose(schedule(1000), 0.1 + 0.9 / 2, rtol=1e-6)
    np.testing.assert_allclose(schedule(10_000), 0.1 + 0.9 * 2.0**-10, rtol=1e-6)
    np.testing.assert_allclose(schedule(10_001), 0.1, rtol=1e-6)


def test_schedules_exact_for_large_int_steps():
    big = jnp.int32(2**30)
    assert float(jax.jit(ex.linear_anneal(1.0, 0.1, 10, 2**30 - 5))(big)) == pytest.approx(0.55)
    half = ex.half_life_decay(1.0, 0.0, 100, 2**30 - 10, half_lives=10)
    assert float(jax.jit(half)(big)) == pytest.approx(0.5, rel=1e-6)


@jit_variants
@given(value=st.floats(-3, 3, width=32), shape=st.sampled_from([(), (4,), (2, 3)]))
def test_constant(use_jit, value, shape):
    steps = jnp.arange(int(np.prod(shape)), dtype=jnp.int32).reshape(shape)
    got = variant(lambda v, t: ex.constant_schedule(v)(t), use_jit)(value, steps)
    assert got.shape == shape and got.dtype == jnp.float32
    np.testing.assert_array_equal(got, np.full(shape, value, np.float32))


@pytest.mark.parametrize("factory, kwargs, name", [
    (ex.linear_anneal, {"timesteps": 0}, "timesteps"),
    (ex.linear_anneal, {"start_timestep": -1}, "start_timestep"),
    (ex.linear_anneal, {"initial_epsilon": object()}, "initial_epsilon"),
    (ex.linear_anneal, {"final_epsilon": np.zeros(2)}, "final_epsilon"),
    (ex.half_life_decay, {"timesteps": -3}, "timesteps"),
    (ex.half_life_decay, {"half_lives": 0}, "half_lives"),
    (ex.half_life_decay, {"start_timestep": -2}, "start_timestep"),
    (ex.constant_schedule, {"value": np.ones(3)}, "value"),
])
def test_schedule_argument_errors(factory, kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        factory(**kwargs)


@pytest.mark.parametrize("factory", [ex.constant_schedule, ex.linear_anneal, ex.half_life_decay])
def test_schedule_step_dtype_error(factory):
    with pytest.raises(ValueError, match="`step`"):
        factory()(jnp.array(True))


@jit_variants
@given(episode=st.integers(0, 50), shape=st.sampled_from([(), (3,), (2, 4)]))
def test_episode_decay_noise_matches_numpy(use_jit, episode, shape):
    key = jax.random.key(episode)
    got = variant(ex.episode_decay_noise, use_jit, static_argnames="shape")(key, episode, shape)
    uniform = np.asarray(jax.random.uniform(key, shape, jnp.float32), np.float64)
    np.testing.assert_allclose(got, uniform / (episode + 1), rtol=1e-6)


def test_episode_decay_noise_statistics():
    episodes = jnp.array([0.0, 1.0, 9.0])
    noise = np.asarray(ex.episode_decay_noise(KEY, episodes, (N_SAMPLES, 3)))
    scale = 1.0 / (np.asarray(episodes) + 1)
    assert np.all(noise >= 0) and np.all(noise < scale)
    np.testing.assert_allclose(noise.mean(0), 0.5 * scale, rtol=0.02)


def test_episode_decay_noise_errors():
    with pytest.raises(ValueError, match="`episode`"):
        ex.episode_decay_noise(KEY, -1, (2,))
    with pytest.raises(ValueError, match="`episode`"):
        ex.episode_decay_noise(KEY, jnp.zeros(3), (2,))
    with pytest.raises(ValueError, match="`key`"):
        ex.episode_decay_noise(0, 1, (2,))


# --------------------------------------------------------------------------------------------
# Discrete selectors.

# Q-values from a small grid so that ties are frequent.
tie_prone = st.sampled_from([-1.0, 0.0, 0.5, 2.0])
q_shapes = st.sampled_from([(5,), (2, 3, 5)])


@jit_variants
@given(data=st.data(), shape=q_shapes)
def test_greedy_matches_numpy(use_jit, data, shape):
    q = np.asarray(data.draw(st.lists(tie_prone, min_size=int(np.prod(shape)),
                                      max_size=int(np.prod(shape)))), np.float32).reshape(shape)
    got = variant(ex.greedy, use_jit)(q)
    want = np.empty(shape[:-1], np.int64)
    for idx in np.ndindex(shape[:-1]):
        row = list(q[idx])
        want[idx] = row.index(max(row))
    assert got.dtype == jnp.int32 and got.shape == shape[:-1]
    np.testing.assert_array_equal(got, want)


@jit_variants
@given(q=floats((5,), -2, 2), epsilon=st.floats(0, 1), ties=st.booleans())
def test_epsilon_greedy_frequencies(use_jit, q, epsilon, ties):
    if ties:
        q = q.copy()
        q[3] = q[1] = q.max() + 1  # greedy must pick action 1, the first of the tie
    want = np_epsilon_greedy_probs(q, epsilon)
    actions = sample_many(variant(ex.epsilon_greedy, use_jit), q, jnp.float32(epsilon))
    assert actions.dtype == np.int32 and actions.shape == (N_SAMPLES,)
    assert_frequencies(actions, want)
    probs = variant(ex.epsilon_greedy_probs, use_jit)(q, epsilon)
    np.testing.assert_allclose(probs, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.sum(probs), 1.0, rtol=1e-6)


def test_epsilon_greedy_per_row_epsilon():
    use_jit = True
    q = jnp.array([[0.0, 1.0, 2.0], [3.0, 1.0, 0.0]])
    epsilon = jnp.array([0.9, 0.2])
    actions = sample_many(variant(ex.epsilon_greedy, use_jit), q, epsilon)
    probs = variant(ex.epsilon_greedy_probs, use_jit)(q, epsilon)
    np.testing.assert_allclose(probs, np_epsilon_greedy_probs(q, epsilon), rtol=1e-6)
    for row in range(2):
        assert_frequencies(actions[:, row], probs[row])


@jit_variants
@given(data=st.data(), shape=q_shapes)
def test_epsilon_zero_is_greedy_and_probs_sum_to_one(use_jit, data, shape):
    q = data.draw(floats(shape))
    got = variant(ex.epsilon_greedy, use_jit)(KEY, q, 0.0)
    np.testing.assert_array_equal(got, ex.greedy(q))
    eps = data.draw(floats(shape[:-1], 0.0, 1.0))
    probs = variant(ex.epsilon_greedy_probs, use_jit)(q, eps)
    np.testing.assert_allclose(probs, np_epsilon_greedy_probs(q, eps), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.sum(probs, -1), 1.0, rtol=1e-5)


def test_epsilon_one_is_uniform_and_traced_epsilon_from_schedule():
    schedule = ex.linear_anneal(1.0, 0.0, timesteps=100)

    @jax.jit
    def act(key, q, step):
        return ex.epsilon_greedy(key, q, schedule(step))

    q = jnp.broadcast_to(jnp.array([0.0, 5.0, 1.0, 2.0]), (N_SAMPLES, 4))
    assert_frequencies(act(KEY, q, jnp.int32(0)), np.full(4, 0.25))
    assert_frequencies(act(KEY, q, jnp.int32(75)), np_epsilon_greedy_probs(q[0], 0.25))


def test_epsilon_greedy_vmap_matches_single_calls():
    keys = jax.random.split(KEY, 6)
    q = jax.random.normal(jax.random.key(1), (6, 5))
    eps = jnp.linspace(0.0, 1.0, 6)
    batched = jax.jit(jax.vmap(ex.epsilon_greedy))(keys, q, eps)
    single = [jax.jit(ex.epsilon_greedy)(keys[i], q[i], eps[i]) for i in range(6)]
    np.testing.assert_array_equal(batched, np.stack(single))


@jax.jit
@functools.partial(jax.grad, argnums=(0, 1))
def _expected_value_grads(q, epsilon):
    return jnp.sum(ex.epsilon_greedy_probs(q, epsilon) * q)


@given(q=floats((5,), -3, 3), epsilon=st.floats(0, 1))
def test_epsilon_greedy_probs_gradients(q, epsilon):
    """Expected SARSA's sum_a pi(a) q(a): gradient w.r.t. q is pi (no gradient through the
    argmax); w.r.t. epsilon it is mean(q) - q[argmax]."""
    grad_q, grad_eps = _expected_value_grads(q, jnp.float32(epsilon))
    np.testing.assert_allclose(grad_q, np_epsilon_greedy_probs(q, epsilon), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad_eps, np.mean(q) - q[np.argmax(q)], rtol=1e-4, atol=1e-5)


@jit_variants
@given(q=floats((5,), -2, 2), temperature=st.sampled_from([0.3, 1.0, 4.0]))
def test_boltzmann_frequencies(use_jit, q, temperature):
    actions = sample_many(variant(ex.boltzmann, use_jit), q, jnp.float32(temperature))
    assert actions.dtype == np.int32
    assert_frequencies(actions, np_softmax(q.astype(np.float64) / temperature))


def test_boltzmann_per_row_temperature():
    use_jit = True
    q = jnp.array([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]])
    temperature = jnp.array([0.5, 10.0])
    actions = sample_many(variant(ex.boltzmann, use_jit), q, temperature)
    for row in range(2):
        want = np_softmax(np.asarray(q[row], np.float64) / float(temperature[row]))
        assert_frequencies(actions[:, row], want)


@jit_variants
@given(weights=floats((5,), 0.0, 3.0), zeros=st.lists(st.booleans(), min_size=5, max_size=5))
def test_probabilistic_frequencies(use_jit, weights, zeros):
    weights = np.where(zeros, 0.0, weights).astype(np.float32)
    weights[2] += 0.5  # never an all-zero row
    fn = variant(ex.probabilistic, use_jit, static_argnames=("assume_normalized", "greedy"))
    actions = sample_many(fn, weights)
    assert actions.dtype == np.int32
    assert_frequencies(actions, weights.astype(np.float64) / weights.sum())
    normalized = weights / weights.sum()
    assert_frequencies(sample_many(lambda k, p: fn(k, p, assume_normalized=True), normalized),
                       normalized.astype(np.float64) / normalized.sum())
    np.testing.assert_array_equal(fn(KEY, weights, greedy=True), np.argmax(weights))


def test_probabilistic_assume_normalized_keeps_leftover_mass_on_last_action():
    probs = np.array([0.1, 0.2, 0.2], np.float32)  # sums to 0.5
    actions = sample_many(lambda k, p: ex.probabilistic(k, p, assume_normalized=True), probs)
    assert_frequencies(actions, [0.1, 0.2, 0.7])


@pytest.mark.parametrize("shape", [(5,), (2, 3, 5)])
def test_selectors_keep_batch_shape(shape):
    @jax.jit
    def all_selectors(q):
        return (ex.greedy(q), ex.epsilon_greedy(KEY, q, 0.5), ex.boltzmann(KEY, q, 1.0),
                ex.probabilistic(KEY, q), ex.probabilistic(KEY, q, greedy=True))

    for actions in all_selectors(jnp.ones(shape)):
        assert actions.shape == shape[:-1] and actions.dtype == jnp.int32
        assert np.all((np.asarray(actions) >= 0) & (np.asarray(actions) < shape[-1]))


@pytest.mark.parametrize("call, name", [
    (lambda: ex.greedy(jnp.float32(1.0)), "q_values"),
    (lambda: ex.greedy(jnp.arange(3)), "q_values"),
    (lambda: ex.epsilon_greedy(KEY, jnp.arange(3), 0.1), "q_values"),
    (lambda: ex.epsilon_greedy(KEY, jnp.ones(()), 0.1), "q_values"),
    (lambda: ex.epsilon_greedy(KEY, jnp.ones((2, 3)), jnp.ones(3) * 0.1), "epsilon"),
    (lambda: ex.epsilon_greedy(KEY, jnp.ones(3), 1.5), "epsilon"),
    (lambda: ex.epsilon_greedy(KEY, jnp.ones(3), jnp.array([True])), "epsilon"),
    (lambda: ex.epsilon_greedy(jnp.ones(2), jnp.ones(3), 0.1), "key"),
    (lambda: ex.epsilon_greedy_probs(jnp.ones((2, 3)), jnp.ones(3)), "epsilon"),
    (lambda: ex.epsilon_greedy_probs(jnp.arange(3), 0.1), "q_values"),
    (lambda: ex.boltzmann(KEY, jnp.ones(3), 0.0), "temperature"),
    (lambda: ex.boltzmann(KEY, jnp.ones((2, 3)), jnp.ones(4)), "temperature"),
    (lambda: ex.boltzmann(KEY, jnp.arange(3), 1.0), "q_values"),
    (lambda: ex.probabilistic(KEY, jnp.arange(3)), "probs"),
    (lambda: ex.probabilistic(KEY, jnp.ones(())), "probs"),
    (lambda: ex.probabilistic(jax.random.split(KEY, 2), jnp.ones(3)), "key"),
])
def test_selector_argument_errors(call, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        call()


# --------------------------------------------------------------------------------------------
# TensorForce per-action exploration.


@jit_variants
@given(action=st.integers(0, 4), epsilon=st.floats(0, 1))
def test_explore_discrete_frequencies(use_jit, action, epsilon):
    fn = variant(ex.explore_discrete, use_jit, static_argnames="num_actions")
    actions = fn(KEY, jnp.full((N_SAMPLES,), action, jnp.int32), 5, epsilon)
    assert actions.dtype == jnp.int32
    want = np.full(5, epsilon / 5)
    want[action] += 1 - epsilon
    assert_frequencies(actions, want)


@jit_variants
def test_explore_discrete_bool_and_dtype(use_jit):
    fn = variant(ex.explore_discrete, use_jit, static_argnames="num_actions")
    flips = fn(KEY, jnp.zeros((N_SAMPLES,), bool), 2, 0.4)
    assert flips.dtype == jnp.bool_
    assert_frequencies(np.asarray(flips, np.int32), [0.8, 0.2])
    small = fn(KEY, jnp.zeros((N_SAMPLES, 2), jnp.int8), 3, jnp.array([0.0, 1.0]))
    assert small.dtype == jnp.int8
    np.testing.assert_array_equal(small[:, 0], 0)
    assert_frequencies(np.asarray(small[:, 1], np.int32), np.full(3, 1 / 3))


@pytest.mark.parametrize("call, name", [
    (lambda: ex.explore_discrete(KEY, jnp.ones(3), 4, 0.1), "action"),
    (lambda: ex.explore_discrete(KEY, jnp.ones(3, jnp.int32), 0, 0.1), "num_actions"),
    (lambda: ex.explore_discrete(KEY, jnp.ones(3, jnp.int32), 2.0, 0.1), "num_actions"),
    (lambda: ex.explore_discrete(KEY, jnp.ones(3, bool), 3, 0.1), "num_actions"),
    (lambda: ex.explore_discrete(KEY, jnp.ones(3, jnp.int32), 4, jnp.ones(2)), "epsilon"),
    (lambda: ex.explore_discrete(KEY, jnp.ones(3, jnp.int32), 4, -0.1), "epsilon"),
])
def test_explore_discrete_errors(call, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        call()


bounds = st.sampled_from([(None, None), (-1.0, None), (None, 0.5), (-0.5, 0.5)])


@jit_variants
@given(action=floats((3, 2), -2, 2), noise=floats((3, 2), -2, 2), bound=bounds)
def test_explore_continuous_matches_numpy(use_jit, action, noise, bound):
    low, high = bound
    got = variant(ex.explore_continuous, use_jit)(action, noise, low, high)
    want = np.empty_like(action)
    for idx in np.ndindex(action.shape):
        value = action[idx] + noise[idx]
        value = value if low is None else max(value, low)
        want[idx] = value if high is None else min(value, high)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_explore_continuous_per_dimension_bounds_and_gradient():
    action = jnp.array([[0.0, 0.0], [0.9, -3.0]])
    low, high = jnp.array([-1.0, -2.0]), jnp.array([1.0, 2.0])
    noise = jnp.array([0.5, 0.5])
    np.testing.assert_allclose(ex.explore_continuous(action, noise, low, high),
                               [[0.5, 0.5], [1.0, -2.0]])
    grad = jax.jit(jax.grad(lambda a: jnp.sum(ex.explore_continuous(a, noise, low, high))))(action)
    np.testing.assert_array_equal(grad, [[1.0, 1.0], [0.0, 0.0]])  # no gradient where clipped


@jit_variants
@given(action=floats((4,), -1, 1), sigma=st.floats(0, 2, width=32), bound=bounds)
def test_gaussian_noise_matches_numpy(use_jit, action, sigma, bound):
    low, high = bound
    got = variant(ex.gaussian_noise, use_jit)(KEY, action, sigma, low, high)
    normal = np.asarray(jax.random.normal(KEY, action.shape, jnp.float32), np.float64)
    want = action + sigma * normal
    want = np.clip(want, -np.inf if low is None else low, np.inf if high is None else high)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_gaussian_noise_moments_and_gradient():
    action = jnp.full((N_SAMPLES, 2), 0.3)
    sigma = jnp.array([0.1, 2.0])
    noisy = np.asarray(jax.jit(ex.gaussian_noise)(KEY, action, sigma))
    np.testing.assert_allclose(noisy.mean(0), 0.3, atol=5 * 2.0 / np.sqrt(N_SAMPLES))
    np.testing.assert_allclose(noisy.std(0), sigma, rtol=0.03)
    noisy_sum = jax.grad(lambda a: jnp.sum(ex.gaussian_noise(KEY, a, 0.1, -1.0, 1.0)))
    grad = jax.jit(noisy_sum)(action[:3])
    np.testing.assert_array_equal(grad, np.ones((3, 2)))


@pytest.mark.parametrize("call, name", [
    (lambda: ex.explore_continuous(jnp.arange(3), 0.1), "action"),
    (lambda: ex.explore_continuous(jnp.ones(3), jnp.ones(2)), "noise"),
    (lambda: ex.explore_continuous(jnp.ones(3), jnp.arange(3)), "noise"),
    (lambda: ex.explore_continuous(jnp.ones(3), 0.1, low=jnp.ones(2)), "low"),
    (lambda: ex.explore_continuous(jnp.ones(3), 0.1, low=1.0, high=0.0), "low"),
    (lambda: ex.gaussian_noise(KEY, jnp.arange(3), 0.1), "action"),
    (lambda: ex.gaussian_noise(KEY, jnp.ones(3), -0.1), "sigma"),
    (lambda: ex.gaussian_noise(KEY, jnp.ones(3), jnp.ones(2)), "sigma"),
    (lambda: ex.gaussian_noise(KEY, jnp.ones(3), 0.1, high=jnp.ones(4)), "high"),
])
def test_continuous_argument_errors(call, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        call()


# --------------------------------------------------------------------------------------------
# Ornstein-Uhlenbeck noise.


def ou_rollout(noise, state, keys):
    """Samples one step per key with lax.scan (a traced state, as in an agent)."""
    def step(state, key):
        x, state = noise.sample(key, state)
        return state, x

    return jax.lax.scan(step, state, keys)


def _ou_path(theta, sigma, mu, dt, keys):
    """Builds the process from (possibly traced) hyperparameters and samples one step per key."""
    noise = ex.ornstein_uhlenbeck(theta=theta, sigma=sigma, mu=mu, dt=dt)
    return ou_rollout(noise, noise.init((3,)), keys)


@jit_variants
@given(theta=st.floats(0.0, 1.0), sigma=st.floats(0.0, 1.0), mu=st.floats(-1, 1),
       dt=st.sampled_from([1.0, 0.1, 0.01]), seed=st.integers(0, 2**16))
def test_ornstein_uhlenbeck_matches_numpy(use_jit, theta, sigma, mu, dt, seed):
    keys = jax.random.split(jax.random.key(seed), 20)
    if use_jit:  # hyperparameters traced too, e.g. to vmap over them
        state, xs = jax.jit(_ou_path)(theta, sigma, mu, dt, keys)
    else:
        noise = ex.ornstein_uhlenbeck(theta=theta, sigma=sigma, mu=mu, dt=dt)
        state, xs = noise.init((3,)), []
        for key in keys:
            x, state = noise.sample(key, state)
            xs.append(x)
    normals = np.asarray(jax.vmap(lambda k: jax.random.normal(k, (3,)))(keys), np.float64)
    x_np, want = np.full(3, mu), []
    for n in normals:
        x_np = x_np + theta * (mu - x_np) * dt + sigma * np.sqrt(dt) * n
        want.append(x_np)
    np.testing.assert_allclose(np.stack(xs), np.stack(want), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(state.x, want[-1], rtol=1e-4, atol=1e-5)


def test_ornstein_uhlenbeck_mean_reversion_without_noise():
    theta, dt, mu = 0.15, 0.5, 2.0
    noise = ex.ornstein_uhlenbeck(theta=theta, sigma=0.0, mu=mu, dt=dt)
    _, xs = jax.jit(ou_rollout, static_argnums=0)(noise, ex.OUState(x=jnp.array([-3.0, 5.0])),
                                                  jax.random.split(KEY, 30))
    k = np.arange(1, 31)[:, None]
    want = mu + (1 - theta * dt) ** k * (np.array([-3.0, 5.0]) - mu)
    np.testing.assert_allclose(xs, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("theta, dt, steps", [(0.15, 1.0, 300), (2.0, 0.05, 200)])
def test_ornstein_uhlenbeck_stationary_moments(theta, dt, steps):
    """x' = (1 - theta dt) x + sigma sqrt(dt) n is AR(1) with coefficient a = 1 - theta dt, so its
    stationary variance is sigma^2 dt / (1 - a^2) = sigma^2 / (theta (2 - theta dt)) and its
    lag-one autocorrelation is a."""
    mu, sigma = jnp.array([1.0, -1.0]), jnp.array([0.3, 0.6])
    noise = ex.ornstein_uhlenbeck(theta=theta, sigma=sigma, mu=mu, dt=dt)
    state = noise.init(jnp.zeros((N_SAMPLES, 2)))
    np.testing.assert_array_equal(state.x, np.broadcast_to(mu, (N_SAMPLES, 2)))
    _, xs = jax.jit(ou_rollout, static_argnums=0)(noise, state, jax.random.split(KEY, steps))
    last, before = np.asarray(xs[-1], np.float64), np.asarray(xs[-2], np.float64)
    variance = np.asarray(sigma) ** 2 / (theta * (2 - theta * dt))
    assert np.all(np.abs(last.mean(0) - np.asarray(mu)) <= 5 * np.sqrt(variance / N_SAMPLES))
    np.testing.assert_allclose(last.var(0), variance, rtol=0.04)
    lag_one = [np.corrcoef(before[:, i], last[:, i])[0, 1] for i in range(2)]
    np.testing.assert_allclose(lag_one, 1 - theta * dt, atol=0.015)


def test_ornstein_uhlenbeck_init_forms():
    noise = ex.ornstein_uhlenbeck(mu=0.5)
    for arg, shape in [(3, (3,)), ((2, 4), (2, 4)), ((), ())]:
        state = noise.init(arg)
        assert state.x.shape == shape and state.x.dtype == jnp.float32
        np.testing.assert_array_equal(state.x, 0.5)
    state = noise.init(jnp.zeros((2,), jnp.bfloat16))
    assert state.x.dtype == jnp.bfloat16
    x, new_state = noise.sample(KEY, state)
    assert x.dtype == jnp.bfloat16 and new_state.x.dtype == jnp.bfloat16


@pytest.mark.parametrize("call, name", [
    (lambda: ex.ornstein_uhlenbeck(theta=-0.1), "theta"),
    (lambda: ex.ornstein_uhlenbeck(theta=1.0, dt=2.0), "theta"),
    (lambda: ex.ornstein_uhlenbeck(dt=0.0), "dt"),
    (lambda: ex.ornstein_uhlenbeck(sigma=-1.0), "sigma"),
    (lambda: ex.ornstein_uhlenbeck(mu=object()), "mu"),
    (lambda: ex.ornstein_uhlenbeck(mu=jnp.zeros(3)).init((2,)), "mu"),
    (lambda: ex.ornstein_uhlenbeck().init(jnp.zeros(3, jnp.int32)), "shape_or_action"),
    (lambda: ex.ornstein_uhlenbeck().init((2, -1)), "shape_or_action"),
    (lambda: ex.ornstein_uhlenbeck().sample(KEY, ex.OUState(x=jnp.zeros(2, jnp.int32))), "state.x"),
    (lambda: ex.ornstein_uhlenbeck().sample(0, ex.OUState(x=jnp.zeros(2))), "key"),
])
def test_ornstein_uhlenbeck_errors(call, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        call()


# --------------------------------------------------------------------------------------------
# Parameter-space noise.


@jit_variants
@given(w=floats((3, 2), -2, 2), b=floats((2,), -2, 2), stddev=st.floats(0, 2, width=32))
def test_perturb_params_matches_numpy(use_jit, w, b, stddev):
    params = {"layer": {"b": b, "w": w}, "steps": np.arange(3, dtype=np.int32)}
    got = variant(ex.perturb_params, use_jit)(KEY, params, stddev)
    # Leaf order b, w, steps: one key per leaf from one split; int leaves stay as they are.
    keys = jax.random.split(KEY, 3)
    for leaf, key, name in ((b, keys[0], "b"), (w, keys[1], "w")):
        normal = np.asarray(jax.random.normal(key, leaf.shape, jnp.float32), np.float64)
        want = np.empty(leaf.shape)
        for idx in np.ndindex(leaf.shape):
            want[idx] = float(leaf[idx]) + stddev * normal[idx]
        assert got["layer"][name].dtype == jnp.float32
        np.testing.assert_allclose(got["layer"][name], want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got["steps"], params["steps"])


def test_perturb_params_moments_and_independence():
    params = {"a": jnp.zeros(N_SAMPLES), "b": jnp.ones((N_SAMPLES, 1), jnp.bfloat16)}
    noisy = jax.jit(ex.perturb_params)(KEY, params, 0.5)
    a, b = np.asarray(noisy["a"], np.float64), np.asarray(noisy["b"], np.float64)[:, 0]
    assert noisy["b"].dtype == jnp.bfloat16
    np.testing.assert_allclose([a.mean(), b.mean()], [0.0, 1.0], atol=5 * 0.5 / np.sqrt(N_SAMPLES))
    np.testing.assert_allclose([a.std(), b.std()], [0.5, 0.5], rtol=0.03)
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(N_SAMPLES)  # each leaf its own draw
    same = ex.perturb_params(KEY, params, 0.0)
    jax.tree.map(np.testing.assert_array_equal, same, params)


@pytest.mark.parametrize("call, name", [
    (lambda: ex.perturb_params(KEY, {"w": jnp.ones(2)}, -0.1), "stddev"),
    (lambda: ex.perturb_params(KEY, {"w": jnp.ones(2)}, jnp.ones(2)), "stddev"),
    (lambda: ex.perturb_params(jnp.ones(2), {"w": jnp.ones(2)}, 0.1), "key"),
    (lambda: ex.perturb_params(KEY, {"w": "weights"}, 0.1), "params"),
])
def test_perturb_params_argument_errors(call, name):
    with pytest.raises(ValueError, match=f"`{name}"):
        call()
