"""ES: evolution strategies over the policy's parameters (Salimans et al. 2017, "Evolution
Strategies as a Scalable Alternative to Reinforcement Learning", arXiv:1703.03864; TensorForce's
`evolutionary` optimizer, G3).

One update evaluates `population` perturbed policies θ ± σε_i (antithetic pairs, ε_i ~ N(0, I)),
each for `num_steps` ticks in its own copy of the `num_envs` envs, all in one `vmap`, and steps

    θ' = θ + α · 1/(nσ) · Σ_i (F̃(θ + σε_i) − F̃(θ − σε_i)) ε_i / 2,   n = population / 2

(`fnrl.es_step`), where F(θ) is the mean over the `num_envs` envs of the return of the first
episode each plays (an episode still running after `num_steps` ticks counts with its return so
far, so `num_steps` should cover the env's time limit) and F̃ its centered ranks over the
population. All members of one update start from the same env states and draw the same acting
noise (common random numbers), so a pair's fitness difference is due to its perturbation only.
The episode metrics count only the first episodes that finished within `num_steps` ticks (the
fitness statistics cover every member: `fitness_max`, `fitness_min`, `fitness_std`, `loss`).
Policies act greedily (the distributions' modes) by default, as in the paper; no gradient, value
function or discounting is involved.

The policy network and action distributions are PPO's actor (`agents.ppo`): a tanh MLP torso and
one head per action part.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

import fnrl
from fnrl.rollout import PolicyOutput, Trajectory, rollout_init, unroll
from fnrl.types import Array, Env, PRNGKey, PyTree

from agents import common, policy

_FITNESS_SHAPINGS = ("centered_rank", "none")


@dataclasses.dataclass(frozen=True)
class ESConfig:
    """Every hyperparameter of the recipe (JSON-serialisable field types)."""

    num_envs: int = 4  # envs each population member is evaluated in
    num_steps: int = 500  # ticks per evaluation; should cover the env's episode time limit
    population: int = 64  # perturbed policies per update (antithetic pairs: even)
    total_steps: int = 50_000_000  # env steps of the whole run, all members' ticks counted
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    learning_rate: float = 0.03  # α
    noise_std: float = 0.05  # σ
    fitness_shaping: str = "centered_rank"  # or "none" (raw returns)
    deterministic: bool = True  # act with the distributions' modes (else sample)
    bounded_actions: str = "beta"  # or "clipped_gaussian" (see agents.ppo)
    init_log_std: float = 0.0  # initial log-std of gaussian policies

    def __post_init__(self):
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        common.check_field_types("ESConfig", self)
        common.check_counts("ESConfig", self, ("num_envs", "num_steps", "population", "total_steps"))
        if self.population % 2:
            raise ValueError(f"ESConfig: field `population` must be even (antithetic pairs), got {self.population}")
        common.check_ranges("ESConfig", self, (("learning_rate", 0, None), ("noise_std", 0, None)),
                            positive=("noise_std",))
        if self.fitness_shaping not in _FITNESS_SHAPINGS:
            raise ValueError(f"ESConfig: field `fitness_shaping` must be one of {_FITNESS_SHAPINGS}, "
                             f"got {self.fitness_shaping!r}")
        common.check_choice("ESConfig", "bounded_actions", self.bounded_actions, policy.BOUNDED_ACTIONS)


class ESState(NamedTuple):
    """The whole training state (arrays only: checkpointed and vmapped over seeds)."""

    params: PyTree  # haiku params of the policy network
    key: PRNGKey  # perturbations and evaluation episodes
    update_count: Array  # int32, updates done


class _Agent(NamedTuple):
    """Everything static a recipe function needs."""

    config: ESConfig
    network: hk.Transformed  # features -> per-part distribution params
    spaces: policy.Spaces
    num_updates: int


def _network(config: ESConfig, spaces: policy.Spaces) -> hk.Transformed:
    """An actor as PPO's: a torso with orthogonal init (scale √2) and one near-zero head per part."""

    def forward(features: Array) -> list:
        torso = fnrl.MLP(config.hidden_sizes, config.activation, w_init=hk.initializers.Orthogonal(math.sqrt(2.0)),
                         name="actor")(features)
        return [policy.head(part, i, torso, config.init_log_std) for i, part in enumerate(spaces.parts)]

    return hk.without_apply_rng(hk.transform(forward))


def act(agent: _Agent, params: PyTree, key: PRNGKey, observation: PyTree, greedy: Any) -> PyTree:
    """Env-ready actions for `observation` (any batch shape): the modes if `greedy` or the
    config is deterministic, else samples."""
    dist_params = agent.network.apply(params, policy.features(agent.spaces, observation))
    greedy = jnp.logical_or(greedy, agent.config.deterministic)
    return policy.to_env(agent.spaces, policy.sample(agent.spaces, key, dist_params, greedy))


