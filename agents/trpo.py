"""TRPO: trust region policy optimization (Schulman et al. 2015, "Trust Region Policy
Optimization", arXiv:1502.05477; TensorForce `TRPOAgent`, A12).

One update = a rollout of `num_steps` ticks in `num_envs` envs with the current policy, GAE
advantages Â (Schulman et al. 2016, arXiv:1506.02438) from a separately trained value baseline,
then one natural-gradient step of the policy on the whole batch,

    maximise  E[ ρ Â ]  subject to  E_s[ KL(π_old(.|s) ‖ π_θ(.|s)) ] ≤ δ,   ρ = π_θ(a|s) / π_old(a|s),

solved as in the paper's appendix C: s = F⁻¹g by conjugate gradient on Fisher-vector products
(F the Hessian of the mean KL), scaled so ½ sᵀFs = δ (`max_kl`, TensorForce's `learning_rate`),
and shortened by a backtracking line search that requires an improvement of the surrogate and a
realized KL ≤ `kl_tolerance` · δ (`fnrl.natural_gradient_step`). The baseline V is then
regressed on the GAE value targets with Adam for `value_epochs` passes in `value_minibatches`
shuffled minibatches (TensorForce's separate `baseline_optimizer`, G15).

With `likelihood_ratio_clipping` ε > 0 the surrogate is PPO's clipped one (TensorForce's
`PGProbRatioModel`), with the ratio in [1 − ε, 1 + ε], or TensorForce's [1/(1 + ε), 1 + ε] with
`clip_range="tensorforce"` (as the TensorForce facade sets); with `ent_coef` > 0 an entropy bonus
is added to it. With `use_baseline=False` (TensorForce's default `baseline_mode=None`) no critic
is trained and Â is GAE with V ≡ 0: the discounted returns when `gae_lambda` = 1.

The network is `agents.policy.actor_critic` (separate tanh MLPs for actor and critic, or torsos
from a TensorForce layers spec `network`; their parameters are split here so the natural gradient
acts on the actor only). With an `internal_lstm` layer or a `memory` cell it is recurrent: the
learner replays each env's sequence from the memory before the rollout for the surrogate, the KL
and the value regression, whose minibatches are then groups of whole env sequences. The
advantages are PPO's (`agents.ppo.advantages`). Defaults follow the paper / modular_rl
(`max_kl` 0.01, `cg_damping` 0.1, `gae_lambda` 0.97, line-search acceptance ratio 0.1).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import optax
from jax import lax

import fnrl
from fnrl.policy_gradients import CLIP_RANGES
from fnrl.rollout import PolicyOutput, RolloutCarry, Trajectory
from fnrl.types import Array, Env, PRNGKey, PyTree

from agents import common, policy, ppo

_LS_MODES = ("exponential", "linear")


@dataclasses.dataclass(frozen=True)
class TRPOConfig:
    """Every hyperparameter of the recipe (JSON-serialisable field types)."""

    num_envs: int = 8
    num_steps: int = 256  # rollout length per env and update (batch = num_envs · num_steps)
    total_steps: int = 500_000  # env steps of the whole run
    hidden_sizes: tuple[int, ...] = (64, 64)  # actor and critic torsos (separate)
    activation: str = "tanh"
    max_kl: float = 0.01  # δ, TensorForce's `learning_rate`
    cg_max_iterations: int = 10
    cg_damping: float = 0.1
    cg_residual_tol: float = 1e-10
    ls_max_iterations: int = 10
    ls_accept_ratio: float = 0.1
    ls_mode: str = "exponential"
    ls_parameter: float = 0.5
    kl_tolerance: float = 1.5  # line search rejects steps with KL > kl_tolerance · max_kl
    likelihood_ratio_clipping: float = 0.0  # ε of a PPO-clipped surrogate; 0 = plain surrogate
    clip_range: str = "symmetric"  # or "tensorforce": ratio in [1/(1+ε), 1+ε] (see agents.ppo)
    ent_coef: float = 0.0
    gamma: float = 0.99
    gae_lambda: float = 0.97
    normalize_advantages: bool = True
    use_baseline: bool = True  # False: TensorForce's default `baseline_mode=None` (Â = GAE with V = 0)
    value_learning_rate: float = 1e-3
    value_epochs: int = 5
    value_minibatches: int = 8
    bounded_actions: str = "beta"  # or "clipped_gaussian" (see agents.ppo)
    init_log_std: float = 0.0  # initial log-std of gaussian policies
    variable_noise: float = 0.0  # stddev of Gaussian noise on the policy's parameters per sampled tick (TensorForce)
    network: Optional[tuple] = None  # TensorForce layers spec for each torso (replaces hidden_sizes)
    memory: str = "none"  # "lstm" / "gru": an AgentNet memory cell after each torso (recurrent)
    memory_size: int = 64  # units of that cell

    def __post_init__(self):
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        object.__setattr__(self, "network", policy.network_spec("TRPOConfig", self.network))
        common.check_choice("TRPOConfig", "memory", self.memory, policy.MEMORY_CELLS)
        common.check_field_types("TRPOConfig", self)
        common.check_counts("TRPOConfig", self, ("num_envs", "num_steps", "total_steps", "cg_max_iterations",
                                                 "ls_max_iterations", "value_epochs", "value_minibatches",
                                                 "memory_size"))
        common.check_ranges("TRPOConfig", self, (
            ("gamma", 0, 1), ("gae_lambda", 0, 1), ("max_kl", 0, None), ("cg_damping", 0, None),
            ("cg_residual_tol", 0, None), ("ls_accept_ratio", 0, None), ("ls_parameter", 0, 1),
            ("kl_tolerance", 1, None), ("likelihood_ratio_clipping", 0, None), ("ent_coef", 0, None),
            ("value_learning_rate", 0, None), ("variable_noise", 0, None)), positive=("max_kl",))
        if self.ls_parameter == 0 or (self.ls_parameter == 1 and self.ls_mode == "exponential"):
            raise ValueError(f"TRPOConfig: field `ls_parameter` must be in (0, 1] (< 1 with ls_mode 'exponential'), "
                             f"got {self.ls_parameter!r}")
        if self.ls_mode not in _LS_MODES:
            raise ValueError(f"TRPOConfig: field `ls_mode` must be one of {_LS_MODES}, got {self.ls_mode!r}")
        common.check_choice("TRPOConfig", "bounded_actions", self.bounded_actions, policy.BOUNDED_ACTIONS)
        common.check_choice("TRPOConfig", "clip_range", self.clip_range, CLIP_RANGES)
        if policy.is_recurrent_spec(self.network, self.memory):
            if self.num_envs % self.value_minibatches:  # recurrent minibatches hold whole env sequences
                raise ValueError(f"TRPOConfig: field `value_minibatches` ({self.value_minibatches}) must divide "
                                 f"num_envs = {self.num_envs} for a recurrent policy (minibatches of envs)")
        elif (self.num_envs * self.num_steps) % self.value_minibatches:
            raise ValueError(f"TRPOConfig: field `value_minibatches` ({self.value_minibatches}) must divide "
                             f"num_envs * num_steps = {self.num_envs * self.num_steps}")


class TRPOState(NamedTuple):
    """The whole training state (arrays only: checkpointed and vmapped over seeds)."""

    policy_params: PyTree  # haiku params of the actor (torso and policy heads)
    value_params: PyTree  # haiku params of the critic (torso and value head)
    value_opt_state: optax.OptState
    rollout: RolloutCarry  # env state, last timestep and the acting key
    key: PRNGKey  # minibatch shuffling of the value regression
    update_count: Array  # int32, updates done


class TRPOBatch(NamedTuple):
    """Learning data `[T, B]`: what was seen and done, the behaviour log-prob, the GAE advantage
    and value target, and whether the step is valid."""

    observation: PyTree
    action: PyTree
    log_prob: Array
    advantage: Array
    target: Array
    mask: Array
    first: Array = ()  # [T, B] episode starts (recurrent: the replay resets there)
    memory: PyTree = ()  # [B, ...] the memory before tick 0 (recurrent)


class _Agent(NamedTuple):
    """Everything static a recipe function needs (`network` and `spaces` as `agents.policy`
    reads them)."""

    config: TRPOConfig
    network: hk.Transformed  # actor-critic: features -> (per-part distribution params, value)
    spaces: policy.Spaces
    value_optimizer: optax.GradientTransformation
    num_updates: int
    initial_memory: PyTree  # one env's memory at episode starts; () when feed-forward


_NO_OBS_STATS = ()  # TRPO keeps no observation statistics


def _is_critic(module_name: str, name: str, value: Array) -> bool:
    """`agents.policy.actor_critic` names its critic modules "critic/...", "critic_memory/..."
    (a memory cell) and "value/..."."""
    del name, value
    return module_name.split("/")[0] in ("critic", "critic_memory", "value")


def _forward(agent: _Agent, policy_params: PyTree, value_params: PyTree, batch: TRPOBatch) -> tuple[list, Array]:
    """(distribution params, V) of the batch: on every tick, or for a recurrent policy each env's
    sequence replayed from `batch.memory` (`agents.policy.evaluate`)."""
    params = hk.data_structures.merge(policy_params, value_params)
    return policy.evaluate(agent, params, _NO_OBS_STATS, batch.observation, batch.action, batch.first, batch.memory)


# --------------------------------------------------------------------------------------------
# The policy step.


def surrogate_loss(agent: _Agent, policy_params: PyTree, value_params: PyTree, batch: TRPOBatch) -> Array:
    """−E[ρ Â] − ent_coef · H[π] on the valid samples (`fnrl.trpo_surrogate`), or PPO's clipped
    −E[min(ρÂ, clip(ρ, lo, hi)Â)] (`fnrl.ppo_clip_loss` with `clip_range`) when
    `likelihood_ratio_clipping` ε > 0."""
    cfg = agent.config
    dist_params, _ = _forward(agent, policy_params, value_params, batch)
    log_prob = policy.log_prob(agent.spaces, dist_params, batch.action)
    if cfg.likelihood_ratio_clipping > 0:
        loss, _ = fnrl.ppo_clip_loss(log_prob, batch.log_prob, batch.advantage, cfg.likelihood_ratio_clipping,
                                     batch.mask, cfg.clip_range)
    else:
        loss = -fnrl.trpo_surrogate(log_prob, batch.log_prob, batch.advantage, batch.mask)
    if cfg.ent_coef > 0:
        loss += cfg.ent_coef * fnrl.entropy_loss(policy.entropy(agent.spaces, dist_params), batch.mask)
    return loss


def policy_step(agent: _Agent, policy_params: PyTree, value_params: PyTree,
                batch: TRPOBatch) -> tuple[PyTree, dict]:
    """One `fnrl.natural_gradient_step` of the actor on the whole batch, in the KL trust region
    around the current policy. Returns the new actor params and the step's diagnostics."""
    cfg = agent.config
    old_dist_params, _ = _forward(agent, policy_params, value_params, batch)

    def loss_fn(params: PyTree) -> Array:
        return surrogate_loss(agent, params, value_params, batch)

    def kl_fn(params: PyTree) -> Array:
        new_dist_params, _ = _forward(agent, params, value_params, batch)
        return fnrl.mean_kl(functools.partial(policy.kl, agent.spaces), old_dist_params, new_dist_params, batch.mask)

    new_params, info = fnrl.natural_gradient_step(
        loss_fn, kl_fn, policy_params, cfg.max_kl, cg_max_iterations=cfg.cg_max_iterations,
        cg_damping=cfg.cg_damping, cg_residual_tol=cfg.cg_residual_tol, ls_max_iterations=cfg.ls_max_iterations,
        ls_accept_ratio=cfg.ls_accept_ratio, ls_mode=cfg.ls_mode, ls_parameter=cfg.ls_parameter,
        kl_tolerance=cfg.kl_tolerance)
    ls = info.line_search
    metrics = {
        "policy_loss": ls.loss,  # the surrogate loss after the step
        "entropy": -fnrl.entropy_loss(policy.entropy(agent.spaces, old_dist_params), batch.mask),
        "kl": kl_fn(new_params),  # realized mean KL(π_old ‖ π_new) of the accepted step
        "expected_improvement": ls.expected_improvement,
        "improvement": ls.improvement,
        "step_fraction": ls.step_fraction,
        "line_search_accepted": ls.accepted.astype(jnp.float32),
        "cg_iterations": info.natural_gradient.cg_iterations.astype(jnp.float32),
    }
    return new_params, metrics


