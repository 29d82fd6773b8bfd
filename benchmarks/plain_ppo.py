"""A plain, single-file, fully-jitted JAX PPO for CartPole: the baseline of `ppo_speed.py`.

Written the way a competent JAX user would write PPO straight from the papers, without fnrl's
recipes or RL math: clipped surrogate objective with a clipped value loss and an entropy bonus
(Schulman et al. 2017, "Proximal Policy Optimization Algorithms", arXiv:1707.06347) on
generalized advantage estimates (Schulman et al. 2016, "High-Dimensional Continuous Control Using
Generalized Advantage Estimation", arXiv:1506.02438). Hyperparameters equal the defaults of
`agents.ppo.PPOConfig`: separate 64-64 tanh actor and critic MLPs with orthogonal init (√2
hidden, 0.01 policy, 1.0 value), Adam 2.5e-4 (eps 1e-5) annealed linearly to 0 once per update,
global-norm clipping 0.5, 4 envs × 128 steps, 4 epochs × 4 minibatches, γ 0.99, λ 0.95, clip
0.2, entropy 0.01, value 0.5, per-minibatch advantage normalization.

The environment is fnrl's pure-JAX CartPole (`fnrl.envs.make`), so both sides of the benchmark
pay the same env cost. It resets the envpool way (`fnrl.types.TimeStep`): the tick after a
done step ignores its action and is `valid=False`, so that tick is masked out of GAE, the losses
and the advantage statistics, and a truncated step bootstraps from the value recorded at that
tick (the final observation's).

    python -m benchmarks.plain_ppo            # prints {"compile_seconds", "run_seconds", ...}
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import time
from typing import Callable, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

import fnrl.envs
import fnrl.types
from fnrl.envs.wrappers import episode_stats


class Config(NamedTuple):
    """The hyperparameters, equal to `agents.ppo.PPOConfig`'s defaults."""

    num_envs: int = 4
    num_steps: int = 128
    total_steps: int = 500_000
    update_epochs: int = 4
    num_minibatches: int = 4
    learning_rate: float = 2.5e-4
    adam_eps: float = 1e-5
    max_grad_norm: float = 0.5
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5


class Transition(NamedTuple):
    """One tick of every env, time-major once stacked by the rollout scan."""

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    terminated: jax.Array
    done: jax.Array
    valid: jax.Array
    finished_return: jax.Array  # return of the episode that ended at this tick, else 0


class Batch(NamedTuple):
    """Learning data per sample, `[T, B]` or flattened to `[T·B]`."""

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    advantage: jax.Array
    target: jax.Array
    valid: jax.Array


