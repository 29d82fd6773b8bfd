"""envpool as an fnrl environment: any `envpool.list_all_envs()` id behind the functional `Env`
protocol, stepped on the host (seed-features K5-K7, K10, K17, K18, O5).

Two ways to drive a pool:

* `envpool_env(env_id, num_envs)` — the default, **synchronous** `fnrl.types.Env`:
  `reset(key) -> (state, timestep)`, `step(state, action[num_envs]) -> (state, timestep)`, every
  env advances once per call and the timestep rows are in env order 0..num_envs-1.
* `envpool_async(env_id, num_envs, batch_size)` — envpool's **asynchronous** mode: `send` actions
  for some envs, `recv` the first `batch_size` envs that finish, together with their ids. While
  the policy computes actions for one batch the other envs keep stepping (Espeholt et al. 2018,
  IMPALA; Weng et al. 2022, EnvPool):

      state = aenv.reset(key)
      while training:
          state, env_id, ts = aenv.recv(state)       # batch_size rows, ids in `env_id`
          action = act(params, ts.observation)       # jitted; dispatches asynchronously
          aenv.send(state, action, env_id)

  `receive_all(aenv, aenv.reset(key))` instead gathers every env's first timestep in env order
  (what `fnrl.rollout.collect_async` starts from).

Conventions (`fnrl.types.TimeStep`): envpool resets an env on the step *after* the one that
returned `terminated` or `truncated`, ignores that step's action and returns the new episode's
first observation with reward 0; the adapter flags that row `valid=False`. It tracks this per env
itself (`EnvpoolState.after_done`): envpool's `elapsed_step` does not restart after an Atari life
loss, so it cannot tell. Time limits are `truncated`, never `terminated`.

Arrays stay numpy arrays on the host: envpool hands over fresh buffers without a copy, and the
caller decides where they go (`jnp.asarray`, or `jax.device_put` with a sharding). Float arrays
are converted to jax's default float (float32 unless `jax_enable_x64`) in both directions, so
MuJoCo's float64 observations and actions look like every other fnrl env.

Seeding: `reset(key)` builds a new pool whose base seed is drawn from
`jax.random.fold_in(key, seed)` (so a whole run is reproducible from one key, as with the JAX
backend); `reset(None)` uses `seed` itself. envpool derives each env's seed from the base seed
and the env's index, so env i follows the same episodes in sync and async mode.

Cleanup: each state owns its pool. envpool's own `close()` leaves the worker threads running;
`state.close()` drops the pool so they stop, and any later use of that state raises. Use
`contextlib.closing(state)` or call `close()` when done; a state that is garbage collected is
cleaned up the same way.

envpool's XLA interface (`pool.xla()`) is deliberately not offered: on this stack it crashes or
hangs inside `lax.scan`. For a loop entirely inside `jit`, use the pure-JAX backend.
"""

from __future__ import annotations

import difflib
import warnings
from typing import Any, Callable, NamedTuple, Optional

import envpool
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from fnrl.envs.wrappers import EpisodeStats, episode_stats_init, episode_stats_update
from fnrl.types import Env, EnvSpec, PRNGKey, PyTree, Spec, TimeStep

# --------------------------------------------------------------------------------------------
# Options.

# envpool config keys the adapter sets itself, or that its single-player API cannot honour.
_RESERVED = frozenset(
    {"num_envs", "batch_size", "seed", "env_seed", "base_path", "gym_reset_return_info", "max_num_players"}
)
# Friendly name -> candidate envpool keys (the first one the env has is used).
_ALIASES = {
    "stack_size": ("stack_num", "frame_stack"),
    "grayscale": ("gray_scale",),
    "loss_of_life_termination": ("episodic_life",),  # TensorForce ALE's name
}
_IMAGE_SIZE_KEYS = ("img_height", "img_width")


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_prob(v: Any) -> bool:
    return isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and 0.0 <= v <= 1.0