# --------------------------------------------------------------------------------------------
# The baseline regression.


def _value_loss(agent: _Agent, value_params: PyTree, policy_params: PyTree, batch: TRPOBatch) -> Array:
    _, value = _forward(agent, policy_params, value_params, batch)
    return fnrl.value_loss(value, batch.target, batch.mask)


def _value_minibatch(agent: _Agent, policy_params: PyTree, carry: tuple, batch: TRPOBatch) -> tuple[tuple, Array]:
    params, opt_state = carry
    loss, grads = jax.value_and_grad(functools.partial(_value_loss, agent))(params, policy_params, batch)
    updates, opt_state = agent.value_optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss


def _value_epoch(agent: _Agent, policy_params: PyTree, data: TRPOBatch, carry: tuple,
                 key: PRNGKey) -> tuple[tuple, Array]:
    """One pass over the batch in `value_minibatches` shuffled minibatches (one Adam step each):
    of (tick, env) samples, or of whole env sequences for a recurrent policy."""
    groups = policy.minibatches(agent, data, agent.config.value_minibatches, key)
    return lax.scan(functools.partial(_value_minibatch, agent, policy_params), carry, groups)


def fit_baseline(agent: _Agent, state: TRPOState, batch: TRPOBatch) -> tuple[TRPOState, Array]:
    """½ E[(V(s) − target)²] regressed with Adam over `value_epochs` shuffled passes; returns the
    state with new critic params, optimizer state and key, and the mean minibatch loss."""
    data = batch if policy.is_recurrent(agent) else jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), batch)
    key, epochs_key = jax.random.split(state.key)
    epoch = functools.partial(_value_epoch, agent, state.policy_params, data)
    (params, opt_state), losses = lax.scan(epoch, (state.value_params, state.value_opt_state),
                                           jax.random.split(epochs_key, agent.config.value_epochs))
    return state._replace(value_params=params, value_opt_state=opt_state, key=key), jnp.mean(losses)


