"""Experience replay as pure functions over a fixed-capacity pytree state.

Every buffer is a set of functions in optax's style (`ReplayBuffer`): `init(example_item)` gives
a `ReplayState` whose arrays hold `capacity` items; `add(state, items)` writes one item or a batch
over the oldest ones; `sample(state, key, batch_size)` draws a batch with replacement and a
`SampleInfo` (slots, probabilities, importance weights); prioritized buffers also have
`update_priorities(state, indices, priorities)`. All of them jit, vmap over independent buffers
and take a donated state (`jax.jit(buffer.add, donate_argnums=0)`), so an add writes in place.

Sampling runs through an array sum tree (one float32 leaf per slot, parents recomputed from their
children on every write so no rounding drift accumulates, and a descent that never enters a
zero-weight subtree). Uniform replay is the same tree with weights 0 or 1, which float32 sums
exactly up to 2^24 slots.

Two kinds of item:
- any pytree (`steps=False`): each slot is sampled as stored (a transition with its own next
  observation, a whole session, ...);
- env steps (`steps=True`, items are `Step`s): each observation is stored once and `sample`
  returns `Transition`s whose next observation is read from the same env lane `n_step` rows later,
  with the n-step return assembled at sample time (`n_step_transition`). Lanes are interleaved:
  a buffer with `lanes=L` takes adds of whole rows (`[k * L, ...]`, one row per vectorized env
  step) and slot `s`'s successor is `s + L`.

Papers: Lin (1992) experience replay; Mnih et al. (2015) DQN; Schaul et al. (2016) "Prioritized
Experience Replay" (proportional variant, importance weights); Hester et al. (2018) DQfD
(demonstration mixing); Sutton & Barto (2018) ch. 7 (n-step returns). Seeds: TensorForce `Replay`,
`PrioritizedReplay`, `NaivePrioritizedReplay`, `SumTree`; AgentNet `SessionPoolEnvironment`.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from fnrl._validation import check_positive_int
from fnrl.types import Array, PRNGKey, PyTree


# ------------------------------------------------------------------------------------ types
class Step(NamedTuple):
    """One env step of one lane, as stored by a `steps=True` buffer (the fields of
    `fnrl.rollout.Trajectory` at one tick).

    `observation` is o_i, the one the action was chosen on; `reward`, `terminated`, `truncated`
    describe what `action` led to (r_i and o_{i+1}); `valid` is False on the reset step after a
    done one (the env ignored the action); `extras` is any per-step pytree carried into the
    sampled `Transition` (behaviour log-probs, an is-demo flag, ...)."""

    observation: PyTree
    action: PyTree
    reward: Array
    terminated: Array
    truncated: Array
    valid: Array
    extras: PyTree = ()


class Transition(NamedTuple):
    """An n-step transition: from `observation` and `action`, the discounted reward sum of
    `steps` env steps, then `next_observation` weighted by `discount` (γ^steps, 0 after a
    termination). `extras` are the first step's."""

    observation: PyTree
    action: PyTree
    reward: Array
    discount: Array
    next_observation: PyTree
    steps: Array
    extras: PyTree = ()


class ReplayState(NamedTuple):
    """`items` leaves are `[capacity, ...]`; slot `position` is written next; `size` slots hold an
    item; `tree` is the sum tree of sampling weights (`tree[1]` the total, leaf of slot s at
    `tree[leaves + s]`); `priorities[s]` is slot s's (α-powered) priority and `sampleable[s]`
    whether s may be drawn now; new items get `max_priority`."""

    items: PyTree
    position: Array
    size: Array
    tree: Array
    priorities: Array
    sampleable: Array
    max_priority: Array


class SampleInfo(NamedTuple):
    """Which slots a batch came from, each one's probability of being drawn, and its importance
    weight (1 for uniform replay)."""

    indices: Array
    probabilities: Array
    weights: Array


class ReplayBuffer(NamedTuple):
    """A replay memory's functions (optax-style). `update_priorities` is None for uniform replay."""

    init: Callable[[PyTree], ReplayState]
    add: Callable[[ReplayState, PyTree], ReplayState]
    sample: Callable[..., tuple[PyTree, SampleInfo]]
    sample_sequences: Callable[[ReplayState, PRNGKey, int, int], tuple[PyTree, Array]]
    can_sample: Callable[[ReplayState, int], Array]
    update_priorities: Optional[Callable[[ReplayState, Array, Array], ReplayState]]
    capacity: int
    lanes: int