# envpool accepts nonsense for these silently (and segfaults on noop_max=0): check them here.
_VALUE_CHECKS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "frame_skip": ("an int >= 1", lambda v: _is_int(v) and v >= 1),
    "stack_num": ("an int >= 1", lambda v: _is_int(v) and v >= 1),
    "frame_stack": ("an int >= 1", lambda v: _is_int(v) and v >= 1),
    "noop_max": ("an int >= 1 (1 means no no-op starts)", lambda v: _is_int(v) and v >= 1),
    "img_height": ("an int >= 1", lambda v: _is_int(v) and v >= 1),
    "img_width": ("an int >= 1", lambda v: _is_int(v) and v >= 1),
    "max_episode_steps": ("an int >= 1", lambda v: _is_int(v) and v >= 1),
    "num_threads": ("an int >= 0 (0: envpool picks)", lambda v: _is_int(v) and v >= 0),
    "repeat_action_probability": ("a number in [0, 1]", _is_prob),
    **{
        key: ("a bool", lambda v: isinstance(v, (bool, np.bool_)))
        for key in (
            "episodic_life", "reward_clip", "gray_scale", "zero_discount_on_life_loss",
            "use_fire_reset", "full_action_space", "use_inter_area_resize",
        )
    },
}


def _check_env_id(fn: str, env_id: Any) -> str:
    """A registered envpool id; otherwise a ValueError suggesting the closest ones."""
    known = envpool.list_all_envs()
    if isinstance(env_id, str) and env_id in known:
        return env_id
    close = difflib.get_close_matches(str(env_id), known, n=5, cutoff=0.6)
    hint = f"did you mean {', '.join(map(repr, close))}?" if close else "see envpool.list_all_envs()"
    raise ValueError(f"{fn}: argument `env_id` {env_id!r} is not an envpool env id; {hint}")


def _config_keys(env_id: str) -> frozenset[str]:
    return frozenset(envpool.make_spec(env_id).config._fields)


def _option_names(keys: frozenset[str]) -> list[str]:
    """Config keys the user may set, plus the friendly aliases whose target the env has."""
    settable = keys - _RESERVED
    names = settable | {alias for alias, targets in _ALIASES.items() if settable & set(targets)}
    if settable.issuperset(_IMAGE_SIZE_KEYS):
        names |= {"image_size"}
    return sorted(names)


def envpool_option_names(env_id: str) -> list[str]:
    """The option names `envpool_env(env_id, **options)` accepts: the env's envpool config keys
    (minus those the adapter sets) plus the friendly aliases whose target the env has."""
    return _option_names(_config_keys(_check_env_id("envpool_option_names", env_id)))


def _option_target(
    fn: str, env_id: str, name: str, valid: list[str], keys: frozenset[str]
) -> tuple[str, ...]:
    """The envpool keys one option sets, or a ValueError listing the valid option names."""
    if name not in valid:
        raise ValueError(f"{fn}: unknown option `{name}` for {env_id}; valid options: {', '.join(valid)}")
    if name == "image_size":
        return _IMAGE_SIZE_KEYS
    if name in _ALIASES:
        return (next(k for k in _ALIASES[name] if k in keys),)
    return (name,)


def _option_values(fn: str, name: str, value: Any, targets: tuple[str, ...]) -> tuple[Any, ...]:
    """The checked value(s) for `targets`; `image_size` is `(height, width)` or one int."""
    if name == "image_size":
        pair = (value, value) if _is_int(value) else value
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise ValueError(f"{fn}: option `image_size` must be an int or (height, width), got {value!r}")
        values = tuple(pair)
    else:
        values = (value,)
    for target, v in zip(targets, values):
        want, ok = _VALUE_CHECKS.get(target, (None, None))
        if ok is not None and not ok(v):
            raise ValueError(f"{fn}: option `{name}` must be {want}, got {v!r}")
    return tuple(v.item() if isinstance(v, np.generic) else v for v in values)


def _envpool_kwargs(fn: str, env_id: str, keys: frozenset[str], options: dict[str, Any]) -> dict[str, Any]:
    """Translates and checks user options into envpool `make` keyword arguments.

    Friendly names: `frame_skip` (action repeat, K18), `repeat_action_probability` (sticky
    actions; Machado et al. 2018, "Revisiting the Arcade Learning Environment"),
    `episodic_life` (alias `loss_of_life_termination`), `reward_clip`, `noop_max` (the DQN
    protocol of Mnih et al. 2015), `image_size=(h, w)`, `stack_size`, `grayscale`; every other
    envpool config key of the env passes through unchanged.
    """
    valid = _option_names(keys)
    kwargs: dict[str, Any] = {}
    for name, value in options.items():
        targets = _option_target(fn, env_id, name, valid, keys)
        for target, v in zip(targets, _option_values(fn, name, value, targets)):
            if target in kwargs:
                raise ValueError(
                    f"{fn}: option `{name}` sets envpool's `{target}`, which another option already set"
                )
            kwargs[target] = v
    return kwargs


