"""Tests for fnrl.envs.envpool_adapter: specs, the valid flag after done, sync vs async,
episode statistics, Atari options and errors. Step counts are small: Atari steps are slow."""

from __future__ import annotations

import contextlib

import gymnasium
import jax
import numpy as np
import pytest

from fnrl.envs.envpool_adapter import (
    EnvpoolAsync,
    EnvpoolState,
    envpool_async,
    envpool_env,
    envpool_option_names,
    receive_all,
    spec_from_space,
)
from fnrl.types import Spec, TimeStep

KEY = jax.random.key(7)


def _is_spec(x):
    return isinstance(x, Spec)


def _check_batch_matches_spec(spec, observation, n):
    """Every observation leaf has shape [n, *spec.shape] and the spec's dtype."""
    pairs = jax.tree.leaves(jax.tree.map(lambda s, x: (s, x), spec, observation, is_leaf=_is_spec),
                            is_leaf=lambda x: isinstance(x, tuple) and _is_spec(x[0]))
    assert pairs
    for s, x in pairs:
        assert x.shape == (n, *s.shape)
        assert x.dtype == s.dtype


def _roll(env, key, actions):
    """Steps a sync env through `actions` [T, num_envs, ...]; returns the state and the stacked
    timesteps [T + 1, num_envs] (reset first)."""
    state, ts = env.reset(key)
    out = [ts]
    for a in actions:
        state, ts = env.step(state, a)
        out.append(ts)
    return state, jax.tree.map(lambda *xs: np.stack(xs), *out)


# --------------------------------------------------------------------------------------------
# Specs.


def test_cartpole_spec_and_timesteps():
    env = envpool_env("CartPole-v1", 3)
    assert env.num_envs == 3 and env.is_jax is False
    spec = env.spec()
    assert spec.action == Spec((), np.dtype(np.int32), num_values=2)
    obs = spec.observation
    assert obs.shape == (4,) and obs.dtype == np.float32 and obs.kind == "bounded"
    np.testing.assert_allclose(obs.maximum, [4.8, np.inf, 0.41887903, np.inf], rtol=1e-6)
    np.testing.assert_array_equal(obs.minimum, -obs.maximum)
    state, ts = env.reset(KEY)
    assert isinstance(state, EnvpoolState)
    _check_batch_matches_spec(obs, ts.observation, 3)
    np.testing.assert_array_equal(ts.reward, np.zeros(3, np.float32))
    assert ts.valid.all() and not ts.done.any()
    state, ts = env.step(state, np.array([0, 1, 1]))
    assert ts.reward.dtype == np.float32 and ts.reward.shape == (3,)
    np.testing.assert_array_equal(ts.reward, 1.0)
    state.close()


def test_pendulum_spec_is_bounded():
    env = envpool_env("Pendulum-v1", 2)
    spec = env.spec()
    np.testing.assert_allclose(spec.observation.minimum, [-1, -1, -8])
    np.testing.assert_allclose(spec.observation.maximum, [1, 1, 8])
    act = spec.action
    assert act.shape == (1,) and act.dtype == np.float32 and act.kind == "bounded"
    np.testing.assert_array_equal(act.minimum, [-2.0])
    np.testing.assert_array_equal(act.maximum, [2.0])
    with contextlib.closing(env.reset(KEY)[0]) as state:
        state, ts = env.step(state, np.full((2, 1), 0.5, np.float32))
        _check_batch_matches_spec(spec.observation, ts.observation, 2)
        assert (ts.reward < 0).all()  # Pendulum's cost is never positive


def test_pong_spec_follows_frame_options():
    default = envpool_env("Pong-v5").spec()
    obs = default.observation
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert obs.minimum.min() == 0 and obs.maximum.max() == 255
    assert default.action.num_values == 6
    env = envpool_env("Pong-v5", stack_size=2, image_size=(64, 48), grayscale=False)
    assert env.spec().observation.shape == (6, 64, 48)  # 2 frames x RGB
    with contextlib.closing(env.reset(KEY)[0]) as state:
        state, ts = env.step(state, np.array([1]))
        _check_batch_matches_spec(env.spec().observation, ts.observation, 1)
    assert envpool_env("Pong-v5", image_size=42).spec().observation.shape == (4, 42, 42)