# ------------------------------------------------------------------------------------ sum tree
def _leaf_count(capacity: int) -> int:
    return 1 << max(0, math.ceil(math.log2(capacity)))


def _tree_set(tree: Array, slots: Array, values: Array, write: Array | None = None) -> Array:
    """Writes leaf values and recomputes every ancestor as the sum of its two children.

    Recomputing (rather than adding deltas) keeps each parent exactly the float32 sum of its
    children however many updates happen, so the tree never drifts from its leaves. `slots`
    must not repeat where `write` (default: everywhere) is True; the others are skipped."""
    size = tree.shape[0]
    leaves = size // 2
    nodes = leaves + slots
    skip = 0 if write is None else jnp.where(write, 0, size)  # pushed out of bounds: dropped
    tree = tree.at[nodes + skip].set(values, mode="drop")
    for _ in range(int(math.log2(leaves))):
        nodes = nodes // 2
        sums = tree[2 * nodes] + tree[2 * nodes + 1]
        tree = tree.at[nodes + skip].set(sums, mode="drop")
    return tree


def _tree_find(tree: Array, targets: Array) -> Array:
    """The leaf (slot) whose cumulative weight interval holds each target in [0, total).

    At each node the descent goes right when the target passes the left sum, but never into a
    child of zero weight, so it always ends on a leaf of positive weight when the total is
    positive, even where rounding puts a target at or beyond a node's sum."""
    leaves = tree.shape[0] // 2
    nodes = jnp.ones(targets.shape, jnp.int32)
    for _ in range(int(math.log2(leaves))):
        left, right = tree[2 * nodes], tree[2 * nodes + 1]
        go_right = ((targets >= left) & (right > 0)) | (left <= 0)
        targets = jnp.where(go_right, targets - left, targets)
        nodes = 2 * nodes + go_right.astype(jnp.int32)
    return nodes - leaves


def _last_occurrence(indices: Array) -> Array:
    """True where no later entry holds the same index (so a batch write keeps the last value)."""
    order = jnp.argsort(indices, stable=True)  # equal indices stay in batch order
    ordered = indices[order]
    last = jnp.concatenate([ordered[1:] != ordered[:-1], jnp.ones((1,), bool)])
    return jnp.zeros(indices.shape, bool).at[order].set(last)


# ------------------------------------------------------------------------------------ checks
def _check_indices(fn: str, indices: Any) -> Array:
    """`indices` as an array of slots, which must be rank 1 and of an integer dtype."""
    indices = jnp.asarray(indices)
    if indices.ndim != 1 or not jnp.issubdtype(indices.dtype, jnp.integer):
        raise ValueError(f"{fn}: `indices` must be a rank-1 int array, got {indices.dtype}{tuple(indices.shape)}")
    return indices


def _check_items(fn: str, stored: PyTree, items: PyTree) -> tuple[PyTree, int]:
    """`items` as a batch of arrays (one unbatched item gets a leading axis of 1), and its size.

    Every leaf must have the stored leaf's dtype and either its item shape (one item) or a
    leading batch axis before it (the same length on every leaf)."""
    if jax.tree.structure(stored) != jax.tree.structure(items):
        raise ValueError(f"{fn}: argument `items` must have the buffer's structure "
                         f"{jax.tree.structure(stored)}, got {jax.tree.structure(items)}")
    counts, single = set(), set()
    for (path, s), x in zip(jax.tree_util.tree_flatten_with_path(stored)[0], jax.tree.leaves(items)):
        x = jnp.asarray(x)
        where = jax.tree_util.keystr(path) or "(root)"
        if x.dtype != s.dtype:
            raise ValueError(f"{fn}: `items` leaf {where} must have dtype {s.dtype}, got {x.dtype}")
        if x.shape == s.shape[1:]:
            single.add(True)
        elif x.shape[1:] == s.shape[1:] and x.ndim == s.ndim:
            single.add(False)
            counts.add(x.shape[0])
        else:
            raise ValueError(f"{fn}: `items` leaf {where} must have shape {s.shape[1:]} (one item) or "
                             f"[n, *{s.shape[1:]}] (a batch), got {x.shape}")
    if len(single) > 1 or len(counts) > 1:
        raise ValueError(f"{fn}: `items` leaves mix one item and batches, or batch sizes {sorted(counts)}")
    one = single == {True}
    arrays = jax.tree.map(lambda s, x: jnp.asarray(x)[None] if one else jnp.asarray(x), stored, items)
    return arrays, 1 if one else counts.pop()


