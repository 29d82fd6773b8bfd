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
invalid reset steps are masked out of every loss and of the observation statistics (the reward
normaliser's return statistics do count them, as R = 0: see `_normalize_rewards`).

The policy over the env's action spec (any mix of int, bool, float and bounded parts) is
`agents.policy`'s; observations of any pytree are flattened into one feature vector.

Recurrent PPO: with a memory cell (`memory`) or `internal_lstm` layers in a TensorForce `network`
spec the policy carries a per-env memory. The learner then recomputes log-probs and values by
replaying each env's whole sequence with its recorded actions from the memory at the start of the
rollout (memory resets at episode starts, as when acting), so minibatches are groups of envs
(`num_minibatches` must divide `num_envs`) and the gradient flows back through time over the
rollout; V(o_T) uses the memory after the rollout.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import optax
from jax import lax

import fnrl
from fnrl import preprocessing
from fnrl.policy_gradients import CLIP_RANGES
from fnrl.rollout import PolicyOutput, RolloutCarry, Trajectory
from fnrl.types import Array, Env, PRNGKey, PyTree

from agents import common, policy

# Observation statistics start, as OpenAI baselines' VecNormalize, from a unit-variance prior of
# weight 1e-4, so the first rollout sees raw observations.
_OBS_PRIOR_COUNT = 1e-4
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
    adam_eps: float = 1e-5  # epsilon of the named optimizer (Adam / RMSprop)
    optimizer: Any = "adam"  # "rmsprop", "sgd", or a TensorForce optimizer spec (TensorForce's
    # `step_optimizer`, `fnrl.optimizer_from_spec`: its own learning rate, no annealing or clipping)
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
    variable_noise: float = 0.0  # stddev of Gaussian noise on the policy's parameters per sampled tick (TensorForce)
    network: Optional[tuple] = None  # TensorForce layers spec for each torso (replaces hidden_sizes)
    memory: str = "none"  # "lstm" / "gru": an AgentNet memory cell after each torso (recurrent)
    memory_size: int = 64  # units of that cell

    def __post_init__(self):
        # JSON gives lists; keep the config hashable and comparable.
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        object.__setattr__(self, "network", policy.network_spec("PPOConfig", self.network))
        common.check_field_types("PPOConfig", self)
        common.check_counts("PPOConfig", self, ("num_envs", "num_steps", "total_steps", "update_epochs",
                                                "num_minibatches", "memory_size"))
        common.check_ranges("PPOConfig", self, (("gamma", 0, 1), ("gae_lambda", 0, 1), ("clip_eps", 0, None),
                                                ("learning_rate", 0, None), ("max_grad_norm", 0, None),
                                                ("variable_noise", 0, None)),
                            allow_inf=("clip_eps",))  # TensorForce's no clipping
        common.check_choice("PPOConfig", "clip_range", self.clip_range, CLIP_RANGES)
        common.check_choice("PPOConfig", "bounded_actions", self.bounded_actions, policy.BOUNDED_ACTIONS)
        common.check_choice("PPOConfig", "memory", self.memory, policy.MEMORY_CELLS)
        common.check_optimizer("PPOConfig", "optimizer", self.optimizer)
        if policy.is_recurrent_spec(self.network, self.memory):
            if self.num_envs % self.num_minibatches:  # recurrent minibatches hold whole env sequences
                raise ValueError(f"PPOConfig: field `num_minibatches` ({self.num_minibatches}) must divide "
                                 f"num_envs = {self.num_envs} for a recurrent policy (minibatches of envs)")
        elif (self.num_envs * self.num_steps) % self.num_minibatches:
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
    log-prob and value, the GAE advantage and value target, and whether the step is valid.
    A recurrent policy's batch is time-major `[T, B]` sequences with their episode starts and the
    memory before tick 0 `[B, ...]`."""

    observation: PyTree
    action: PyTree
    log_prob: Array
    value: Array
    advantage: Array
    target: Array
    mask: Array
    first: Array = ()  # [T, B] (recurrent)
    memory: PyTree = ()  # [B, ...] (recurrent)


# --------------------------------------------------------------------------------------------
# Network and policy.


class _Agent(NamedTuple):
    """Everything static a recipe function needs (built once by `make_trainer`)."""

    config: PPOConfig
    network: hk.Transformed  # features -> (list of per-part distribution params, value)
    spaces: policy.Spaces
    optimizer: fnrl.Minimizer  # one step per minibatch
    reward_normalizer: preprocessing.Preprocessor
    num_updates: int
    initial_memory: PyTree  # one env's memory at episode starts; () when feed-forward


def policy_step(agent: _Agent, state: PPOState, key: PRNGKey, observation: PyTree, memory: PyTree,
                action: PyTree = None) -> PolicyOutput:
    """The rollout policy step of `state`'s policy (`agents.policy.behaviour`)."""
    return policy.behaviour(agent, state.params, state.obs_stats, key, observation, memory, action)


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
    dist_params, value = policy.evaluate(agent, params, obs_stats, batch.observation, batch.action, batch.first,
                                         batch.memory)
    adv = fnrl.normalize_advantages(batch.advantage, batch.mask) if cfg.normalize_advantages else batch.advantage
    policy_loss, info = fnrl.ppo_clip_loss(policy.log_prob(agent.spaces, dist_params, batch.action), batch.log_prob, adv,
                                           cfg.clip_eps, batch.mask, cfg.clip_range)
    if cfg.clip_value_loss:
        v_loss = fnrl.clipped_value_loss(value, batch.value, batch.target, cfg.clip_eps, batch.mask)
    else:
        v_loss = fnrl.value_loss(value, batch.target, batch.mask)
    mean_entropy = -fnrl.entropy_loss(policy.entropy(agent.spaces, dist_params), batch.mask)
    total = policy_loss + cfg.vf_coef * v_loss - cfg.ent_coef * mean_entropy
    return total, {"loss": total, "policy_loss": policy_loss, "value_loss": v_loss, "entropy": mean_entropy,
                   "approx_kl": info.approx_kl, "clip_fraction": info.clip_fraction}


def _minibatch_step(agent: _Agent, obs_stats: PyTree, carry: tuple, batch: PPOBatch) -> tuple[tuple, dict]:
    params, opt_state = carry
    params, opt_state, info = agent.optimizer.minimize(lambda p: ppo_loss(agent, p, obs_stats, batch),
                                                       params, opt_state)
    return (params, opt_state), info.aux


def _epoch(agent: _Agent, obs_stats: PyTree, data: PPOBatch, carry: tuple, key: PRNGKey) -> tuple[tuple, dict]:
    """One pass over the batch in `num_minibatches` shuffled minibatches (one Adam step each): of
    (tick, env) samples, or of whole env sequences for a recurrent policy."""
    groups = policy.minibatches(agent, data, agent.config.num_minibatches, key)
    return lax.scan(functools.partial(_minibatch_step, agent, obs_stats), carry, groups)


def _learning_rate(config: PPOConfig, num_updates: int, update_count: Array) -> Array:
    """lr · (1 − k / num_updates) at update k when annealing, else lr (CleanRL's schedule); 0
    from update num_updates on (a run continued past its length does not ascend its loss)."""
    if not config.anneal_lr:
        return jnp.asarray(config.learning_rate, jnp.float32)
    return config.learning_rate * jnp.maximum(0.0, 1.0 - update_count.astype(jnp.float32) / num_updates)


def learn(agent: _Agent, state: PPOState, trajectory: Trajectory, bootstrap: Array,
          memory: PyTree = ()) -> tuple[PPOState, dict]:
    """PPO's learning phase on one rollout (rewards as the learner should see them).

    `trajectory.extras` holds the behaviour "log_prob" and "value" `[T, B]`; `bootstrap` is
    V(o_T) `[B]`; `memory` is a recurrent policy's memory before tick 0 `[B, ...]`. Returns the
    state with new params / optimizer state / key and the mean metrics over all minibatch steps
    (plus "learning_rate" of this update).
    """
    adv, target = advantages(agent.config, trajectory, bootstrap)
    batch = PPOBatch(trajectory.observation, trajectory.action, trajectory.extras["log_prob"],
                     trajectory.extras["value"], adv, target, trajectory.valid)
    if policy.is_recurrent(agent):
        data = batch._replace(first=trajectory.first, memory=memory)
    else:
        data = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), batch)
    key, epochs_key = jax.random.split(state.key)
    epoch = functools.partial(_epoch, agent, state.obs_stats, data)
    (params, opt_state), metrics = lax.scan(epoch, (state.params, state.opt_state),
                                            jax.random.split(epochs_key, agent.config.update_epochs))
    metrics = jax.tree.map(jnp.mean, metrics)
    metrics["learning_rate"] = _learning_rate(agent.config, agent.num_updates, state.update_count)
    return state._replace(params=params, opt_state=opt_state, key=key), metrics