def network(num_actions: int) -> hk.Transformed:
    """obs -> (logits, value) from separate actor and critic 64-64 tanh MLPs."""

    def forward(obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        def torso(name: str) -> hk.nets.MLP:
            return hk.nets.MLP([64, 64], activation=jnp.tanh, activate_final=True,
                               w_init=hk.initializers.Orthogonal(math.sqrt(2.0)), name=name)

        logits = hk.Linear(num_actions, w_init=hk.initializers.Orthogonal(0.01))(torso("actor")(obs))
        value = hk.Linear(1, w_init=hk.initializers.Orthogonal(1.0))(torso("critic")(obs))
        return logits, value[..., 0]

    return hk.without_apply_rng(hk.transform(forward))


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of `x` over the samples where `mask` is 1 (invalid reset ticks are 0)."""
    return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def gae(traj: Transition, last_value: jax.Array, cfg: Config) -> tuple[jax.Array, jax.Array]:
    """GAE advantages and value targets `[T, B]`; invalid ticks get 0 and carry nothing."""
    next_values = jnp.concatenate([traj.value[1:], last_value[None]], axis=0)
    not_terminated = 1.0 - traj.terminated.astype(jnp.float32)
    delta = traj.reward + cfg.gamma * not_terminated * next_values - traj.value
    # A done step (terminated or truncated) takes nothing from the next episode.
    coef = cfg.gamma * cfg.gae_lambda * (1.0 - traj.done.astype(jnp.float32))

    def backward(acc, xs):
        d, c, valid = xs
        new = d + c * acc
        return jnp.where(valid, new, acc), jnp.where(valid, new, 0.0)

    _, adv = lax.scan(backward, jnp.zeros_like(last_value), (delta, coef, traj.valid), reverse=True)
    return adv, adv + traj.value


def loss_fn(params: hk.Params, net: hk.Transformed, batch: Batch, cfg: Config) -> jax.Array:
    """Clipped surrogate + vf_coef · clipped value loss − ent_coef · entropy, over valid samples."""
    logits, value = net.apply(params, batch.obs)
    log_probs = jax.nn.log_softmax(logits)
    log_prob = jnp.take_along_axis(log_probs, batch.action[:, None], axis=-1)[:, 0]
    mask = batch.valid.astype(jnp.float32)
    mean = masked_mean(batch.advantage, mask)
    std = jnp.sqrt(masked_mean(jnp.square(batch.advantage - mean), mask))
    adv = (batch.advantage - mean) / (std + 1e-8)
    ratio = jnp.exp(log_prob - batch.log_prob)
    clipped = jnp.clip(ratio, 1.0 - cfg.clip_eps, 1.0 + cfg.clip_eps)
    policy_loss = -masked_mean(jnp.minimum(ratio * adv, clipped * adv), mask)
    value_clipped = batch.value + jnp.clip(value - batch.value, -cfg.clip_eps, cfg.clip_eps)
    value_error = jnp.maximum(jnp.square(value - batch.target), jnp.square(value_clipped - batch.target))
    value_loss = 0.5 * masked_mean(value_error, mask)
    entropy = masked_mean(-jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1), mask)
    return policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy


def optimizer(cfg: Config, num_updates: int) -> optax.GradientTransformation:
    """Adam with lr · (1 − update / num_updates), stepped once per update (CleanRL's annealing)."""
    steps_per_update = cfg.update_epochs * cfg.num_minibatches
    schedule = lambda count: cfg.learning_rate * (1.0 - (count // steps_per_update) / num_updates)  # noqa: E731
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(schedule, eps=cfg.adam_eps))


class Setup(NamedTuple):
    """The static pieces every traced function needs."""

    cfg: Config
    env: fnrl.types.Env
    net: hk.Transformed
    tx: optax.GradientTransformation


def env_step(s: Setup, params: hk.Params, carry: tuple, _) -> tuple[tuple, Transition]:
    """One tick of all envs: sample from the policy, step, record."""
    env_state, timestep, key = carry
    key, sample_key = jax.random.split(key)
    logits, value = s.net.apply(params, timestep.observation)
    action = jax.random.categorical(sample_key, logits)
    log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], axis=-1)[:, 0]
    env_state, next_ts = s.env.step(env_state, action)
    finished = next_ts.done & next_ts.valid
    transition = Transition(timestep.observation, action, log_prob, value, next_ts.reward,
                            next_ts.terminated, next_ts.done, next_ts.valid,
                            jnp.where(finished, episode_stats(env_state).last_return, 0.0))
    return (env_state, next_ts, key), transition


def learn(s: Setup, params: hk.Params, opt_state: optax.OptState, batch: Batch, key: jax.Array):
    """`update_epochs` passes over the flattened batch in shuffled minibatches, one Adam step each."""
    grad_fn = jax.grad(loss_fn)

    def minibatch_step(carry, minibatch):
        params, opt_state = carry
        updates, opt_state = s.tx.update(grad_fn(params, s.net, minibatch, s.cfg), opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    def epoch(carry, epoch_key):
        order = jax.random.permutation(epoch_key, batch.obs.shape[0])
        shape = (s.cfg.num_minibatches, -1)
        minibatches = jax.tree.map(lambda x: x[order].reshape(shape + x.shape[1:]), batch)
        return lax.scan(minibatch_step, carry, minibatches)[0], None

    keys = jax.random.split(key, s.cfg.update_epochs)
    return lax.scan(epoch, (params, opt_state), keys)[0]


def update(s: Setup, runner: tuple, _) -> tuple[tuple, dict]:
    """Rollout, GAE, learning; returns the episode statistics of the rollout."""
    params, opt_state, env_carry, key = runner
    env_carry, traj = lax.scan(functools.partial(env_step, s, params), env_carry, None, s.cfg.num_steps)
    _, last_value = s.net.apply(params, env_carry[1].observation)
    adv, target = gae(traj, last_value, s.cfg)
    batch = Batch(traj.obs, traj.action, traj.log_prob, traj.value, adv, target, traj.valid)
    flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), batch)
    key, learn_key = jax.random.split(key)
    params, opt_state = learn(s, params, opt_state, flat, learn_key)
    stats = {"episode_return_sum": jnp.sum(traj.finished_return),
             "episode_count": jnp.sum(traj.done & traj.valid)}
    return (params, opt_state, env_carry, key), stats


def make_train(cfg: Config = Config()) -> Callable[[jax.Array], dict]:
    """`train(key)`: the whole run as one `lax.scan` over updates; returns per-update
    `episode_return_sum` and `episode_count` of the episodes finished in each rollout."""
    env = fnrl.envs.make("CartPole-v1", backend="jax", num_envs=cfg.num_envs)
    num_updates = cfg.total_steps // (cfg.num_envs * cfg.num_steps)
    s = Setup(cfg, env, network(env.spec().action.num_values), optimizer(cfg, num_updates))

    def train(key: jax.Array) -> dict:
        net_key, env_key, act_key, shuffle_key = jax.random.split(key, 4)
        env_state, timestep = env.reset(env_key)
        params = s.net.init(net_key, timestep.observation)
        runner = (params, s.tx.init(params), (env_state, timestep, act_key), shuffle_key)
        return lax.scan(functools.partial(update, s), runner, None, num_updates)[1]

    return train


def final_return(sums: np.ndarray, counts: np.ndarray, fraction: float = 0.1) -> float:
    """Mean return of (about) the last `fraction` of finished episodes: whole updates are taken
    from the end until they hold at least that many (the definition of the fnrl CLI's summary)."""
    need = max(1.0, fraction * float(np.sum(counts)))
    total = got = 0.0
    for s, c in zip(sums[::-1], counts[::-1]):
        total, got = total + float(s), got + float(c)
        if got >= need:
            break
    return total / got if got else float("nan")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=Config().total_steps, help="total env steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    key = jax.random.PRNGKey(args.seed)
    start = time.perf_counter()
    compiled = jax.jit(make_train(Config(total_steps=args.steps))).lower(key).compile()
    compiled_at = time.perf_counter()
    stats = jax.block_until_ready(compiled(key))
    end = time.perf_counter()
    result = {"compile_seconds": compiled_at - start, "run_seconds": end - compiled_at, "wall_seconds": end - start,
              "final_return": final_return(np.asarray(stats["episode_return_sum"]), np.asarray(stats["episode_count"]))}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
