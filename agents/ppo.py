"""PPO: proximal policy optimization with the clipped surrogate (Schulman et al. 2017,
"Proximal Policy Optimization Algorithms", arXiv:1707.06347; TensorForce `PPOAgent`, A13).

One update = a rollout of `num_steps` ticks in `num_envs` envs with the current policy, GAE
advantages (Schulman et al. 2016, arXiv:1506.02438) and `update_epochs` passes over the batch in
`num_minibatches` shuffled minibatches, each an Adam step on

    L = L_clip(ρ, Â) + vf_coef · L_V − ent_coef · H[π],   ρ = π(a|s) / π_old(a|s).

The defaults are the usual CartPole/Atari-lineage settings (PPO paper Table 5, OpenAI baselines
`ppo2`, CleanRL): separate 64-64 tanh MLPs for actor and critic with orthogonal initialization,
Adam 2.5e-4 (eps 1e-5) linearly annealed to 0, global-norm clipping 0.5, value clipping and
per-minibatch advantage normalization.

Episode boundaries follow `fnrl.types.TimeStep`: a truncated step bootstraps from the critic's
value of its final observation (the observation recorded at the next, invalid tick), and the
invalid reset steps are masked out of every loss and statistic.

The policy distribution of each action part follows its `Spec.kind` (`fnrl.default_distribution`):
int → categorical, bool → bernoulli, float → diagonal gaussian with a state-independent log-std,
bounded → beta on [minimum, maximum] (or, with `bounded_actions="clipped_gaussian"`, a gaussian
whose samples are clipped to the bounds when stepping the env while the loss uses the log-prob of
the unclipped sample). Multi-part (dict / tuple) actions sum log-probs and entropies over parts.
Observations of any pytree are flattened and concatenated into one feature vector.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

import fnrl
from fnrl import preprocessing
from fnrl.distributions import Distribution
from fnrl.envs.wrappers import episode_stats
from fnrl.rollout import PolicyOutput, RolloutCarry, Trajectory, rollout_init, unroll
from fnrl.types import Array, Env, PRNGKey, PyTree, Spec

from agents import common

_CLIP_RANGES = ("symmetric", "tensorforce")
_BOUNDED_ACTIONS = ("beta", "clipped_gaussian")
# Observation normalization as OpenAI baselines' VecNormalize: a unit-variance prior of weight
# 1e-4 (so the first rollout sees raw observations), variance epsilon and clip range.
_OBS_PRIOR_COUNT, _OBS_EPS, _OBS_CLIP = 1e-4, 1e-8, 10.0
_REWARD_CLIP = 10.0


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Every hyperparameter of the recipe (JSON-serialisable field types)."""

    num_envs: int = 4
    num_steps: int = 128  # rollout length per env and update
    total_steps: int = 500_000  # env steps of the whole run (num_updates = total // (envs·steps))
    update_epochs: int = 4
    num_minibatches: int = 4
    hidden_sizes: tuple[int, ...] = (64, 64)  # actor and critic torsos (separate)
    activation: str = "tanh"
    learning_rate: float = 2.5e-4
    anneal_lr: bool = True  # linear decay to 0 over the run, stepped once per update
    adam_eps: float = 1e-5
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    clip_range: str = "symmetric"  # or "tensorforce": ratio in [1/(1+eps), 1+eps]
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    clip_value_loss: bool = True
    max_grad_norm: float = 0.5
    normalize_advantages: bool = True
    normalize_observations: bool = False
    normalize_rewards: bool = False
    bounded_actions: str = "beta"  # or "clipped_gaussian"
    init_log_std: float = 0.0  # initial log-std of gaussian policies

    def __post_init__(self):
        # JSON gives lists; keep the config hashable and comparable.
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        for name in ("num_envs", "num_steps", "total_steps", "update_epochs", "num_minibatches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"PPOConfig: field `{name}` must be an int >= 1, got {value!r}")
        for name, low, high in (("gamma", 0, 1), ("gae_lambda", 0, 1), ("clip_eps", 0, None),
                                ("learning_rate", 0, None), ("max_grad_norm", 0, None)):
            value = getattr(self, name)
            if not low <= value or (high is not None and value > high):
                raise ValueError(f"PPOConfig: field `{name}` must lie in [{low}, {high or 'inf'}], got {value!r}")
        if self.clip_range not in _CLIP_RANGES:
            raise ValueError(f"PPOConfig: field `clip_range` must be one of {_CLIP_RANGES}, got {self.clip_range!r}")
        if self.bounded_actions not in _BOUNDED_ACTIONS:
            raise ValueError(f"PPOConfig: field `bounded_actions` must be one of {_BOUNDED_ACTIONS}, "
                             f"got {self.bounded_actions!r}")
        if (self.num_envs * self.num_steps) % self.num_minibatches:
            raise ValueError(f"PPOConfig: field `num_minibatches` ({self.num_minibatches}) must divide "
                             f"num_envs * num_steps = {self.num_envs * self.num_steps}")


class PPOState(NamedTuple):
    """The whole training state (arrays only: checkpointed and vmapped over seeds)."""

    params: PyTree  # haiku params of actor and critic
    opt_state: optax.OptState
    rollout: RolloutCarry  # env state, last timestep and the acting key
    obs_stats: PyTree  # RunningStats of the observation features, () when not normalizing
    reward_norm: PyTree  # RewardNormalizeState, () when not normalizing
    key: PRNGKey  # minibatch shuffling
    update_count: Array  # int32, updates done


class PPOBatch(NamedTuple):
    """Learning data, one entry per (tick, env): what was seen and done, the behaviour policy's
    log-prob and value, the GAE advantage and value target, and whether the step is valid."""

    observation: PyTree
    action: PyTree
    log_prob: Array
    value: Array
    advantage: Array
    target: Array
    mask: Array


# --------------------------------------------------------------------------------------------
# Action parts: one distribution per leaf of the action spec.


class _Part(NamedTuple):
    """One action leaf: its spec, distribution family and size n = prod(shape). The network and
    distribution see it flattened to `[..., n]` (categorical logits `[..., n, num_values]`)."""

    spec: Spec
    family: str  # "categorical", "bernoulli", "gaussian" or "beta"
    dist: Distribution
    size: int
    low: Any  # float32 [n] bounds to clip env actions to (clipped gaussian), else None
    high: Any


def _flat_bounds(spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    """The spec's bounds (scalars or arrays) as float32 `[n]`, the flattened action's layout."""
    return tuple(np.broadcast_to(np.asarray(b, np.float32), spec.shape).reshape(-1)
                 for b in (spec.minimum, spec.maximum))


def _part(spec: Spec, bounded_actions: str) -> _Part:
    """The distribution `fnrl.default_distribution` picks for `spec` (or a clipped gaussian)."""
    size = math.prod(spec.shape)
    kind = spec.kind
    if kind == "int" and spec.num_values is None:
        raise ValueError(f"ppo: argument `env` has an int action spec without num_values: {spec}")
    if kind == "bounded":
        low, high = _flat_bounds(spec)
        if bounded_actions == "clipped_gaussian":
            return _Part(spec, "gaussian", fnrl.diag_gaussian(), size, low, high)
        return _Part(spec, "beta", fnrl.default_distribution("float", low, high), size, None, None)
    family = {"int": "categorical", "bool": "bernoulli", "float": "gaussian"}[kind]
    return _Part(spec, family, fnrl.default_distribution(kind), size, None, None)


def _is_spec(x: Any) -> bool:
    return isinstance(x, Spec)


def _action_parts(action_spec: PyTree, bounded_actions: str) -> tuple[tuple[_Part, ...], Any]:
    leaves, treedef = jax.tree.flatten(action_spec, is_leaf=_is_spec)
    return tuple(_part(spec, bounded_actions) for spec in leaves), treedef


# --------------------------------------------------------------------------------------------
# Network: separate actor and critic MLPs on the flattened observation.


class _Agent(NamedTuple):
    """Everything static a recipe function needs (built once by `make_trainer`)."""

    config: PPOConfig
    network: hk.Transformed  # features -> (list of per-part distribution params, value)
    parts: tuple  # of _Part, in the action spec's leaf order
    action_treedef: Any
    obs_specs: tuple  # of Spec, in the observation spec's leaf order
    obs_treedef: Any
    optimizer: optax.GradientTransformation
    reward_normalizer: preprocessing.Preprocessor
    num_updates: int


def _head(part: _Part, config: PPOConfig, index: int, features: Array) -> Any:
    """Distribution parameters of one part; policy layers start near 0 (Andrychowicz et al. 2021)."""
    w_init, name = hk.initializers.Orthogonal(0.01), f"policy_{index}"
    if part.family == "categorical":
        logits = fnrl.CategoricalPolicyHead(part.size * part.spec.num_values, w_init, name)(features)
        return logits.reshape(logits.shape[:-1] + (part.size, part.spec.num_values))
    if part.family == "bernoulli":
        return fnrl.BernoulliPolicyHead(part.size, w_init, name)(features)
    if part.family == "gaussian":
        return fnrl.GaussianPolicyHead(part.size, state_dependent_std=False, init_log_std=config.init_log_std,
                                       w_init=w_init, name=name)(features)
    return fnrl.BetaPolicyHead(part.size, w_init, name)(features)


def _network(config: PPOConfig, parts: tuple) -> hk.Transformed:
    """Actor and critic torsos with orthogonal init (scale √2 hidden, 1 value), as `ppo2`."""

    def forward(features: Array) -> tuple[list, Array]:
        def torso(name: str) -> fnrl.MLP:
            return fnrl.MLP(config.hidden_sizes, config.activation,
                            w_init=hk.initializers.Orthogonal(math.sqrt(2.0)), name=name)

        actor = torso("actor")(features)
        value = fnrl.ValueHead(hk.initializers.Orthogonal(1.0), name="value")(torso("critic")(features))
        return [_head(part, config, i, actor) for i, part in enumerate(parts)], value

    return hk.without_apply_rng(hk.transform(forward))


def _features(agent: _Agent, observation: PyTree) -> Array:
    """Observation leaves `[*batch, *shape]` flattened and concatenated to `[*batch, F]`."""
    leaves = agent.obs_treedef.flatten_up_to(observation)
    flat = []
    for spec, leaf in zip(agent.obs_specs, leaves):
        leaf = jnp.asarray(leaf)
        batch = leaf.shape[: leaf.ndim - len(spec.shape)]
        flat.append(leaf.reshape(batch + (-1,)).astype(jnp.float32))
    return jnp.concatenate(flat, axis=-1)


def _normalize(obs_stats: PyTree, features: Array) -> Array:
    """clip((f − mean) / sqrt(var + eps), ±10) with the running statistics, if kept."""
    if not isinstance(obs_stats, preprocessing.RunningStats):
        return features
    z = (features - obs_stats.mean) / jnp.sqrt(obs_stats.variance + _OBS_EPS)
    return jnp.clip(z, -_OBS_CLIP, _OBS_CLIP)


def _forward(agent: _Agent, params: PyTree, obs_stats: PyTree, observation: PyTree) -> tuple[list, Array]:
    return agent.network.apply(params, _normalize(obs_stats, _features(agent, observation)))


# --------------------------------------------------------------------------------------------
# The policy over all parts.


def _flat_action(part: _Part, action: Array) -> Array:
    """An env-shaped action `[*batch, *shape]` as the distribution's `[*batch, n]`."""
    batch = action.shape[: action.ndim - len(part.spec.shape)]
    flat = action.reshape(batch + (part.size,))
    return flat.astype(jnp.int32) if part.family == "categorical" else flat


def _env_shaped(part: _Part, flat: Array) -> Array:
    return flat.reshape(flat.shape[:-1] + part.spec.shape).astype(part.spec.dtype)


def _per_event(part: _Part, x: Array) -> Array:
    """Categorical / bernoulli values are per element: sum them over the part's n elements."""
    return jnp.sum(x, axis=-1) if part.family in ("categorical", "bernoulli") else x


def log_prob(agent: _Agent, dist_params: list, action: PyTree) -> Array:
    """log π(a|s) = Σ_parts log π_part(a_part|s), `[*batch]`."""
    actions = agent.action_treedef.flatten_up_to(action)
    return sum(_per_event(part, part.dist.log_prob(p, _flat_action(part, a)))
               for part, p, a in zip(agent.parts, dist_params, actions))


def entropy(agent: _Agent, dist_params: list) -> Array:
    """H[π(.|s)] = Σ_parts H[π_part(.|s)] (parts are independent), `[*batch]`."""
    return sum(_per_event(part, part.dist.entropy(p)) for part, p in zip(agent.parts, dist_params))


def _sample(agent: _Agent, key: PRNGKey, dist_params: list, greedy: Any = False) -> PyTree:
    """An env-shaped action (unclipped); `greedy` (Python or traced bool) takes each mode."""
    keys = jax.random.split(key, len(agent.parts))
    actions = []
    for part, p, k in zip(agent.parts, dist_params, keys):
        action = jnp.where(greedy, part.dist.mode(p), part.dist.sample(k, p))
        actions.append(_env_shaped(part, action))
    return agent.action_treedef.unflatten(actions)


def _to_env(agent: _Agent, action: PyTree) -> PyTree:
    """Clips clipped-gaussian parts to their bounds (the loss keeps the unclipped sample)."""
    actions = agent.action_treedef.flatten_up_to(action)
    clipped = [a if part.low is None else
               _env_shaped(part, jnp.clip(_flat_action(part, a), part.low, part.high))
               for part, a in zip(agent.parts, actions)]
    return agent.action_treedef.unflatten(clipped)


def _clipping_env(agent: _Agent, env: Env) -> Env:
    """`env` whose `step` clips the actions `_to_env` clips."""
    step = lambda state, action: env.step(state, _to_env(agent, action))
    return env._replace(step=step)


def policy_step(agent: _Agent, params: PyTree, obs_stats: PyTree, key: PRNGKey, observation: PyTree,
                memory: PyTree, action: PyTree = None) -> PolicyOutput:
    """`fnrl.rollout` policy step; records the behaviour log-prob and value as extras."""
    dist_params, value = _forward(agent, params, obs_stats, observation)
    if action is None:
        action = _sample(agent, key, dist_params)
    extras = {"log_prob": log_prob(agent, dist_params, action), "value": value}
    return PolicyOutput(action, memory, extras)


def act(agent: _Agent, policy_params: PyTree, key: PRNGKey, observation: PyTree, greedy: Any) -> PyTree:
    """Env-ready actions for `observation` (any batch shape): sampled, or the modes if `greedy`.

    `policy_params` is `trainer.params(state)`: the network and the observation statistics.
    """
    dist_params, _ = _forward(agent, policy_params["network"], policy_params["obs_stats"], observation)
    return _to_env(agent, _sample(agent, key, dist_params, greedy))


# --------------------------------------------------------------------------------------------
# Learning.


def advantages(config: PPOConfig, trajectory: Trajectory, bootstrap: Array) -> tuple[Array, Array]:
    """GAE advantages Â and value targets Â + V, `[T, B]` (0 + V at invalid steps).

    values = [V(o_0) … V(o_{T−1}), V(o_T)] with V(o_T) = `bootstrap`; in the env convention the
    value recorded at the invalid tick after a done step is V(final observation), which is
    exactly what a truncated step bootstraps from.
    """
    values = jnp.concatenate([trajectory.extras["value"], bootstrap[None]], axis=0)
    discount = config.gamma * (1.0 - trajectory.terminated.astype(values.dtype))
    adv = fnrl.gae(trajectory.reward, discount, values, config.gae_lambda,
                   truncated_t=trajectory.truncated, valid_t=trajectory.valid)
    return adv, adv + values[:-1]


def ppo_loss(agent: _Agent, params: PyTree, obs_stats: PyTree, batch: PPOBatch) -> tuple[Array, dict]:
    """L = L_clip + vf_coef · L_V − ent_coef · H over the valid samples of `batch`.

    L_clip is `fnrl.ppo_clip_loss` on (per-minibatch normalized) advantages; L_V is
    `fnrl.clipped_value_loss` (or the plain `value_loss`), both halved squared errors.
    """
    cfg = agent.config
    dist_params, value = _forward(agent, params, obs_stats, batch.observation)
    adv = fnrl.normalize_advantages(batch.advantage, batch.mask) if cfg.normalize_advantages else batch.advantage
    policy_loss, info = fnrl.ppo_clip_loss(log_prob(agent, dist_params, batch.action), batch.log_prob, adv,
                                           cfg.clip_eps, batch.mask, cfg.clip_range)
    if cfg.clip_value_loss:
        v_loss = fnrl.clipped_value_loss(value, batch.value, batch.target, cfg.clip_eps, batch.mask)
    else:
        v_loss = fnrl.value_loss(value, batch.target, batch.mask)
    mean_entropy = -fnrl.entropy_loss(entropy(agent, dist_params), batch.mask)
    total = policy_loss + cfg.vf_coef * v_loss - cfg.ent_coef * mean_entropy
    return total, {"loss": total, "policy_loss": policy_loss, "value_loss": v_loss, "entropy": mean_entropy,
                   "approx_kl": info.approx_kl, "clip_fraction": info.clip_fraction}


def _minibatch_step(agent: _Agent, obs_stats: PyTree, carry: tuple, batch: PPOBatch) -> tuple[tuple, dict]:
    params, opt_state = carry
    grads, metrics = jax.grad(functools.partial(ppo_loss, agent), has_aux=True)(params, obs_stats, batch)
    updates, opt_state = agent.optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), metrics


def _epoch(agent: _Agent, obs_stats: PyTree, flat: PPOBatch, carry: tuple, key: PRNGKey) -> tuple[tuple, dict]:
    """One pass over the batch in `num_minibatches` shuffled minibatches (one Adam step each)."""
    n = agent.config.num_minibatches
    order = jax.random.permutation(key, agent.config.num_envs * agent.config.num_steps)
    minibatches = jax.tree.map(lambda x: x[order].reshape((n, -1) + x.shape[1:]), flat)
    return lax.scan(functools.partial(_minibatch_step, agent, obs_stats), carry, minibatches)


def _learning_rate(config: PPOConfig, num_updates: int, update_count: Array) -> Array:
    """lr · (1 − k / num_updates) at update k when annealing, else lr (CleanRL's schedule)."""
    if not config.anneal_lr:
        return jnp.asarray(config.learning_rate, jnp.float32)
    return config.learning_rate * (1.0 - update_count.astype(jnp.float32) / num_updates)


def learn(agent: _Agent, state: PPOState, trajectory: Trajectory, bootstrap: Array) -> tuple[PPOState, dict]:
    """PPO's learning phase on one rollout (rewards as the learner should see them).

    `trajectory.extras` holds the behaviour "log_prob" and "value" `[T, B]`; `bootstrap` is
    V(o_T) `[B]`. Returns the state with new params / optimizer state / key and the mean
    metrics over all minibatch steps (plus "learning_rate" of this update).
    """
    adv, target = advantages(agent.config, trajectory, bootstrap)
    batch = PPOBatch(trajectory.observation, trajectory.action, trajectory.extras["log_prob"],
                     trajectory.extras["value"], adv, target, trajectory.valid)
    flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), batch)
    key, epochs_key = jax.random.split(state.key)
    epoch = functools.partial(_epoch, agent, state.obs_stats, flat)
    (params, opt_state), metrics = lax.scan(epoch, (state.params, state.opt_state),
                                            jax.random.split(epochs_key, agent.config.update_epochs))
    metrics = jax.tree.map(jnp.mean, metrics)
    metrics["learning_rate"] = _learning_rate(agent.config, agent.num_updates, state.update_count)
    return state._replace(params=params, opt_state=opt_state, key=key), metrics