# ------------------------------------------------------------------------------------ n-step
def n_step_transition(window: Step, discount: float | Array) -> Transition:
    """The n-step transition starting at row 0 of a time-major window of `n + 1` steps.

        m = min(n, 1 + first k with terminated_k or truncated_k)
        R = Σ_{k<m} γ^k r_k,    discount = γ^m · (1 − terminated_{m−1}),    next = o_m

    A truncation ends the sum but bootstraps (o_m is then the final observation, which the
    envpool-style reset step stored); a termination ends it with discount 0. Whether row 0 itself
    is a real transition is `window.valid[0]` (False on a reset step). Rows are `[n + 1, ...]`;
    any trailing batch shape broadcasts. Sutton & Barto (2018), eq. 7.1.
    """
    horizon = window.reward.shape[0] - 1
    if horizon < 1:
        raise ValueError(f"n_step_transition: `window` needs n + 1 >= 2 rows, got {horizon + 1}")
    done = (window.terminated | window.truncated)[:horizon]
    # γ in the rewards' float dtype; int rewards get float32 (γ = 0.9 as an int is 0).
    dtype = window.reward.dtype if jnp.issubdtype(window.reward.dtype, jnp.floating) else jnp.float32
    gamma = jnp.asarray(discount, dtype)
    # alive[k]: no done among rows 0..k-1, so reward k belongs to the sum.
    alive = jnp.concatenate([jnp.ones_like(done[:1]), ~done[:-1]], axis=0)
    alive = jnp.cumprod(alive.astype(jnp.int32), axis=0).astype(bool)
    steps = jnp.sum(alive, axis=0)
    powers = gamma ** jnp.arange(horizon, dtype=dtype)
    powers = powers.reshape((horizon,) + (1,) * (window.reward.ndim - 1))
    reward = jnp.sum(jnp.where(alive, powers * window.reward[:horizon], 0.0), axis=0)
    last = jnp.take_along_axis(window.terminated[:horizon], (steps - 1)[None], axis=0)[0]
    bootstrap = jnp.where(last, 0.0, gamma ** steps.astype(dtype))

    def at_steps(x):
        index = steps.reshape(steps.shape + (1,) * (x.ndim - 1 - steps.ndim))
        return jnp.take_along_axis(x, jnp.broadcast_to(index, x.shape[1:])[None], axis=0)[0]

    return Transition(
        observation=jax.tree.map(lambda x: x[0], window.observation),
        action=jax.tree.map(lambda x: x[0], window.action),
        reward=reward, discount=bootstrap,
        next_observation=jax.tree.map(at_steps, window.observation),
        steps=steps, extras=jax.tree.map(lambda x: x[0], window.extras))


def n_step_transitions(steps: Step, n: int, discount: float | Array) -> tuple[Transition, Array]:
    """Every n-step transition of a time-major stream `[T, ...]` whose window fits: starts
    0 … T − n − 1, as `[T − n, ...]` transitions, with `valid` (False where the start is a
    reset step, which learning must mask out). See `n_step_transition`."""
    n = check_positive_int("n_step_transitions", "n", n)
    length = steps.reward.shape[0]
    if length <= n:
        raise ValueError(f"n_step_transitions: `steps` needs more than n={n} rows, got {length}")
    starts = jnp.arange(length - n)
    windows = jax.tree.map(lambda x: jax.vmap(lambda t: jax.lax.dynamic_slice_in_dim(x, t, n + 1))(starts), steps)
    transitions = jax.vmap(lambda w: n_step_transition(w, discount))(windows)
    return transitions, steps.valid[: length - n]


def trajectory_steps(trajectory: Any, extras: PyTree = ()) -> Step:
    """The `Step` rows of a time-major rollout (`fnrl.rollout.Trajectory`, or anything with its
    observation / action / reward / terminated / truncated / valid fields) of `[T, L, ...]`, flattened
    to `[T * L, ...]` in the order a `lanes=L` buffer takes them (tick by tick, lanes inside a
    tick). `extras` (`[T, L, ...]` leaves) rides along into the sampled transitions."""
    reward = jnp.asarray(trajectory.reward)
    if reward.ndim != 2:
        raise ValueError(f"trajectory_steps: `trajectory.reward` must be time-major [T, L], got shape {reward.shape}")
    rows = reward.shape[0] * reward.shape[1]
    flat = lambda x: jnp.reshape(jnp.asarray(x), (rows,) + jnp.shape(x)[2:])  # noqa: E731
    return jax.tree.map(flat, Step(observation=trajectory.observation, action=trajectory.action,
                                   reward=reward, terminated=trajectory.terminated,
                                   truncated=trajectory.truncated, valid=trajectory.valid, extras=extras))


