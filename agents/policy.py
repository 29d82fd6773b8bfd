"""A stochastic policy over any env's action spec, shared by the policy-gradient recipes
(PPO, A2C, VPG, TRPO, ES).

The distribution of each action part follows its `Spec.kind` (`fnrl.default_distribution`):
int → categorical, bool → bernoulli, float → diagonal gaussian with a state-independent log-std,
bounded → beta on [minimum, maximum] or, with `bounded_actions="clipped_gaussian"`, a gaussian
whose samples are clipped to the bounds when they go to the env while the loss keeps the log-prob
of the unclipped sample. Multi-part (dict / tuple) actions are independent parts: their log-probs,
entropies and KLs add up. Observations of any pytree are flattened and concatenated into one
feature vector.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

import fnrl
from fnrl import preprocessing
from fnrl.distributions import Distribution
from fnrl.rollout import PolicyOutput
from fnrl.types import Array, Env, EnvSpec, PRNGKey, PyTree, Spec

BOUNDED_ACTIONS = ("beta", "clipped_gaussian")
# Observation normalization as OpenAI baselines' VecNormalize: variance epsilon and clip range.
_OBS_EPS, _OBS_CLIP = 1e-8, 10.0


class Part(NamedTuple):
    """One action leaf: its spec, distribution family and size n = prod(shape). The network and
    distribution see it flattened to `[..., n]` (categorical logits `[..., n, num_values]`)."""

    spec: Spec
    family: str  # "categorical", "bernoulli", "gaussian" or "beta"
    dist: Distribution
    size: int
    low: Any  # float32 [n] bounds to clip env actions to (clipped gaussian), else None
    high: Any


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
    return Part(spec, family, fnrl.default_distribution(kind), size, None, None)


def spaces(owner: str, env_spec: EnvSpec, bounded_actions: str) -> Spaces:
    """`Spaces` of `env_spec`; `owner` names the caller in errors."""
    if bounded_actions not in BOUNDED_ACTIONS:
        raise ValueError(f"{owner}: field `bounded_actions` must be one of {BOUNDED_ACTIONS}, got {bounded_actions!r}")
    leaves, action_treedef = jax.tree.flatten(env_spec.action, is_leaf=_is_spec)
    obs_specs, obs_treedef = jax.tree.flatten(env_spec.observation, is_leaf=_is_spec)
    return Spaces(tuple(_part(owner, spec, bounded_actions) for spec in leaves), action_treedef,
                  tuple(obs_specs), obs_treedef)


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


def actor_critic(spaces: Spaces, hidden_sizes: tuple[int, ...], activation: str,
                 init_log_std: float = 0.0) -> hk.Transformed:
    """features → (per-part distribution params, V): separate actor and critic MLP torsos with
    orthogonal init (scale √2 hidden, 1 value), as OpenAI baselines' `ppo2`. The critic's
    modules are named "critic/..." and "value/..."."""

    def forward(features: Array) -> tuple[list, Array]:
        def torso(name: str) -> fnrl.MLP:
            return fnrl.MLP(hidden_sizes, activation, w_init=hk.initializers.Orthogonal(math.sqrt(2.0)), name=name)

        actor = torso("actor")(features)
        value = fnrl.ValueHead(hk.initializers.Orthogonal(1.0), name="value")(torso("critic")(features))
        return [head(part, i, actor, init_log_std) for i, part in enumerate(spaces.parts)], value

    return hk.without_apply_rng(hk.transform(forward))


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
    return flat.astype(jnp.int32) if part.family == "categorical" else flat


def _env_shaped(part: Part, flat: Array) -> Array:
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
    """(per-part distribution params, V) for `observation` (any batch shape)."""
    return agent.network.apply(params, normalize(obs_stats, features(agent.spaces, observation)))


def behaviour(agent: Any, params: PyTree, obs_stats: PyTree, key: PRNGKey, observation: PyTree,
              memory: PyTree, action: PyTree = None) -> PolicyOutput:
    """`fnrl.rollout` policy step: samples (unless `action` is given) and records the behaviour
    "log_prob" and "value" as extras."""
    dist_params, value = forward(agent, params, obs_stats, observation)
    if action is None:
        action = sample(agent.spaces, key, dist_params)
    extras = {"log_prob": log_prob(agent.spaces, dist_params, action), "value": value}
    return PolicyOutput(action, memory, extras)


def act(agent: Any, policy_params: PyTree, key: PRNGKey, observation: PyTree, greedy: Any) -> PyTree:
    """Env-ready actions for `observation` (any batch shape): sampled, or the modes if `greedy`.

    `policy_params` is `{"network": params, "obs_stats": statistics or ()}` (a `Trainer.params`).
    """
    dist_params, _ = forward(agent, policy_params["network"], policy_params["obs_stats"], observation)
    return to_env(agent.spaces, sample(agent.spaces, key, dist_params, greedy))