def _normalize_rewards(agent: _Agent, reward_norm: PyTree, trajectory: Trajectory) -> tuple[PyTree, Trajectory]:
    """Rewards scaled by the running std of the discounted return (`fnrl.preprocessing.
    reward_normalize`), clipped to ±10 as baselines' VecNormalize; the return restarts after a
    done step and at an episode's first tick (a no-op in a run, but a resumed host loop's fresh
    episodes do not inherit the checkpoint's return). Caveat: the invalid reset steps add R = 0
    samples to the return statistics."""
    pp = agent.reward_normalizer

    def step(norm_state, xs):
        reward, first, done = xs
        norm_state, scaled = pp.apply(pp.reset(norm_state, first), reward)
        return pp.reset(norm_state, done), jnp.clip(scaled, -_REWARD_CLIP, _REWARD_CLIP)

    done = trajectory.terminated | trajectory.truncated
    reward_norm, rewards = lax.scan(step, reward_norm, (trajectory.reward, trajectory.first, done))
    return reward_norm, trajectory._replace(reward=rewards)


def _update_obs_stats(agent: _Agent, obs_stats: PyTree, trajectory: Trajectory) -> PyTree:
    if not isinstance(obs_stats, preprocessing.RunningStats):
        return obs_stats
    features = policy.features(agent.spaces, trajectory.observation)
    return fnrl.running_stats_update(obs_stats, features, axis=(0, 1), where=trajectory.valid)


