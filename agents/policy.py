"""A stochastic policy over any env's action spec, shared by the policy-gradient recipes
(PPO, A2C, VPG, TRPO, ES).

The distribution of each action part follows its `Spec.kind` (`fnrl.default_distribution`):
int → categorical, bool → bernoulli, float → diagonal gaussian with a state-independent log-std,
bounded → beta on [minimum, maximum] or, with `bounded_actions="clipped_gaussian"`, a gaussian
whose samples are clipped to the bounds when they go to the env while the loss keeps the log-prob
of the unclipped sample. Multi-part (dict / tuple) actions are independent parts: their log-probs,
entropies and KLs add up. Observations of any pytree are flattened and concatenated into one
feature vector.

The actor and the critic have separate torsos: an MLP, or a TensorForce layers spec (`network`,
TensorForce's `network_spec`, seed features F28-F31), optionally followed by a memory cell
(`memory`: AgentNet's GRU or LSTM, as in its "Deep Recurrent Kung-Fu" demo, seed features S3).
A spec's `internal_lstm` layers or a memory cell make the policy recurrent (Hausknecht & Stone
2015, "Deep Recurrent Q-Learning for POMDPs"; Mnih et al. 2016 for actor-critic): it carries a
per-env memory from tick to tick, reset at episode starts by `fnrl.rollout`, and the learner
recomputes its log-probs and values by replaying each env's sequence from the memory recorded at
the start of the rollout (`replay`; AgentNet's experience replay, M5).
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any, Callable, NamedTuple, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

import fnrl
from fnrl import preprocessing
from fnrl.distributions import Distribution
from fnrl.rollout import PolicyOutput, RolloutCarry
from fnrl.rollout import replay as replay_session
from fnrl.types import Array, Env, EnvSpec, PRNGKey, PyTree, Spec

from agents import common

BOUNDED_ACTIONS = ("beta", "clipped_gaussian")
MEMORY_CELLS = ("none", "lstm", "gru")
# Spec layers that act on one tick's flat feature vector `[batch, F]`, the torsos' input (conv,
# pooling and embedding layers need image / integer inputs, `lstm` a time axis, `dropout` a
# training-mode rng the recipes do not thread).
SPEC_LAYER_TYPES = ("dense", "linear", "nonlinearity", "flatten", "dueling", "internal_lstm")
# AgentNet's LSTM starts the forget gate at bias 0; bias 1 keeps the memory early in training
# (Gers, Schmidhuber & Cummins 2000; Jozefowicz, Zaremba & Sutskever 2015).
_FORGET_BIAS = 1.0
# Observation normalization as OpenAI baselines' VecNormalize: variance epsilon and clip range.
_OBS_EPS, _OBS_CLIP = 1e-8, 10.0


class Part(NamedTuple):
    """One action leaf: its spec, distribution family and size n = prod(shape). The network and
    distribution see it flattened to `[..., n]` (categorical logits `[..., n, num_values]`, class
    k standing for the env's action `minimum + k` when the int spec has a `minimum`)."""

    spec: Spec
    family: str  # "categorical", "bernoulli", "gaussian" or "beta"
    dist: Distribution
    size: int
    low: Any  # float32 [n] bounds to clip env actions to (clipped gaussian), else None
    high: Any
    first_id: Any = None  # int32 [n] the env's id of class 0 (an int spec's `minimum`), else None


class Spaces(NamedTuple):
    """The action parts and the observation leaves of an env, in their specs' leaf order."""

    parts: tuple  # of Part
    action_treedef: Any
    obs_specs: tuple  # of Spec
    obs_treedef: Any


def _is_spec(x: Any) -> bool:
    return isinstance(x, Spec)


def _flat_bounds(spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    """The spec's bounds (scalars or arrays) as float32 `[n]`, the flattened action's layout."""
    return tuple(np.broadcast_to(np.asarray(b, np.float32), spec.shape).reshape(-1)
                 for b in (spec.minimum, spec.maximum))


def _part(owner: str, spec: Spec, bounded_actions: str) -> Part:
    """The distribution `fnrl.default_distribution` picks for `spec` (or a clipped gaussian)."""
    size = math.prod(spec.shape)
    kind = spec.kind
    if kind == "int" and spec.num_values is None:
        raise ValueError(f"{owner}: argument `env` has an int action spec without num_values: {spec}")
    if kind == "bounded":
        low, high = _flat_bounds(spec)
        if bounded_actions == "clipped_gaussian":
            return Part(spec, "gaussian", fnrl.diag_gaussian(), size, low, high)
        return Part(spec, "beta", fnrl.default_distribution("float", low, high), size, None, None)
    family = {"int": "categorical", "bool": "bernoulli", "float": "gaussian"}[kind]
    first_id = None
    if kind == "int" and spec.minimum is not None and np.any(np.asarray(spec.minimum) != 0):
        first_id = np.broadcast_to(np.asarray(spec.minimum, np.int32), spec.shape).reshape(-1)
    return Part(spec, family, fnrl.default_distribution(kind), size, None, None, first_id)


def spaces(owner: str, env_spec: EnvSpec, bounded_actions: str) -> Spaces:
    """`Spaces` of `env_spec`; `owner` names the caller in errors."""
    if bounded_actions not in BOUNDED_ACTIONS:
        raise ValueError(f"{owner}: field `bounded_actions` must be one of {BOUNDED_ACTIONS}, got {bounded_actions!r}")
    leaves, action_treedef = jax.tree.flatten(env_spec.action, is_leaf=_is_spec)
    obs_specs, obs_treedef = jax.tree.flatten(env_spec.observation, is_leaf=_is_spec)
    return Spaces(tuple(_part(owner, spec, bounded_actions) for spec in leaves), action_treedef,
                  tuple(obs_specs), obs_treedef)


def state_names(spec_tree: Any, single: str = "state") -> tuple[str, ...]:
    """The names of a spec tree's leaves (TensorForce's states, or actions), in leaf order: the
    dict keys on the way to each leaf joined by "/" (sequence positions as numbers); a bare
    leaf is TensorForce's single state (or action): `single`."""
    def name(path: tuple) -> str:
        keys = [getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))) for k in path]
        return "/".join(str(k) for k in keys) or single

    paths, _ = jax.tree_util.tree_flatten_with_path(spec_tree, is_leaf=_is_spec)
    return tuple(name(path) for path, _ in paths)


