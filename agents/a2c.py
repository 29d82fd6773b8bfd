"""A2C: synchronous advantage actor-critic (Mnih et al. 2016, "Asynchronous Methods for Deep
Reinforcement Learning", arXiv:1602.01783, in the synchronous form of OpenAI baselines' `a2c`;
AgentNet's a2c objective, seed features A7 / B3 / H9).

One update = a rollout of `num_steps` ticks in `num_envs` envs with the current policy, then a
single optimizer step on the whole rollout (`fnrl.a2c_loss`):

    L = −mean(log π(a_i|s_i) · Â_i) + vf_coef · mean((V(s_i) − V̂_i)²) / 2 − ent_coef · mean(H[π(.|s_i)])

With the default `gae_lambda = 1` the advantage is the paper's k-step one: every tick i of the
rollout bootstraps from the critic at its end,

    Â_i = Σ_{k<T−i} γ^k r_{i+k} + γ^{T−i} V(o_T) − V(s_i),   V̂_i = Â_i + V(s_i),

computed by `fnrl.gae` (λ < 1 gives GAE, Schulman et al. 2016, arXiv:1506.02438) exactly as PPO
computes it (`agents.ppo.advantages`): a termination cuts the sum, a truncation bootstraps from
the critic's value of the final observation, and the envpool-style reset ticks are masked out.

Defaults follow the paper and baselines' `a2c`: RMSprop (decay 0.99, eps 1e-5) at 7e-4,
global-norm clipping 0.5, 5-step rollouts in 8 envs, entropy 0.01; actor and critic are separate
64-64 tanh MLPs with orthogonal initialization (`agents.policy.actor_critic`, as PPO), or
torsos built from a TensorForce layers spec (`network`).

Recurrent A2C (AgentNet's "Deep Recurrent Kung-Fu" demo: GRU memory + actor-critic, seed
features S3): with a memory cell (`memory`) or `internal_lstm` layers in `network` the policy
carries a per-env memory, and the loss replays each env's rollout with its recorded actions from
the memory at the rollout's start (truncated backpropagation through time over `num_steps` ticks;
memory resets at episode starts).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import optax

import fnrl
from fnrl.rollout import PolicyOutput, RolloutCarry, Trajectory
from fnrl.types import Array, Env, PRNGKey, PyTree

from agents import common, policy, ppo
from agents.common import check_choice, check_counts, check_field_types, check_ranges


@dataclasses.dataclass(frozen=True)
class A2CConfig:
    """Every hyperparameter of the recipe (JSON-serialisable field types)."""

    num_envs: int = 8
    num_steps: int = 5  # rollout length per env and update: the k of the k-step advantage
    total_steps: int = 500_000  # env steps of the whole run (num_updates = total // (envs·steps))
    hidden_sizes: tuple[int, ...] = (64, 64)  # actor and critic torsos (separate)
    activation: str = "tanh"
    optimizer: str = "rmsprop"  # or "adam", "sgd"
    learning_rate: float = 7e-4
    anneal_lr: bool = False  # linear decay to 0 over the run
    rmsprop_decay: float = 0.99
    optimizer_eps: float = 1e-5  # RMSprop (inside the square root, as TF) or Adam epsilon
    gamma: float = 0.99
    gae_lambda: float = 1.0  # 1: the paper's k-step advantage; < 1: GAE
    ent_coef: float = 0.01
    vf_coef: float = 0.5  # weight of the halved squared error
    max_grad_norm: float = 0.5  # global-norm clipping; 0 disables it
    normalize_advantages: bool = False
    bounded_actions: str = "beta"  # or "clipped_gaussian" (see agents.ppo)
    init_log_std: float = 0.0  # initial log-std of gaussian policies
    variable_noise: float = 0.0  # stddev of Gaussian noise on the policy's parameters per sampled tick (TensorForce)
    network: Optional[tuple] = None  # TensorForce layers spec for each torso (replaces hidden_sizes)
    memory: str = "none"  # "lstm" / "gru": an AgentNet memory cell after each torso (recurrent)
    memory_size: int = 64  # units of that cell

    def __post_init__(self):
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        object.__setattr__(self, "network", policy.network_spec("A2CConfig", self.network))
        check_field_types("A2CConfig", self)
        check_counts("A2CConfig", self, ("num_envs", "num_steps", "total_steps", "memory_size"))
        check_ranges("A2CConfig", self, (("gamma", 0, 1), ("gae_lambda", 0, 1), ("learning_rate", 0, None),
                                         ("max_grad_norm", 0, None), ("rmsprop_decay", 0, 1),
                                         ("optimizer_eps", 0, None), ("variable_noise", 0, None),
                                         ("ent_coef", 0, None), ("vf_coef", 0, None)),
                     positive=("optimizer_eps",))  # RMSprop / Adam divide by sqrt(v + eps): NaN at eps 0
        if self.rmsprop_decay == 1:  # RMSprop's average of g² would never leave its start, 0
            raise ValueError("A2CConfig: field `rmsprop_decay` must be < 1, got 1")
        check_choice("A2CConfig", "optimizer", self.optimizer, common.OPTIMIZERS)
        check_choice("A2CConfig", "bounded_actions", self.bounded_actions, policy.BOUNDED_ACTIONS)
        check_choice("A2CConfig", "memory", self.memory, policy.MEMORY_CELLS)


class A2CState(NamedTuple):
    """The whole training state (arrays only: checkpointed and vmapped over seeds)."""

    params: PyTree  # haiku params of actor and critic
    opt_state: optax.OptState
    rollout: RolloutCarry  # env state, last timestep and the acting key
    update_count: Array  # int32, updates done


class _Agent(NamedTuple):
    """Everything static the recipe functions need (`network` and `spaces` as `agents.policy`
    reads them)."""

    config: A2CConfig
    network: hk.Transformed  # features -> (list of per-part distribution params, value)
    spaces: policy.Spaces
    optimizer: optax.GradientTransformation
    learning_rate: optax.Schedule
    num_updates: int
    initial_memory: PyTree  # one env's memory at episode starts; () when feed-forward


# --------------------------------------------------------------------------------------------
# Learning.


def a2c_loss(agent: _Agent, params: PyTree, trajectory: Trajectory, advantage: Array,
             target: Array, memory: PyTree = ()) -> tuple[Array, dict]:
    """`fnrl.a2c_loss` over the valid ticks of the rollout (module docstring's L); a recurrent
    policy replays the rollout from `memory`, its memory before tick 0 `[B, ...]`."""
    cfg = agent.config
    dist_params, value = policy.evaluate(agent, params, (), trajectory.observation, trajectory.action,
                                         trajectory.first, memory)
    if cfg.normalize_advantages:
        advantage = fnrl.normalize_advantages(advantage, trajectory.valid)
    total, parts = fnrl.a2c_loss(policy.log_prob(agent.spaces, dist_params, trajectory.action), advantage, value,
                                 target, policy.entropy(agent.spaces, dist_params), cfg.vf_coef, cfg.ent_coef,
                                 trajectory.valid)
    return total, {"loss": total, "policy_loss": parts.policy, "value_loss": parts.value, "entropy": -parts.entropy}


def learn(agent: _Agent, state: A2CState, trajectory: Trajectory, bootstrap: Array,
          memory: PyTree = ()) -> tuple[A2CState, dict]:
    """One optimizer step on one rollout.

    `trajectory.extras["value"]` holds V(s_i) `[T, B]` of the acting parameters; `bootstrap` is
    V(o_T) `[B]`; `memory` is a recurrent policy's memory before tick 0 `[B, ...]`. Returns the
    state with new params / optimizer state and the loss metrics (plus "learning_rate" and the
    pre-clipping "grad_norm").
    """
    advantage, target = ppo.advantages(agent.config, trajectory, bootstrap)
    grads, metrics = jax.grad(functools.partial(a2c_loss, agent), has_aux=True)(
        state.params, trajectory, advantage, target, memory)
    updates, opt_state = agent.optimizer.update(grads, state.opt_state, state.params)
    metrics["grad_norm"] = optax.tree.norm(grads)
    metrics["learning_rate"] = jnp.asarray(agent.learning_rate(state.update_count), jnp.float32)
    return state._replace(params=optax.apply_updates(state.params, updates), opt_state=opt_state), metrics


# --------------------------------------------------------------------------------------------
# The recipe.


def start(agent: _Agent, key: PRNGKey, rollout: RolloutCarry) -> A2CState:
    """A fresh state around the envs' first timestep: the network and the optimizer."""
    # `rollout_init` carries one env's initial memory; acting needs it per env (`[B, ...]`).
    rollout = rollout._replace(memory=policy.batched_memory(agent, rollout.memory, rollout.timestep.reward.shape))
    features = policy.features(agent.spaces, rollout.timestep.observation)
    params = policy.init_network(agent, key, features, rollout.memory)
    return A2CState(params, agent.optimizer.init(params), rollout, jnp.zeros((), jnp.int32))


def policy_step(agent: _Agent, state: A2CState, key: PRNGKey, observation, memory, action=None) -> PolicyOutput:
    """The rollout policy step of `state`'s policy (`agents.policy.behaviour`). Actions sampled
    with `variable_noise` are learned from as the unperturbed policy's, as TensorForce does
    (biased, little for small σ)."""
    return policy.behaviour(agent, state.params, (), key, observation, memory, action)


def learn_rollout(agent: _Agent, state: A2CState, rollout: RolloutCarry,
                  trajectory: Trajectory) -> tuple[A2CState, dict]:
    """The update after a rollout: bootstrap from V(o_T), `learn` (from the memory before the
    rollout, `state.rollout.memory`), count; contract metrics."""
    cfg = agent.config
    bootstrap = policy.bootstrap_value(agent, state.params, (), rollout)
    state, metrics = learn(agent, state._replace(rollout=rollout), trajectory, bootstrap, state.rollout.memory)
    return common.count_update(state, metrics, trajectory, cfg.num_envs * cfg.num_steps)


def make_agent(config: A2CConfig, env: Env) -> _Agent:
    """The static parts of the recipe for `env`'s specs (network, distributions, optimizer)."""
    common.check_env("a2c.make_trainer", config, env)
    spaces = policy.spaces("a2c.make_trainer", env.spec(), config.bounded_actions)
    num_updates = config.total_steps // (config.num_envs * config.num_steps)
    learning_rate = (optax.linear_schedule(config.learning_rate, 0.0, num_updates) if config.anneal_lr
                     else optax.constant_schedule(config.learning_rate))
    optimizer = common.named_optimizer(config.optimizer, learning_rate, config.max_grad_norm,
                                       config.optimizer_eps, config.rmsprop_decay)
    network = policy.actor_critic(spaces, config.hidden_sizes, config.activation, config.init_log_std,
                                  config.network, config.memory, config.memory_size)
    return _Agent(config, network, spaces, optimizer, learning_rate, num_updates,
                  policy.initial_memory(config.network, config.memory, config.memory_size))


def make_trainer(config: A2CConfig, env: Env) -> common.Trainer:
    """The `agents.common.Trainer` of A2C on a batched `env` of `config.num_envs` envs."""
    return policy.trainer(make_agent(config, env), env, start, policy_step, learn_rollout,
                          params=lambda state: {"network": state.params, "obs_stats": ()})


def make_train(config: A2CConfig, env: Env):
    """`train(key) -> (state, metrics)`: the whole run, jit- and vmap-able (PureJaxRL contract)."""
    return common.train_from_trainer(make_trainer(config, env))