def _policy_step(agent: _Agent, params: PyTree, key: PRNGKey, observation: PyTree, memory: PyTree,
                 action: PyTree = None) -> PolicyOutput:
    """`fnrl.rollout` policy step (the env clips clipped-gaussian actions itself)."""
    if action is None:
        dist_params = agent.network.apply(params, policy.features(agent.spaces, observation))
        action = policy.sample(agent.spaces, key, dist_params, agent.config.deterministic)
    return PolicyOutput(action, memory)


# --------------------------------------------------------------------------------------------
# Fitness and the ES step.


def first_episode_returns(trajectory: Trajectory) -> Array:
    """Per env, the return of the first episode of the rollout: Σ_i r_i over the valid ticks up to
    and including its first done tick (all ticks if none), `[B]`."""
    done = (trajectory.terminated | trajectory.truncated) & trajectory.valid
    earlier_done = jnp.cumsum(done, axis=0) - done  # done ticks strictly before tick i
    counted = trajectory.valid & (earlier_done == 0)
    return jnp.sum(jnp.where(counted, trajectory.reward, 0.0), axis=0)


def fitness(agent: _Agent, env: Env, key: PRNGKey, params: PyTree) -> tuple[Array, dict]:
    """F(θ): the mean first-episode return over `num_envs` freshly reset envs, after
    `num_steps` ticks of the policy (an unfinished episode counts with its return so far). The
    same `key` gives the same episodes' randomness. Aux: the return sum and count of the first
    episodes that finished within the ticks (the episodes the metrics report)."""
    carry = rollout_init(env, key)
    policy_fn = functools.partial(_policy_step, agent, params)
    _, trajectory = unroll(policy_fn, env, carry, agent.config.num_steps)
    returns = first_episode_returns(trajectory)
    finished = jnp.any((trajectory.terminated | trajectory.truncated) & trajectory.valid, axis=0)
    return jnp.mean(returns), {"return_sum": jnp.sum(jnp.where(finished, returns, 0.0)),
                               "count": jnp.sum(finished).astype(jnp.float32)}


def update(agent: _Agent, env: Env, state: ESState) -> tuple[ESState, dict]:
    """One ES step from `population` evaluations; metrics per the contract, where the episodes
    are every member's first episode in every env that finished within `num_steps` ticks."""
    cfg = agent.config
    key, noise_key, eval_key = jax.random.split(state.key, 3)
    params, info = fnrl.es_step(noise_key, functools.partial(fitness, agent, env, eval_key), state.params,
                                learning_rate=cfg.learning_rate, num_samples=cfg.population // 2,
                                noise_std=cfg.noise_std, fitness_shaping=cfg.fitness_shaping, has_aux=True)
    count = state.update_count + 1
    mean_fitness = jnp.mean(info.fitness)
    step = ravel_pytree(params)[0] - ravel_pytree(state.params)[0]
    metrics = {
        "episode_return_sum": jnp.sum(info.aux["return_sum"]).astype(jnp.float32),
        "episode_count": jnp.sum(info.aux["count"]),
        "env_steps": count.astype(jnp.float32) * (cfg.population * cfg.num_envs * cfg.num_steps),
        "loss": -mean_fitness,
        "policy_loss": -mean_fitness,
        "fitness_max": jnp.max(info.fitness),
        "fitness_min": jnp.min(info.fitness),
        "fitness_std": jnp.std(info.fitness),
        "step_norm": jnp.linalg.norm(step),
    }
    return ESState(params, key, count), metrics


# --------------------------------------------------------------------------------------------
# The recipe.


def init(agent: _Agent, env: Env, key: PRNGKey) -> ESState:
    """Initializes the policy network (on the features of a reset observation)."""
    net_key, env_key, key = jax.random.split(key, 3)
    _, timestep = env.reset(env_key)
    params = agent.network.init(net_key, policy.features(agent.spaces, timestep.observation))
    return ESState(params, key, jnp.zeros((), jnp.int32))


def make_agent(config: ESConfig, env: Env) -> _Agent:
    """The static parts of the recipe for `env`'s specs (network and distributions)."""
    common.check_env("es.make_trainer", config, env, config.population * config.num_envs * config.num_steps,
                     "population * num_envs * num_steps", host_ok=False)
    spaces = policy.spaces("es.make_trainer", env.spec(), config.bounded_actions)
    steps_per_update = config.population * config.num_envs * config.num_steps
    return _Agent(config, _network(config, spaces), spaces, config.total_steps // steps_per_update)


def make_trainer(config: ESConfig, env: Env) -> common.Trainer:
    """The `agents.common.Trainer` of ES on a batched pure-JAX `env` of `config.num_envs` envs."""
    agent = make_agent(config, env)
    env = policy.clipping_env(agent.spaces, env)
    return common.Trainer(
        init=functools.partial(init, agent, env),
        update=functools.partial(update, agent, env),
        num_updates=agent.num_updates,
        steps_per_update=config.population * config.num_envs * config.num_steps,
        act=functools.partial(act, agent),
        params=lambda state: state.params,
    )


def make_train(config: ESConfig, env: Env):
    """`train(key) -> (state, metrics)`: the whole run, jit- and vmap-able (PureJaxRL contract)."""
    return common.train_from_trainer(make_trainer(config, env))