def _normalize_rewards(agent: _Agent, reward_norm: PyTree, trajectory: Trajectory) -> tuple[PyTree, Trajectory]:
    """Rewards scaled by the running std of the discounted return (`fnrl.preprocessing.
    reward_normalize`), clipped to ±10 as baselines' VecNormalize; the return restarts after a
    done step. Caveat: the invalid reset steps add R = 0 samples to the return statistics."""
    pp = agent.reward_normalizer

    def step(norm_state, xs):
        reward, done = xs
        norm_state, scaled = pp.apply(norm_state, reward)
        return pp.reset(norm_state, done), jnp.clip(scaled, -_REWARD_CLIP, _REWARD_CLIP)

    done = trajectory.terminated | trajectory.truncated
    reward_norm, rewards = lax.scan(step, reward_norm, (trajectory.reward, done))
    return reward_norm, trajectory._replace(reward=rewards)


def _episode_metrics(trajectory: Trajectory) -> dict:
    """Sums and count of the episodes that finished in this rollout (contract metrics)."""
    finished = (trajectory.terminated | trajectory.truncated) & trajectory.valid
    stats = trajectory.env_info
    return {
        "episode_return_sum": jnp.sum(jnp.where(finished, stats.last_return, 0.0)).astype(jnp.float32),
        "episode_length_sum": jnp.sum(jnp.where(finished, stats.last_length, 0)).astype(jnp.float32),
        "episode_count": jnp.sum(finished).astype(jnp.float32),
    }