# --------------------------------------------------------------------------------------------
# Specs.


def _host_dtype(dtype: Any) -> np.dtype:
    """Floats become jax's default float (envpool's MuJoCo float64 would be truncated anyway)."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating):
        return np.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))
    return dtype


def _box_spec(space: gymnasium.spaces.Box) -> Spec:
    """Bounds as arrays of the spec's shape; a Box with no finite bound at all is unbounded.
    Partly infinite bounds (CartPole) are kept, as gymnasium and fnrl's JAX backend keep them."""
    dtype = _host_dtype(space.dtype)
    low, high = np.asarray(space.low), np.asarray(space.high)
    if not (np.isfinite(low).any() or np.isfinite(high).any()):
        return Spec(tuple(space.shape), dtype)
    return Spec(tuple(space.shape), dtype, minimum=low.astype(dtype), maximum=high.astype(dtype))


def spec_from_space(space: Any) -> PyTree:
    """Converts a gymnasium space (as envpool reports it) into a pytree of `fnrl.types.Spec`.

    Discrete(n, start) -> int32 scalar with `num_values=n` (plus `minimum`/`maximum` when
    `start != 0`); MultiBinary -> bool; Box -> float (bounded or not) or int with bounds;
    Dict -> dict of specs (TensorForce K17 multi-state / multi-action envs).

    Raises:
      ValueError: for a space type envpool does not produce.
    """
    if isinstance(space, gymnasium.spaces.Dict):
        return {k: spec_from_space(v) for k, v in space.spaces.items()}
    if isinstance(space, gymnasium.spaces.Discrete):
        n, start = int(space.n), int(space.start)
        bounds = {} if start == 0 else {"minimum": start, "maximum": start + n - 1}
        return Spec((), np.dtype(np.int32), num_values=n, **bounds)
    if isinstance(space, gymnasium.spaces.MultiBinary):
        return Spec(tuple(int(d) for d in np.atleast_1d(space.n)), np.dtype(np.bool_))
    if isinstance(space, gymnasium.spaces.Box):
        return _box_spec(space)
    raise ValueError(f"spec_from_space: argument `space` has unsupported type {type(space).__name__}")


def _spaces(obj: Any) -> tuple[Any, Any]:
    """The (observation, action) spaces of an envpool spec or pool; pools cache them."""
    with warnings.catch_warnings():
        # gymnasium warns that envpool's float64 bounds become float32: harmless, and expected.
        warnings.filterwarnings("ignore", message=".*precision lowered", category=UserWarning)
        return obj.observation_space, obj.action_space


def _env_spec(pool_spec: Any) -> EnvSpec:
    """One env's `EnvSpec`; a dict action drops envpool's bookkeeping `env_id`/`players`."""
    observation, action = _spaces(pool_spec)
    action = spec_from_space(action)
    if isinstance(action, dict):
        action = {k: v for k, v in action.items() if k not in ("env_id", "players")}
    return EnvSpec(observation=spec_from_space(observation), action=action)


# --------------------------------------------------------------------------------------------
# State and the shared host plumbing.


class _PoolHandle:
    """Owns one envpool object. envpool's `close()` keeps its worker threads alive; only dropping
    the last reference stops them, so `close` drops it and later use raises."""

    __slots__ = ("_pool",)

    def __init__(self, pool: Any):
        self._pool = pool

    def get(self) -> Any:
        if self._pool is None:
            raise RuntimeError("envpool env is closed; call reset(key) for a new one")
        return self._pool

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


class EnvpoolState(NamedTuple):
    """Host-side state of an envpool env. The pool inside is mutable: after a `step`/`recv`
    only the returned state is current.

    Attributes:
      handle: owns the envpool object; `close()` releases it.
      after_done: `[num_envs]` bool, the env's last timestep ended an episode, so its next one
        is envpool's reset step (`valid=False`).
      started: `[num_envs]` bool, the env's first (reset) timestep has been received; that
        timestep is valid but is no step of an episode, so statistics skip it.
      episode_stats: `[num_envs]` `EpisodeStats` of the *real* episodes: for Atari they use the
        unclipped reward (`info["reward"]`) and end at game over, not at an episodic-life loss.
    """

    handle: _PoolHandle
    after_done: np.ndarray
    started: np.ndarray
    episode_stats: EpisodeStats

    def close(self) -> None:
        """Stops the pool's worker threads; the state is unusable afterwards."""
        self.handle.close()