# --------------------------------------------------------------------------------------------
# Learning and the recipe.


def learn(agent: _Agent, state: TRPOState, trajectory: Trajectory, bootstrap: Array,
          memory: PyTree = ()) -> tuple[TRPOState, dict]:
    """TRPO's learning phase on one rollout: GAE with the current baseline, the natural-gradient
    policy step, then the baseline regression on the same batch.

    `trajectory.extras` holds the behaviour "log_prob" and "value" `[T, B]`; `bootstrap` is
    V(o_T) `[B]`; `memory` is a recurrent policy's memory before tick 0 `[B, ...]`.
    """
    cfg = agent.config
    if not cfg.use_baseline:
        no_values = jnp.zeros_like(trajectory.extras["value"])
        trajectory = trajectory._replace(extras={**trajectory.extras, "value": no_values})
        bootstrap = jnp.zeros_like(bootstrap)
    adv, target = ppo.advantages(cfg, trajectory, bootstrap)
    if cfg.normalize_advantages:
        adv = fnrl.normalize_advantages(adv, trajectory.valid)
    batch = TRPOBatch(trajectory.observation, trajectory.action, trajectory.extras["log_prob"], adv, target,
                      trajectory.valid)
    if policy.is_recurrent(agent):
        batch = batch._replace(first=trajectory.first, memory=memory)
    policy_params, metrics = policy_step(agent, state.policy_params, state.value_params, batch)
    state = state._replace(policy_params=policy_params)
    value_loss = jnp.zeros((), jnp.float32)
    if cfg.use_baseline:
        state, value_loss = fit_baseline(agent, state, batch)
    metrics.update(value_loss=value_loss, loss=metrics["policy_loss"] + value_loss)
    return state, metrics