def _update_obs_stats(agent: _Agent, obs_stats: PyTree, trajectory: Trajectory) -> PyTree:
    if not isinstance(obs_stats, preprocessing.RunningStats):
        return obs_stats
    features = _features(agent, trajectory.observation)
    return fnrl.running_stats_update(obs_stats, features, axis=(0, 1))


# --------------------------------------------------------------------------------------------
# The recipe.


def init(agent: _Agent, env: Env, key: PRNGKey) -> PPOState:
    """Resets the envs and initializes networks, optimizer and normalizers."""
    net_key, env_key, key = jax.random.split(key, 3)
    rollout = rollout_init(env, env_key)
    features = _features(agent, rollout.timestep.observation)
    params = agent.network.init(net_key, features)
    obs_stats = ()
    if agent.config.normalize_observations:
        prior = fnrl.running_stats_init(features.shape[-1:])
        obs_stats = prior._replace(count=jnp.asarray(_OBS_PRIOR_COUNT, jnp.float32),
                                   m2=jnp.full_like(prior.m2, _OBS_PRIOR_COUNT))
    reward_norm = agent.reward_normalizer.init(rollout.timestep.reward) if agent.config.normalize_rewards else ()
    return PPOState(params, agent.optimizer.init(params), rollout, obs_stats, reward_norm, key,
                    jnp.zeros((), jnp.int32))


