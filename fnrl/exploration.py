"""Exploration: epsilon schedules, discrete action selectors and continuous action noise.

Covers AgentNet's resolvers (greedy / epsilon-greedy / probabilistic, seed-features D1-D3, D10)
and TensorForce's explorations (D4-D9) as pure functions:

* Schedules are optax schedules (`step -> value`), so they can drive an optimizer too and accept
  a traced integer step inside `jit`.
* Selectors map Q-values or probabilities `[..., num_actions]` to int32 action ids `[...]`; any
  leading batch shape is kept. Randomness comes only from the explicit `key`. Ties in the argmax
  go to the lowest action id everywhere (greedy, epsilon-greedy and its probabilities).
* Stateful noise (Ornstein-Uhlenbeck) is an optax-style `(init, sample)` pair over an explicit
  `OUState`, which lives in the agent's state instead of a hidden variable.
* `explore_discrete` / `explore_continuous` apply an exploration value to an already chosen
  action the way TensorForce does per action type: random replacement for discrete actions,
  additive noise plus clipping for float actions. Deterministic acting (TensorForce's
  `deterministic=True`, AgentNet's greedy flags) is `greedy`, `probabilistic(..., greedy=True)`
  or simply `epsilon = 0` / zero noise.
* `perturb_params` is parameter-space noise (TensorForce's `variable_noise`): a noisy copy of a
  policy's parameters to act with.
* `exploration_from_spec` builds TensorForce `explorations_spec`s into `Exploration(init,
  explore)` pairs over the functions above, all with TensorForce's `tf_explore` signature.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fnrl._validation import TENSORFORCE_SCOPE_KEYS, check_array, check_broadcastable, check_static_range
from fnrl.types import Array, ArrayLike, PRNGKey

# --------------------------------------------------------------------------------------------
# Argument helpers.


def _check_key(fn: str, key: Any) -> None:
    """Accepts a typed PRNG key (rank 0) or a raw uint32 key (rank 1)."""
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        ok = jnp.ndim(key) == 0
    else:
        ok = dtype == jnp.uint32 and jnp.ndim(key) == 1
    if not ok:
        raise ValueError(
            f"{fn}: argument `key` must be a single jax.random key, got "
            f"{type(key).__name__} with dtype {dtype} and shape {jnp.shape(key) if dtype else ()}"
        )


def _scalar(fn: str, name: str, value: ArrayLike, low: float | None = None,
            high: float | None = None) -> None:
    """A numeric scalar, in [low, high] when it is a static Python number."""
    check_array(name, value, kind="numeric", rank=0, fn=fn)
    check_static_range(fn, name, value, low, high)


def _positive(fn: str, name: str, value: ArrayLike) -> None:
    """A numeric scalar, strictly positive when it is a static Python number."""
    _scalar(fn, name, value)
    if isinstance(value, (int, float, np.number)) and not value > 0:
        raise ValueError(f"{fn}: argument `{name}` must be > 0, got {value}")


def _batch_param(fn: str, name: str, value: ArrayLike, batch_shape: Sequence[int],
                 low: float | None = None, high: float | None = None) -> Array:
    """A per-row parameter (scalar or `[...]`) broadcast to the batch shape, as float."""
    arr = check_array(name, value, kind="numeric", fn=fn)
    check_static_range(fn, name, value, low, high)
    return check_broadcastable(fn, name, arr, batch_shape).astype(jnp.result_type(float))


def _action_values(fn: str, name: str, x: ArrayLike) -> Array:
    """Q-values or probabilities: float, at least `[num_actions]`, with >= 1 action."""
    arr = check_array(name, x, kind="float", min_rank=1, fn=fn)
    if arr.shape[-1] < 1:
        raise ValueError(f"{fn}: argument `{name}` needs at least one action, got {arr.shape}")
    return arr


# --------------------------------------------------------------------------------------------
# Schedules (TensorForce Constant / EpsilonAnneal / EpsilonDecay / LinearDecay, D5-D8).


def constant_schedule(value: float = 0.0) -> optax.Schedule:
    """TensorForce `Constant` exploration (D5): `eps(t) = value` for every step `t`.

    Returns an optax schedule whose output has the shape of `step` (float32).
    """
    _scalar("constant_schedule", "value", value)

    def schedule(step: ArrayLike) -> Array:
        step = check_array("step", step, kind="numeric", fn="constant_schedule")
        return jnp.full(step.shape, value, jnp.float32)

    return schedule


def linear_anneal(initial_epsilon: float = 1.0, final_epsilon: float = 0.1,
                  timesteps: int = 10000, start_timestep: int = 0) -> optax.Schedule:
    """TensorForce `EpsilonAnneal` (D6): linear interpolation after a start step.

        eps(t) = initial                                                if t < start
               = initial + (t - start) / timesteps * (final - initial)  if t <= start + timesteps
               = final                                                  otherwise

    This is exactly `optax.linear_schedule(initial, final, timesteps, start)`, which it wraps after
    validating the arguments (optax silently turns `timesteps <= 0` into a constant schedule).
    The DQN recipe of Mnih et al. (2015), "Human-level control through deep reinforcement
    learning", anneals epsilon this way.
    """
    fn = "linear_anneal"
    _scalar(fn, "initial_epsilon", initial_epsilon)
    _scalar(fn, "final_epsilon", final_epsilon)
    _positive(fn, "timesteps", timesteps)
    _scalar(fn, "start_timestep", start_timestep, low=0)
    inner = optax.linear_schedule(initial_epsilon, final_epsilon, timesteps, start_timestep)

    def schedule(step: ArrayLike) -> Array:
        step = check_array("step", step, kind="numeric", fn=fn)
        return jnp.asarray(inner(step), jnp.float32)

    return schedule


def half_life_decay(initial_epsilon: float = 1.0, final_epsilon: float = 0.1,
                      timesteps: int = 10000, start_timestep: int = 0,
                      half_lives: float = 10) -> optax.Schedule:
    """TensorForce `EpsilonDecay` (D7): exponential decay towards `final_epsilon`.

    With `half_life = timesteps / half_lives`,

        eps(t) = initial                                                if t < start
               = final + 2^(-(t - start) / half_life) * (initial - final)  if t <= start + timesteps
               = final                                                  otherwise

    As in TensorForce, the value jumps from `final + 2^-half_lives * (initial - final)` to
    `final` right after `start + timesteps` (a jump of 0.1% of the range for 10 half-lives).
    Unlike `optax.exponential_decay`, the rate is set by half-lives and decays to an offset.
    """
    fn = "half_life_decay"
    _scalar(fn, "initial_epsilon", initial_epsilon)
    _scalar(fn, "final_epsilon", final_epsilon)
    _positive(fn, "timesteps", timesteps)
    _scalar(fn, "start_timestep", start_timestep, low=0)
    _positive(fn, "half_lives", half_lives)

    def schedule(step: ArrayLike) -> Array:
        step = check_array("step", step, kind="numeric", fn=fn)
        # Subtract before casting: an int32 step stays exact however large it is.
        elapsed = step - start_timestep
        # Clipping keeps exp2 finite in the branches that `where` discards.
        ratio = jnp.clip(elapsed, 0, timesteps).astype(jnp.float32) * (half_lives / timesteps)
        decayed = final_epsilon + jnp.exp2(-ratio) * (initial_epsilon - final_epsilon)
        after = jnp.where(elapsed > timesteps, final_epsilon, decayed)
        return jnp.where(elapsed < 0, initial_epsilon, after).astype(jnp.float32)

    return schedule


def episode_decay_noise(key: PRNGKey, episode: ArrayLike, shape: Sequence[int] = ()) -> Array:
    """TensorForce `LinearDecay` exploration (D8), as its source computes it.

        value = U[0, 1)^shape / (episode + 1)

    TensorForce documents this class as "linear decay based on episode number", but its code
    draws uniform noise and divides it by `episode + 1`, a 1/n decay. fnrl follows the code (what
    TensorForce agents actually ran) under a name that says what it does; for a schedule that is
    linear in the episode number use `linear_anneal(...)(episode)`. The value serves as an epsilon
    for `explore_discrete` or as additive noise for `explore_continuous`.

    Args:
      key: a jax.random key.
      episode: episode counter (>= 0), a scalar or an array broadcastable to `shape`.
      shape: shape of the noise (the action shape).

    Returns:
      float32 noise of shape `shape`.
    """
    fn = "episode_decay_noise"
    _check_key(fn, key)
    check_static_range(fn, "episode", episode, low=0)
    arr = check_array("episode", episode, kind="numeric", fn=fn)
    shape = tuple(shape)
    arr = check_broadcastable(fn, "episode", arr, shape).astype(jnp.float32)
    return jax.random.uniform(key, shape, jnp.float32) / (arr + 1.0)


# --------------------------------------------------------------------------------------------
# Discrete action selection (AgentNet resolvers D1-D3, deterministic acting D10).


def greedy(q_values: ArrayLike) -> Array:
    """Greedy action `argmax_a q[..., a]` (AgentNet's greedy resolver, D10).

    Ties go to the lowest action id. Returns int32 actions of shape `q_values.shape[:-1]`.
    """
    q_values = _action_values("greedy", "q_values", q_values)
    return jnp.argmax(q_values, axis=-1).astype(jnp.int32)


def explore_discrete(key: PRNGKey, action: ArrayLike, num_actions: int,
                     epsilon: ArrayLike) -> Array:
    """TensorForce discrete exploration (D4): w.p. `epsilon` replace `action` by a uniform one.

        a' = U{0, ..., num_actions - 1}   with probability epsilon
           = a                            otherwise

    The random action may equal `a`, so `a` is kept w.p. `1 - eps + eps / num_actions`.
    Boolean actions (TensorForce `bool` type) need `num_actions == 2`; the replacement is a fair
    coin flip. `epsilon` is a scalar or an array broadcastable to `action.shape` (e.g. per env).

    Returns:
      the explored actions, with `action`'s shape and dtype.
    """
    fn = "explore_discrete"
    _check_key(fn, key)
    action = check_array("action", action, kind="bool_or_numeric", fn=fn)
    is_bool = action.dtype == jnp.bool_
    action = check_array("action", action, kind="bool" if is_bool else "int", fn=fn)
    if not isinstance(num_actions, (int, np.integer)) or isinstance(num_actions, bool):
        raise ValueError(f"{fn}: argument `num_actions` must be a Python int, got {num_actions!r}")
    check_static_range(fn, "num_actions", int(num_actions), low=2 if is_bool else 1,
                       high=2 if is_bool else None)
    epsilon = _batch_param(fn, "epsilon", epsilon, action.shape, 0.0, 1.0)
    k_explore, k_action = jax.random.split(key)
    explore = jax.random.uniform(k_explore, action.shape, epsilon.dtype) < epsilon
    if is_bool:
        random_action = jax.random.bernoulli(k_action, 0.5, action.shape)
    else:
        random_action = jax.random.randint(k_action, action.shape, 0, num_actions, action.dtype)
    return jnp.where(explore, random_action, action)


def epsilon_greedy(key: PRNGKey, q_values: ArrayLike, epsilon: ArrayLike) -> Array:
    """Epsilon-greedy action selection (AgentNet `EpsilonGreedyResolver`, D2).

    The greedy action w.p. `1 - eps`, a uniformly random action (possibly the greedy one) w.p.
    `eps`; see Sutton & Barto (2018), "Reinforcement Learning: An Introduction", sec. 2.2, and
    Mnih et al. (2015). The action probabilities are `epsilon_greedy_probs(q_values, epsilon)`.

    Args:
      key: a jax.random key.
      q_values: `[..., num_actions]` float action values.
      epsilon: exploration rate in [0, 1]: a scalar (possibly traced, e.g. from a schedule) or an
        array broadcastable to `q_values.shape[:-1]` (one rate per row).

    Returns:
      int32 actions of shape `q_values.shape[:-1]`.
    """
    fn = "epsilon_greedy"
    _check_key(fn, key)
    q_values = _action_values(fn, "q_values", q_values)
    epsilon = _batch_param(fn, "epsilon", epsilon, q_values.shape[:-1], 0.0, 1.0)
    return explore_discrete(key, greedy(q_values), q_values.shape[-1], epsilon)


def epsilon_greedy_probs(q_values: ArrayLike, epsilon: ArrayLike) -> Array:
    """Action probabilities of the epsilon-greedy policy (for expected SARSA, D2).

        pi(a | s) = (1 - eps) * [a == argmax_b q(s, b)] + eps / num_actions

    The argmax is `greedy`'s (lowest id on ties), so these are exactly the probabilities with
    which `epsilon_greedy` samples. Splitting the greedy mass among tied actions would give the
    same expected value `sum_a pi(a) q(a)`, since tied actions have equal values. The argmax is
    piecewise constant, so no gradient flows to `q_values`; it flows to `epsilon`.

    Returns:
      float probabilities `[..., num_actions]` summing to 1 over the last axis.
    """
    fn = "epsilon_greedy_probs"
    q_values = _action_values(fn, "q_values", q_values)
    epsilon = _batch_param(fn, "epsilon", epsilon, q_values.shape[:-1], 0.0, 1.0)
    num_actions = q_values.shape[-1]
    best = jax.nn.one_hot(greedy(q_values), num_actions, dtype=q_values.dtype)
    eps = epsilon.astype(q_values.dtype)[..., None]
    return (1.0 - eps) * best + eps / num_actions


def boltzmann(key: PRNGKey, q_values: ArrayLike, temperature: ArrayLike) -> Array:
    """Boltzmann (softmax) exploration: sample `a` with probability `softmax(q / tau)[a]`.

        pi(a | s) = exp(q(s, a) / tau) / sum_b exp(q(s, b) / tau)

    Sutton & Barto (2018), sec. 2.8 / 13.1. Low temperatures approach greedy, high ones uniform.

    Args:
      key: a jax.random key.
      q_values: `[..., num_actions]` float action values.
      temperature: tau > 0, a scalar or an array broadcastable to `q_values.shape[:-1]`.

    Returns:
      int32 actions of shape `q_values.shape[:-1]`.
    """
    fn = "boltzmann"
    _check_key(fn, key)
    q_values = _action_values(fn, "q_values", q_values)
    if isinstance(temperature, (int, float, np.number)) and not temperature > 0:
        raise ValueError(f"{fn}: argument `temperature` must be > 0, got {temperature}")
    temperature = _batch_param(fn, "temperature", temperature, q_values.shape[:-1])
    logits = q_values / temperature.astype(q_values.dtype)[..., None]
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def probabilistic(key: PRNGKey, probs: ArrayLike, assume_normalized: bool = False,
                  greedy: bool = False) -> Array:
    """Sample actions proportionally to `probs` (AgentNet `ProbabilisticResolver`, D3).

    Inverse-CDF sampling: with `c_k = sum_{j<=k} p_j` and `u ~ U[0, 1)`, the action is the number
    of `k < num_actions - 1` with `c_k <= u`. Unless `assume_normalized`, the cumulative sums are
    divided by their last entry, so zero-probability actions are never drawn even with float
    rounding. With `assume_normalized=True` no division happens (as in AgentNet): if `probs` sum
    to less than 1 the leftover mass goes to the last action. `greedy=True` returns the argmax
    instead (AgentNet's `greedy` flag, D10).

    Args:
      key: a jax.random key (unused when `greedy`).
      probs: `[..., num_actions]` non-negative float weights, not all zero in a row.
      assume_normalized: treat each row as already summing to 1 (static).
      greedy: return `argmax probs` instead of sampling (static).

    Returns:
      int32 actions of shape `probs.shape[:-1]`.
    """
    fn = "probabilistic"
    _check_key(fn, key)
    probs = _action_values(fn, "probs", probs)
    if greedy:
        return jnp.argmax(probs, axis=-1).astype(jnp.int32)
    cumulative = jnp.cumsum(probs, axis=-1)
    if not assume_normalized:
        cumulative = cumulative / cumulative[..., -1:]
    u = jax.random.uniform(key, probs.shape[:-1] + (1,), probs.dtype)
    # The last cumulative sum is left out: it is 1 by construction (or by assumption).
    return jnp.sum(cumulative[..., :-1] <= u, axis=-1, dtype=jnp.int32)


# --------------------------------------------------------------------------------------------
# Continuous actions (TensorForce float exploration D4, OrnsteinUhlenbeckProcess D9).


def _bound(fn: str, name: str, bound: ArrayLike | None, like: Array) -> Array | None:
    """An optional clipping bound, broadcast to `like`'s shape and cast to its dtype."""
    if bound is None:
        return None
    arr = check_array(name, bound, kind="numeric", fn=fn)
    return check_broadcastable(fn, name, arr, like.shape).astype(like.dtype)


def explore_continuous(action: ArrayLike, noise: ArrayLike, low: ArrayLike | None = None,
                       high: ArrayLike | None = None) -> Array:
    """TensorForce float exploration (D4): add the exploration value, then clip to the bounds.

        a' = clip(a + noise, low, high)

    `noise` (e.g. from `ornstein_uhlenbeck` or `episode_decay_noise`), `low` and `high` are
    scalars or arrays broadcastable to `action.shape`; a `None` bound leaves that side open.
    Gradients flow to `action` and `noise` where the result is not clipped.

    Returns:
      the explored actions, with `action`'s shape and dtype.
    """
    fn = "explore_continuous"
    action = check_array("action", action, kind="float", fn=fn)
    noise = check_array("noise", noise, kind="float", fn=fn)
    noise = check_broadcastable(fn, "noise", noise, action.shape)
    static = (int, float, np.number)
    if isinstance(low, static) and isinstance(high, static) and low > high:
        raise ValueError(f"{fn}: arguments `low` and `high` must satisfy low <= high, "
                         f"got {low} > {high}")
    low = _bound(fn, "low", low, action)
    high = _bound(fn, "high", high, action)
    return jnp.clip(action + noise.astype(action.dtype), low, high)


def gaussian_noise(key: PRNGKey, action: ArrayLike, sigma: ArrayLike,
                   low: ArrayLike | None = None, high: ArrayLike | None = None) -> Array:
    """Gaussian action noise: `a' = clip(a + sigma * N(0, 1), low, high)`.

    Uncorrelated exploration for deterministic policies, as in TD3 (Fujimoto et al., 2018,
    "Addressing Function Approximation Error in Actor-Critic Methods"). The normals are
    `jax.random.normal(key, action.shape)`. `sigma` (>= 0), `low` and `high` broadcast to
    `action.shape`.

    Returns:
      the noisy actions, with `action`'s shape and dtype.
    """
    fn = "gaussian_noise"
    _check_key(fn, key)
    action = check_array("action", action, kind="float", fn=fn)
    check_static_range(fn, "sigma", sigma, low=0)
    sigma = check_array("sigma", sigma, kind="numeric", fn=fn)
    sigma = check_broadcastable(fn, "sigma", sigma, action.shape)
    noise = sigma.astype(action.dtype) * jax.random.normal(key, action.shape, action.dtype)
    return explore_continuous(action, noise, low, high)


def perturb_params(key: PRNGKey, params: Any, stddev: ArrayLike) -> Any:
    """Parameter-space noise: every float leaf of `params` plus independent Gaussian noise,

        θ'_i = θ_i + stddev · ε_i,   ε_i ~ N(0, I),

    with one key per leaf (`jax.random.split(key, num_leaves)` in leaf order); integer and bool
    leaves are returned as they are. Acting with θ' explores consistently within a tick instead
    of jittering each action (Rückstieß, Felder & Schmidhuber 2008, "State-Dependent Exploration
    for Policy Gradient Methods"; Plappert et al. 2018, "Parameter Space Noise for Exploration",
    which also adapts `stddev`); TensorForce's `variable_noise` adds it to the policy's variables
    for each act. `stddev` >= 0 (may be traced; 0 returns `params`' values).

    Returns:
      a pytree like `params`, each float leaf in its own dtype.
    """
    fn = "perturb_params"
    _check_key(fn, key)
    check_static_range(fn, "stddev", stddev, low=0)
    stddev = check_array("stddev", stddev, kind="numeric", rank=0, fn=fn)
    leaves, treedef = jax.tree.flatten(params)
    arrays = [check_array(f"params (leaf {i})", leaf, kind="bool_or_numeric", fn=fn) for i, leaf in enumerate(leaves)]
    keys = jax.random.split(key, max(1, len(arrays)))

    def perturb(leaf: Array, leaf_key: PRNGKey) -> Array:
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            return leaf
        return leaf + stddev.astype(leaf.dtype) * jax.random.normal(leaf_key, leaf.shape, leaf.dtype)

    return treedef.unflatten([perturb(leaf, k) for leaf, k in zip(arrays, keys)])


class OUState(NamedTuple):
    """State of an Ornstein-Uhlenbeck noise process: its current value `x`."""

    x: Array


class OUNoise(NamedTuple):
    """An `(init, sample)` pair, optax style; see `ornstein_uhlenbeck`."""

    init: Callable[[Any], OUState]
    sample: Callable[[PRNGKey, OUState], tuple[Array, OUState]]


def ornstein_uhlenbeck(theta: float = 0.15, sigma: ArrayLike = 0.3, mu: ArrayLike = 0.0,
                       dt: float = 1.0) -> OUNoise:
    """Ornstein-Uhlenbeck action noise (TensorForce `OrnsteinUhlenbeckProcess`, D9).

    Euler-Maruyama discretisation of dx = theta (mu - x) dt + sigma dW (Uhlenbeck & Ornstein,
    1930), used for exploration in DDPG (Lillicrap et al., 2016) and NAF (Gu et al., 2016):

        x_{k+1} = x_k + theta (mu - x_k) dt + sigma sqrt(dt) n_k,   n_k ~ N(0, 1)

    `init` starts at `x_0 = mu`, like TensorForce; `sample` returns `(x_{k+1}, new_state)` with
    `n_k = jax.random.normal(key, x.shape)`. For `0 < theta dt < 2` the chain is stationary with
    mean `mu` and variance `sigma^2 / (theta (2 - theta dt))`, which tends to the continuous
    process's `sigma^2 / (2 theta)` as `dt -> 0`. TensorForce's process is `dt = 1`. Re-`init`
    (or `jnp.where` with a fresh state) at episode starts if the noise should not carry over.

    Args:
      theta: mean-reversion rate >= 0 (0 gives a random walk); `theta * dt` must be < 2.
      sigma: noise scale >= 0, a scalar or an array broadcastable to the noise shape.
      mu: long-run mean, a scalar or an array broadcastable to the noise shape.
      dt: time step > 0.

    Returns:
      `OUNoise(init, sample)`: `init(shape_or_action)` takes a shape (int or tuple, float32
      noise) or an example float action (its shape and dtype); `sample(key, state)`.
    """
    fn = "ornstein_uhlenbeck"
    _scalar(fn, "theta", theta, low=0)
    _positive(fn, "dt", dt)
    check_static_range(fn, "sigma", sigma, low=0)
    sigma = check_array("sigma", sigma, kind="numeric", fn=fn)
    mu = check_array("mu", mu, kind="numeric", fn=fn)
    static = (int, float, np.number)
    if isinstance(theta, static) and isinstance(dt, static) and theta * dt >= 2:
        raise ValueError(f"{fn}: arguments `theta` * `dt` must be < 2 for the process to "
                         f"revert to its mean, got {theta} * {dt}")
    noise_scale = sigma * jnp.sqrt(jnp.asarray(dt, jnp.float32))

    def init(shape_or_action: Any) -> OUState:
        shape, dtype = _noise_shape(fn, shape_or_action)
        return OUState(x=check_broadcastable(fn, "mu", mu, shape).astype(dtype))

    def sample(key: PRNGKey, state: OUState) -> tuple[Array, OUState]:
        _check_key(fn, key)
        x = check_array("state.x", state.x, kind="float", fn=fn)
        target = check_broadcastable(fn, "mu", mu, x.shape)
        scale = check_broadcastable(fn, "sigma", noise_scale, x.shape)
        n = jax.random.normal(key, x.shape, x.dtype)
        new_x = (x + theta * (target - x) * dt + scale * n).astype(x.dtype)
        return new_x, OUState(x=new_x)

    return OUNoise(init=init, sample=sample)


def _noise_shape(fn: str, shape_or_action: Any) -> tuple[tuple[int, ...], Any]:
    """A shape (int / tuple of ints, float32) or an example float action -> (shape, dtype)."""
    if isinstance(shape_or_action, (int, np.integer)) and not isinstance(shape_or_action, bool):
        shape_or_action = (shape_or_action,)
    if isinstance(shape_or_action, (tuple, list)):
        if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0
                   for d in shape_or_action):
            raise ValueError(f"{fn}: argument `shape_or_action` must be a shape of non-negative "
                             f"ints or a float array, got {shape_or_action!r}")
        return tuple(int(d) for d in shape_or_action), jnp.float32
    action = check_array("shape_or_action", shape_or_action, kind="float", fn=fn)
    return action.shape, action.dtype


# --------------------------------------------------------------------------------------------
# TensorForce exploration specs (`Exploration.from_spec`, `explorations_spec`; D4-D9, Q1, Q6).


class Exploration(NamedTuple):
    """TensorForce's `Exploration.tf_explore(episode, timestep, action_shape)` (D4), pure.

    * `init(shape_or_action) -> state`: a shape (int or tuple; float32 values) or an example
      float action (its shape and dtype), as `ornstein_uhlenbeck`'s `init` takes.
    * `explore(key, state, episode, timestep) -> (value, state)`: the exploration value, of the
      state's shape: an epsilon for `explore_discrete` or additive noise for
      `explore_continuous`, as TensorForce applies it per action type. `episode` and `timestep`
      are scalars or arrays broadcastable to that shape (e.g. one counter per env).

    The state is the `OUState` for Ornstein-Uhlenbeck noise and the last value for the others
    (which keep nothing else); it lives in the agent state. Re-`init` it at episode starts if
    the noise should not carry over.
    """

    init: Callable[[Any], Any]
    explore: Callable[[PRNGKey, Any, ArrayLike, ArrayLike], tuple[Array, Any]]


def _value_init(shape_or_action: Any) -> Array:
    shape, dtype = _noise_shape("Exploration.init", shape_or_action)
    return jnp.zeros(shape, dtype)


def _value_state(state: Any) -> Array:
    return check_array("state", state, kind="float", fn="Exploration.explore")


def _schedule_exploration(schedule: optax.Schedule) -> Exploration:
    """The value is `schedule(timestep)`, whatever the episode (Constant, EpsilonAnneal/Decay)."""

    def explore(key: PRNGKey, state: Any, episode: ArrayLike, timestep: ArrayLike):
        del key, episode
        state = _value_state(state)
        value = check_broadcastable("Exploration.explore", "timestep", schedule(timestep), state.shape)
        value = value.astype(state.dtype)
        return value, value

    return Exploration(_value_init, explore)


def _spec_constant(constant: float = 0.0) -> Exploration:
    return _schedule_exploration(constant_schedule(constant))


def _spec_epsilon_anneal(initial_epsilon: float = 1.0, final_epsilon: float = 0.1,
                         timesteps: int = 10000, start_timestep: int = 0) -> Exploration:
    return _schedule_exploration(linear_anneal(initial_epsilon, final_epsilon, timesteps, start_timestep))


def _spec_epsilon_decay(initial_epsilon: float = 1.0, final_epsilon: float = 0.1,
                        timesteps: int = 10000, start_timestep: int = 0,
                        half_lives: float = 10) -> Exploration:
    return _schedule_exploration(
        half_life_decay(initial_epsilon, final_epsilon, timesteps, start_timestep, half_lives))


def _spec_linear_decay() -> Exploration:
    def explore(key: PRNGKey, state: Any, episode: ArrayLike, timestep: ArrayLike):
        del timestep
        state = _value_state(state)
        value = episode_decay_noise(key, episode, state.shape).astype(state.dtype)
        return value, value

    return Exploration(_value_init, explore)


def _spec_ornstein_uhlenbeck(sigma: ArrayLike = 0.3, mu: ArrayLike = 0.0, theta: float = 0.15,
                             dt: float = 1.0) -> Exploration:
    noise = ornstein_uhlenbeck(theta, sigma, mu, dt)

    def explore(key: PRNGKey, state: OUState, episode: ArrayLike, timestep: ArrayLike):
        del episode, timestep
        return noise.sample(key, state)

    return Exploration(noise.init, explore)


def _spec_gaussian(sigma: ArrayLike = 0.1) -> Exploration:
    check_static_range("gaussian", "sigma", sigma, low=0)

    def explore(key: PRNGKey, state: Any, episode: ArrayLike, timestep: ArrayLike):
        del episode, timestep
        state = _value_state(state)
        value = gaussian_noise(key, jnp.zeros_like(state), sigma)
        return value, value

    return Exploration(_value_init, explore)


# TensorForce 0.3's registry, plus fnrl's `gaussian` (TD3-style uncorrelated noise).
EXPLORATIONS: dict[str, Callable[..., Exploration]] = {
    "constant": _spec_constant,
    "epsilon_anneal": _spec_epsilon_anneal,
    "epsilon_decay": _spec_epsilon_decay,
    "linear_decay": _spec_linear_decay,
    "ornstein_uhlenbeck": _spec_ornstein_uhlenbeck,
    "gaussian": _spec_gaussian,
}
EXPLORATION_TYPES: tuple[str, ...] = tuple(sorted(EXPLORATIONS))



def _check_spec_keys(where: str, kind: str, options: dict) -> None:
    params = inspect.signature(EXPLORATIONS[kind]).parameters
    for key in options:
        if key not in params:
            raise ValueError(f"exploration_from_spec: {where}[{key!r}] is not a key of type "
                             f"{kind!r}; valid keys: {', '.join(params) or 'none'} "
                             f"(ignored: {', '.join(TENSORFORCE_SCOPE_KEYS)})")


def _build_exploration(spec: Any, where: str) -> Exploration:
    """One spec entry; `where` is its key path, e.g. "spec['steer']"."""
    if isinstance(spec, Exploration):
        return spec
    if spec is None:
        return _spec_constant()  # TensorForce's default: no exploration, i.e. a zero value
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise ValueError(f"exploration_from_spec: {where} must be an exploration type name, a dict "
                         f"with a 'type' key, an Exploration or None, got {spec!r}")
    kind = spec["type"]
    if not isinstance(kind, str) or kind not in EXPLORATIONS:
        raise ValueError(f"exploration_from_spec: {where}['type'] is {kind!r}, not an exploration "
                         f"type; valid types: {', '.join(EXPLORATION_TYPES)}")
    options = {k: v for k, v in spec.items() if k != "type" and k not in TENSORFORCE_SCOPE_KEYS}
    _check_spec_keys(where, kind, options)
    try:
        return EXPLORATIONS[kind](**options)
    except ValueError as err:  # the builders' own checks name the key (= argument) at fault
        raise ValueError(f"exploration_from_spec: {where} (type {kind!r}): {err}") from err


def exploration_from_spec(spec: Any) -> Exploration | dict[str, Exploration]:
    """Builds `Exploration`s from a TensorForce `explorations_spec` (D4-D9, Q1, Q6).

    `spec` is a type name, a dict `{"type": name, **keys}`, an `Exploration`, or None (no
    exploration: a zero value, TensorForce's default); a dict without `"type"` maps action
    names to such specs (TensorForce's per-action explorations) and gives a dict of
    `Exploration`s. Types, keys and defaults (TensorForce 0.3's), and what they build on:

    * `constant`(constant=0.0) — `constant_schedule(constant)(timestep)`.
    * `epsilon_anneal`(initial_epsilon=1.0, final_epsilon=0.1, timesteps=10000,
      start_timestep=0) — `linear_anneal(...)(timestep)`.
    * `epsilon_decay`(same, half_lives=10) — `half_life_decay(...)(timestep)`.
    * `linear_decay`() — `episode_decay_noise(key, episode, shape)`: uniform noise / (episode
      + 1), what TensorForce's code computes (not the "linear decay" its docs announce).
    * `ornstein_uhlenbeck`(sigma=0.3, mu=0.0, theta=0.15, dt=1.0) — `ornstein_uhlenbeck`'s
      `sample`; `dt` is fnrl's (TensorForce steps with dt = 1).
    * `gaussian`(sigma=0.1) — fnrl's: sigma·N(0, 1), as `gaussian_noise` adds (Fujimoto et al.,
      2018, TD3).

    `scope` and `summary_labels` are accepted and ignored. Deterministic acting (TensorForce's
    `deterministic=True`) skips `explore` altogether.

    Raises:
      ValueError naming the key path (e.g. `spec['steer']['type']`) for an unknown type
      (listing the valid ones) or key (listing the valid keys), or a value the underlying
      function rejects.
    """
    if isinstance(spec, Mapping) and "type" not in spec:
        return {name: _build_exploration(sub, f"spec[{name!r}]") for name, sub in spec.items()}
    return _build_exploration(spec, "spec")