# ------------------------------------------------------------------------------------ buffers
def _make(fn: str, capacity: int, *, lanes: int, steps: bool, n_step: int, discount: Optional[float],
          keep_terminal_states: bool, alpha: float, beta: float, epsilon: float, prioritized: bool,
          tree_sampling: bool = True) -> ReplayBuffer:
    capacity = check_positive_int(fn, "capacity", capacity)
    lanes = check_positive_int(fn, "lanes", lanes)
    n_step = check_positive_int(fn, "n_step", n_step)
    if capacity % lanes:
        raise ValueError(f"{fn}: `capacity` ({capacity}) must be a multiple of `lanes` ({lanes})")
    if steps and discount is None:
        raise ValueError(f"{fn}: `discount` (γ of the n-step return) is required with steps=True")
    if steps and capacity < lanes * (n_step + 1):
        raise ValueError(f"{fn}: `capacity` must hold n_step + 1 = {n_step + 1} rows of {lanes} lanes")
    if not steps and (n_step != 1 or not keep_terminal_states):
        raise ValueError(f"{fn}: `n_step` and `keep_terminal_states` apply to steps=True buffers only")
    for name, value, low in (("alpha", alpha, 0.0), ("beta", beta, 0.0), ("epsilon", epsilon, 0.0)):
        if not isinstance(value, (int, float)) or value < low:
            raise ValueError(f"{fn}: argument `{name}` must be a number >= {low}, got {value!r}")
    horizon = n_step if steps else 0  # rows after a slot that must exist before it is sampled
    leaves = _leaf_count(capacity)

    def init(example_item: PyTree) -> ReplayState:
        if steps and not isinstance(example_item, Step):
            raise ValueError(f"{fn}: a steps=True buffer stores `fnrl.replay.Step` items, "
                             f"got {type(example_item).__name__}")
        items = jax.tree.map(lambda x: jnp.zeros((capacity,) + jnp.shape(x), jnp.asarray(x).dtype), example_item)
        return ReplayState(items=items, position=jnp.zeros((), jnp.int32), size=jnp.zeros((), jnp.int32),
                           tree=jnp.zeros((2 * leaves,), jnp.float32),
                           priorities=jnp.ones((capacity,), jnp.float32),
                           sampleable=jnp.zeros((capacity,), bool), max_priority=jnp.ones((), jnp.float32))

    def sampleable_item(items: PyTree, slots: Array) -> Array:
        if not steps:
            return jnp.ones(slots.shape, bool)
        ok = items.valid[slots]
        if not keep_terminal_states:
            ok &= ~(items.terminated[slots] | items.truncated[slots])
        return ok

    def add(state: ReplayState, items: PyTree) -> ReplayState:
        items, count = _check_items(f"{fn}.add", state.items, items)
        if count % lanes:
            raise ValueError(f"{fn}.add: with lanes={lanes}, `items` must be whole rows: a multiple of "
                             f"{lanes} items, got {count}")
        if count > capacity:  # the first ones would be overwritten within this very add
            skipped = count - capacity
            items = jax.tree.map(lambda x: x[skipped:], items)
            state = state._replace(position=(state.position + skipped) % capacity,
                                   size=jnp.minimum(state.size + skipped, capacity))
            count = capacity
        offsets = jnp.arange(count, dtype=jnp.int32)
        slots = (state.position + offsets) % capacity
        stored = jax.tree.map(lambda buf, x: buf.at[slots].set(x), state.items, items)
        priorities = state.priorities.at[slots].set(state.max_priority)
        sampleable = state.sampleable.at[slots].set(horizon == 0)
        if horizon:
            # The slot `horizon` rows before each new one now has its whole n-step window stored;
            # it becomes sampleable unless that slot was never written or this add overwrote it.
            order = state.size + offsets - horizon * lanes  # position of that slot among the stored, oldest first
            alive = (order >= 0) & (offsets - horizon * lanes >= count - capacity)
            ready = (slots - horizon * lanes) % capacity
            ok = alive & sampleable_item(stored, ready)
            sampleable = sampleable.at[ready].set(ok | sampleable[ready])
            # One tree write for both: the new slots (not yet sampleable) and the completed ones.
            # New slot i is also the completed slot of offset i + horizon·lanes when that one is
            # alive; it is written once, as completed (a scatter must not write a slot twice).
            shift = horizon * lanes
            completed_later = jnp.concatenate([alive[shift:], jnp.zeros(min(shift, count), bool)])
            tree = _tree_set(state.tree, jnp.concatenate([slots, ready]),
                             jnp.concatenate([jnp.zeros(count), jnp.where(ok, priorities[ready], 0.0)]),
                             write=jnp.concatenate([~completed_later, alive]))
        else:
            tree = _tree_set(state.tree, slots, jnp.full((count,), state.max_priority))
        return state._replace(items=stored, position=(state.position + count) % capacity,
                              size=jnp.minimum(state.size + count, capacity), tree=tree,
                              priorities=priorities, sampleable=sampleable)

    def read(items: PyTree, slots: Array) -> PyTree:
        if not steps:
            return jax.tree.map(lambda x: x[slots], items)
        rows = (slots[None] + lanes * jnp.arange(horizon + 1)[:, None]) % capacity
        # Observations (Atari frames) are gathered once each, at the two rows needed, rather than
        # as part of the whole window.
        transition = n_step_transition(jax.tree.map(lambda x: x[rows], items._replace(observation=())), discount)
        at = lambda offset: jax.tree.map(lambda x: x[(slots + lanes * offset) % capacity], items.observation)  # noqa: E731
        return transition._replace(observation=at(0), next_observation=at(transition.steps))

    def sample(state: ReplayState, key: PRNGKey, batch_size: int,
               beta: Optional[float | Array] = None) -> tuple[PyTree, SampleInfo]:
        """A batch of `batch_size` items (Transitions for steps=True) drawn with replacement
        with P(i) = p_i / Σ p (uniform: over the sampleable slots), and importance weights
        w_i = (N · P(i))^−β / max_batch w (Schaul et al. 2016; `beta` overrides the buffer's, for
        annealing). Undefined while `can_sample(state, 1)` is False."""
        batch_size = check_positive_int(f"{fn}.sample", "batch_size", batch_size)
        total = state.tree[1]
        if tree_sampling:
            slots = _tree_find(state.tree, jax.random.uniform(key, (batch_size,)) * total)
        else:  # TensorForce's naive variant: inverse CDF over every slot's weight
            weights = state.tree[leaves:leaves + capacity]
            # XLA:CPU sums in blocks, so a plain cumsum can step up across a zero weight and make
            # that slot drawable; the running max keeps the CDF flat exactly over zero weights.
            cdf = jax.lax.cummax(jnp.where(weights > 0, jnp.cumsum(weights), -jnp.inf))
            slots = jnp.searchsorted(cdf, jax.random.uniform(key, (batch_size,)) * cdf[-1], side="right")
            slots = jnp.minimum(slots, capacity - 1)
        probabilities = state.tree[leaves + slots] / jnp.maximum(total, jnp.finfo(jnp.float32).tiny)
        if prioritized:
            exponent = jnp.asarray(beta_default if beta is None else beta, jnp.float32)
            # (N·P_i)^−β / max_j (N·P_j)^−β: N cancels, and the ratio form stays finite for tiny P.
            smallest = jnp.maximum(jnp.min(probabilities), jnp.finfo(jnp.float32).tiny)
            weights = (probabilities / smallest) ** -exponent
        else:
            weights = jnp.ones((batch_size,), jnp.float32)
        return read(state.items, slots), SampleInfo(indices=slots, probabilities=probabilities, weights=weights)

    def sample_sequences(state: ReplayState, key: PRNGKey, batch_size: int, length: int) -> tuple[PyTree, Array]:
        """`batch_size` sequences of `length` consecutive items of one lane, time-major
        `[length, batch_size, ...]` (TensorForce `random_sampling=False`; burn-in for recurrent
        learners), uniform over the start slots whose whole sequence is stored, with replacement.
        Also returns the start slots. Episode boundaries inside a sequence are the caller's to
        mask (`valid`, `terminated`). Undefined until `length` rows are stored."""
        batch_size = check_positive_int(f"{fn}.sample_sequences", "batch_size", batch_size)
        length = check_positive_int(f"{fn}.sample_sequences", "length", length)
        if length * lanes > capacity:
            raise ValueError(f"{fn}.sample_sequences: `length` {length} exceeds the {capacity // lanes} rows stored")
        starts = jnp.maximum(state.size - (length - 1) * lanes, 1)
        order = jax.random.randint(key, (batch_size,), 0, starts)
        slots = (state.position - state.size + order) % capacity
        rows = (slots[None] + lanes * jnp.arange(length)[:, None]) % capacity
        return jax.tree.map(lambda x: x[rows], state.items), slots

    def can_sample(state: ReplayState, batch_size: int = 1) -> Array:
        """Whether at least `batch_size` slots are stored and sampleable, and some has a positive
        priority (while every priority is 0 there is nothing to draw)."""
        return (jnp.sum(state.sampleable) >= batch_size) & (state.tree[1] > 0)

    def update_priorities(state: ReplayState, indices: Array, priorities: Array) -> ReplayState:
        """Sets slots' priorities to (p + ε)^α (e.g. p = |TD error|); a repeated index keeps its
        last value. Slots overwritten since they were sampled get the new priority too."""
        indices = _check_indices(f"{fn}.update_priorities", indices)
        priorities = jnp.asarray(priorities, jnp.float32)
        if priorities.shape != indices.shape:
            raise ValueError(f"{fn}.update_priorities: `priorities` must have the shape of `indices` "
                             f"{tuple(indices.shape)}, got {tuple(priorities.shape)}")
        powered = (jnp.maximum(priorities, 0.0) + epsilon) ** alpha
        keep = _last_occurrence(indices) & (indices >= 0) & (indices < capacity)
        slots = jnp.where(keep, indices, 0).astype(jnp.int32)
        stored = state.priorities.at[jnp.where(keep, slots, capacity)].set(powered, mode="drop")
        tree = _tree_set(state.tree, slots, jnp.where(state.sampleable[slots], powered, 0.0), write=keep)
        top = jnp.max(jnp.where(keep, powered, 0.0))
        return state._replace(tree=tree, priorities=stored, max_priority=jnp.maximum(state.max_priority, top))

    beta_default = beta
    return ReplayBuffer(init=init, add=add, sample=sample, sample_sequences=sample_sequences,
                        can_sample=can_sample, update_priorities=update_priorities if prioritized else None,
                        capacity=capacity, lanes=lanes)