def update(agent: _Agent, env: Env, state: PPOState) -> tuple[PPOState, dict]:
    """One iteration: rollout with the current policy, then `learn`; metrics per the contract."""
    cfg = agent.config
    policy = functools.partial(policy_step, agent, state.params, state.obs_stats)
    rollout, trajectory = unroll(policy, env, state.rollout, cfg.num_steps, env_info=episode_stats)
    _, bootstrap = _forward(agent, state.params, state.obs_stats, rollout.timestep.observation)
    learn_trajectory, reward_norm = trajectory, state.reward_norm
    if cfg.normalize_rewards:
        reward_norm, learn_trajectory = _normalize_rewards(agent, reward_norm, trajectory)
    state = state._replace(rollout=rollout, reward_norm=reward_norm)
    state, metrics = learn(agent, state, learn_trajectory, bootstrap)
    state = state._replace(obs_stats=_update_obs_stats(agent, state.obs_stats, trajectory),
                           update_count=state.update_count + 1)
    metrics.update(_episode_metrics(trajectory))
    metrics["env_steps"] = state.update_count.astype(jnp.float32) * (cfg.num_envs * cfg.num_steps)
    return state, metrics


def _optimizer(config: PPOConfig, num_updates: int) -> optax.GradientTransformation:
    steps_per_update = config.update_epochs * config.num_minibatches
    learning_rate = config.learning_rate
    if config.anneal_lr:
        learning_rate = lambda count: _learning_rate(config, num_updates, count // steps_per_update)
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                       optax.adam(learning_rate, eps=config.adam_eps))


