"""Rollouts: play a policy in an environment for N ticks (AgentNet `get_sessions`, TensorForce
`Runner`), replay a stored session with teacher-forced actions, and a jitted one-step react.

Tick alignment (AgentNet M4/M9): at tick i the policy sees observation o_i and its memory from
tick i−1, emits action a_i and memory m_i; the env answers with reward r_i and o_{i+1}. Every
field of a `Trajectory` is time-major `[T, ...]` and indexed by the tick.

A policy step is any function

    policy_step(key, observation, memory, action=None) -> PolicyOutput(action, memory, extras)

that samples an action when `action` is None and otherwise uses the given one (teacher forcing in
`replay`; a memory update that reads the action must read `action`). `extras` is any pytree the
caller wants recorded per tick (logits, values, log-probabilities). Bind parameters with
`functools.partial`. Memory is reset to `initial_memory` on the first tick of every episode: after
`reset`, and after a `valid=False` timestep (the envpool-style reset step, see `fnrl.types.TimeStep`).

`unroll` runs the ticks inside one `lax.scan` (pure-JAX envs); `collect` is its host-loop twin for
envs that step in Python (envpool), and `collect_async` a double-buffered host loop that lets half
of an asynchronous pool step while the policy acts for the other half.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from fnrl.types import Array, Env, PRNGKey, PyTree, TimeStep


class PolicyOutput(NamedTuple):
    action: PyTree
    memory: PyTree
    extras: PyTree = ()


PolicyStep = Callable[..., PolicyOutput]


class Trajectory(NamedTuple):
    """A time-major rollout. Transition i is (observation[i], action[i]) → (reward[i], o_{i+1}).

    `terminated`/`truncated` describe o_{i+1}; `valid[i]` is False where the env ignored the
    action (the reset step after a done one); `first[i]` marks the first tick of an episode
    (memory was reset before it); `memory[i]` is the memory after tick i (AgentNet's hidden_seq);
    `env_info[i]` is `env_info(env_state)` after step i when the rollout was given such a
    function (e.g. `fnrl.envs.wrappers.episode_stats`), else `()`.
    """

    observation: PyTree
    action: PyTree
    reward: Array
    terminated: Array
    truncated: Array
    valid: Array
    first: Array
    extras: PyTree
    memory: PyTree
    env_info: PyTree = ()


class RolloutCarry(NamedTuple):
    """What a rollout carries from one call to the next (so rollouts can be chained)."""

    env_state: Any
    timestep: TimeStep
    memory: PyTree
    first: Array
    key: PRNGKey


def rollout_init(env: Env, key: PRNGKey, initial_memory: PyTree = ()) -> RolloutCarry:
    """Resets `env` and returns the carry for `unroll`/`collect`; every env starts an episode."""
    reset_key, key = jax.random.split(key)
    env_state, timestep = env.reset(reset_key)
    first = jnp.ones(jnp.shape(timestep.reward), bool)
    return RolloutCarry(env_state, timestep, initial_memory, first, key)


def reset_memory(memory: PyTree, initial_memory: PyTree, first: Array) -> PyTree:
    """memory where not `first`, else the initial memory (broadcast over the batch)."""

    def pick(current, initial):
        mask = jnp.reshape(first, jnp.shape(first) + (1,) * (jnp.ndim(current) - jnp.ndim(first)))
        return jnp.where(mask, jnp.broadcast_to(initial, jnp.shape(current)), current)

    return jax.tree.map(pick, memory, initial_memory)


def _tick(policy_step: PolicyStep, initial_memory: PyTree, key, observation, memory, first, action=None):
    """One policy tick: reset memory on first ticks, then act (or teacher-force `action`)."""
    key, step_key = jax.random.split(key)
    memory = reset_memory(memory, initial_memory, first)
    return key, policy_step(step_key, observation, memory, action)


def unroll(
    policy_step: PolicyStep,
    env: Env,
    carry: RolloutCarry,
    length: int,
    initial_memory: PyTree = None,
    env_info: Callable[[Any], PyTree] | None = None,
) -> tuple[RolloutCarry, Trajectory]:
    """Plays `policy_step` in a pure-JAX `env` for `length` ticks inside one `lax.scan`.

    AgentNet's `get_sessions` (M4) for in-graph environments. Jit-able; `vmap`/shard over
    independent carries. `initial_memory` is what memory resets to at episode starts (default:
    zeros shaped like the carry's memory).

    Returns:
      the carry after the last tick (its timestep holds o_T for bootstrapping) and the trajectory.
    """
    if not env.is_jax:
        raise ValueError("unroll: argument `env` is a host env (envpool); use `collect` instead")
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"unroll: argument `length` must be a Python int >= 1, got {length!r}")
    init_memory = jax.tree.map(jnp.zeros_like, carry.memory) if initial_memory is None else initial_memory

    def body(carry: RolloutCarry, _):
        key, out = _tick(policy_step, init_memory, carry.key, carry.timestep.observation, carry.memory, carry.first)
        env_state, timestep = env.step(carry.env_state, out.action)
        record = Trajectory(
            observation=carry.timestep.observation, action=out.action, reward=timestep.reward,
            terminated=timestep.terminated, truncated=timestep.truncated, valid=timestep.valid,
            first=carry.first, extras=out.extras, memory=out.memory,
            env_info=() if env_info is None else env_info(env_state),
        )
        return RolloutCarry(env_state, timestep, out.memory, ~timestep.valid, key), record

    return lax.scan(body, carry, None, length=length)


def replay(
    policy_step: PolicyStep,
    key: PRNGKey,
    observations: PyTree,
    actions: PyTree,
    first: Array,
    memory: PyTree,
    initial_memory: PyTree = None,
) -> tuple[PyTree, PyTree]:
    """Re-runs a policy over a stored session with the recorded actions (AgentNet experience
    replay, M5 `as_replay_recurrence`): memory and extras are recomputed from the current
    parameters while actions are teacher-forced.

    Args:
      policy_step: see the module docstring; it receives the recorded action.
      key: PRNG key for any randomness inside the policy (e.g. dropout).
      observations, actions: time-major `[T, ...]` pytrees from a `Trajectory`.
      first: `[T, ...]` bool, episode starts (memory resets there), e.g. `Trajectory.first`.
      memory: the memory before tick 0 (e.g. stored with the session; zeros for a fresh start).
      initial_memory: what memory resets to (default zeros of `memory`'s shape).

    Returns:
      `(extras, memories)`, both time-major.
    """
    first = jnp.asarray(first)
    if first.dtype != jnp.bool_:
        raise ValueError(f"replay: argument `first` must be a bool array, got dtype {first.dtype}")
    init_memory = jax.tree.map(jnp.zeros_like, memory) if initial_memory is None else initial_memory

    def body(state, xs):
        key, memory = state
        observation, action, is_first = xs
        key, out = _tick(policy_step, init_memory, key, observation, memory, is_first, action)
        return (key, out.memory), (out.extras, out.memory)

    _, (extras, memories) = lax.scan(body, (key, memory), (observations, actions, first))
    return extras, memories


def make_act(policy_step: PolicyStep) -> Callable[[PRNGKey, PyTree, PyTree], PolicyOutput]:
    """AgentNet's `get_react_function` (M1): a jitted one-step `act(key, observation, memory)`."""
    return jax.jit(lambda key, observation, memory: policy_step(key, observation, memory, None))


# --------------------------------------------------------------------------------------------
# Host loops. The env steps in Python and the policy in one jitted call per tick. Only the env's
# action leaves the device each tick; what the trajectory keeps of the policy (actions, memories,
# extras) stays there and is stacked in one call after the rollout.


def _act(policy_step: PolicyStep, env_action: Callable, initial_memory: PyTree, key, observation, memory, first):
    """One tick for a host loop: (next key, the env's action, (action, memory after, extras))."""
    key, out = _tick(policy_step, initial_memory, key, observation, memory, first)
    return key, env_action(out.action), (out.action, out.memory, out.extras)


_jitted_act = jax.jit(_act)
_UNCHANGED = jax.tree_util.Partial(lambda action: action)


def _threefry_lowerings() -> tuple[dict, Any, Any, Any] | None:
    """(CPU lowering table, threefry primitive, its CPU rule, JAX's platform-independent rule),
    or None when this JAX keeps them elsewhere (then ticks keep the CPU rule)."""
    try:
        from jax._src.interpreters import mlir as jax_mlir
        from jax.extend.random import threefry2x32_p

        table = jax_mlir._platform_specific_lowerings["cpu"]
        return table, threefry2x32_p, table[threefry2x32_p], jax_mlir._lowerings[threefry2x32_p]
    except (ImportError, AttributeError, KeyError):
        return None


_THREEFRY_LOWERINGS = _threefry_lowerings()


class _UnrolledThreefry:
    """The context `unrolled_threefry()` returns. A plain class, not `contextlib`: a host loop
    enters it on every tick (≈ 0.4 µs, not 2)."""

    def __enter__(self) -> None:
        if _THREEFRY_LOWERINGS is not None:
            table, primitive, _, unrolled = _THREEFRY_LOWERINGS
            table[primitive] = unrolled

    def __exit__(self, *exc: Any) -> None:
        if _THREEFRY_LOWERINGS is not None:
            table, primitive, rolled, _ = _THREEFRY_LOWERINGS
            table[primitive] = rolled


_UNROLLED_THREEFRY = _UnrolledThreefry()


def unrolled_threefry() -> _UnrolledThreefry:
    """A context: programs lowered inside it draw threefry random bits with JAX's unrolled
    lowering instead of the rolled loop JAX uses on CPU. The bits are the same (same algorithm,
    Salmon et al. 2011, "Random numbers: as easy as 1, 2, 3"); only speed changes.

    On CPU, JAX lowers threefry2x32 as a 5-iteration `while` loop. XLA:CPU compiles each such
    loop into kernels of its own, and runs it as ~80 small thunks per draw. Unrolled, the
    rounds fuse into the surrounding code:
    - a host loop's per-tick program runs faster: PPO's CartPole tick for 16 envs took ≈ 148 µs
      rolled and ≈ 87 µs unrolled, for 256 envs 297 and 225 µs (`benchmarks/tick_bench.py`;
      `collect` and `collect_async` lower their ticks inside it);
    - a training program compiles faster: `fnrl train ppo`'s chunk of CartPole updates
      compiled ≈ 15–25% faster and ran just as fast (`benchmarks/ppo_phases.py --split`;
      `agents.cli` lowers its chunks inside it). A small program compiled at XLA level 0
      (an `init`) can compile slower: measure.

    Usage: `with fnrl.rollout.unrolled_threefry(): lowered = jax.jit(train).lower(key)`; what is
    lowered inside keeps the lowering (JAX caches it per function and signature). Compiled
    programs can differ from rolled ones in float rounding (XLA fuses them differently). Where
    this JAX version keeps its lowering tables elsewhere, the context does nothing. On exit the
    CPU rule JAX had when fnrl.rollout was imported is back (a nested exit restores it early:
    only speed changes).
    """
    return _UNROLLED_THREEFRY


def _unrolled_tick(*args: Any) -> tuple:
    """`_jitted_act` lowered (on its first call per signature) inside `unrolled_threefry()`."""
    with _UNROLLED_THREEFRY:
        return _jitted_act(*args)


def _stack(per_lane: list, xp: Any) -> PyTree:
    """Per-lane lists of per-tick pytrees -> one pytree of `[T, lanes, ...]` arrays (`xp`: np or jnp).
    One lane gets its lanes axis as a view: no second copy of (say) a rollout's frames."""
    lanes = [jax.tree.map(lambda *ticks: xp.stack(ticks), *ticks) for ticks in per_lane]
    if len(lanes) == 1:
        return jax.tree.map(lambda x: xp.expand_dims(x, 1), lanes[0])
    return jax.tree.map(lambda *xs: xp.stack(xs, axis=1), *lanes)


_stack_on_device = jax.jit(functools.partial(_stack, xp=jnp))


class _Record(NamedTuple):
    """A host loop's per-lane lists (a lane: the envs one policy call acts for): the timestep
    and `first` each tick saw (closed by those after the last tick), the tick's device outputs
    (action, memory after, extras) and `env_info` after each step."""

    timesteps: list
    firsts: list
    outputs: list
    infos: list


def _record(lanes: int) -> _Record:
    return _Record(*([[] for _ in range(lanes)] for _ in _Record._fields))


def _to_host(tree: PyTree) -> PyTree:
    # np.asarray per array: jax.device_get costs ten times more for one small array.
    return np.asarray(tree) if isinstance(tree, jax.Array) else jax.tree.map(np.asarray, tree)


def _lane_act(rec: _Record, lane: int, tick: Callable, key: PRNGKey, memory: PyTree, timestep: TimeStep,
              first: Array) -> tuple[PRNGKey, PyTree, PyTree]:
    """Records what `lane` sees and runs its tick: (next key, memory after, env action on the host)."""
    rec.timesteps[lane].append(timestep)
    rec.firsts[lane].append(first)
    key, env_action, outputs = tick(key, timestep.observation, memory, first)
    rec.outputs[lane].append(outputs)
    return key, outputs[1], _to_host(env_action)


def _close(rec: _Record, lane: int, timestep: TimeStep, first: Array) -> None:
    """Closes `lane`'s lists with what the last tick left: o_T and its `first`."""
    rec.timesteps[lane].append(timestep)
    rec.firsts[lane].append(first)


def _trajectory(rec: _Record, lanes: tuple[np.ndarray, ...] | None = None) -> Trajectory:
    """The `Trajectory` of the recorded ticks. With `lanes` (ascending env ids per lane) rows go
    back to env order and each `env_info` row (all envs' after each lane's step) is taken from
    the step of the env's lane."""
    steps = _stack(rec.timesteps, np)  # [T + 1, lanes, n]
    action, memory, extras = jax.device_get(_stack_on_device(rec.outputs))
    env_info = () if not rec.infos[0] else _stack(rec.infos, np)
    if lanes is not None and rec.infos[0]:
        env_info = jax.tree.map(lambda x: np.stack([x[:, i, ids] for i, ids in enumerate(lanes)], axis=1), env_info)
    trajectory = Trajectory(jax.tree.map(lambda x: x[:-1], steps.observation), action, steps.reward[1:],
                            steps.terminated[1:], steps.truncated[1:], steps.valid[1:],
                            _stack(rec.firsts, np)[:-1], extras, memory, env_info)
    order = None if lanes is None else np.argsort(np.concatenate(lanes))

    def env_major(x: np.ndarray) -> np.ndarray:
        if x.ndim < 3:  # [T, lanes] from per-tick scalars: nothing to put in env order
            raise ValueError("collect: every leaf of the policy's action, memory and extras (and of env_info) "
                             "must have the env axis first, one value per env; got a leaf with per-tick shape ()")
        x = x.reshape((x.shape[0], -1) + x.shape[3:])
        return x if order is None else x[:, order]

    return jax.tree.map(env_major, trajectory)


def _host_tick(fn: str, policy_step: PolicyStep, memory: PyTree, length: int, initial_memory: PyTree,
               env_action: Callable | None) -> Callable:
    """Checks `length`; returns the jitted tick with the policy step and `env_action` bound as
    `Partial`s (so the tick's compilation is reused across calls) and the initial memory
    (default: zeros like one tick's `memory`)."""
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"{fn}: argument `length` must be a Python int >= 1, got {length!r}")
    init_memory = jax.tree.map(jnp.zeros_like, memory) if initial_memory is None else initial_memory
    as_partial = lambda f: f if isinstance(f, jax.tree_util.Partial) else jax.tree_util.Partial(f)  # noqa: E731
    policy_step = as_partial(policy_step)
    env_action = _UNCHANGED if env_action is None else as_partial(env_action)
    return functools.partial(_unrolled_tick, policy_step, env_action, init_memory)


def collect(
    policy_step: PolicyStep,
    env: Env,
    carry: RolloutCarry,
    length: int,
    initial_memory: PyTree = None,
    env_info: Callable[[Any], PyTree] | None = None,
    env_action: Callable[[PyTree], PyTree] | None = None,
) -> tuple[RolloutCarry, Trajectory]:
    """The host-loop twin of `unroll`: the same ticks, for envs that step on the host (envpool).

    Each tick is one jitted policy call and one env step. Only the env's action is copied to the
    host per tick; the policy's actions, memories and extras stay on the device and are stacked
    in one call after the rollout (`collect_async` also overlaps policy and env time). Works
    with pure-JAX envs too (their step is jitted), so the two backends share agent code and give
    the same trajectory. The trajectory's arrays are numpy arrays. The env must be batched, and
    the policy's actions, memories and extras (and `env_info`'s leaves) per-env arrays
    `[num_envs, ...]`: a per-tick scalar is refused, as it has no env order to follow.

    `env_action` maps the policy's action to what the env receives (e.g. clipping to bounds)
    inside the jitted tick; the trajectory records the policy's action.

    The jitted tick is cached on the policy function: to call `collect` again with new
    parameters without recompiling, pass `jax.tree_util.Partial(step_fn, params)` (the same
    `step_fn` object each time, the arrays as its bound arguments) rather than a new closure;
    likewise for `env_action`.
    """
    if env.num_envs is None:
        raise ValueError("collect: argument `env` must be a batched env (num_envs set); for one unbatched "
                         "pure-JAX env use `unroll`")
    tick = _host_tick("collect", policy_step, carry.memory, length, initial_memory, env_action)
    step = jax.jit(env.step) if env.is_jax else env.step
    rec = _record(1)
    env_state, timestep, memory, first, key = carry
    for _ in range(length):
        key, memory, action = _lane_act(rec, 0, tick, key, memory, timestep, first)
        env_state, timestep = step(env_state, action)
        first = ~np.asarray(timestep.valid)
        if env_info is not None:
            rec.infos[0].append(env_info(env_state))
    _close(rec, 0, timestep, first)
    return RolloutCarry(env_state, timestep, memory, first, key), _trajectory(rec)


def _check_lanes(env: Any, lanes: Any) -> tuple[np.ndarray, np.ndarray]:
    """Two ascending id arrays of `env.batch_size` envs each, together every env once."""
    n, m = env.num_envs, env.batch_size
    if lanes is None:
        lanes = (np.arange(m), np.arange(m, n))
    lanes = tuple(np.asarray(ids) for ids in lanes)
    ok = len(lanes) == 2 and all(ids.ndim == 1 and len(ids) == m and np.issubdtype(ids.dtype, np.integer)
                                 and bool((np.diff(ids) > 0).all()) for ids in lanes)
    if not (ok and np.array_equal(np.sort(np.concatenate(lanes)), np.arange(n))):
        raise ValueError(f"collect_async: argument `lanes` must be two ascending int arrays of env.batch_size = {m} "
                         f"env ids that hold each of the env.num_envs = {n} envs once (env.batch_size must be "
                         "env.num_envs / 2)")
    return lanes


def _lane_recv(env: Any, state: Any, ids: np.ndarray, rec: _Record, lane: int, env_info: Callable | None):
    """Receives `lane`'s envs (the only ones in flight), rows in the lane's order."""
    state, env_id, timestep = env.recv(state)
    if not np.array_equal(env_id, ids):
        order = np.argsort(env_id)
        if not np.array_equal(env_id[order], ids):
            raise RuntimeError(f"collect_async: env.recv returned envs {env_id}, expected lane {lane}'s {ids}")
        timestep = jax.tree.map(lambda x: x[order], timestep)
    if env_info is not None:
        rec.infos[lane].append(env_info(state))
    return state, timestep, ~np.asarray(timestep.valid)


def collect_async(
    policy_step: PolicyStep,
    env: Any,
    carry: RolloutCarry,
    length: int,
    initial_memory: PyTree = None,
    env_info: Callable[[Any], PyTree] | None = None,
    env_action: Callable[[PyTree], PyTree] | None = None,
    lanes: Any = None,
) -> tuple[RolloutCarry, Trajectory]:
    """`collect`, double-buffered: the envs form two lanes, and the policy acts for one lane while
    the other lane's envs step (Espeholt et al. 2018, IMPALA; Weng et al. 2022, EnvPool), so
    policy time hides behind env time.

    `env` is an asynchronous host env (`fnrl.envs.envpool_async`) with `batch_size =
    num_envs / 2`: `send(state, action, env_id)`, `recv(state) -> (state, env_id, timestep)`.
    Only one lane is in flight at any `recv`, so each returns exactly that lane's envs. Per tick:
    act for lane 1 while lane 0 steps, receive lane 0, send lane 1, act for lane 0 while lane 1
    steps, receive lane 1, send lane 0; nothing is in flight between calls.

    Args as for `collect`; the carry's timestep, memory and `first` hold every env in env order,
    and `env_info(state)` must return rows `[num_envs, ...]`. `lanes`: two ascending int arrays
    of env ids (default: the first and the second half); each policy call sees one lane's rows in
    that order (e.g. `agents.host` puts half of every seed's envs in each lane).

    Returns:
      as `collect`, in env order: each env's rows are its own ticks, so for a policy that is
      deterministic per env the trajectory equals `collect`'s on a sync pool with the same seed.
    """
    lanes = _check_lanes(env, lanes)
    state, key, rec = carry.env_state, carry.key, _record(2)
    timestep, memory, first = ([jax.tree.map(lambda x: x[ids], tree) for ids in lanes]
                               for tree in (carry.timestep, carry.memory, carry.first))
    tick = _host_tick("collect_async", policy_step, memory[0], length, initial_memory, env_action)
    key, memory[0], action = _lane_act(rec, 0, tick, key, memory[0], timestep[0], first[0])
    env.send(state, action, lanes[0])
    for t in range(length):
        key, memory[1], action = _lane_act(rec, 1, tick, key, memory[1], timestep[1], first[1])
        state, timestep[0], first[0] = _lane_recv(env, state, lanes[0], rec, 0, env_info)
        env.send(state, action, lanes[1])
        if t + 1 < length:
            key, memory[0], action = _lane_act(rec, 0, tick, key, memory[0], timestep[0], first[0])
        state, timestep[1], first[1] = _lane_recv(env, state, lanes[1], rec, 1, env_info)
        if t + 1 < length:
            env.send(state, action, lanes[0])
    for lane in (0, 1):
        _close(rec, lane, timestep[lane], first[lane])
    order = np.argsort(np.concatenate(lanes))
    merged = [jax.tree.map(lambda *xs: xp.concatenate(xs)[order], *x)
              for x, xp in ((timestep, np), (memory, jnp), (first, np))]
    return RolloutCarry(state, *merged, key), _trajectory(rec, lanes)