class _Adapter(NamedTuple):
    """Everything fixed at construction: what to build and how to convert arrays."""

    env_id: str
    num_envs: int
    batch_size: int
    seed: int
    kwargs: dict
    spec: EnvSpec
    is_atari: bool
    fn: str


_MAX_BASE_SEED = 2**30  # envpool adds the env index to the base seed; keep it inside int32


def _check_count(fn: str, name: str, value: Any, high: Optional[int] = None) -> int:
    if not _is_int(value) or value < 1 or (high is not None and value > high):
        bound = f" and <= {high}" if high is not None else ""
        raise ValueError(f"{fn}: argument `{name}` must be an int >= 1{bound}, got {value!r}")
    return int(value)


def _adapter(
    fn: str, env_id: str, num_envs: int, batch_size: Optional[int], seed: int, options: dict
) -> _Adapter:
    """Checks every construction argument once; builds the spec without starting a pool."""
    env_id = _check_env_id(fn, env_id)
    num_envs = _check_count(fn, "num_envs", num_envs)
    batch_size = num_envs if batch_size is None else _check_count(fn, "batch_size", batch_size, num_envs)
    if not _is_int(seed) or not 0 <= seed < _MAX_BASE_SEED:
        raise ValueError(f"{fn}: argument `seed` must be an int in [0, 2**30), got {seed!r}")
    keys = _config_keys(env_id)
    kwargs = _envpool_kwargs(fn, env_id, keys, options)
    pool_spec = envpool.make_spec(env_id, **kwargs)
    is_atari = "reward_clip" in keys
    return _Adapter(env_id, num_envs, batch_size, int(seed), kwargs, _env_spec(pool_spec), is_atari, fn)


def _start(ad: _Adapter, key: Optional[PRNGKey]) -> EnvpoolState:
    """Builds a seeded pool and asks every env to reset (results arrive via `_receive`)."""
    base = ad.seed
    if key is not None:
        bits = jax.random.bits(jax.random.fold_in(key, ad.seed), (), jnp.uint32)
        base = int(bits) % _MAX_BASE_SEED
    pool = envpool.make_gymnasium(
        ad.env_id, num_envs=ad.num_envs, batch_size=ad.batch_size, seed=base, **ad.kwargs
    )
    _spaces(pool)  # built once here, quietly; `recv` reuses them
    pool.async_reset()
    no_step = TimeStep(None, np.zeros(ad.num_envs, np.float32), *(np.zeros(ad.num_envs, bool),) * 3)
    stats = EpisodeStats(*(np.asarray(x) for x in episode_stats_init(no_step)))
    no = np.zeros(ad.num_envs, bool)
    return EnvpoolState(_PoolHandle(pool), no, no, stats)


def _map_spec(fn: Callable[[Spec, Any], Any], spec: PyTree, tree: PyTree) -> PyTree:
    """`fn(spec, x)` over a spec pytree and a matching tree; a single spec skips the tree walk,
    which costs more than an envpool step of a cheap env."""
    if isinstance(spec, Spec):
        return fn(spec, tree)
    return jax.tree.map(fn, spec, tree, is_leaf=lambda x: isinstance(x, Spec))


def _host_action(ad: _Adapter, action: PyTree, n: int) -> PyTree:
    """Checks one batch of `n` actions against the spec (envpool casts numpy arrays itself).
    Runs once per step, so it sticks to the cheapest numpy calls (dtype kinds, one reduction)."""

    def convert(spec: Spec, a: Any) -> np.ndarray:
        a = np.asarray(a)
        if a.shape != (n, *spec.shape):
            raise ValueError(f"{ad.fn}: argument `action` must have shape {(n, *spec.shape)}, got {a.shape}")
        if spec.num_values is not None:
            low = 0 if spec.minimum is None else int(spec.minimum)
            if a.dtype.kind not in "iu":
                raise ValueError(f"{ad.fn}: argument `action` must be an integer array, got dtype {a.dtype}")
            # One max over a - low as uint64: values below `low` wrap around to huge numbers.
            if a.size and (a - low if low else a).astype(np.uint64).max() >= spec.num_values:
                raise ValueError(
                    f"{ad.fn}: argument `action` must lie in [{low}, {low + spec.num_values - 1}], "
                    f"got values in [{a.min()}, {a.max()}]"
                )
        elif a.dtype.kind not in "iufc":
            raise ValueError(f"{ad.fn}: argument `action` must be numeric, got dtype {a.dtype}")
        return a

    return _map_spec(convert, ad.spec.action, action)