def make_agent(config: PPOConfig, env: Env) -> _Agent:
    """The static parts of the recipe for `env`'s specs (networks, distributions, optimizer)."""
    common.check_env("ppo.make_trainer", config, env)
    env_spec = env.spec()
    parts, action_treedef = _action_parts(env_spec.action, config.bounded_actions)
    obs_specs, obs_treedef = jax.tree.flatten(env_spec.observation, is_leaf=_is_spec)
    num_updates = config.total_steps // (config.num_envs * config.num_steps)
    return _Agent(config, _network(config, parts), parts, action_treedef, tuple(obs_specs), obs_treedef,
                  _optimizer(config, num_updates), preprocessing.reward_normalize(config.gamma), num_updates)


def make_trainer(config: PPOConfig, env: Env) -> common.Trainer:
    """The `agents.common.Trainer` of PPO on a batched pure-JAX `env` of `config.num_envs` envs."""
    agent = make_agent(config, env)
    env = _clipping_env(agent, env)
    return common.Trainer(
        init=functools.partial(init, agent, env),
        update=functools.partial(update, agent, env),
        num_updates=agent.num_updates,
        steps_per_update=config.num_envs * config.num_steps,
        act=functools.partial(act, agent),
        params=lambda state: {"network": state.params, "obs_stats": state.obs_stats},
    )


def make_train(config: PPOConfig, env: Env):
    """`train(key) -> (state, metrics)`: the whole run, jit- and vmap-able (PureJaxRL contract)."""
    return common.train_from_trainer(make_trainer(config, env))
