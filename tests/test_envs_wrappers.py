"""fnrl.envs.wrappers against a plain-Python simulation of the same stack."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnrl.envs import wrappers as w
from fnrl.types import Env, EnvSpec, Spec, TimeStep
from tests.helpers import jit_variants

END = 3  # the action that terminates the scripted env
CAP = 8  # the scripted env also terminates once its running total reaches CAP
LENGTH = 16


# ----------------------------------------------------------------------------- scripted env
class CountState(NamedTuple):
    t: jax.Array  # frames played this episode
    total: jax.Array  # sum of the actions played this episode
    noise: jax.Array  # drawn from the reset key, constant within an episode


def count_obs(s: CountState) -> jax.Array:
    return jnp.stack([s.t.astype(jnp.float32), s.total, s.noise])


def count_reset(key):
    s = CountState(jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32), jax.random.uniform(key))
    return s, TimeStep(count_obs(s), jnp.float32(0.0), jnp.bool_(False), jnp.bool_(False), jnp.bool_(True))


def count_step(s, a):
    """Reward a; terminates on a == END or once the total reaches CAP."""
    s = CountState(s.t + 1, s.total + a, s.noise)
    terminated = (a == END) | (s.total >= CAP)
    return s, TimeStep(count_obs(s), a.astype(jnp.float32), terminated, jnp.bool_(False), jnp.bool_(True))


def count_spec():
    return EnvSpec(Spec((3,), jnp.float32), Spec((), jnp.int32, num_values=4))


BASE = Env(count_reset, count_step, count_spec)
AUTO = w.auto_reset(BASE)
LIMITED = w.auto_reset(w.time_limit(BASE, 3))
REPEATED = w.auto_reset(w.action_repeat(BASE, 3))
FULL = w.episode_statistics(w.auto_reset(w.time_limit(w.action_repeat(BASE, 2), 4)))
NUM_ENVS = 3
VECTOR = w.vectorize(FULL, NUM_ENVS)


# ----------------------------------------------------------------------------- rollouts
def rollout(env, key, actions):
    """Reset, then one step per action; returns (reset timestep, stacked timesteps, stacked states)."""
    state, first = env.reset(key)

    def body(state, a):
        state, ts = env.step(state, a)
        return state, (ts, state)

    _, (timesteps, states) = jax.lax.scan(body, state, actions)
    return first, timesteps, states


_rollout_jit = jax.jit(rollout, static_argnums=0)


def rollout_eager(env, key, actions):
    state, first = env.reset(key)
    outs = []
    for a in actions:
        state, ts = env.step(state, a)
        outs.append((ts, state))
    return (first,) + jax.tree.map(lambda *xs: jnp.stack(xs), *outs)


def run(env, actions, use_jit, seed=0):
    fn = _rollout_jit if use_jit else rollout_eager
    return jax.device_get(fn(env, jax.random.key(seed), jnp.asarray(actions, jnp.int32)))


# ----------------------------------------------------------------------------- Python reference
def py_stack(actions, max_steps=None, repeats=1):
    """The wrapper stack as a plain loop: auto-reset ∘ time limit ∘ action repeat + statistics.

    Returns one dict per step: t, total, reward, terminated, truncated, valid and the statistics
    (episode_return, episode_length, last_return, last_length, num_episodes).
    """
    rows = []
    t = total = steps = 0
    needs_reset = False
    ret = length = last_ret = last_len = episodes = 0
    for a in actions:
        if needs_reset:
            t = total = steps = 0
            needs_reset = False
            reward, term, trunc, valid = 0, False, False, False
        else:
            reward, term = 0, False
            for _ in range(repeats):
                t, total, reward = t + 1, total + a, reward + a
                term = a == END or total >= CAP
                if term:
                    break
            steps += 1
            trunc = max_steps is not None and steps >= max_steps and not term
            needs_reset = term or trunc
            valid = True
            ret, length = ret + reward, length + 1
            if needs_reset:
                last_ret, last_len, episodes = ret, length, episodes + 1
                ret = length = 0
        rows.append(dict(t=t, total=total, reward=reward, terminated=term, truncated=trunc,
                         valid=valid, episode_return=ret, episode_length=length,
                         last_return=last_ret, last_length=last_len, num_episodes=episodes))
    return rows


def column(rows, name):
    return np.array([r[name] for r in rows])


def assert_matches(timesteps, rows):
    np.testing.assert_array_equal(timesteps.observation[:, 0], column(rows, "t"))
    np.testing.assert_array_equal(timesteps.observation[:, 1], column(rows, "total"))
    for name in ("reward", "terminated", "truncated", "valid"):
        np.testing.assert_array_equal(getattr(timesteps, name), column(rows, name), err_msg=name)


actions_strategy = st.lists(st.integers(0, END), min_size=LENGTH, max_size=LENGTH)


# ----------------------------------------------------------------------------- auto_reset
@jit_variants
@given(actions=actions_strategy)
def test_auto_reset_matches_python(use_jit, actions):
    first, ts, _ = run(AUTO, actions, use_jit)
    assert bool(first.valid) and float(first.reward) == 0.0
    assert_matches(ts, py_stack(actions))


def test_auto_reset_ignores_the_action_of_the_reset_step():
    a = run(AUTO, [END, 0, 1, 1], use_jit=True)[1]
    b = run(AUTO, [END, END, 1, 1], use_jit=True)[1]
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert list(a.valid) == [True, False, True, True]
    assert a.reward[1] == 0.0 and not a.terminated[1] and not a.truncated[1]
    np.testing.assert_array_equal(a.observation[1, :2], [0.0, 0.0])


def test_auto_reset_uses_a_fresh_key_per_episode():
    first, ts, _ = run(AUTO, [1, END, 0, 1, END, 0, 2], use_jit=True)
    noise = np.concatenate([[first.observation[2]], ts.observation[:, 2]])
    episodes = [noise[0:3], noise[3:6], noise[6:8]]  # boundaries at the reset steps 2 and 5
    assert all(np.all(e == e[0]) for e in episodes)
    assert len({float(e[0]) for e in episodes}) == 3


# ----------------------------------------------------------------------------- time_limit
@jit_variants
@given(actions=actions_strategy)
def test_time_limit_matches_python(use_jit, actions):
    _, ts, _ = run(LIMITED, actions, use_jit)
    assert_matches(ts, py_stack(actions, max_steps=3))


def test_time_limit_termination_on_the_limit_step_wins():
    ts = run(LIMITED, [0, 0, END, 0], use_jit=True)[1]
    assert bool(ts.terminated[2]) and not bool(ts.truncated[2])
    ts = run(LIMITED, [0, 0, 1, 0], use_jit=True)[1]
    assert bool(ts.truncated[2]) and not bool(ts.terminated[2])
    assert not bool(ts.valid[3])


# ----------------------------------------------------------------------------- action_repeat
@jit_variants
@given(actions=actions_strategy)
def test_action_repeat_matches_python(use_jit, actions):
    _, ts, _ = run(REPEATED, actions, use_jit)
    assert_matches(ts, py_stack(actions, repeats=3))


def test_action_repeat_sums_rewards_and_stops_at_a_done_frame():
    ts = run(REPEATED, [2, 2, 1], use_jit=True)[1]
    np.testing.assert_array_equal(ts.reward, [6.0, 2.0, 0.0])  # 2+2+2; then total hits CAP at once
    np.testing.assert_array_equal(ts.observation[:, 0], [3, 4, 0])  # frames played
    np.testing.assert_array_equal(ts.terminated, [False, True, False])


# ----------------------------------------------------------------------------- episode_statistics
@jit_variants
@given(actions=actions_strategy)
def test_full_stack_and_episode_statistics_match_python(use_jit, actions):
    _, ts, states = run(FULL, actions, use_jit)
    rows = py_stack(actions, max_steps=4, repeats=2)
    assert_matches(ts, rows)
    stats = w.episode_stats(states)
    for name in w.EpisodeStats._fields:
        np.testing.assert_allclose(getattr(stats, name), column(rows, name), err_msg=name)


def test_episode_stats_update_skips_invalid_steps():
    stats = w.episode_stats_init(TimeStep(None, jnp.zeros(2), None, None, None))
    flags = dict(terminated=jnp.array([False, True]), truncated=jnp.array([False, False]))
    valid, invalid = jnp.array([True, True]), jnp.array([False, False])
    stats = w.episode_stats_update(stats, TimeStep(None, jnp.array([1.0, 2.0]), valid=valid, **flags))
    stats = w.episode_stats_update(stats, TimeStep(None, jnp.array([5.0, 7.0]), valid=invalid, **flags))
    np.testing.assert_array_equal(stats.episode_return, [1.0, 0.0])
    np.testing.assert_array_equal(stats.episode_length, [1, 0])
    np.testing.assert_array_equal(stats.last_return, [0.0, 2.0])
    np.testing.assert_array_equal(stats.num_episodes, [0, 1])


def test_last_return_is_the_finished_episodes_exactly():
    """Not rounded against the previous episode's (much larger) return."""
    for dtype_stats in (np, jnp):
        stats = w.episode_stats_init(TimeStep(None, jnp.zeros(1), None, None, None))
        stats = stats._replace(last_return=dtype_stats.asarray([1e8], np.float32))
        done = dict(terminated=dtype_stats.asarray([True]), truncated=dtype_stats.asarray([False]),
                    valid=dtype_stats.asarray([True]))
        stats = w.episode_stats_update(stats, TimeStep(None, dtype_stats.asarray([-0.1234567], np.float32), **done))
        assert np.asarray(stats.last_return)[0] == np.float32(-0.1234567)