def test_halfcheetah_float_actions_and_dtypes():
    env = envpool_env("HalfCheetah-v5", 2)
    spec = env.spec()
    assert spec.observation == Spec((17,), np.dtype(np.float32))  # unbounded, float64 -> float32
    assert spec.action.shape == (6,) and spec.action.dtype == np.float32
    np.testing.assert_array_equal(spec.action.maximum, np.ones(6))
    with contextlib.closing(env.reset(KEY)[0]) as state:
        state, a = env.step(state, np.full((2, 6), 0.3, np.float32))
        state, b = env.step(state, np.full((2, 6), -0.3))  # float64 actions are cast
    for ts in (a, b):
        _check_batch_matches_spec(spec.observation, ts.observation, 2)
    assert not np.allclose(a.reward, b.reward)


def test_dict_observation_env():
    env = envpool_env("Game2048-v1", 2)
    spec = env.spec().observation
    assert set(spec) == {"board", "action_mask"}
    assert spec["action_mask"] == Spec((4,), np.dtype(np.bool_))
    assert spec["board"].shape == (4, 4) and spec["board"].kind == "int"
    with contextlib.closing(env.reset(KEY)[0]) as state:
        state, ts = env.step(state, np.array([0, 3]))
        _check_batch_matches_spec(spec, ts.observation, 2)


def test_spec_from_space_edge_cases():
    assert spec_from_space(gymnasium.spaces.Discrete(3, start=-1)) == Spec(
        (), np.dtype(np.int32), num_values=3, minimum=-1, maximum=1
    )
    both = spec_from_space(gymnasium.spaces.Dict({"a": gymnasium.spaces.MultiBinary(2)}))
    assert both == {"a": Spec((2,), np.dtype(np.bool_))}
    with pytest.raises(ValueError, match="space"):
        spec_from_space(gymnasium.spaces.Text(3))


# --------------------------------------------------------------------------------------------
# Reset convention.


def test_valid_false_exactly_after_done_and_action_ignored():
    n, steps = 3, 70
    actions = np.random.default_rng(0).integers(0, 2, (steps, n))
    env = envpool_env("CartPole-v1", n)
    state, ts = _roll(env, KEY, actions)
    state.close()
    done = ts.terminated | ts.truncated
    np.testing.assert_array_equal(ts.valid[1:], ~done[:-1])
    assert ts.valid[0].all()
    invalid = ~ts.valid
    assert invalid.sum() >= 3
    assert (ts.reward[invalid] == 0).all() and not done[invalid].any()
    assert not (ts.terminated & ts.truncated).any()

    # The same run with the action flipped on every reset step sees the same observations.
    rows = invalid[1:]
    flipped = np.where(rows, 1 - actions, actions)
    state, other = _roll(env, KEY, flipped)
    state.close()
    np.testing.assert_array_equal(other.observation, ts.observation)
    # ...while flipping one ordinary action does change what follows.
    t = int(np.argmax(~rows[:, 0] & (np.arange(steps) > 0)))
    changed = actions.copy()
    changed[t, 0] = 1 - changed[t, 0]
    state, third = _roll(env, KEY, changed)
    state.close()
    assert not np.array_equal(third.observation[t + 1, 0], ts.observation[t + 1, 0])


def test_seeding_by_key():
    env = envpool_env("CartPole-v1", 2, seed=5)
    first = [env.reset(k)[1].observation for k in (KEY, KEY, jax.random.key(8))]
    np.testing.assert_array_equal(first[0], first[1])
    assert not np.array_equal(first[0], first[2])
    np.testing.assert_array_equal(env.reset(None)[1].observation, env.reset()[1].observation)
    assert not np.array_equal(envpool_env("CartPole-v1", 2, seed=6).reset(KEY)[1].observation, first[0])


# --------------------------------------------------------------------------------------------
# Sync vs async.


def _action_table(num_envs, steps):
    return np.random.default_rng(1).integers(0, 2, (num_envs, steps))


