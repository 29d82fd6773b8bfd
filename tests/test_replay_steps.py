"""fnrl.replay's env-step side: n-step transitions, steps=True buffers, the session pool, demo
mixing, memory specs and `set_memory`, against plain Python models written from the docstrings."""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple, Optional

import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fnrl
from fnrl.replay import set_memory
from tests.helpers import floats, jit_variants, variant

RTOL, ATOL = 1e-5, 1e-5
OBS_DIM = 2
# n_step_transition casts γ to the rewards' float32: draw values float32 holds exactly, so the
# float64 reference uses the same γ.
GAMMAS = st.floats(0.0, 1.0, width=32, allow_subnormal=False)


# ----------------------------------------------------------------------------- env-step streams
def envpool_rule(reward, terminated, truncated, after_done=None):
    """Rewrites time-major flags in place the way envpool resets: the row after a done one is the
    reset step (the action is ignored: valid=False, reward 0, not done). `after_done` says whether
    the row before row 0 was done. Returns `valid`."""
    valid = np.ones(reward.shape, bool)
    previous = np.zeros(reward.shape[1:], bool) if after_done is None else np.asarray(after_done)
    for t in range(reward.shape[0]):
        valid[t] = ~previous
        reward[t] = np.where(previous, 0.0, reward[t])
        terminated[t] &= ~previous
        truncated[t] &= ~previous
        previous = terminated[t] | truncated[t]
    return valid


@st.composite
def step_stream(draw, shape, after_done=None, first_id=0, p_term=0.2, p_trunc=0.2):
    """A time-major `Step` stream of `shape` ([T] or [T, lanes]) following the envpool rule, with
    vector observations and an `id` extra numbering the items in row-major order."""
    reward = np.array(draw(floats(shape)))
    u = np.asarray(draw(hnp.arrays(np.float64, (2,) + shape, elements=st.floats(0, 1))))
    terminated = u[0] < p_term
    truncated = (u[1] < p_trunc) & ~terminated
    valid = envpool_rule(reward, terminated, truncated, after_done)
    ids = first_id + np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    return fnrl.Step(observation=np.asarray(draw(floats(shape + (OBS_DIM,)))),
                     action=np.asarray(draw(hnp.arrays(np.int32, shape, elements=st.integers(0, 9)))),
                     reward=reward, terminated=terminated, truncated=truncated, valid=valid,
                     extras={"id": ids, "logp": np.asarray(draw(floats(shape)))})


def at(tree, index):
    return jax.tree.map(lambda x: np.asarray(x)[index], tree)


def np_transition(window, gamma):
    """The n-step transition from row 0 of `window` (a list of n + 1 one-lane `Step` rows):
    m = min(n, 1 + first k < n with a done at row k), R = Σ_{k<m} γ^k r_k,
    discount = 0 if row m - 1 terminated else γ^m, next observation = row m's."""
    n = len(window) - 1
    m = next((k + 1 for k in range(n) if window[k].terminated or window[k].truncated), n)
    reward = sum(gamma**k * float(window[k].reward) for k in range(m))
    discount = 0.0 if window[m - 1].terminated else gamma**m
    return fnrl.Transition(observation=window[0].observation, action=window[0].action, reward=reward,
                           discount=discount, next_observation=window[m].observation, steps=m,
                           extras=window[0].extras)


