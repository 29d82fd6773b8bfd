"""fnrl.replay's item buffers (steps=False) against a plain Python ring-buffer model."""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from scipy import stats  # a jax dependency, so always installed

import fnrl
from fnrl.replay import ReplayBuffer, ReplayState, _tree_find

SAMPLE_SIZE = 8
UPDATE_SIZE = 5
ROBUST_CAPACITY, ROBUST_FILLED, ROBUST_STEPS, ROBUST_BATCH = 1000, 700, 8192, 128


def make_items(ids) -> dict:
    """A batch of items whose every leaf encodes the item's id, so a misplaced slot shows."""
    ids = np.asarray(ids, np.int64)
    return {
        "obs": np.stack([ids, ids + 0.5, -ids], -1).astype(np.float32),
        "count": ids.astype(np.int32),
        "pixels": ((ids[:, None] * 7 + np.arange(4)) % 256).astype(np.uint8).reshape(-1, 2, 2),
    }


def one_item(i: int) -> dict:
    return {k: v[0] for k, v in make_items([i]).items()}


def assert_items_equal(actual, ids):
    expected = make_items(ids)
    assert set(actual) == set(expected)
    for name, leaf in expected.items():
        np.testing.assert_array_equal(np.asarray(actual[name]), leaf, err_msg=name)