# --------------------------------------------------------------------------------------------
# The recipe.


def start(agent: _Agent, key: PRNGKey, rollout: RolloutCarry) -> PPOState:
    """A fresh state around the envs' first timestep: networks, optimizer and normalizers."""
    net_key, key = jax.random.split(key)
    features = policy.features(agent.spaces, rollout.timestep.observation)
    # `rollout_init` carries one env's initial memory; acting needs it per env (`[B, ...]`).
    rollout = rollout._replace(memory=policy.batched_memory(agent, rollout.memory, rollout.timestep.reward.shape))
    params = policy.init_network(agent, net_key, features, rollout.memory)
    obs_stats = ()
    if agent.config.normalize_observations:
        prior = fnrl.running_stats_init(features.shape[-1:])
        obs_stats = prior._replace(count=jnp.asarray(_OBS_PRIOR_COUNT, jnp.float32),
                                   m2=jnp.full_like(prior.m2, _OBS_PRIOR_COUNT))
    reward_norm = agent.reward_normalizer.init(rollout.timestep.reward) if agent.config.normalize_rewards else ()
    return PPOState(params, agent.optimizer.init(params), rollout, obs_stats, reward_norm, key,
                    jnp.zeros((), jnp.int32))


def learn_rollout(agent: _Agent, state: PPOState, rollout: RolloutCarry,
                  trajectory: Trajectory) -> tuple[PPOState, dict]:
    """The update after a rollout: bootstrap from V(o_T), normalize rewards, `learn` (from the
    memory before the rollout, `state.rollout.memory`), then update the observation statistics
    and the counters; metrics per the `Trainer` contract."""
    cfg = agent.config
    bootstrap = policy.bootstrap_value(agent, state.params, state.obs_stats, rollout)
    memory = state.rollout.memory
    learn_trajectory, reward_norm = trajectory, state.reward_norm
    if cfg.normalize_rewards:
        reward_norm, learn_trajectory = _normalize_rewards(agent, reward_norm, trajectory)
    state = state._replace(rollout=rollout, reward_norm=reward_norm)
    state, metrics = learn(agent, state, learn_trajectory, bootstrap, memory)
    state = state._replace(obs_stats=_update_obs_stats(agent, state.obs_stats, trajectory))
    return common.count_update(state, metrics, trajectory, cfg.num_envs * cfg.num_steps)


def _optimizer(config: PPOConfig, num_updates: int) -> fnrl.Minimizer:
    """The named optimizer (learning rate annealed per update, gradient clipped when
    `max_grad_norm` > 0) or the config's optimizer spec."""
    steps_per_update = config.update_epochs * config.num_minibatches
    learning_rate = config.learning_rate
    if config.anneal_lr:
        learning_rate = lambda count: _learning_rate(config, num_updates, count // steps_per_update)
    return common.minimizer(config.optimizer, learning_rate, config.max_grad_norm, eps=config.adam_eps)


def make_agent(config: PPOConfig, env: Env) -> _Agent:
    """The static parts of the recipe for `env`'s specs (networks, distributions, optimizer)."""
    common.check_env("ppo.make_trainer", config, env)
    spaces = policy.spaces("ppo.make_trainer", env.spec(), config.bounded_actions)
    network = policy.actor_critic(spaces, config.hidden_sizes, config.activation, config.init_log_std,
                                  config.network, config.memory, config.memory_size)
    num_updates = config.total_steps // (config.num_envs * config.num_steps)
    return _Agent(config, network, spaces, _optimizer(config, num_updates), preprocessing.reward_normalize(config.gamma),
                  num_updates, policy.initial_memory(config.network, config.memory, config.memory_size))


def make_trainer(config: PPOConfig, env: Env) -> common.Trainer:
    """The `agents.common.Trainer` of PPO on a batched `env` of `config.num_envs` envs (pure-JAX:
    `init`/`update`; envpool: `on_policy` for `agents.host`)."""
    return policy.trainer(make_agent(config, env), env, start, policy_step, learn_rollout,
                          params=lambda state: {"network": state.params, "obs_stats": state.obs_stats})


def make_train(config: PPOConfig, env: Env):
    """`train(key) -> (state, metrics)`: the whole run, jit- and vmap-able (PureJaxRL contract)."""
    return common.train_from_trainer(make_trainer(config, env))