def start(agent: _Agent, key: PRNGKey, rollout: RolloutCarry) -> TRPOState:
    """A fresh state around the envs' first timestep: actor, critic and the critic's optimizer."""
    net_key, key = jax.random.split(key)
    rollout = rollout._replace(memory=policy.batched_memory(agent, rollout.memory, rollout.timestep.reward.shape))
    params = policy.init_network(agent, net_key, policy.features(agent.spaces, rollout.timestep.observation),
                                 rollout.memory)
    value_params, policy_params = hk.data_structures.partition(_is_critic, params)
    return TRPOState(policy_params, value_params, agent.value_optimizer.init(value_params), rollout, key,
                     jnp.zeros((), jnp.int32))


def _network_params(state: TRPOState) -> PyTree:
    return hk.data_structures.merge(state.policy_params, state.value_params)


def rollout_policy(agent: _Agent, state: TRPOState, key: PRNGKey, observation, memory, action=None) -> PolicyOutput:
    """The rollout policy step of `state`'s policy (`agents.policy.behaviour`)."""
    return policy.behaviour(agent, _network_params(state), _NO_OBS_STATS, key, observation, memory, action)


def learn_rollout(agent: _Agent, state: TRPOState, rollout: RolloutCarry,
                  trajectory: Trajectory) -> tuple[TRPOState, dict]:
    """The update after a rollout: bootstrap from V(o_T), `learn` (from the memory before the
    rollout, `state.rollout.memory`), count; contract metrics."""
    cfg = agent.config
    bootstrap = policy.bootstrap_value(agent, _network_params(state), _NO_OBS_STATS, rollout)
    state, metrics = learn(agent, state._replace(rollout=rollout), trajectory, bootstrap, state.rollout.memory)
    return common.count_update(state, metrics, trajectory, cfg.num_envs * cfg.num_steps)