def assert_tree_consistent(tree: np.ndarray):
    """Every internal node is exactly the float32 sum of its two children."""
    tree = np.asarray(tree, np.float32)
    np.testing.assert_array_equal(tree[1: len(tree) // 2], tree[2::2] + tree[3::2])


def np_tree(leaves: np.ndarray) -> np.ndarray:
    """A float32 sum tree built bottom-up from the formula (node k = children 2k + 2k+1)."""
    tree = np.zeros(2 * len(leaves), np.float32)
    tree[len(leaves):] = leaves
    for node in reversed(range(1, len(leaves))):
        tree[node] = tree[2 * node] + tree[2 * node + 1]
    return tree


class RingModel:
    """The reference: a list of item ids written one at a time over the oldest, with (p + ε)^α
    priorities and new items at the largest priority applied so far."""

    def __init__(self, capacity: int, alpha: float, epsilon: float):
        self.capacity, self.alpha, self.epsilon = capacity, alpha, epsilon
        self.ids = np.full(capacity, -1, np.int64)
        self.priorities = np.ones(capacity)
        self.max_priority = 1.0
        self.position = self.size = 0

    def add(self, ids):
        for i in ids:
            self.ids[self.position] = i
            self.priorities[self.position] = self.max_priority
            self.position = (self.position + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def update(self, indices, priorities):
        final = dict(zip(indices, priorities))  # a later repeat replaces an earlier one
        for i, p in final.items():
            self.priorities[i] = (max(float(p), 0.0) + self.epsilon) ** self.alpha
        self.max_priority = max([self.max_priority] + [self.priorities[i] for i in final])

    @property
    def filled(self) -> np.ndarray:
        return self.ids >= 0

    def weights(self) -> np.ndarray:
        return np.where(self.filled, self.priorities, 0.0)


# ----------------------------------------------------------------------------- stateful machines
class Setup(NamedTuple):
    """A buffer with its functions jitted once per test module (shapes stay fixed per rule)."""

    buffer: ReplayBuffer
    add: Callable
    sample: Callable
    update: Optional[Callable]
    alpha: float
    beta: float
    epsilon: float
    batch_sizes: tuple


def setup(factory, capacity: int, alpha: float = 1.0, beta: float = 0.0, epsilon: float = 0.0) -> Setup:
    prioritized = factory is not fnrl.uniform_replay
    if prioritized:
        buffer = factory(capacity, alpha=alpha, beta=beta, epsilon=epsilon)
    else:  # uniform replay acts as α = 1, β = 0, ε = 0 over unit priorities
        buffer, alpha, beta, epsilon = factory(capacity), 1.0, 0.0, 0.0
    return Setup(
        buffer=buffer,
        add=jax.jit(buffer.add, donate_argnums=0),
        sample=jax.jit(buffer.sample, static_argnums=2),
        update=jax.jit(buffer.update_priorities) if prioritized else None,
        alpha=alpha, beta=beta, epsilon=epsilon,
        batch_sizes=(3, capacity + 2),  # the last overflows the ring within one add
    )


UNIFORM = setup(fnrl.uniform_replay, 5)
PRIORITIZED = setup(fnrl.prioritized_replay, 6, alpha=0.6, beta=0.4)
NAIVE = setup(fnrl.naive_prioritized_replay, 7, alpha=1.0, beta=0.7)


class ReplayMachine(RuleBasedStateMachine):
    setup: Setup

    def __init__(self):
        super().__init__()
        s = self.setup
        self.model = RingModel(s.buffer.capacity, s.alpha, s.epsilon)
        self.state = s.buffer.init(one_item(0))
        self.next_id = 0

    def _add(self, count: int, single: bool):
        ids = list(range(self.next_id, self.next_id + count))
        self.next_id += count
        old = self.state
        self.state = self.setup.add(old, one_item(ids[0]) if single else make_items(ids))
        # Donation: the add wrote into the old state's buffers instead of copying them.
        assert all(leaf.is_deleted() for leaf in jax.tree.leaves(old))
        self.model.add(ids)

    @rule()
    def add_one(self):
        self._add(1, single=True)

    @rule(data=st.data())
    def add_batch(self, data):
        self._add(data.draw(st.sampled_from(self.setup.batch_sizes)), single=False)

    @precondition(lambda self: self.model.weights().sum() > 0)
    @rule(seed=st.integers(0, 2**31 - 1))
    def sample(self, seed):
        batch, info = self.setup.sample(self.state, jax.random.PRNGKey(seed), SAMPLE_SIZE)
        slots = np.asarray(info.indices)
        weights = self.model.weights()
        assert np.all((slots >= 0) & (slots < self.model.capacity)), slots
        assert np.all(self.model.filled[slots]) and np.all(weights[slots] > 0), (slots, weights)
        assert_items_equal(batch, self.model.ids[slots])
        probabilities = weights[slots] / weights.sum()
        np.testing.assert_allclose(info.probabilities, probabilities, rtol=1e-5)
        importance = (self.model.size * probabilities) ** -self.setup.beta  # uniform: β = 0
        np.testing.assert_allclose(info.weights, importance / importance.max(), rtol=1e-4)

    @invariant()
    def matches_model(self):
        state, model = jax.device_get(self.state), self.model
        assert int(state.position) == model.position
        assert int(state.size) == model.size
        np.testing.assert_array_equal(state.sampleable, model.filled)
        assert_items_equal({k: v[model.filled] for k, v in state.items.items()}, model.ids[model.filled])
        np.testing.assert_allclose(state.priorities, model.priorities, rtol=2e-6)
        np.testing.assert_allclose(state.max_priority, model.max_priority, rtol=2e-6)
        leaves = len(state.tree) // 2
        np.testing.assert_array_equal(state.tree[leaves: leaves + model.capacity],
                                      np.where(state.sampleable, state.priorities, 0.0))
        np.testing.assert_array_equal(state.tree[leaves + model.capacity:], 0.0)
        assert_tree_consistent(state.tree)
        np.testing.assert_allclose(state.tree[1], model.weights().sum(), rtol=1e-5)
        can = self.setup.buffer.can_sample
        # Sampling needs a stored item of positive priority: all-zero priorities leave nothing to draw.
        assert bool(can(self.state)) == (model.size > 0 and model.weights().sum() > 0)
        assert bool(can(self.state, model.size + 1)) is False


class PrioritizedMachine(ReplayMachine):
    @rule(data=st.data())
    def update_priorities(self, data):
        # Indices reach slots that may still be empty (those must stay unsampleable) and repeat.
        slot = st.integers(0, self.model.capacity - 1)
        indices = data.draw(st.lists(slot, min_size=UPDATE_SIZE, max_size=UPDATE_SIZE), "indices")
        priority = st.just(0.0) | st.floats(2.0**-10, 50.0, width=32)
        priorities = data.draw(st.lists(priority, min_size=UPDATE_SIZE, max_size=UPDATE_SIZE), "priorities")
        self.state = self.setup.update(self.state, np.asarray(indices, np.int32), np.asarray(priorities, np.float32))
        self.model.update(indices, priorities)


MACHINE_SETTINGS = settings(max_examples=15, stateful_step_count=20, deadline=None)


@MACHINE_SETTINGS
class UniformMachine(ReplayMachine):
    setup = UNIFORM


@MACHINE_SETTINGS
class TreeMachine(PrioritizedMachine):
    setup = PRIORITIZED


@MACHINE_SETTINGS
class NaiveMachine(PrioritizedMachine):
    setup = NAIVE


TestUniformReplay = UniformMachine.TestCase
TestPrioritizedReplay = TreeMachine.TestCase
TestNaivePrioritizedReplay = NaiveMachine.TestCase


# ----------------------------------------------------------------------------- sampling statistics
PRIORITIZED_FACTORIES = pytest.mark.parametrize(
    "factory", [fnrl.prioritized_replay, fnrl.naive_prioritized_replay], ids=["tree", "naive"])
ALL_FACTORIES = pytest.mark.parametrize(
    "factory", [fnrl.uniform_replay, fnrl.prioritized_replay, fnrl.naive_prioritized_replay],
    ids=["uniform", "tree", "naive"])


@PRIORITIZED_FACTORIES
def test_sampling_frequencies_follow_priorities(factory):
    capacity, filled, draws, alpha, beta = 20, 16, 50_000, 0.7, 0.9
    buffer = factory(capacity, alpha=alpha, beta=0.4, epsilon=0.0)
    raw = np.array([0.0, 1.0, 2.0, 0.0, 5.0, 0.5, 3.0, 0.0, 1.0, 8.0, 0.25, 0.0, 4.0, 2.5, 1.5, 6.0], np.float32)

    @jax.jit
    def draw(key):
        state = buffer.add(buffer.init(one_item(0)), make_items(np.arange(filled)))
        state = buffer.update_priorities(state, jnp.arange(filled), raw)
        return buffer.sample(state, key, draws, beta)  # overrides the buffer's β, as annealing does

    _, info = draw(jax.random.PRNGKey(7))
    slots = np.asarray(info.indices)
    counts = np.bincount(slots, minlength=capacity)
    assert len(counts) == capacity  # no slot index past the buffer
    # Zero-priority and empty slots are never drawn.
    assert counts[:filled][raw == 0].sum() == 0 and counts[filled:].sum() == 0
    powered = np.zeros(capacity)
    powered[:filled] = raw.astype(np.float64) ** alpha
    expected = powered / powered.sum()
    positive = powered > 0
    assert stats.chisquare(counts[positive], draws * expected[positive]).pvalue > 1e-3
    # The same counts are far from uniform, so the check above has power.
    assert stats.chisquare(counts[positive]).pvalue < 1e-6
    np.testing.assert_allclose(info.probabilities, expected[slots], rtol=1e-5)
    importance = (filled * expected[slots]) ** -beta
    np.testing.assert_allclose(info.weights, importance / importance.max(), rtol=1e-4)


ROBUST_BUFFER = fnrl.prioritized_replay(ROBUST_CAPACITY, alpha=1.0, epsilon=0.0)


@jax.jit
def hammer_priorities(state, key):
    """10^6 priority updates (ROBUST_STEPS batches of ROBUST_BATCH indices, repeats included) of
    magnitude 1e-8 … 1e4 with ~10% exact zeros; returns the state and every index/priority used."""
    index_key, scale_key, zero_key = jax.random.split(key, 3)
    shape = (ROBUST_STEPS, ROBUST_BATCH)
    indices = jax.random.randint(index_key, shape, 0, ROBUST_CAPACITY, jnp.int32)
    magnitudes = 10.0 ** jax.random.uniform(scale_key, shape, minval=-8.0, maxval=4.0)
    priorities = jnp.where(jax.random.uniform(zero_key, shape) < 0.1, 0.0, magnitudes)

    def step(state, update):
        return ROBUST_BUFFER.update_priorities(state, *update), None

    state, _ = jax.lax.scan(step, state, (indices, priorities))
    return state, indices, priorities


@pytest.fixture(scope="module")
def hammered():
    """A buffer filled to ROBUST_FILLED of ROBUST_CAPACITY slots after 10^6 priority updates, and
    the leaf each slot must hold (the last priority written to it; 0 where empty)."""
    state = ROBUST_BUFFER.add(ROBUST_BUFFER.init({"id": np.zeros((), np.int32)}),
                              {"id": np.arange(ROBUST_FILLED, dtype=np.int32)})
    state, indices, priorities = jax.device_get(hammer_priorities(state, jax.random.PRNGKey(3)))
    # The last write to each slot wins, across the whole stream.
    flat_indices, flat_priorities = indices.ravel()[::-1], priorities.ravel()[::-1]
    slots, last = np.unique(flat_indices, return_index=True)
    final = np.ones(ROBUST_CAPACITY, np.float32)
    final[slots] = flat_priorities[last]
    return state, final, np.where(np.arange(ROBUST_CAPACITY) < ROBUST_FILLED, final, 0.0)


def test_million_updates_keep_the_tree_exact(hammered):
    state, final, leaves_expected = hammered
    np.testing.assert_allclose(state.priorities, final, rtol=1e-6)
    leaves = len(state.tree) // 2
    np.testing.assert_allclose(state.tree[leaves: leaves + ROBUST_CAPACITY], leaves_expected, rtol=1e-6)
    np.testing.assert_array_equal(state.tree[leaves + ROBUST_CAPACITY:], 0.0)
    assert_tree_consistent(state.tree)
    # Pairwise float32 sums of non-negative leaves err by at most depth · ε relative.
    depth = int(np.log2(leaves))
    exact = np.sum(state.tree[leaves:].astype(np.float64))
    np.testing.assert_allclose(state.tree[1], exact, rtol=depth * np.finfo(np.float32).eps)


@PRIORITIZED_FACTORIES
def test_million_updates_never_sample_empty_or_zero_slots(hammered, factory):
    state, _, leaves_expected = hammered
    assert (leaves_expected == 0).sum() > ROBUST_CAPACITY - ROBUST_FILLED  # zero-priority stored slots exist
    # Both kinds share the state layout, so the naive sampler reads the same hammered tree.
    sampler = factory(ROBUST_CAPACITY, alpha=1.0, epsilon=0.0)
    _, info = jax.jit(sampler.sample, static_argnums=2)(state, jax.random.PRNGKey(4), 100_000)
    drawn = np.asarray(info.indices)
    assert np.all(drawn < ROBUST_FILLED), np.unique(drawn[drawn >= ROBUST_FILLED])
    assert np.all(leaves_expected[drawn] > 0), np.unique(drawn[leaves_expected[drawn] == 0])
    assert np.all(np.asarray(info.probabilities) > 0)


def test_naive_sampler_never_draws_a_zero_priority_slot_in_a_million_draws():
    # The tree sampler is held to the same in the hammered test; this targets the naive one's CDF,
    # on a full buffer built from ReplayState's documented layout (no add/update programs to compile).
    capacity = 16384
    buffer = fnrl.naive_prioritized_replay(capacity, alpha=1.0, epsilon=0.0)
    priorities = (10.0 ** np.random.default_rng(0).uniform(-8.0, 4.0, capacity)).astype(np.float32)
    priorities[::2] = 0.0  # many zero slots, each next to float32 prefix sums that may disagree
    state = ReplayState(items={"id": np.arange(capacity, dtype=np.int32)}, position=np.int32(0),
                        size=np.int32(capacity), tree=np_tree(priorities), priorities=priorities,
                        sampleable=np.ones(capacity, bool), max_priority=np.float32(priorities.max()))
    _, info = jax.jit(buffer.sample, static_argnums=2)(state, jax.random.PRNGKey(0), 1_000_000)
    drawn = np.asarray(info.indices)
    assert np.all(priorities[drawn] > 0), np.unique(drawn[priorities[drawn] == 0])


# sample's uniform targets cannot be steered onto a boundary, so these drive the descent directly.
find_leaf = jax.jit(_tree_find)


@given(hnp.arrays(np.float32, 16, elements=st.sampled_from([0.0, 1.0, 2.0, 3.0, 7.0])).filter(lambda w: w.sum() > 0))
def test_tree_find_matches_the_cumulative_sum_search(weights):
    # Small integer weights keep every sum and descent step exact, so the slot must be the one
    # whose interval [cum_{i-1}, cum_i) holds the target, boundaries included.
    targets = (np.arange(256) * 0.5 % weights.sum()).astype(np.float32)
    expected = np.searchsorted(np.cumsum(weights.astype(np.float64)), targets, side="right")
    np.testing.assert_array_equal(find_leaf(np_tree(weights), targets), expected)


@given(hnp.arrays(np.float64, 16, elements=st.floats(-8.0, 4.0)), hnp.arrays(bool, 16))
def test_tree_find_never_lands_on_zero_weight_even_past_the_total(exponents, zero):
    weights = np.where(zero, 0.0, 10.0 ** exponents).astype(np.float32)
    if weights.sum() == 0:
        weights[-1] = 1.0
    tree = np_tree(weights)
    # Targets on and just below every float32 prefix-sum boundary, at the total and past it:
    # where rounding can push a descent's target to or beyond a node's sum.
    boundaries = np.cumsum(weights, dtype=np.float32)
    targets = np.concatenate([boundaries, np.nextafter(boundaries, np.float32(0)), tree[1:2] * 2, [0.0]])
    slots = np.asarray(find_leaf(tree, targets.astype(np.float32)))
    assert np.all(weights[slots] > 0), (slots, weights[slots])


# ----------------------------------------------------------------------------- can_sample, vmap, jit
# The machines' buffers and jitted functions again, so no shape is compiled twice.
KINDS = pytest.mark.parametrize("kind", [UNIFORM, PRIORITIZED, NAIVE], ids=["uniform", "tree", "naive"])


@KINDS
def test_can_sample_counts_stored_items(kind):
    buffer = kind.buffer
    state = buffer.init(one_item(0))
    assert not bool(buffer.can_sample(state)) and not bool(buffer.can_sample(state, 1))
    for adds in (1, 2, 3):  # the last add overflows the ring
        state = kind.add(state, make_items(np.arange(3)))
        stored = min(3 * adds, buffer.capacity)
        assert bool(buffer.can_sample(state, stored)) and not bool(buffer.can_sample(state, stored + 1))


@pytest.mark.parametrize("kind", [PRIORITIZED, NAIVE], ids=["tree", "naive"])
def test_all_zero_priorities_either_block_sampling_or_draw_stored_slots(kind):
    state = kind.add(kind.buffer.init(one_item(0)), make_items([1, 2, 3]))
    state = kind.update(state, np.array([0, 1, 2, 0, 1], np.int32), np.zeros(UPDATE_SIZE, np.float32))
    if bool(kind.buffer.can_sample(state)):
        _, info = kind.sample(state, jax.random.PRNGKey(0), SAMPLE_SIZE)
        assert np.all(np.asarray(info.indices) < 3), info.indices
        assert np.all(np.isfinite(info.weights)), info.weights


@KINDS
def test_vmap_over_buffers_samples_each_buffers_own_contents(kind):
    buffer, count = kind.buffer, 4
    ids = np.arange(3 * count).reshape(3, count) + 100 * np.arange(1, 4)[:, None]
    stacked = jax.tree.map(lambda *xs: np.stack(xs), *[make_items(row) for row in ids])
    # Buffer b keeps a positive priority on slot b only, so its prioritized draws must all be slot b.
    priorities = (np.arange(count)[None] == np.arange(3)[:, None]).astype(np.float32)

    def fill_and_sample(example, items, priorities, key):
        state = buffer.add(buffer.init(example), items)
        if buffer.update_priorities is not None:
            state = buffer.update_priorities(state, jnp.arange(count), priorities)
        return state, buffer.sample(state, key, SAMPLE_SIZE)

    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    examples = jax.tree.map(lambda x: x[:, 0], stacked)
    states, (batch, info) = jax.jit(jax.vmap(fill_and_sample))(examples, stacked, priorities, keys)
    for b in range(3):
        slots = np.asarray(info.indices[b])
        assert np.all(slots < count)
        if buffer.update_priorities is not None:
            np.testing.assert_array_equal(slots, b)
        assert_items_equal({k: v[b] for k, v in batch.items()}, ids[b][slots])
        _, own = kind.sample(jax.tree.map(lambda x: x[b], states), keys[b], SAMPLE_SIZE)
        np.testing.assert_array_equal(slots, own.indices)
        np.testing.assert_allclose(info.probabilities[b], own.probabilities, rtol=1e-6)
        np.testing.assert_allclose(info.weights[b], own.weights, rtol=1e-6)


@KINDS
def test_jit_and_eager_sample_agree(kind):
    state = kind.add(kind.add(kind.buffer.init(one_item(0)), make_items([1, 2, 3])), make_items([4, 5, 6]))
    if kind.update is not None:
        state = kind.update(state, np.array([0, 2, 3, 5, 2], np.int32), np.array([0.0, 4.0, 0.3, 9.0, 1.0], np.float32))
    key = jax.random.PRNGKey(11)
    eager = kind.buffer.sample(state, key, SAMPLE_SIZE)
    jitted = kind.sample(state, key, SAMPLE_SIZE)
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
        np.testing.assert_array_equal(a, b)


def test_update_priorities_applies_epsilon_and_alpha():
    buffer = fnrl.prioritized_replay(4, alpha=0.6, epsilon=0.01)

    @jax.jit
    def fill(state):
        state = buffer.add(state, make_items([1, 2]))
        return buffer.update_priorities(state, jnp.array([0, 1, 3]), jnp.array([0.0, 2.0, 5.0]))

    state = fill(buffer.init(one_item(0)))
    expected = np.array([0.01 ** 0.6, 2.01 ** 0.6, 1.0, 5.01 ** 0.6])
    np.testing.assert_allclose(state.priorities, expected, rtol=1e-6)
    np.testing.assert_allclose(state.max_priority, 5.01 ** 0.6, rtol=1e-6)
    # Slot 3 is empty: its priority is kept for later but it weighs nothing in the tree.
    np.testing.assert_allclose(state.tree[1], expected[:2].sum(), rtol=1e-6)


# ----------------------------------------------------------------------------- errors
@ALL_FACTORIES
@pytest.mark.parametrize("use_jit", [False, True], ids=["nojit", "jit"])
def test_add_rejects_malformed_items(factory, use_jit):
    buffer = factory(4)
    add = jax.jit(buffer.add) if use_jit else buffer.add
    state = buffer.init(one_item(0))
    good = make_items([1, 2])
    with pytest.raises(ValueError, match=r"argument `items` must have the buffer's structure"):
        add(state, {"obs": good["obs"], "count": good["count"]})
    with pytest.raises(ValueError, match=r"`items` leaf \['pixels'\] must have dtype uint8, got int32"):
        add(state, {**good, "pixels": good["pixels"].astype(np.int32)})
    with pytest.raises(ValueError, match=r"`items` leaf \['obs'\] must have shape \(3,\)"):
        add(state, {**good, "obs": np.zeros((2, 4), np.float32)})
    with pytest.raises(ValueError, match=r"`items` leaves mix one item and batches, or batch sizes \[2, 3\]"):
        add(state, {**good, "count": np.zeros(3, np.int32)})
    with pytest.raises(ValueError, match=r"`items` leaves mix one item and batches"):
        add(state, {**good, "count": np.zeros((), np.int32)})


@ALL_FACTORIES
def test_constructor_and_sample_reject_bad_sizes(factory):
    with pytest.raises(ValueError, match=r"`capacity` \(6\) must be a multiple of `lanes` \(4\)"):
        factory(6, lanes=4)
    for bad in (0, -3, 2.0, True):
        with pytest.raises(ValueError, match=r"argument `capacity` must be a positive int"):
            factory(bad)
    buffer = factory(4)
    state = buffer.init(one_item(0))
    for bad in (0, -1):
        with pytest.raises(ValueError, match=r"argument `batch_size` must be a positive int"):
            buffer.sample(state, jax.random.PRNGKey(0), bad)


@PRIORITIZED_FACTORIES
def test_update_priorities_rejects_mismatched_shapes(factory):
    buffer = factory(4)
    state = buffer.init(one_item(0))
    with pytest.raises(ValueError, match=r"`priorities` must have the shape of `indices` \(2,\), got \(3,\)"):
        buffer.update_priorities(state, np.array([0, 1]), np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"`priorities` must have the shape of `indices`"):
        buffer.update_priorities(state, np.array([0, 1]), np.float32(1.0))
    with pytest.raises(ValueError, match=r"`indices` must be a rank-1 int array, got int\d+\(2, 1\)"):
        buffer.update_priorities(state, np.array([[0], [1]]), np.ones((2, 1), np.float32))
    with pytest.raises(ValueError, match=r"`indices` must be a rank-1 int array, got float32"):
        buffer.update_priorities(state, np.array([0.0, 1.0], np.float32), np.ones(2, np.float32))