def _send(ad: _Adapter, state: EnvpoolState, action: PyTree, env_id: np.ndarray) -> None:
    """Hands one batch of actions to the envs `env_id` (envpool casts to its own dtypes)."""
    pool = state.handle.get()
    pool.send(_host_action(ad, action, len(env_id)), env_id)


def _in_order(env_id: np.ndarray, n: int) -> bool:
    """`env_id` (int32) is 0, 1, ..., n-1: envpool's sync mode. A byte comparison: on small
    arrays `np.array_equal` costs ten times more, and this runs every step."""
    return len(env_id) == n and env_id.tobytes() == np.arange(n, dtype=np.int32).tobytes()


def _receive(ad: _Adapter, state: EnvpoolState) -> tuple[EnvpoolState, np.ndarray, TimeStep]:
    """Waits for the next `batch_size` envs and converts their results to a `TimeStep`. When the
    rows are every env in order (sync mode) the per-env flags need no gathers or scatters."""
    obs, reward, terminated, truncated, info = state.handle.get().recv()
    env_id = np.asarray(info["env_id"], np.int32)
    whole = _in_order(env_id, ad.num_envs)
    if whole:
        valid, was_started = ~state.after_done, state.started
        after_done, started = terminated | truncated, np.ones(ad.num_envs, bool)
    else:
        valid, was_started = ~state.after_done[env_id], state.started[env_id]
        after_done, started = state.after_done.copy(), state.started.copy()
        after_done[env_id] = terminated | truncated
        started[env_id] = True
    obs = _map_spec(lambda s, x: np.asarray(x, s.dtype), ad.spec.observation, obs)
    timestep = TimeStep(obs, np.asarray(reward, np.float32), terminated, truncated, valid)
    counted = timestep._replace(valid=valid & was_started)
    stats = _track(ad, state.episode_stats, None if whole else env_id, counted, info)
    return EnvpoolState(state.handle, after_done, started, stats), env_id, timestep


def _track(ad: _Adapter, stats: EpisodeStats, env_id: Optional[np.ndarray], ts: TimeStep,
           info: dict) -> EpisodeStats:
    """Updates the per-env statistics with the rows `env_id` (None: every env, in order; the
    others see an invalid step).

    Atari: the return uses the unclipped reward and an episode ends at game over
    (`info["terminated"]`) or truncation, so clipping and episodic life do not distort it.
    """
    reward, terminated = ts.reward, ts.terminated
    if ad.is_atari:
        reward, terminated = info["reward"], np.asarray(info["terminated"], bool)

    def full(x: np.ndarray, dtype: Any) -> np.ndarray:
        if env_id is None:
            return np.asarray(x, dtype)
        out = np.zeros(ad.num_envs, dtype)
        out[env_id] = x
        return out

    rows = TimeStep(None, full(reward, np.float32), full(terminated, bool), full(ts.truncated, bool),
                    full(ts.valid, bool))
    return episode_stats_update(stats, rows)


# --------------------------------------------------------------------------------------------
# Public constructors.


def envpool_env(env_id: str, num_envs: int = 1, *, seed: int = 0, **options: Any) -> Env:
    """An envpool env as a synchronous, host-stepped `fnrl.types.Env` (the default mode).

    `reset(key)` starts a new pool (see the module docstring for seeding and `close`) and
    returns every env's first timestep (`valid=True`, reward 0); `step(state, action)` takes one
    action per env (leading axis `num_envs`, shape and range checked against `spec().action`)
    and returns `[num_envs]` timesteps in env order; the state's `episode_stats` follow along.

    Args:
      env_id: an id from `envpool.list_all_envs()`; a typo gets close ids suggested.
      num_envs: number of envs stepped together, an int >= 1.
      seed: the pool's base seed when `reset` gets no key; folded into the key otherwise.
      **options: envpool config options of this env, see `envpool_option_names(env_id)`;
        Atari: `frame_skip`, `repeat_action_probability`, `episodic_life`, `reward_clip`,
        `noop_max`, `image_size=(h, w)`, `stack_size`, `grayscale`, ...

    Returns:
      `Env(reset, step, spec, num_envs=num_envs, is_jax=False)`.

    Raises:
      ValueError: for an unknown id or option, or an option value out of range.
    """
    ad = _adapter("envpool_env", env_id, num_envs, None, seed, options)
    all_ids = np.arange(num_envs, dtype=np.int32)

    def reset(key: Optional[PRNGKey] = None) -> tuple[EnvpoolState, TimeStep]:
        state, env_id_, timestep = _receive(ad, _start(ad, key))
        return state, _in_env_order(env_id_, timestep)

    def step(state: EnvpoolState, action: PyTree) -> tuple[EnvpoolState, TimeStep]:
        _send(ad, state, action, all_ids)
        state, env_id_, timestep = _receive(ad, state)
        return state, _in_env_order(env_id_, timestep)

    return Env(reset=reset, step=step, spec=lambda: ad.spec, num_envs=num_envs, is_jax=False)