def test_async_matches_sync_per_env():
    n, batch, steps = 4, 2, 40
    table = _action_table(n, steps)
    sync = envpool_env("CartPole-v1", n)
    state, ts = _roll(sync, KEY, table.T)
    state.close()

    aenv = envpool_async("CartPole-v1", n, batch)
    assert isinstance(aenv, EnvpoolAsync) and aenv.batch_size == batch
    assert jax.tree.map(np.array_equal, aenv.spec(), sync.spec()) == jax.tree.map(lambda _: True, sync.spec())
    rows = {i: [] for i in range(n)}
    with contextlib.closing(aenv.reset(KEY)) as state:
        while min(len(r) for r in rows.values()) < steps + 1:
            state, env_id, got = aenv.recv(state)
            assert env_id.shape == (batch,) and got.reward.shape == (batch,)
            for j, i in enumerate(env_id):
                rows[i].append(jax.tree.map(lambda x: x[j], got))
            taken = np.array([len(rows[i]) - 1 for i in env_id])
            aenv.send(state, table[env_id, np.minimum(taken, steps - 1)], env_id)
    for i in range(n):
        per_env = jax.tree.map(lambda *xs: np.stack(xs[: steps + 1]), *rows[i])
        expected = jax.tree.map(lambda x: x[:, i], ts)
        for name in TimeStep._fields:
            np.testing.assert_array_equal(getattr(per_env, name), getattr(expected, name), err_msg=name)
    assert (~ts.valid).any()  # the comparison crossed at least one auto-reset


def test_receive_all_gives_the_sync_reset_in_env_order():
    state, expected = envpool_env("CartPole-v1", 6).reset(KEY)
    state.close()
    aenv = envpool_async("CartPole-v1", 6, 2)
    with contextlib.closing(aenv.reset(KEY)) as astate:
        astate, got = receive_all(aenv, astate)
        for name in TimeStep._fields:
            np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)
        assert astate.started.all()
    with pytest.raises(ValueError, match="does not divide"):
        receive_all(envpool_async("CartPole-v1", 5, 2), None)


# --------------------------------------------------------------------------------------------
# Episode statistics.


def test_episode_stats_match_python_accumulation():
    n, steps = 2, 120
    env = envpool_env("CartPole-v1", n)
    actions = np.random.default_rng(2).integers(0, 2, (steps, n))
    state, ts = env.reset(KEY)
    running = np.zeros(n)
    length = np.zeros(n, int)
    finished = [[] for _ in range(n)]
    for a in actions:
        state, ts = env.step(state, a)
        for i in range(n):
            if not ts.valid[i]:
                continue
            running[i] += ts.reward[i]
            length[i] += 1
            if ts.terminated[i] or ts.truncated[i]:
                finished[i].append((running[i], length[i]))
                running[i], length[i] = 0.0, 0
        stats = state.episode_stats
        np.testing.assert_allclose(stats.episode_return, running)
        np.testing.assert_array_equal(stats.episode_length, length)
        np.testing.assert_array_equal(stats.num_episodes, [len(f) for f in finished])
        for i in range(n):
            if finished[i]:
                assert (stats.last_return[i], stats.last_length[i]) == finished[i][-1]
    state.close()
    assert min(len(f) for f in finished) >= 2


# --------------------------------------------------------------------------------------------
# Atari options (Pong has no lives and only +-1 rewards, so clipping and episodic life are shown
# on MsPacman (10-point dots) and Breakout (5 lives)).


def _pair(env_id, actions, **options):
    """The same key and actions through `env_id` with the bool `options` and their opposite."""
    on = envpool_env(env_id, **options)
    off = envpool_env(env_id, **{k: not v for k, v in options.items()})
    (s_on, ts_on), (s_off, ts_off) = _roll(on, KEY, actions), _roll(off, KEY, actions)
    s_on.close(), s_off.close()
    return (s_on, ts_on), (s_off, ts_off)


def test_reward_clip_clips_rewards_not_statistics():
    (s_clip, clip), (s_raw, raw) = _pair(
        "MsPacman-v5", np.random.default_rng(3).integers(0, 9, (90, 1)), reward_clip=True
    )
    assert raw.reward.max() >= 10  # dots are worth 10 points
    np.testing.assert_array_equal(clip.reward, np.sign(raw.reward))
    # Statistics use the unclipped reward, so both runs report the same returns.
    np.testing.assert_array_equal(s_clip.episode_stats.episode_return, s_raw.episode_stats.episode_return)
    assert s_clip.episode_stats.episode_return[0] == raw.reward.sum()