def uniform_replay(capacity: int, *, lanes: int = 1, steps: bool = False, n_step: int = 1,
                   discount: Optional[float] = None, keep_terminal_states: bool = True) -> ReplayBuffer:
    """Uniform ring-buffer replay (Lin 1992; TensorForce `Replay`): the oldest item is overwritten
    when full, and every stored (sampleable) slot is equally likely.

    Args:
      capacity: slots held (a multiple of `lanes`).
      lanes: env lanes interleaved per row (adds are whole rows); 1 for a single stream or for
        items that do not refer to each other.
      steps: items are `Step`s and `sample` returns n-step `Transition`s (observations stored once).
      n_step: steps summed per transition (steps=True).
      discount: γ of the n-step return (steps=True).
      keep_terminal_states: False leaves out transitions whose first step ended the episode
        (TensorForce's `keep_terminal_states`); steps=True only.
    """
    return _make("uniform_replay", capacity, lanes=lanes, steps=steps, n_step=n_step, discount=discount,
                 keep_terminal_states=keep_terminal_states, alpha=1.0, beta=0.0, epsilon=0.0,
                 prioritized=False)


def prioritized_replay(capacity: int, *, alpha: float = 0.6, beta: float = 0.4, epsilon: float = 1e-6,
                       lanes: int = 1, steps: bool = False, n_step: int = 1, discount: Optional[float] = None,
                       keep_terminal_states: bool = True) -> ReplayBuffer:
    """Proportional prioritized replay (Schaul et al. 2016) on an array sum tree.

    P(i) = p_i / Σ_k p_k with p_i = (|δ_i| + ε)^α set by `update_priorities`; new items enter
    at the largest priority seen so far, so each is likely drawn soon after it arrives (TensorForce
    samples unseen items first); importance weights w_i = (N · P(i))^−β, divided by the batch's
    largest. α = 0 is uniform; TensorForce's `prioritization_weight` is α and
    `prioritization_constant` is ε. Other arguments as in `uniform_replay`.
    """
    return _make("prioritized_replay", capacity, lanes=lanes, steps=steps, n_step=n_step, discount=discount,
                 keep_terminal_states=keep_terminal_states, alpha=alpha, beta=beta, epsilon=epsilon,
                 prioritized=True)