def assert_transition(got, want):
    np.testing.assert_array_equal(got.observation, want.observation)
    np.testing.assert_array_equal(got.action, want.action)
    np.testing.assert_allclose(got.reward, want.reward, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(got.discount, want.discount, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(got.next_observation, want.next_observation)
    assert int(got.steps) == want.steps
    jax.tree.map(np.testing.assert_array_equal, got.extras, want.extras)


def lanes_of(stream):
    """(index suffix, one-lane stream) for each lane of a [T] or [T, B] stream."""
    if stream.reward.ndim == 1:
        yield (), stream
    else:
        for b in range(stream.reward.shape[1]):
            yield (b,), jax.tree.map(lambda x: x[:, b], stream)


def make_stream(rewards, done_row, kind):
    """One lane whose row `done_row` is terminated or truncated (`kind`), so row `done_row + 1`
    is the reset step and stores the episode's final observation; observation i is [i, -i]."""
    length = len(rewards)
    flags = {k: np.zeros(length, bool) for k in ("terminated", "truncated")}
    flags[kind][done_row] = True
    valid = np.arange(length) != done_row + 1
    observation = np.stack([np.arange(length), -np.arange(length)], -1).astype(np.float32)
    return fnrl.Step(observation=observation, action=np.arange(length, dtype=np.int32),
                     reward=np.asarray(rewards, np.float32), valid=valid, extras=(), **flags)


# ----------------------------------------------------------------------------- n-step transitions
# Eager mode compiles every primitive afresh for each new shape, which costs seconds per (shape, n)
# for the vmapped `n_step_transitions`: its un-jitted variant runs on the fixed cases below, and
# the random streams check it jitted and `n_step_transition` (the per-window core) both ways.
STREAM_SHAPES = st.sampled_from([(6,), (6, 3)])


@given(STREAM_SHAPES.flatmap(step_stream), st.integers(1, 4), GAMMAS)
def test_n_step_transitions_match_loop(stream, n, gamma):
    got, valid = variant(fnrl.n_step_transitions, True, static_argnames="n")(stream, n=n, discount=gamma)
    starts = stream.reward.shape[0] - n
    assert got.reward.shape == valid.shape == (starts,) + stream.reward.shape[1:]
    assert got.next_observation.shape == (starts,) + stream.observation.shape[1:]
    for lane, column in lanes_of(stream):
        for t in range(starts):
            want = np_transition([at(column, t + k) for k in range(n + 1)], gamma)
            assert_transition(at(got, (t,) + lane), want)
            assert bool(valid[(t,) + lane]) == column.valid[t]


@jit_variants
@given(data=st.data())
def test_n_step_transition_of_one_window(use_jit, data):
    shape = data.draw(STREAM_SHAPES if use_jit else st.just((6, 3)), label="shape")
    stream, n, gamma = data.draw(step_stream(shape)), data.draw(st.integers(1, 4), label="n"), data.draw(GAMMAS)
    window = jax.tree.map(lambda x: x[: n + 1], stream)
    got = variant(fnrl.n_step_transition, use_jit)(window, gamma)
    for lane, column in lanes_of(window):
        assert_transition(at(got, lane), np_transition([at(column, k) for k in range(n + 1)], gamma))


def test_n_step_transition_of_int_rewards_discounts_in_float():
    window = fnrl.Step(observation=np.arange(4, dtype=np.float32), action=np.zeros(4, np.int32),
                       reward=np.ones(4, np.int32), terminated=np.zeros(4, bool), truncated=np.zeros(4, bool),
                       valid=np.ones(4, bool))
    got = fnrl.n_step_transition(window, 0.9)
    assert float(got.reward) == pytest.approx(2.71) and float(got.discount) == pytest.approx(0.729)


@jit_variants
@pytest.mark.parametrize("kind", ["terminated", "truncated"])
def test_n_step_transitions_stop_at_the_done(use_jit, kind):
    # Row 2 ends the episode; row 3 is the reset step holding the final observation [3, -3].
    stream = make_stream([1.0, 2.0, 3.0, 0.0, 5.0, 6.0, 7.0], done_row=2, kind=kind)
    got, valid = variant(fnrl.n_step_transitions, use_jit, static_argnames="n")(stream, n=3, discount=0.5)
    bootstrap = kind == "truncated"
    np.testing.assert_allclose(got.reward, [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0, 0.5 * 5 + 0.25 * 6])
    np.testing.assert_allclose(got.discount, [0.125 * bootstrap, 0.25 * bootstrap, 0.5 * bootstrap, 0.125])
    np.testing.assert_array_equal(got.steps, [3, 2, 1, 3])
    np.testing.assert_array_equal(got.next_observation[:, 0], [3, 3, 3, 6])
    np.testing.assert_array_equal(got.action, [0, 1, 2, 3])
    np.testing.assert_array_equal(valid, [True, True, True, False])


@pytest.mark.parametrize("kind", ["terminated", "truncated"])
def test_n_step_transition_window_ending_in_a_done(kind):
    window = make_stream([1.0, 2.0, 0.0, 4.0], done_row=1, kind=kind)
    got = fnrl.n_step_transition(window, 0.5)
    assert int(got.steps) == 2 and float(got.reward) == 2.0
    assert float(got.discount) == (0.25 if kind == "truncated" else 0.0)
    np.testing.assert_array_equal(got.next_observation, [2, -2])  # the final observation


def test_n_step_transition_errors():
    stream = make_stream([1.0, 2.0, 0.0, 4.0], done_row=1, kind="terminated")
    with pytest.raises(ValueError, match="n \\+ 1 >= 2 rows"):
        fnrl.n_step_transition(jax.tree.map(lambda x: x[:1], stream), 0.9)
    with pytest.raises(ValueError, match="more than n=4 rows"):
        fnrl.n_step_transitions(stream, 4, 0.9)
    with pytest.raises(ValueError, match="positive int"):
        fnrl.n_step_transitions(stream, 0, 0.9)


# ----------------------------------------------------------------------------- steps=True buffers
class Config(NamedTuple):
    prioritized: bool
    lanes: int
    n_step: int
    capacity: int
    keep_terminal_states: bool


CONFIGS = {
    "uniform-2lanes-n3-no-terminal": Config(False, 2, 3, 10, False),
    "prioritized-3lanes-n2": Config(True, 3, 2, 12, True),
    "prioritized-1lane-n1-no-terminal": Config(True, 1, 1, 6, False),
}
GAMMA, ALPHA, BETA, EPSILON = 0.9, 0.7, 0.5, 0.01
BATCH, SEQ_LEN = 4, 3


class Jitted(NamedTuple):
    add: Callable
    sample: Callable
    sample_sequences: Callable
    can_sample: Callable
    update_priorities: Optional[Callable]


@functools.lru_cache(maxsize=None)
def steps_buffer(name):
    """The buffer of config `name` and its functions jitted once for all hypothesis examples."""
    c = CONFIGS[name]
    kwargs = dict(lanes=c.lanes, steps=True, n_step=c.n_step, discount=GAMMA,
                  keep_terminal_states=c.keep_terminal_states)
    if c.prioritized:
        buffer = fnrl.prioritized_replay(c.capacity, alpha=ALPHA, beta=BETA, epsilon=EPSILON, **kwargs)
    else:
        buffer = fnrl.uniform_replay(c.capacity, **kwargs)
    update = jax.jit(buffer.update_priorities) if c.prioritized else None
    return buffer, Jitted(jax.jit(buffer.add), jax.jit(buffer.sample, static_argnums=2),
                          jax.jit(buffer.sample_sequences, static_argnums=(2, 3)), jax.jit(buffer.can_sample), update)


def example_step():
    return fnrl.Step(observation=np.zeros(OBS_DIM, np.float32), action=np.int32(0), reward=np.float32(0),
                     terminated=np.bool_(False), truncated=np.bool_(False), valid=np.bool_(True),
                     extras={"id": np.int32(0), "logp": np.float32(0)})


class StepsModel:
    """Every item ever added (global index g = row * lanes + lane, slot g mod capacity) and a
    priority per slot."""

    def __init__(self, config: Config):
        self.c = config
        self.items = []
        self.priority = np.ones(config.capacity)
        self.max_priority = 1.0

    def add(self, rows):
        for i in range(rows.reward.shape[0]):
            self.priority[len(self.items) % self.c.capacity] = self.max_priority
            self.items.append(at(rows, i))

    @property
    def size(self):
        return min(len(self.items), self.c.capacity)

    def last_done(self):
        if not self.items:
            return np.zeros(self.c.lanes, bool)
        return np.array([bool(s.terminated | s.truncated) for s in self.items[-self.c.lanes:]])

    def holder(self, slot):
        """The global index of the item in `slot`, or None."""
        total = len(self.items)
        return None if slot >= total else slot + self.c.capacity * ((total - 1 - slot) // self.c.capacity)

    def sampleable(self):
        mask = np.zeros(self.c.capacity, bool)
        for slot in range(self.c.capacity):
            g = self.holder(slot)
            if g is None or g + self.c.n_step * self.c.lanes >= len(self.items):
                continue
            item = self.items[g]
            mask[slot] = item.valid and (self.c.keep_terminal_states or not (item.terminated or item.truncated))
        return mask

    def transition(self, slot):
        g = self.holder(slot)
        return np_transition([self.items[g + k * self.c.lanes] for k in range(self.c.n_step + 1)], GAMMA)

    def probabilities(self, slots):
        mask = self.sampleable()
        if not self.c.prioritized:
            return np.full(len(slots), 1.0 / mask.sum())
        return self.priority[slots] / self.priority[mask].sum()

    def update(self, indices, priorities):
        kept = {int(i): (max(float(p), 0.0) + EPSILON) ** ALPHA for i, p in zip(indices, priorities)}
        for slot, value in kept.items():
            self.priority[slot] = value
        self.max_priority = max(self.max_priority, *kept.values())


def check_buffer(state, model, fns):
    mask = model.sampleable()
    assert int(state.size) == model.size
    assert int(state.position) == len(model.items) % model.c.capacity
    np.testing.assert_array_equal(np.asarray(state.sampleable), mask)
    assert bool(fns.can_sample(state, BATCH)) == (mask.sum() >= BATCH)


def check_sample(state, model, fns, key):
    batch, info = fns.sample(state, key, BATCH)
    slots = np.asarray(info.indices)
    assert model.sampleable()[slots].all(), slots
    for i, slot in enumerate(slots):
        assert_transition(at(batch, i), model.transition(slot))
    probabilities = model.probabilities(slots)
    np.testing.assert_allclose(info.probabilities, probabilities, rtol=RTOL)
    if model.c.prioritized:
        weights = (model.sampleable().sum() * probabilities) ** -BETA
        np.testing.assert_allclose(info.weights, weights / weights.max(), rtol=RTOL)
    else:
        np.testing.assert_array_equal(info.weights, 1.0)


def check_sequences(state, model, fns, key):
    sequences, starts = fns.sample_sequences(state, key, BATCH, SEQ_LEN)
    lanes, total = model.c.lanes, len(model.items)
    assert sequences.reward.shape == (SEQ_LEN, BATCH)
    assert sequences.observation.shape == (SEQ_LEN, BATCH, OBS_DIM)
    for i, slot in enumerate(np.asarray(starts)):
        g = model.holder(slot)
        assert g is not None and g + (SEQ_LEN - 1) * lanes < total, (slot, g, total)
        for t in range(SEQ_LEN):
            jax.tree.map(np.testing.assert_array_equal, at(sequences, (t, i)), model.items[g + t * lanes])


@pytest.mark.parametrize("name", list(CONFIGS))
@given(data=st.data())
def test_steps_buffer_matches_model(name, data):
    c = CONFIGS[name]
    buffer, fns = steps_buffer(name)
    model = StepsModel(c)
    state = buffer.init(example_step())
    check_buffer(state, model, fns)
    ops = ["add", "add", "sample", "sequences"] + ["update"] * c.prioritized
    for _ in range(data.draw(st.integers(1, 14), label="ops")):
        op = data.draw(st.sampled_from(ops))
        key = jax.random.key(data.draw(st.integers(0, 2**31 - 1)))
        if op == "add":
            # One row, two rows, or more rows than fit (the oldest of the add itself dropped).
            rows = data.draw(st.sampled_from([1, 2, c.capacity // c.lanes + 1]), label="rows")
            stream = data.draw(step_stream((rows, c.lanes), after_done=model.last_done(), first_id=len(model.items)))
            flat = jax.tree.map(lambda x: x.reshape((rows * c.lanes,) + x.shape[2:]), stream)
            state = fns.add(state, flat)
            model.add(flat)
        elif op == "sample" and model.sampleable().any():
            check_sample(state, model, fns, key)
        elif op == "sequences" and model.size >= SEQ_LEN * c.lanes:
            check_sequences(state, model, fns, key)
        elif op == "update":
            indices = np.asarray(data.draw(st.lists(st.integers(0, c.capacity - 1), min_size=BATCH, max_size=BATCH)))
            priorities = data.draw(floats((BATCH,), 0.0, 5.0))
            state = fns.update_priorities(state, indices.astype(np.int32), priorities)
            model.update(indices, priorities)
        check_buffer(state, model, fns)


@pytest.mark.parametrize("lanes, n_step", [(1, 1), (1, 3), (3, 2)])
def test_an_add_writes_each_sum_tree_leaf_once(monkeypatch, lanes, n_step):
    """XLA leaves the order of a scatter's duplicate writes unspecified (on GPU the zero of a new
    slot could win over its completed priority), so no add may write one leaf twice."""
    from fnrl import replay

    real, written = replay._tree_set, []

    def checked(tree, slots, values, write=None):
        mask = np.ones(len(slots), bool) if write is None else np.asarray(write)
        written.append(np.asarray(slots)[mask])
        return real(tree, slots, values, write)

    monkeypatch.setattr(replay, "_tree_set", checked)
    buffer = fnrl.prioritized_replay(8 * lanes, lanes=lanes, steps=True, n_step=n_step, discount=GAMMA)
    state = buffer.init(example_step())
    for rows in (1, 4, 9, 2):
        items = jax.tree.map(lambda x: np.broadcast_to(x, (rows * lanes,) + np.shape(x)).copy(), example_step())
        state = buffer.add(state, items)
    assert written and all(len(np.unique(w)) == len(w) for w in written)
    assert np.asarray(state.sampleable).sum() > 0
    leaves = np.asarray(state.tree)[len(state.tree) // 2:][: 8 * lanes]
    np.testing.assert_array_equal(leaves > 0, np.asarray(state.sampleable))


@given(step_stream((6, 3)), st.integers(0, 2**31 - 1))
def test_trajectory_steps_feed_a_lanes_buffer(stream, seed):
    """A [T, L] rollout flattened by `trajectory_steps` and added two ticks at a time samples
    exactly the transitions `n_step_transitions` computes on the rollout itself."""
    name = "prioritized-3lanes-n2"
    c = CONFIGS[name]
    buffer, fns = steps_buffer(name)
    trajectory = fnrl.rollout.Trajectory(
        observation=stream.observation, action=stream.action, reward=stream.reward, terminated=stream.terminated,
        truncated=stream.truncated, valid=stream.valid, first=np.zeros((6, 3), bool), extras=(), memory=())
    flat = fnrl.trajectory_steps(trajectory, extras=stream.extras)
    np.testing.assert_array_equal(flat.extras["id"], np.arange(18))  # tick by tick, lanes inside a tick
    state = buffer.init(example_step())
    for tick in range(0, 6, 2):
        state = fns.add(state, jax.tree.map(lambda x: x[tick * c.lanes:(tick + 2) * c.lanes], flat))
    want, valid = variant(fnrl.n_step_transitions, True, static_argnames="n")(stream, n=c.n_step, discount=GAMMA)
    # The last 4 ticks are held; ticks 2 and 3 have their n = 2 successors, ticks 4 and 5 do not.
    held = np.concatenate([np.asarray(valid[2:4]).reshape(-1), np.zeros(6, bool)])
    np.testing.assert_array_equal(np.asarray(state.sampleable), np.roll(held, 6))
    if held.any():
        model = StepsModel(c)
        model.add(flat)
        batch, info = fns.sample(state, jax.random.key(seed), BATCH)
        for i, slot in enumerate(np.asarray(info.indices)):
            assert_transition(at(batch, i), at(want, divmod(model.holder(slot), c.lanes)))


def test_steps_buffer_stores_each_observation_once():
    atari = fnrl.Step(observation=np.zeros((84, 84, 4), np.uint8), action=np.int32(0), reward=np.float32(0),
                      terminated=np.bool_(False), truncated=np.bool_(False), valid=np.bool_(True))
    item_bytes = sum(np.asarray(x).nbytes for x in jax.tree.leaves(atari))
    state = fnrl.uniform_replay(2000, lanes=4, steps=True, n_step=3, discount=0.99).init(atari)
    state_bytes = sum(x.nbytes for x in jax.tree.leaves(state))
    assert abs(state_bytes - 2000 * item_bytes) <= 0.1 * 2000 * item_bytes, (state_bytes, item_bytes)


# ----------------------------------------------------------------------------- session pool
POOL, TICKS, MEMORY, DRAWN = 5, 4, 2, 3


def session_batch(count, first_id, seed):
    """`count` random sessions [count, T, ...] whose observations carry the session's number."""
    rng = np.random.default_rng(seed)
    ids = np.broadcast_to((first_id + np.arange(count, dtype=np.int32))[:, None], (count, TICKS))

    def normal(*shape):
        return rng.normal(size=(count,) + shape).astype(np.float32)

    return fnrl.Session(observations={"x": normal(TICKS, 3), "id": np.array(ids)},
                        actions=rng.integers(0, 4, (count, TICKS), dtype=np.int32), rewards=normal(TICKS),
                        is_alive=rng.random((count, TICKS)) < 0.8, prev_memory=(normal(MEMORY), normal(MEMORY)))


def sessions(count, first_id):
    return st.integers(0, 2**32 - 1).map(lambda seed: session_batch(count, first_id, seed))


@functools.lru_cache(maxsize=None)
def pool_functions():
    pool = fnrl.session_pool(POOL)
    return pool, jax.jit(pool.append_sessions), jax.jit(pool.sample_session_batch, static_argnums=2), \
        jax.jit(pool.select_session_batch)


def check_session_rows(batch, slots, held):
    """Batch row i (time-major: axis 1 of the per-tick fields) is the session held in slots[i]."""
    for i, slot in enumerate(slots):
        want = held[slot]
        assert want is not None, slot
        for got, expected in zip(jax.tree.leaves((batch.observations, batch.actions, batch.rewards, batch.is_alive)),
                                 jax.tree.leaves((want.observations, want.actions, want.rewards, want.is_alive))):
            np.testing.assert_array_equal(np.asarray(got)[:, i], expected)


@given(data=st.data())
def test_session_pool_matches_model(data):
    pool, append, sample, select = pool_functions()
    state = pool.init(at(data.draw(sessions(1, 0)), 0))
    added = []
    for _ in range(data.draw(st.integers(1, 8), label="ops")):
        op = data.draw(st.sampled_from(["append", "sample", "select"]))
        held = [None] * POOL  # slot j mod POOL holds session j: the newest POOL are kept
        for j in range(max(0, len(added) - POOL), len(added)):
            held[j % POOL] = added[j]
        size = min(len(added), POOL)
        if op == "append":
            count = data.draw(st.sampled_from([1, 2, POOL + 2]), label="count")
            batch = data.draw(sessions(count, len(added)))
            state = append(state, batch)
            added += [at(batch, i) for i in range(count)]
            assert int(state.size) == min(len(added), POOL)
        elif op == "sample" and size:
            batch, slots, valid = sample(state, jax.random.key(data.draw(st.integers(0, 2**31 - 1))), DRAWN)
            slots, valid = np.asarray(slots), np.asarray(valid)
            assert len(set(slots.tolist())) == DRAWN
            np.testing.assert_array_equal(valid, np.arange(DRAWN) < size)
            assert batch.rewards.shape == (TICKS, DRAWN) and batch.observations["x"].shape == (TICKS, DRAWN, 3)
            check_session_rows(batch, slots[valid], held)
            if size <= DRAWN:
                assert set(slots[valid].tolist()) == {j for j in range(POOL) if held[j] is not None}
        elif op == "select" and size:
            slots = np.asarray(data.draw(st.lists(st.sampled_from([j for j in range(POOL) if held[j] is not None]),
                                                  min_size=2, max_size=2)), np.int32)
            check_session_rows(select(state, slots), slots, held)


@given(data=st.data())
def test_session_pool_keeps_the_newest(data):
    pool, append, _, _ = pool_functions()
    batch = data.draw(sessions(POOL + 2, 0))
    state = append(pool.init(at(batch, 0)), batch)
    assert int(state.size) == POOL
    np.testing.assert_array_equal(np.sort(state.items.observations["id"][:, 0]), np.arange(2, POOL + 2))
    state = append(state, data.draw(sessions(2, POOL + 2)))
    np.testing.assert_array_equal(np.sort(state.items.observations["id"][:, 0]), np.arange(4, POOL + 4))


def test_session_pool_carries_prev_memory():
    pool, append, sample, select = pool_functions()
    batch = session_batch(POOL + 2, 0, seed=0)
    state = append(pool.init(at(batch, 0)), batch)
    held = {j % POOL: j for j in range(2, POOL + 2)}
    drawn, slots, _ = sample(state, jax.random.key(0), DRAWN)
    # The memory before tick 0 has no time axis: [n, *memory], as fnrl.rollout.replay takes it.
    for got, stored in zip(drawn.prev_memory, batch.prev_memory):
        np.testing.assert_array_equal(got, stored[[held[s] for s in np.asarray(slots)]])
    picked = np.array([3, 0], np.int32)
    for got, stored in zip(select(state, picked).prev_memory, batch.prev_memory):
        np.testing.assert_array_equal(got, stored[[held[s] for s in picked]])


# ----------------------------------------------------------------------------- demo mixing
@functools.lru_cache(maxsize=None)
def marked_buffers():
    """An agent buffer holding ids 0..4 (source 0) and a prioritized demo buffer holding ids
    100..105 (source 1), so each row of a mixed batch tells where it came from. Their `sample`
    is jitted: one compilation per batch size instead of eager op-by-op ones."""
    agent, demo = (b._replace(sample=jax.jit(b.sample, static_argnums=2))
                   for b in (fnrl.uniform_replay(8), fnrl.prioritized_replay(6)))
    agent_state = agent.add(agent.init({"source": np.int32(0), "id": np.int32(0)}),
                            {"source": np.zeros(5, np.int32), "id": np.arange(5, dtype=np.int32)})
    demo_state = demo.add(demo.init({"source": np.int32(0), "id": np.int32(0)}),
                          {"source": np.ones(6, np.int32), "id": np.arange(100, 106, dtype=np.int32)})
    return agent, agent_state, demo, demo_state


# Batches of 2 to 4 split into parts of 1 to 3 rows: few sample sizes to compile.
@given(st.integers(2, 4), st.floats(0.0, 1.0), st.integers(0, 2**31 - 1))
def test_sample_mixture_splits_the_batch(batch_size, fraction, seed):
    agent, agent_state, demo, demo_state = marked_buffers()
    demos = round(fraction * batch_size)
    args = (agent, agent_state, demo, demo_state, jax.random.key(seed), batch_size, fraction)
    if demos in (0, batch_size):
        with pytest.raises(ValueError, match="leaves one source empty"):
            fnrl.sample_mixture(*args)
        return
    batch, info = fnrl.sample_mixture(*args)
    is_demo = np.arange(batch_size) >= batch_size - demos
    np.testing.assert_array_equal(info.is_demo, is_demo)
    np.testing.assert_array_equal(batch["source"], is_demo)
    assert len(info.agent.indices) == batch_size - demos and len(info.demo.indices) == demos
    np.testing.assert_array_equal(batch["id"][~is_demo], agent_state.items["id"][info.agent.indices])
    np.testing.assert_array_equal(batch["id"][is_demo], demo_state.items["id"][info.demo.indices])
    assert np.all(batch["id"][~is_demo] < 5) and np.all(batch["id"][is_demo] >= 100)


@pytest.mark.parametrize("fraction,batch_size,match", [
    (-0.1, 4, "must lie in"), (1.5, 4, "must lie in"), (0.0, 4, "one source empty"), (1.0, 4, "one source empty"),
    (0.1, 4, "one source empty"), (0.9, 4, "one source empty")])
def test_sample_mixture_errors(fraction, batch_size, match):
    agent, agent_state, demo, demo_state = marked_buffers()
    with pytest.raises(ValueError, match=match):
        fnrl.sample_mixture(agent, agent_state, demo, demo_state, jax.random.key(0), batch_size, fraction)


# ----------------------------------------------------------------------------- specs, set_memory
# These tests share one item shape, capacity and batch sizes so the eager ops compile once.
CAPACITY = 6
IDS = np.arange(CAPACITY, dtype=np.int32)


def filled(buffer):
    return buffer.add(buffer.init(np.int32(0)), IDS)


def test_replay_from_spec_builds_tensorforce_memories():
    uniform = fnrl.replay_from_spec({"type": "replay", "capacity": 100})
    assert uniform.capacity == 100 and uniform.update_priorities is None and uniform.lanes == 1
    raw = np.linspace(0.0, 5.0, CAPACITY, dtype=np.float32)
    for kind in ("prioritized_replay", "naive_prioritized_replay"):
        buffer = fnrl.replay_from_spec({"type": kind, "capacity": CAPACITY, "prioritization_weight": 0.5,
                                        "prioritization_constant": 0.25})
        assert buffer.capacity == CAPACITY
        state = buffer.update_priorities(filled(buffer), IDS, raw)
        np.testing.assert_allclose(state.priorities, (raw + 0.25) ** 0.5, rtol=RTOL)
    defaults = fnrl.replay_from_spec({"type": "replay", "capacity": 12, "random_sampling": True}, lanes=3)
    assert defaults.lanes == 3


def test_naive_replay_from_spec_samples_by_priority():
    buffer = fnrl.replay_from_spec({"type": "naive_prioritized_replay", "capacity": CAPACITY})
    state = buffer.update_priorities(filled(buffer), IDS, np.array([0, 3, 0, 1, 0, 0], np.float32))
    items, info = buffer.sample(state, jax.random.key(1), 32)
    assert set(np.asarray(items).tolist()) == {1, 3}  # α=1, ε=0: zero-priority slots never drawn
    np.testing.assert_allclose(info.probabilities, np.where(np.asarray(info.indices) == 1, 0.75, 0.25), rtol=RTOL)


@pytest.mark.parametrize("spec,match", [
    ({"type": "fifo", "capacity": 10}, "type in"),
    ([("type", "replay")], "type in"),
    ({"capacity": 10}, "type in"),
    ({"type": "replay", "capacity": 10, "bogus": 1}, "bogus"),
    ({"type": "replay", "capacity": 10, "prioritization_weight": 0.5}, "prioritization_weight"),
    ({"type": "prioritized_replay", "capacity": 10, "include_next_states": True}, "include_next_states"),
    ({"type": "replay"}, "needs a `capacity`"),
    ({"type": "replay", "capacity": 10, "random_sampling": False}, "sample_sequences"),
])
def test_replay_from_spec_errors(spec, match):
    with pytest.raises(ValueError, match=match):
        fnrl.replay_from_spec(spec)


@pytest.mark.parametrize("count", [2, 6, 9])
@pytest.mark.parametrize("prioritized", [False, True], ids=["uniform", "prioritized"])
def test_set_memory_replaces_contents(count, prioritized):
    buffer = fnrl.prioritized_replay(CAPACITY) if prioritized else fnrl.uniform_replay(CAPACITY)
    state = filled(buffer)
    if prioritized:  # skewed priorities that a fresh memory must forget
        state = buffer.update_priorities(state, IDS, IDS * 10.0)
    new = np.arange(100, 100 + count, dtype=np.int32)
    state = set_memory(buffer, state, new)
    kept = new[-CAPACITY:]
    assert int(state.size) == len(kept) and int(state.position) == count % CAPACITY
    stored = np.asarray(state.items)[np.asarray(state.sampleable)]
    np.testing.assert_array_equal(np.sort(stored), kept)
    # The j-th new item sits in slot j mod capacity, as if added to an empty ring.
    np.testing.assert_array_equal(np.asarray(state.items)[np.arange(count)[-CAPACITY:] % CAPACITY], kept)
    items, info = buffer.sample(state, jax.random.key(0), 32)
    assert np.isin(np.asarray(items), kept).all()
    np.testing.assert_allclose(info.probabilities, 1.0 / len(kept), rtol=RTOL)
    assert float(state.max_priority) == 1.0