def make_agent(config: TRPOConfig, env: Env) -> _Agent:
    """The static parts of the recipe for `env`'s specs (network, distributions, optimizer)."""
    common.check_env("trpo.make_trainer", config, env)
    spaces = policy.spaces("trpo.make_trainer", env.spec(), config.bounded_actions)
    network = policy.actor_critic(spaces, config.hidden_sizes, config.activation, config.init_log_std,
                                  config.network, config.memory, config.memory_size)
    num_updates = config.total_steps // (config.num_envs * config.num_steps)
    return _Agent(config, network, spaces, optax.adam(config.value_learning_rate), num_updates,
                  policy.initial_memory(config.network, config.memory, config.memory_size))


def make_trainer(config: TRPOConfig, env: Env) -> common.Trainer:
    """The `agents.common.Trainer` of TRPO on a batched `env` of `config.num_envs` envs."""
    return policy.trainer(make_agent(config, env), env, start, rollout_policy, learn_rollout,
                          params=lambda state: {"network": _network_params(state), "obs_stats": _NO_OBS_STATS})


def make_train(config: TRPOConfig, env: Env):
    """`train(key) -> (state, metrics)`: the whole run, jit- and vmap-able (PureJaxRL contract)."""
    return common.train_from_trainer(make_trainer(config, env))