def naive_prioritized_replay(capacity: int, *, alpha: float = 1.0, beta: float = 0.0, epsilon: float = 0.0,
                             lanes: int = 1, steps: bool = False, n_step: int = 1,
                             discount: Optional[float] = None, keep_terminal_states: bool = True) -> ReplayBuffer:
    """TensorForce's `NaivePrioritizedReplay`: the same priorities as `prioritized_replay`, drawn
    by an inverse-CDF search over a cumulative sum of every slot (O(capacity) per batch, no tree
    descent); for small buffers, and as a check of the tree."""
    return _make("naive_prioritized_replay", capacity, lanes=lanes, steps=steps, n_step=n_step,
                 discount=discount, keep_terminal_states=keep_terminal_states, alpha=alpha, beta=beta,
                 epsilon=epsilon, prioritized=True, tree_sampling=False)


def replay_from_spec(spec: dict, **defaults: Any) -> ReplayBuffer:
    """A buffer from a TensorForce memory spec: `{"type": "replay" | "prioritized_replay" |
    "naive_prioritized_replay", "capacity": N, "prioritization_weight": α,
    "prioritization_constant": ε, "random_sampling": True}` (`defaults` supplies other keyword
    arguments, e.g. lanes). `random_sampling=False` is refused: sequences come from the buffer's
    `sample_sequences`."""
    builders = {"replay": uniform_replay, "prioritized_replay": prioritized_replay,
                "naive_prioritized_replay": naive_prioritized_replay}
    if not isinstance(spec, dict) or spec.get("type") not in builders:
        raise ValueError(f"replay_from_spec: `spec` must be a dict with type in {sorted(builders)}, got {spec!r}")
    names = {"capacity": "capacity", "prioritization_weight": "alpha", "prioritization_constant": "epsilon"}
    # random_sampling=True is TensorForce's default (what `sample` does); False asks for sequences.
    unknown = set(spec) - set(names) - {"type"} - ({"random_sampling"} if spec.get("random_sampling") is True else set())
    if spec["type"] == "replay":
        unknown |= {"prioritization_weight", "prioritization_constant"} & set(spec)
    if unknown:
        hint = " (sequences: call the buffer's sample_sequences)" if "random_sampling" in unknown else ""
        raise ValueError(f"replay_from_spec: unsupported keys for {spec['type']!r}: {sorted(unknown)}{hint}")
    if "capacity" not in spec:
        raise ValueError("replay_from_spec: `spec` needs a `capacity`")
    kwargs = dict(defaults)
    kwargs.update({names[k]: v for k, v in spec.items() if k in names})
    return builders[spec["type"]](**kwargs)