def _in_env_order(env_id: np.ndarray, timestep: TimeStep) -> TimeStep:
    """Rows sorted by env id (envpool's sync mode already returns them so)."""
    if _in_order(env_id, len(env_id)):
        return timestep
    order = np.argsort(env_id)
    return jax.tree.map(lambda x: x[order], timestep)


class EnvpoolAsync(NamedTuple):
    """envpool's asynchronous mode, functionally: `reset(key) -> state`,
    `send(state, action, env_id)`, `recv(state) -> (state, env_id, timestep)`.

    After `reset`, the first `recv`s return the envs' first timesteps. Each `recv` returns the
    `batch_size` envs that finished first: `env_id[j]` is the env of row j. Send exactly one
    action batch for the ids of each `recv` before receiving them again (envpool's contract).
    """

    reset: Callable[[Optional[PRNGKey]], EnvpoolState]
    send: Callable[[EnvpoolState, PyTree, np.ndarray], None]
    recv: Callable[[EnvpoolState], tuple[EnvpoolState, np.ndarray, TimeStep]]
    spec: Callable[[], EnvSpec]
    num_envs: int
    batch_size: int


def envpool_async(
    env_id: str, num_envs: int, batch_size: int, *, seed: int = 0, **options: Any
) -> EnvpoolAsync:
    """An envpool env in asynchronous mode (`batch_size < num_envs` keeps envs stepping while
    the policy runs; `batch_size == num_envs` behaves like `envpool_env`).

    Args, seeding, options and cleanup as for `envpool_env`; `batch_size` is an int in
    [1, num_envs].
    """
    ad = _adapter("envpool_async", env_id, num_envs, batch_size, seed, options)

    def reset(key: Optional[PRNGKey] = None) -> EnvpoolState:
        return _start(ad, key)

    def send(state: EnvpoolState, action: PyTree, env_id: Any) -> None:
        ids = np.asarray(env_id)
        # As for actions: one max over the ids as uint64 (negative ids wrap around to huge ones).
        is_ids = ids.ndim == 1 and ids.dtype.kind in "iu"
        if not (is_ids and (ids.size == 0 or ids.astype(np.uint64).max() < num_envs)):
            raise ValueError(f"envpool_async: argument `env_id` must be a [k] int array in [0, {num_envs})")
        _send(ad, state, action, ids.astype(np.int32))

    def recv(state: EnvpoolState) -> tuple[EnvpoolState, np.ndarray, TimeStep]:
        return _receive(ad, state)

    return EnvpoolAsync(reset, send, recv, lambda: ad.spec, num_envs, ad.batch_size)


def receive_all(env: EnvpoolAsync, state: EnvpoolState) -> tuple[EnvpoolState, TimeStep]:
    """Receives every env of `env` once (`num_envs / batch_size` `recv`s, so every env must be in
    flight, as after `reset`) and returns `[num_envs]` rows in env order: after `reset`, the
    first timesteps `envpool_env`'s `reset` returns for the same key."""
    if env.num_envs % env.batch_size:
        raise ValueError(f"receive_all: argument `env` has batch_size {env.batch_size}, which does not divide "
                         f"num_envs {env.num_envs}")
    ids, rows = [], []
    for _ in range(env.num_envs // env.batch_size):
        state, env_id, timestep = env.recv(state)
        ids.append(env_id)
        rows.append(timestep)
    env_id = np.concatenate(ids)
    if not np.array_equal(np.sort(env_id), np.arange(env.num_envs)):
        raise RuntimeError("receive_all: the envs received are not every env once; were all of them in flight?")
    return state, _in_env_order(env_id, jax.tree.map(lambda *xs: np.concatenate(xs), *rows))
