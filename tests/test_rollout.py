"""fnrl.rollout: unroll vs a Python loop of act, collect vs unroll, memory resets, replay."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnrl import rollout
from fnrl.types import Env, EnvSpec, Spec, TimeStep

NUM_ENVS = 3


class CountdownState(NamedTuple):
    count: jax.Array
    needs_reset: jax.Array
    key: jax.Array


def _countdown_reset_one(key):
    key, sub = jax.random.split(key)
    count = jax.random.randint(sub, (), 2, 5)
    timestep = TimeStep(count.astype(jnp.float32)[None], jnp.float32(0.0), jnp.bool_(False), jnp.bool_(False),
                        jnp.bool_(True))
    return CountdownState(count, jnp.bool_(False), key), timestep


def _countdown_step_one(state, action):
    """Counts down to 0 (terminated); reward = action + count; envpool-style reset step after done."""
    reset_state, reset_ts = _countdown_reset_one(state.key)
    count = state.count - 1
    done = count <= 0
    ts = TimeStep(count.astype(jnp.float32)[None], (action + state.count).astype(jnp.float32), done,
                  jnp.bool_(False), jnp.bool_(True))
    stepped = CountdownState(count, done, state.key)
    reset_ts = reset_ts._replace(valid=jnp.bool_(False))
    pick = lambda a, b: jnp.where(state.needs_reset, a, b)  # noqa: E731
    return jax.tree.map(pick, reset_state, stepped), jax.tree.map(pick, reset_ts, ts)


def countdown_env() -> Env:
    def reset(key):
        return jax.vmap(_countdown_reset_one)(jax.random.split(key, NUM_ENVS))

    def spec():
        return EnvSpec(Spec((1,), jnp.float32), Spec((), jnp.int32, num_values=2))

    return Env(reset, jax.vmap(_countdown_step_one), spec, NUM_ENVS)


def counting_policy(scale, key, observation, memory, action=None):
    """Samples a ∈ {0, 1}; memory counts ticks and sums actions (so it reads the action)."""
    if action is None:
        action = jax.random.bernoulli(key, 0.5, observation.shape[:1]).astype(jnp.int32)
    ticks, total = memory
    new_memory = (ticks + 1, total + action)
    extras = {"value": scale * observation[:, 0] + total, "action_copy": action}
    return rollout.PolicyOutput(action, new_memory, extras)


MEMORY = (jnp.zeros(NUM_ENVS, jnp.int32), jnp.zeros(NUM_ENVS, jnp.int32))


def test_unroll_equals_python_loop_of_act():
    env, policy = countdown_env(), functools.partial(counting_policy, 2.0)
    carry = rollout.rollout_init(env, jax.random.PRNGKey(0), MEMORY)
    _, traj = jax.jit(functools.partial(rollout.unroll, policy, env, length=20))(carry)

    act = rollout.make_act(policy)
    key, (state, ts), memory, first = carry.key, (carry.env_state, carry.timestep), MEMORY, np.ones(NUM_ENVS, bool)
    for i in range(20):
        key, sub = jax.random.split(key)
        memory = jax.tree.map(lambda m: jnp.where(first, 0, m), memory)
        out = act(sub, ts.observation, memory)
        np.testing.assert_array_equal(traj.observation[i], ts.observation)
        np.testing.assert_array_equal(traj.first[i], first)
        state, ts = env.step(state, out.action)
        np.testing.assert_array_equal(traj.action[i], out.action)
        np.testing.assert_array_equal(traj.reward[i], ts.reward)
        np.testing.assert_array_equal(traj.valid[i], ts.valid)
        np.testing.assert_array_equal(traj.terminated[i], ts.terminated)
        np.testing.assert_allclose(traj.extras["value"][i], out.extras["value"])
        memory, first = out.memory, ~np.asarray(ts.valid)


def test_alignment_reward_follows_action_and_next_observation():
    env, policy = countdown_env(), functools.partial(counting_policy, 1.0)
    carry = rollout.rollout_init(env, jax.random.PRNGKey(1), MEMORY)
    last, traj = rollout.unroll(policy, env, carry, 15)
    obs = np.asarray(traj.observation)[..., 0]
    valid = np.asarray(traj.valid)
    # reward_i = a_i + count seen at tick i, on every valid transition
    np.testing.assert_array_equal(np.asarray(traj.reward)[valid], (np.asarray(traj.action) + obs)[valid])
    # o_{i+1} = o_i - 1 on valid transitions; the final carry holds o_T
    next_obs = np.concatenate([obs[1:], np.asarray(last.timestep.observation)[None, :, 0]])
    np.testing.assert_array_equal(next_obs[valid], obs[valid] - 1)
    # invalid transitions come exactly after terminated ones, and give reward 0
    term = np.asarray(traj.terminated)
    np.testing.assert_array_equal(valid[1:], ~term[:-1])
    assert np.all(np.asarray(traj.reward)[~valid] == 0)


def test_memory_resets_on_first_tick_of_each_episode():
    env, policy = countdown_env(), functools.partial(counting_policy, 1.0)
    carry = rollout.rollout_init(env, jax.random.PRNGKey(2), MEMORY)
    _, traj = rollout.unroll(policy, env, carry, 25)
    first, ticks = np.asarray(traj.first), np.asarray(traj.memory[0])
    for e in range(NUM_ENVS):
        expected, count = [], 0
        for i in range(25):
            count = 1 if first[i, e] else count + 1
            expected.append(count)
        np.testing.assert_array_equal(ticks[:, e], expected)
    assert first[0].all() and first[1:].any()


def test_collect_host_loop_equals_unroll():
    env, policy = countdown_env(), functools.partial(counting_policy, 3.0)
    carry = rollout.rollout_init(env, jax.random.PRNGKey(3), MEMORY)
    last_u, traj_u = rollout.unroll(policy, env, carry, 12)
    last_c, traj_c = rollout.collect(policy, env, carry, 12)
    for a, b in zip(jax.tree.leaves(traj_u), jax.tree.leaves(traj_c)):
        np.testing.assert_allclose(np.asarray(a), b)
    np.testing.assert_array_equal(last_u.timestep.observation, last_c.timestep.observation)


def test_replay_teacher_forces_actions_and_reproduces_the_session():
    env = countdown_env()
    carry = rollout.rollout_init(env, jax.random.PRNGKey(4), MEMORY)
    _, traj = rollout.unroll(functools.partial(counting_policy, 2.0), env, carry, 18)
    extras, memories = rollout.replay(functools.partial(counting_policy, 2.0), jax.random.PRNGKey(99),
                                      traj.observation, traj.action, traj.first, MEMORY)
    np.testing.assert_array_equal(extras["action_copy"], traj.action)  # forced, not re-sampled
    np.testing.assert_allclose(extras["value"], traj.extras["value"])
    for a, b in zip(memories, traj.memory):
        np.testing.assert_array_equal(a, b)
    # New parameters change the recomputed outputs, not the forced actions.
    extras_new, _ = rollout.replay(functools.partial(counting_policy, -1.0), jax.random.PRNGKey(5),
                                   traj.observation, traj.action, traj.first, MEMORY)
    assert not np.allclose(extras_new["value"], traj.extras["value"])


def test_argument_errors():
    env, policy = countdown_env(), functools.partial(counting_policy, 1.0)
    carry = rollout.rollout_init(env, jax.random.PRNGKey(0), MEMORY)
    with pytest.raises(ValueError, match="`length`"):
        rollout.unroll(policy, env, carry, 0)
    with pytest.raises(ValueError, match="`env`"):
        rollout.unroll(policy, env._replace(is_jax=False), carry, 3)
    with pytest.raises(ValueError, match="`length`"):
        rollout.collect(policy, env, carry, 2.5)
    with pytest.raises(ValueError, match="`env` must be a batched env"):
        rollout.collect(policy, env._replace(num_envs=None), carry, 2)

    def scalar_extra(key, observation, memory, action=None):
        out = policy(key, observation, memory, action)
        return out._replace(extras={**out.extras, "epsilon": jnp.float32(0.1)})  # one value per tick

    with pytest.raises(ValueError, match="env axis first"):
        rollout.collect(scalar_extra, env, carry, 2)
    with pytest.raises(ValueError, match="`first`"):
        rollout.replay(policy, jax.random.PRNGKey(0), jnp.zeros((3, NUM_ENVS, 1)), jnp.zeros((3, NUM_ENVS), jnp.int32),
                       jnp.zeros((3, NUM_ENVS)), MEMORY)


def test_env_info_is_recorded_after_each_step():
    env, policy = countdown_env(), functools.partial(counting_policy, 1.0)
    carry = rollout.rollout_init(env, jax.random.PRNGKey(6), MEMORY)
    info = lambda state: state.count  # noqa: E731
    _, traj = rollout.unroll(policy, env, carry, 10, env_info=info)
    _, traj_host = rollout.collect(policy, env, carry, 10, env_info=info)
    obs = np.asarray(traj.observation)[..., 0]
    np.testing.assert_array_equal(np.asarray(traj.env_info)[:-1], obs[1:])  # count after step i = o_{i+1}
    np.testing.assert_array_equal(traj_host.env_info, traj.env_info)


# --------------------------------------------------------------------------------------------
# Host loops on envpool: sync `collect` vs double-buffered `collect_async`.


def pole_policy(gain, key, observation, memory, action=None):
    """Deterministic per env: push along gain × the pole's lean; memory counts the episode's ticks."""
    if action is None:
        action = (gain * observation[:, 2] > 0).astype(jnp.int32)
    return rollout.PolicyOutput(action, memory + 1, {"angle": observation[:, 2]})


def test_collect_async_equals_collect_for_a_deterministic_policy():
    from fnrl.envs import envpool_async, envpool_env
    from fnrl.envs.envpool_adapter import receive_all
    from fnrl.envs.wrappers import episode_stats

    n, length, key = 6, 40, jax.random.PRNGKey(3)
    policy = jax.tree_util.Partial(pole_policy, -1.0)  # pushes the pole over: short episodes
    memory, first = jnp.zeros(n, jnp.int32), np.ones(n, bool)
    sync = envpool_env("CartPole-v1", n)
    state, timestep = sync.reset(key)
    last_s, traj_s = rollout.collect(policy, sync, rollout.RolloutCarry(state, timestep, memory, first, key), length,
                                     env_info=episode_stats)
    aenv = envpool_async("CartPole-v1", n, n // 2)
    state, timestep = receive_all(aenv, aenv.reset(key))
    lanes = (np.array([0, 2, 3]), np.array([1, 4, 5]))  # any split into two ascending halves
    last_a, traj_a = rollout.collect_async(policy, aenv, rollout.RolloutCarry(state, timestep, memory, first, key),
                                           length, env_info=episode_stats, lanes=lanes)
    for field in rollout.Trajectory._fields:
        for a, s in zip(jax.tree.leaves(getattr(traj_a, field)), jax.tree.leaves(getattr(traj_s, field))):
            assert a.shape[:2] == (length, n)
            np.testing.assert_array_equal(a, s, err_msg=field)
    for a, s in zip(jax.tree.leaves(last_a[1:4]), jax.tree.leaves(last_s[1:4])):
        np.testing.assert_array_equal(a, s)
    np.testing.assert_array_equal(episode_stats(last_a.env_state).num_episodes,
                                  episode_stats(last_s.env_state).num_episodes)
    # The run crossed auto-resets, where memory restarts: after an invalid step it counts from 1.
    assert (~traj_s.valid).sum() >= n and (np.asarray(traj_a.memory)[traj_a.first] == 1).all()
    last_s.env_state.close(), last_a.env_state.close()
    with pytest.raises(ValueError, match="`lanes`"):
        rollout.collect_async(policy, aenv, last_a, 2, lanes=(np.array([0, 1, 2]), np.array([2, 3, 4])))


def _draws(key):
    return jax.random.split(key, 3), jax.random.categorical(key, jnp.zeros((5, 4))), jax.random.normal(key, (7,))


def test_unrolled_threefry_lowers_without_a_loop_and_draws_the_same_bits():
    key = jax.random.PRNGKey(11)
    lower = lambda: jax.jit(lambda k: _draws(k)).lower(key)  # noqa: E731  (a new function: no cached lowering)
    rolled = lower()
    with rollout.unrolled_threefry():
        unrolled = lower()
    assert "while" in rolled.as_text()  # JAX's CPU lowering: a rolled loop
    assert "while" not in unrolled.as_text()
    assert "while" in lower().as_text()  # the CPU rule is back after the context
    for a, b in zip(jax.tree.leaves(rolled.compile()(key)), jax.tree.leaves(unrolled.compile()(key))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