def set_memory(buffer: ReplayBuffer, state: ReplayState, items: PyTree) -> ReplayState:
    """Replaces the contents wholesale with `items` (a batch; the newest `capacity` kept), at
    fresh priorities (TensorForce `set_memory`, `import_observations` when starting empty)."""
    empty = buffer.init(jax.tree.map(lambda x: x[0], state.items))
    return buffer.add(empty, items)


# ------------------------------------------------------------------------------------ demonstrations
class MixtureInfo(NamedTuple):
    """Where a mixed batch came from: the first `len(agent.indices)` rows from the agent's
    buffer, the rest from the demonstrations (`is_demo`)."""

    agent: SampleInfo
    demo: SampleInfo
    is_demo: Array


def sample_mixture(agent_buffer: ReplayBuffer, agent_state: ReplayState, demo_buffer: ReplayBuffer,
                   demo_state: ReplayState, key: PRNGKey, batch_size: int,
                   demo_fraction: float) -> tuple[PyTree, MixtureInfo]:
    """A batch with `round(demo_fraction × batch_size)` rows from a separate demonstration buffer
    and the rest from the agent's own (DQfD, Hester et al. 2018; TensorForce `demo_sampling_ratio`,
    `demo_memory_capacity`). Both buffers must store items of the same structure. Importance
    weights stay per buffer; update each buffer's priorities with its own part of the batch."""
    batch_size = check_positive_int("sample_mixture", "batch_size", batch_size)
    if not 0.0 <= demo_fraction <= 1.0:
        raise ValueError(f"sample_mixture: `demo_fraction` must lie in [0, 1], got {demo_fraction}")
    demos = int(round(demo_fraction * batch_size))
    if demos in (0, batch_size):
        raise ValueError(f"sample_mixture: demo_fraction={demo_fraction} of batch_size={batch_size} leaves "
                         f"one source empty ({demos} demo rows); sample that buffer alone")
    agent_key, demo_key = jax.random.split(key)
    agent_batch, agent_info = agent_buffer.sample(agent_state, agent_key, batch_size - demos)
    demo_batch, demo_info = demo_buffer.sample(demo_state, demo_key, demos)
    if jax.tree.structure(agent_batch) != jax.tree.structure(demo_batch):
        raise ValueError("sample_mixture: the agent and demo buffers store items of different structures")
    batch = jax.tree.map(lambda a, d: jnp.concatenate([a, d.astype(a.dtype)]), agent_batch, demo_batch)
    is_demo = jnp.arange(batch_size) >= batch_size - demos
    return batch, MixtureInfo(agent=agent_info, demo=demo_info, is_demo=is_demo)