# ----------------------------------------------------------------------------- vectorize
@given(actions=st.lists(actions_strategy, min_size=NUM_ENVS, max_size=NUM_ENVS))
def test_vectorize_equals_independent_envs(actions):
    batch = np.array(actions).T  # [T, num_envs]
    key = jax.random.key(3)
    vec = jax.device_get(_rollout_jit(VECTOR, key, jnp.asarray(batch, jnp.int32)))
    for i, k in enumerate(jax.random.split(key, NUM_ENVS)):
        one = jax.device_get(_rollout_jit(FULL, k, jnp.asarray(batch[:, i], jnp.int32)))
        jax.tree.map(lambda x, y: np.testing.assert_array_equal(x[i], y), vec[0], one[0])
        jax.tree.map(lambda x, y: np.testing.assert_array_equal(x[:, i], y), vec[1], one[1])
        vec_stats, one_stats = w.episode_stats(vec[2]), w.episode_stats(one[2])
        jax.tree.map(lambda x, y: np.testing.assert_array_equal(x[:, i], y), vec_stats, one_stats)
    assert VECTOR.num_envs == NUM_ENVS and VECTOR.spec() == BASE.spec()


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: w.auto_reset("CartPole"), "env"),
        (lambda: w.time_limit(BASE, 0), "max_steps"),
        (lambda: w.time_limit(VECTOR, 5), "env"),
        (lambda: w.action_repeat(BASE, 1.5), "repeats"),
        (lambda: w.vectorize(BASE, 0), "num_envs"),
        (lambda: w.vectorize(VECTOR, 2), "env"),
        (lambda: w.episode_statistics(BASE._replace(is_jax=False)), "env"),
        (lambda: w.episode_stats(CountState(0, 0, 0)), "state"),
        (lambda: VECTOR.step(VECTOR.reset(jax.random.key(0))[0], jnp.zeros((2,), jnp.int32)), "action"),
    ],
)
def test_errors_name_the_argument(make, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        make()