# --------------------------------------------------------------------------------------------
# Network specs and memory.


class FrozenSpec(dict):
    """A spec dict (a network layer, a per-state baseline) frozen — lists become tuples — and
    hashable, so a config that holds a spec stays immutable, hashable and JSON-serialisable."""

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.items())))

    def __reduce__(self) -> tuple:
        return type(self), (dict(self),)

    def _frozen(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("FrozenSpec is immutable")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _frozen


def freeze(value: Any) -> Any:
    return tuple(freeze(v) for v in value) if isinstance(value, (list, tuple)) else value


def _layer_spec(owner: str, index: int, entry: Any) -> FrozenSpec:
    where = f"{owner}: field `network[{index}]`"
    if not isinstance(entry, dict) or entry.get("type") not in SPEC_LAYER_TYPES:
        raise ValueError(f"{where} must be a layer dict whose 'type' is one of {SPEC_LAYER_TYPES} (layers "
                         f"acting on one tick's flat observation features [batch, F]), got {entry!r}")
    try:
        json.dumps(entry)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be JSON-serialisable (strings, numbers, lists), got {entry!r}") from None
    for name in ("dropout", "l1_regularization", "l2_regularization"):
        if entry.get(name):  # the recipes' losses have no such terms: refuse rather than ignore
            raise ValueError(f"{where}: argument `{name}` is not supported by the recipes, got {entry[name]!r}")
    return FrozenSpec({key: freeze(value) for key, value in entry.items()})


def network_spec(owner: str, network: Any) -> Optional[tuple[FrozenSpec, ...]]:
    """Config field `network` checked and frozen: None, or a non-empty list of TensorForce layer
    dicts (`fnrl.network_from_spec`) of `SPEC_LAYER_TYPES`, e.g. `[{"type": "dense", "size": 32},
    {"type": "internal_lstm", "size": 32}]`. Errors name `owner` and the layer."""
    if network is None:
        return None
    if isinstance(network, dict) or not isinstance(network, (list, tuple)) or not network:
        raise ValueError(f"{owner}: field `network` must be None or a non-empty list of layer dicts, "
                         f"e.g. [{{'type': 'dense', 'size': 32}}], got {network!r}")
    layers = tuple(_layer_spec(owner, i, entry) for i, entry in enumerate(network))
    try:  # the layers' own argument checks (unknown or missing arguments, sizes)
        hk.transform(lambda: fnrl.network_from_spec(list(layers))).init(None)
    except ValueError as error:
        raise ValueError(f"{owner}: field `network`: {error}") from None
    return layers


def is_recurrent_spec(network: Optional[tuple], memory: str) -> bool:
    """Whether torsos of this `network` spec and `memory` cell carry memory between ticks."""
    return memory != "none" or any(layer["type"] == "internal_lstm" for layer in network or ())


class TorsoMemory(NamedTuple):
    """What one recurrent torso carries from tick to tick."""

    internals: tuple  # one hk.LSTMState per `internal_lstm` layer of the network spec
    cell: PyTree  # the memory cell's state: LSTMCellState ("lstm"), h ("gru") or () ("none")


def initial_memory(network: Optional[tuple], memory: str, memory_size: int,
                   torsos: tuple[str, ...] = ("actor", "critic")) -> PyTree:
    """The zero memory of one env, a `TorsoMemory` per torso (`{"actor": ..., "critic": ...}`
    for `actor_critic`) with leaves `[size]`; `()` for a feed-forward policy."""
    if not is_recurrent_spec(network, memory):
        return ()
    zeros = lambda size: np.zeros((size,), np.float32)  # noqa: E731
    internals = tuple(hk.LSTMState(hidden=zeros(layer["size"]), cell=zeros(layer["size"]))
                      for layer in network or () if layer["type"] == "internal_lstm")
    cell = {"none": (), "gru": zeros(memory_size),
            "lstm": fnrl.LSTMCellState(zeros(memory_size), zeros(memory_size))}[memory]
    return {name: TorsoMemory(internals, cell) for name in torsos}


def is_recurrent(agent: Any) -> bool:
    """Whether a recipe's static record (`initial_memory` field, absent = none) has memory."""
    return bool(jax.tree.leaves(getattr(agent, "initial_memory", ())))


def batched_memory(agent: Any, memory: PyTree, batch_shape: tuple[int, ...]) -> PyTree:
    """`memory` (one env's, or already batched) broadcast to `batch_shape` + the memory's shape."""
    return jax.tree.map(lambda m, m0: jnp.broadcast_to(m, tuple(batch_shape) + np.shape(m0)), memory,
                        agent.initial_memory)


def init_network(agent: Any, key: PRNGKey, features: Array, memory: PyTree) -> PyTree:
    """The network's parameters for `features` `[B, F]` (and a recurrent policy's memory `[B, ...]`)."""
    return agent.network.init(key, features, memory) if is_recurrent(agent) else agent.network.init(key, features)


# --------------------------------------------------------------------------------------------
# Networks.


def head(part: Part, index: int, features: Array, init_log_std: float = 0.0) -> Any:
    """Distribution parameters of one part; policy layers start near 0 (Andrychowicz et al. 2021)."""
    w_init, name = hk.initializers.Orthogonal(0.01), f"policy_{index}"
    if part.family == "categorical":
        logits = fnrl.CategoricalPolicyHead(part.size * part.spec.num_values, w_init, name)(features)
        return logits.reshape(logits.shape[:-1] + (part.size, part.spec.num_values))
    if part.family == "bernoulli":
        return fnrl.BernoulliPolicyHead(part.size, w_init, name)(features)
    if part.family == "gaussian":
        return fnrl.GaussianPolicyHead(part.size, state_dependent_std=False, init_log_std=init_log_std,
                                       w_init=w_init, name=name)(features)
    return fnrl.BetaPolicyHead(part.size, w_init, name)(features)


def _memory_cell(memory: str, size: int, name: str) -> hk.RNNCore:
    """AgentNet's LSTM (peepholes, forget bias `_FORGET_BIAS`) or GRU cell (`fnrl.networks`)."""
    if memory == "gru":
        return fnrl.GRUCell(size, name=name)
    zeros = hk.initializers.Constant(0.0)
    return fnrl.LSTMCell(size, b_init=(zeros, hk.initializers.Constant(_FORGET_BIAS), zeros, zeros), name=name)


def torso(name: str, features: Array, carried: Optional[TorsoMemory], hidden_sizes: tuple[int, ...], activation: str,
          network: Optional[tuple] = None, memory: str = "none", memory_size: int = 64) -> tuple[Array, TorsoMemory]:
    """One torso inside a haiku transform: an MLP of `hidden_sizes` (orthogonal init, scale √2)
    or the TensorForce layers spec `network`, then an AgentNet memory cell of `memory_size` units
    when `memory` is "lstm" or "gru". `carried` is the torso's memory before the tick (None for a
    feed-forward torso); returns the features and the memory after the tick."""
    internals, cell = (), ()
    if network is None:
        w_init = hk.initializers.Orthogonal(math.sqrt(2.0))
        x = fnrl.MLP(hidden_sizes, activation, w_init=w_init, name=name)(features)
    elif carried is None:
        x = fnrl.network_from_spec(list(network), name=name)(features)
    else:
        x, internals = fnrl.network_from_spec(list(network), name=name)(features, carried.internals,
                                                                       return_internals=True)
    if memory != "none":
        x, cell = _memory_cell(memory, memory_size, f"{name}_memory")(x, carried.cell)
    return x, TorsoMemory(internals, cell)


def actor_critic(spaces: Spaces, hidden_sizes: tuple[int, ...], activation: str, init_log_std: float = 0.0,
                 network: Optional[tuple] = None, memory: str = "none", memory_size: int = 64) -> hk.Transformed:
    """Separate actor and critic torsos, then the policy heads and the value head (orthogonal
    init, scale 1), as OpenAI baselines' `ppo2`. Modules are named "actor...", "critic..." and
    "value/..." (the critic's: "critic..." and "value/...").

    Each torso is a `torso` of `hidden_sizes`, or of the TensorForce layers spec `network`
    (`network_spec`, with TensorForce's initializers), with a memory cell when `memory` is set.

    Feed-forward: `apply(params, features [*batch, F]) -> (per-part distribution params, V)`.
    Recurrent (`is_recurrent_spec`): `apply(params, features [B, F], memory) -> (distribution
    params, V, memory)`, memory shaped as `initial_memory` with a leading batch axis.
    """

    body = functools.partial(torso, hidden_sizes=hidden_sizes, activation=activation, network=network,
                             memory=memory, memory_size=memory_size)

    def heads(actor: Array, critic: Array) -> tuple[list, Array]:
        value = fnrl.ValueHead(hk.initializers.Orthogonal(1.0), name="value")(critic)
        return [head(part, i, actor, init_log_std) for i, part in enumerate(spaces.parts)], value

    def feed_forward(features: Array) -> tuple[list, Array]:
        actor, _ = body("actor", features, None)
        critic, _ = body("critic", features, None)
        return heads(actor, critic)

    def recurrent(features: Array, carried: dict) -> tuple[list, Array, dict]:
        actor, actor_memory = body("actor", features, carried["actor"])
        critic, critic_memory = body("critic", features, carried["critic"])
        return (*heads(actor, critic), {"actor": actor_memory, "critic": critic_memory})

    return hk.without_apply_rng(hk.transform(recurrent if is_recurrent_spec(network, memory) else feed_forward))


def features(spaces: Spaces, observation: PyTree) -> Array:
    """Observation leaves `[*batch, *shape]` flattened and concatenated to `[*batch, F]`."""
    leaves = spaces.obs_treedef.flatten_up_to(observation)
    flat = []
    for spec, leaf in zip(spaces.obs_specs, leaves):
        leaf = jnp.asarray(leaf)
        batch = leaf.shape[: leaf.ndim - len(spec.shape)]
        flat.append(leaf.reshape(batch + (-1,)).astype(jnp.float32))
    return jnp.concatenate(flat, axis=-1)


def normalize(obs_stats: PyTree, features: Array) -> Array:
    """clip((f − mean) / sqrt(var + eps), ±10) with running statistics (`fnrl.RunningStats`);
    features unchanged when `obs_stats` is `()` (not normalizing)."""
    if not isinstance(obs_stats, preprocessing.RunningStats):
        return features
    z = (features - obs_stats.mean) / jnp.sqrt(obs_stats.variance + _OBS_EPS)
    return jnp.clip(z, -_OBS_CLIP, _OBS_CLIP)


# --------------------------------------------------------------------------------------------
# The distribution over all parts.


def _flat_action(part: Part, action: Array) -> Array:
    """An env-shaped action `[*batch, *shape]` as the distribution's `[*batch, n]`."""
    batch = action.shape[: action.ndim - len(part.spec.shape)]
    flat = action.reshape(batch + (part.size,))
    if part.family != "categorical":
        return flat
    flat = flat.astype(jnp.int32)
    return flat if part.first_id is None else flat - part.first_id


def _env_shaped(part: Part, flat: Array) -> Array:
    """A distribution's `[*batch, n]` as the env's action `[*batch, *shape]` (class k of an int
    part with a `minimum` is the env's id minimum + k)."""
    if part.first_id is not None:
        flat = flat + part.first_id
    return flat.reshape(flat.shape[:-1] + part.spec.shape).astype(part.spec.dtype)


def _per_event(part: Part, x: Array) -> Array:
    """Categorical / bernoulli values are per element: sum them over the part's n elements."""
    return jnp.sum(x, axis=-1) if part.family in ("categorical", "bernoulli") else x


def log_prob(spaces: Spaces, dist_params: list, action: PyTree) -> Array:
    """log π(a|s) = Σ_parts log π_part(a_part|s), `[*batch]`."""
    actions = spaces.action_treedef.flatten_up_to(action)
    return sum(_per_event(part, part.dist.log_prob(p, _flat_action(part, a)))
               for part, p, a in zip(spaces.parts, dist_params, actions))


def entropy(spaces: Spaces, dist_params: list) -> Array:
    """H[π(.|s)] = Σ_parts H[π_part(.|s)], `[*batch]`."""
    return sum(_per_event(part, part.dist.entropy(p)) for part, p in zip(spaces.parts, dist_params))


def kl(spaces: Spaces, old_dist_params: list, new_dist_params: list) -> Array:
    """KL(π_old(.|s) ‖ π_new(.|s)) = Σ_parts KL_part, `[*batch]`."""
    return sum(_per_event(part, part.dist.kl(p, q))
               for part, p, q in zip(spaces.parts, old_dist_params, new_dist_params))


def sample(spaces: Spaces, key: PRNGKey, dist_params: list, greedy: Any = False) -> PyTree:
    """An env-shaped action (unclipped); `greedy` (Python or traced bool) takes each mode."""
    keys = jax.random.split(key, len(spaces.parts))
    actions = []
    for part, p, k in zip(spaces.parts, dist_params, keys):
        action = jnp.where(greedy, part.dist.mode(p), part.dist.sample(k, p))
        actions.append(_env_shaped(part, action))
    return spaces.action_treedef.unflatten(actions)


def to_env(spaces: Spaces, action: PyTree) -> PyTree:
    """Clips clipped-gaussian parts to their bounds (the loss keeps the unclipped sample)."""
    actions = spaces.action_treedef.flatten_up_to(action)
    clipped = [a if part.low is None else
               _env_shaped(part, jnp.clip(_flat_action(part, a), part.low, part.high))
               for part, a in zip(spaces.parts, actions)]
    return spaces.action_treedef.unflatten(clipped)


def clipping_env(spaces: Spaces, env: Env) -> Env:
    """`env` whose `step` clips the actions `to_env` clips."""
    if all(part.low is None for part in spaces.parts):
        return env
    return env._replace(step=lambda state, action: env.step(state, to_env(spaces, action)))



# --------------------------------------------------------------------------------------------
# Acting with an actor-critic. `agent` is any recipe's static record with fields `network`
# (features → (per-part distribution params, value)) and `spaces`.


def forward(agent: Any, params: PyTree, obs_stats: PyTree, observation: PyTree) -> tuple[list, Array]:
    """(per-part distribution params, V) of a feed-forward policy for `observation` (any batch
    shape); a recurrent one needs its memory (`forward_with_memory`, `replay`)."""
    if is_recurrent(agent):
        raise ValueError("forward: the policy is recurrent; use forward_with_memory or replay with its memory")
    return agent.network.apply(params, normalize(obs_stats, features(agent.spaces, observation)))


def forward_with_memory(agent: Any, params: PyTree, obs_stats: PyTree, observation: PyTree,
                        memory: PyTree) -> tuple[list, Array, PyTree]:
    """One tick: (distribution params, V, memory after the tick) for `observation` `[B, ...]`
    and the memory before it (a feed-forward policy passes `memory` through)."""
    if not is_recurrent(agent):
        return (*forward(agent, params, obs_stats, observation), memory)
    return agent.network.apply(params, normalize(obs_stats, features(agent.spaces, observation)), memory)


def replay(agent: Any, params: PyTree, obs_stats: PyTree, observation: PyTree, action: PyTree, first: Array,
           memory: PyTree) -> tuple[list, Array]:
    """(distribution params, V) `[T, B, ...]` of a recurrent policy over stored sequences: each
    env's ticks replayed with its recorded actions from `memory` `[B, ...]` (the memory before
    tick 0), resetting at `first` `[T, B]` as the rollout did (`fnrl.rollout.replay`)."""

    def tick(key: PRNGKey, obs: PyTree, carried: PyTree, act: PyTree) -> PolicyOutput:
        dist_params, value, carried = forward_with_memory(agent, params, obs_stats, obs, carried)
        return PolicyOutput(act, carried, (dist_params, value))

    # Every action is teacher-forced, so the ticks draw nothing from the key.
    (dist_params, value), _ = replay_session(tick, jax.random.PRNGKey(0), observation, action, first, memory,
                                             agent.initial_memory)
    return dist_params, value


def evaluate(agent: Any, params: PyTree, obs_stats: PyTree, observation: PyTree, action: PyTree,
             first: Array = (), memory: PyTree = ()) -> tuple[list, Array]:
    """The learner's (distribution params, V) of recorded data: `forward` for a feed-forward
    policy (any batch shape), `replay` of `[T, B]` sequences for a recurrent one."""
    if is_recurrent(agent):
        return replay(agent, params, obs_stats, observation, action, first, memory)
    return forward(agent, params, obs_stats, observation)


def bootstrap_value(agent: Any, params: PyTree, obs_stats: PyTree, rollout: RolloutCarry) -> Array:
    """V(o_T) `[B]` after a rollout, with the memory the policy would act with at tick T."""
    memory = fnrl.rollout.reset_memory(rollout.memory, agent.initial_memory, rollout.first)
    return forward_with_memory(agent, params, obs_stats, rollout.timestep.observation, memory)[1]


def behaviour(agent: Any, params: PyTree, obs_stats: PyTree, key: PRNGKey, observation: PyTree,
              memory: PyTree, action: PyTree = None) -> PolicyOutput:
    """`fnrl.rollout` policy step: samples (unless `action` is given) and records the behaviour
    "log_prob" and "value" as extras; carries the memory of a recurrent policy.

    With `agent.config.variable_noise` = σ > 0 (TensorForce's `variable_noise`) a sampled action
    comes from the network with parameters θ + σ·ε (`fnrl.perturb_params`, one draw per tick for
    the whole batch, keyed by a split of the tick's key) and "log_prob" is that behaviour policy's,
    so PPO's ratio weighs it as the off-policy sample it is; "value" and the memory stay the
    unperturbed network's."""
    dist_params, value, next_memory = forward_with_memory(agent, params, obs_stats, observation, memory)
    if action is None:
        key, dist_params = noisy_dist_params(agent, params, obs_stats, key, observation, memory, dist_params)
        action = sample(agent.spaces, key, dist_params)
    extras = {"log_prob": log_prob(agent.spaces, dist_params, action), "value": value}
    return PolicyOutput(action, next_memory, extras)


def noisy_dist_params(agent: Any, params: PyTree, obs_stats: PyTree, key: PRNGKey, observation: PyTree,
                      memory: PyTree, dist_params: list) -> tuple[PRNGKey, list]:
    """The distribution to sample a tick's action from: with `agent.config.variable_noise` = σ > 0
    the network's with parameters θ + σ·ε (`fnrl.perturb_params`, keyed by a split of `key`),
    else `dist_params` as they are. Returns the key left for sampling and the distribution."""
    if not agent.config.variable_noise:
        return key, dist_params
    noise_key, key = jax.random.split(key)
    noisy = fnrl.perturb_params(noise_key, params, agent.config.variable_noise)
    return key, forward_with_memory(agent, noisy, obs_stats, observation, memory)[0]


def act(agent: Any, policy_params: PyTree, key: PRNGKey, observation: PyTree, greedy: Any) -> PyTree:
    """Env-ready actions for `observation` (any batch shape): sampled, or the modes if `greedy`.

    `policy_params` is `{"network": params, "obs_stats": statistics or ()}` (a `Trainer.params`).
    A recurrent policy acts with its memory: `act_with_memory`.
    """
    if is_recurrent(agent):
        raise ValueError("act: the policy is recurrent and acts with its memory; use act_with_memory")
    dist_params, _ = forward(agent, policy_params["network"], policy_params["obs_stats"], observation)
    return to_env(agent.spaces, sample(agent.spaces, key, dist_params, greedy))


def act_with_memory(agent: Any, policy_params: PyTree, key: PRNGKey, observation: PyTree, memory: PyTree,
                    greedy: Any) -> tuple[PyTree, PyTree]:
    """`act` for any policy, carrying `memory` `[B, ...]` (start from `initial_memory` broadcast
    over the envs and `fnrl.rollout.reset_memory` at episode starts): (env-ready actions, memory after)."""
    dist_params, _, memory = forward_with_memory(agent, policy_params["network"], policy_params["obs_stats"],
                                                 observation, memory)
    return to_env(agent.spaces, sample(agent.spaces, key, dist_params, greedy)), memory


def minibatches(agent: Any, data: Any, num_minibatches: int, key: PRNGKey) -> Any:
    """Learning data shuffled into `num_minibatches` groups for one pass of minibatch steps.

    Feed-forward: `data` holds (tick, env) samples `[N, ...]`, split into `[n, N/n, ...]`.
    Recurrent (`is_recurrent(agent)`): whole env sequences, so the replay keeps each env's ticks
    in order — `data` is time-major `[T, B, ...]` with its start memory in a `memory` field
    `[B, ...]`; groups of envs become `[n, T, B/n, ...]` and the memory `[n, B/n, ...]`."""
    if not is_recurrent(agent):
        order = jax.random.permutation(key, jax.tree.leaves(data)[0].shape[0])
        return jax.tree.map(lambda x: x[order].reshape((num_minibatches, -1) + x.shape[1:]), data)
    order = jax.random.permutation(key, jax.tree.leaves(data.memory)[0].shape[0])
    n = num_minibatches
    split = lambda x: jnp.moveaxis(x[:, order].reshape((x.shape[0], n, -1) + x.shape[2:]), 1, 0)  # noqa: E731
    memory = jax.tree.map(lambda x: x[order].reshape((n, -1) + x.shape[1:]), data.memory)
    return jax.tree.map(split, data._replace(memory=()))._replace(memory=memory)


def trainer(agent: Any, env: Env, start: Callable, policy_step: Callable, learn_rollout: Callable,
            params: Callable) -> common.Trainer:
    """The `agents.common.Trainer` of a policy-gradient recipe acting with this module's policy.

    `agent` is the recipe's static record (`config` with num_envs / num_steps, `network`,
    `spaces`, `num_updates`, optionally `initial_memory`); `start`, `policy_step`, `learn_rollout`
    are the recipe's `OnPolicy` functions taking `agent` first; `params(state)` gives
    `{"network": ..., "obs_stats": ...}` for `act`."""
    cfg = agent.config
    recipe = common.OnPolicy(
        start=functools.partial(start, agent), policy_step=functools.partial(policy_step, agent),
        learn=functools.partial(learn_rollout, agent), to_env=functools.partial(to_env, agent.spaces),
        num_steps=cfg.num_steps, initial_memory=getattr(agent, "initial_memory", ()))
    return common.on_policy_trainer(
        recipe, env, agent.num_updates, cfg.num_envs * cfg.num_steps, act=functools.partial(act, agent),
        params=params, act_with_memory=functools.partial(act_with_memory, agent))