def test_episodic_life_ends_episodes_on_life_loss():
    (s_life, life), (s_game, game) = _pair(
        "Breakout-v5", np.zeros((30, 1), int), episodic_life=True  # the paddle misses the ball
    )
    assert life.terminated.any() and not game.terminated.any()
    t = int(np.argmax(life.terminated[:, 0]))
    np.testing.assert_array_equal(life.observation[: t + 1], game.observation[: t + 1])
    assert not life.valid[t + 1, 0]  # the step after a life loss is a reset step
    # The game is not over: statistics keep counting the same episode.
    assert s_life.episode_stats.num_episodes[0] == 0
    assert s_life.episode_stats.episode_length[0] == life.valid[1:].sum()


def test_sticky_actions_on_pong():
    for prob, same in ((1.0, True), (0.0, False)):
        env = envpool_env("Pong-v5", repeat_action_probability=prob)
        s_up, up = _roll(env, KEY, np.full((20, 1), 2))
        s_down, down = _roll(env, KEY, np.full((20, 1), 3))
        s_up.close(), s_down.close()
        assert np.array_equal(up.observation, down.observation) == same


def test_option_names():
    names = envpool_option_names("Pong-v5")
    for friendly in ("frame_skip", "repeat_action_probability", "episodic_life", "reward_clip",
                     "noop_max", "image_size", "stack_size", "grayscale", "loss_of_life_termination"):
        assert friendly in names
    assert "num_envs" not in names and "seed" not in names
    assert "stack_size" not in envpool_option_names("CartPole-v1")


# --------------------------------------------------------------------------------------------
# Errors and cleanup.


def test_unknown_env_id_suggests_close_ids():
    with pytest.raises(ValueError, match=r"env_id.*'CartPole-v1'"):
        envpool_env("Cartpole-v1")
    with pytest.raises(ValueError, match="env_id"):
        envpool_async("NoSuchThing", 2, 1)


@pytest.mark.parametrize(
    "env_id, options, match",
    [
        ("Pong-v5", {"stak_size": 2}, r"unknown option `stak_size`.*stack_size"),
        ("CartPole-v1", {"stack_size": 2}, r"unknown option `stack_size`.*max_episode_steps"),
        ("Pong-v5", {"frame_skip": 0}, "`frame_skip` must be an int >= 1"),
        ("Pong-v5", {"noop_max": 0}, "`noop_max` must be an int >= 1"),
        ("Pong-v5", {"repeat_action_probability": 1.5}, r"`repeat_action_probability` must be .* \[0, 1\]"),
        ("Pong-v5", {"image_size": (84,)}, "`image_size` must be an int or"),
        ("Pong-v5", {"episodic_life": 1}, "`episodic_life` must be a bool"),
        ("Pong-v5", {"stack_size": 2, "stack_num": 3}, "already set"),
    ],
)
def test_bad_options(env_id, options, match):
    with pytest.raises(ValueError, match=match):
        envpool_env(env_id, **options)


def test_bad_arguments():
    with pytest.raises(ValueError, match="`num_envs`"):
        envpool_env("CartPole-v1", 0)
    with pytest.raises(ValueError, match="`batch_size`"):
        envpool_async("CartPole-v1", 2, 3)
    with pytest.raises(ValueError, match="`seed`"):
        envpool_env("CartPole-v1", seed=-1)


def test_bad_actions_and_closed_state():
    env = envpool_env("CartPole-v1", 2)
    state, _ = env.reset(KEY)
    with pytest.raises(ValueError, match=r"`action` must have shape \(2,\)"):
        env.step(state, np.array([0, 1, 0]))
    with pytest.raises(ValueError, match=r"`action` must lie in \[0, 1\]"):
        env.step(state, np.array([0, 2]))
    with pytest.raises(ValueError, match=r"`action` must lie in \[0, 1\], got values in \[-1, 0\]"):
        env.step(state, np.array([-1, 0], np.int64))
    with pytest.raises(ValueError, match="`action` must be an integer"):
        env.step(state, np.array([0.0, 1.0]))
    state, ts = env.step(state, np.array([0, 1]))  # the checks left the pool usable
    assert ts.valid.all()
    state.close()
    with pytest.raises(RuntimeError, match="closed"):
        env.step(state, np.array([0, 1]))
    aenv = envpool_async("CartPole-v1", 2, 1)
    with contextlib.closing(aenv.reset(KEY)) as astate:
        astate, env_id, _ = aenv.recv(astate)
        for bad in (np.array([2]), np.array([-1]), np.array([0.0])):
            with pytest.raises(ValueError, match="`env_id`"):
                aenv.send(astate, np.array([0]), bad)