# ------------------------------------------------------------------------------------ session pool
class Session(NamedTuple):
    """One recorded session (AgentNet `SessionPoolEnvironment`): time-major `[T, ...]`
    observations, actions, rewards and `is_alive`, and the agent's memory before the first tick
    (`prev_memory`, `()` for a memoryless agent) for burn-in-free recurrent replay."""

    observations: PyTree
    actions: PyTree
    rewards: Array
    is_alive: Array
    prev_memory: PyTree = ()


class SessionPool(NamedTuple):
    """A pool of whole sessions (AgentNet `SessionPoolEnvironment`): `init(example_session)`,
    `append_sessions(state, sessions)` (a batch `[n, T, ...]`; the newest `max_pool_size` kept),
    `sample_session_batch(state, key, n)` (without replacement), `select_session_batch(state,
    indices)`. Batches come back time-major `[T, n, ...]` (AgentNet's are `[n, T, ...]`), ready
    for `fnrl.rollout.replay`; a `Session`'s `prev_memory` stays `[n, ...]`. Items other than
    `Session`s have every leaf of rank >= 2 swapped to `[T, n, ...]`."""

    init: Callable[[PyTree], ReplayState]
    append_sessions: Callable[[ReplayState, PyTree], ReplayState]
    sample_session_batch: Callable[[ReplayState, PRNGKey, int], tuple[PyTree, Array, Array]]
    select_session_batch: Callable[[ReplayState, Array], PyTree]
    max_pool_size: int


def session_pool(max_pool_size: int) -> SessionPool:
    """A `SessionPool` holding up to `max_pool_size` sessions (any pytree, usually `Session`)."""
    ring = uniform_replay(max_pool_size)

    def append_sessions(state: ReplayState, sessions: PyTree) -> ReplayState:
        return ring.add(state, sessions)

    def time_major(batch: PyTree) -> PyTree:
        swap = lambda tree: jax.tree.map(lambda x: jnp.moveaxis(x, 0, 1) if x.ndim >= 2 else x, tree)  # noqa: E731
        if isinstance(batch, Session):  # the memory before tick 0 has no time axis: stays [n, ...]
            return Session(*map(swap, batch[:4]), prev_memory=batch.prev_memory)
        return swap(batch)

    def select_session_batch(state: ReplayState, indices: Array) -> PyTree:
        """The sessions in pool slots `indices` (AgentNet `select_session_batch`)."""
        indices = _check_indices("select_session_batch", indices)
        return time_major(jax.tree.map(lambda x: x[indices], state.items))

    def sample_session_batch(state: ReplayState, key: PRNGKey, n: int) -> tuple[PyTree, Array, Array]:
        """`n` distinct sessions in random order, with their slots and a `valid` mask: when the
        pool holds fewer than `n`, only the first `size` rows are real (AgentNet returns
        min(n, pool size) sessions; a jitted program keeps the shape fixed instead)."""
        n = check_positive_int("sample_session_batch", "n", n)
        if n > max_pool_size:
            raise ValueError(f"sample_session_batch: `n` ({n}) exceeds max_pool_size ({max_pool_size})")
        scores = jnp.where(state.sampleable, jax.random.uniform(key, (max_pool_size,)), 2.0)
        _, slots = jax.lax.top_k(-scores, n)
        return select_session_batch(state, slots), slots, jnp.arange(n) < state.size

    return SessionPool(init=ring.init, append_sessions=append_sessions, sample_session_batch=sample_session_batch,
                       select_session_batch=select_session_batch, max_pool_size=max_pool_size)
