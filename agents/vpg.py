"""VPG: vanilla policy gradient, REINFORCE with an optional learned baseline (Williams 1992,
"Simple statistical gradient-following algorithms for connectionist reinforcement learning";
Sutton et al. 1999; TensorForce `VPGAgent`, seed features A11 / A17 / H1–H8).

One update = a batch of `num_steps` ticks in `num_envs` envs (TensorForce's `batch_size` is
`num_envs · num_steps` timesteps) with the current policy, then one policy-optimizer step on

    L = −mean(log π(a_i|s_i) · Â_i) − ent_coef · mean(H[π(.|s_i)])        (`fnrl.reinforce_loss`)

with the reward estimate of TensorForce's `PGModel` (H7, H8):
- no GAE: Â_i = R_i − b(s_i), R_i the discounted return `fnrl.discounted_returns`, b = 0 without
  a baseline;
- `gae_lambda = λ`: Â = `fnrl.gae` of the baseline's TD residuals r + γ·b(s')·(1 − term) − b(s).
Within the batch a return stops at a termination, bootstraps from b(final observation) at a
truncation, and after the batch's last tick bootstraps from b(o_T) (`bootstrap=False`: from 0, as
TensorForce, which is also what happens without a baseline).

`baseline_mode` (H6): None — no baseline; "states" — a separate value network on the raw states
(`baseline_network="mlp"`: dense `baseline_sizes` (TensorForce `MLPBaseline`, H3); "cnn": 3×3
stride-1 ReLU convolutions `baseline_conv_sizes`, then the dense layers (`CNNBaseline`, H4) on an
image observation); "aggregated": one such baseline per state (observation leaf), each given
by `state_baselines`, and b(s) a learned linear combination of their values (`AggregatedBaseline`,
H5: the per-state baselines of a multi-state env); "network" — the same dense layers + linear head
on the policy network's embedding (H2). The baseline regresses the returns R with the halved squared error
(`fnrl.value_loss`, TensorForce's `0.5·mean((b − R)²)`). With a `baseline_optimizer` it takes its
own `baseline_optimizer_steps` steps on it (`fnrl.multi_step`, TensorForce's `multi_step`
meta-optimizer) from the same batch, alongside the policy step; in "network" mode only the
baseline's own layers move, as in TensorForce. Without one (`baseline_optimizer=None`) the
baseline loss, weighted by `baseline_coef`, joins the policy loss under the policy optimizer (and
in "network" mode also trains the shared torso).

`optimizer` and `baseline_optimizer` take a name ("adam", "rmsprop", "sgd" with the config's
learning rate) or any TensorForce optimizer spec (`fnrl.optimizer_from_spec`, TensorForce's
`TestVPGOptimizers`, R14): `evolutionary`, `natural_gradient` (given the batch's mean
KL(π_old ‖ π_θ)), `multi_step`, `optimized_step`, `clipped_step`, nested freely.

The policy torso is a dense `hidden_sizes` MLP or a TensorForce layers spec (`network`); with an
`internal_lstm` layer or a `memory` cell it is recurrent (`agents.policy.torso`): the rollout
carries its memory and the learner replays each env's sequence from the memory before the
rollout (`agents.policy.evaluate`), as recurrent PPO and A2C do.

TensorForce's defaults are `baseline_mode=None`, Adam 1e-3, γ = 0.99; the defaults here add a
"states" baseline and advantage normalization so that `fnrl train vpg` learns classic control.
Multi-part actions sum their log-probs (the joint likelihood; TensorForce averages them).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import optax

import fnrl
from fnrl._validation import is_positive_int_sequence
from fnrl.rollout import PolicyOutput, RolloutCarry, Trajectory
from fnrl.types import Array, Env, PRNGKey, PyTree

from agents import common, policy
from agents.common import check_choice, check_counts, check_field_types, check_optimizer, check_ranges

BASELINE_MODES = (None, "states", "network")
BASELINE_NETWORKS = ("mlp", "cnn", "aggregated")
STATE_BASELINE_KEYS = {"mlp": ("sizes",), "cnn": ("conv_sizes", "dense_sizes")}


@dataclasses.dataclass(frozen=True)
class VPGConfig:
    """Every hyperparameter of the recipe (JSON-serialisable field types; None is JSON null)."""

    num_envs: int = 4
    num_steps: int = 128  # ticks per env and update (batch = num_envs · num_steps timesteps)
    total_steps: int = 200_000  # env steps of the whole run (num_updates = total // (envs·steps))
    hidden_sizes: tuple[int, ...] = (64, 64)  # policy torso
    activation: str = "tanh"
    network: Optional[tuple] = None  # TensorForce layers spec of the policy torso (replaces hidden_sizes)
    memory: str = "none"  # "lstm" / "gru": an AgentNet memory cell after the torso (recurrent)
    memory_size: int = 64  # units of that cell
    optimizer: Any = "adam"  # "rmsprop", "sgd", or a TensorForce optimizer spec dict (own learning rate)
    learning_rate: float = 1e-3  # of a named optimizer
    max_grad_norm: float = 0.0  # global-norm clipping of the policy gradient; 0 disables it
    gamma: float = 0.99
    ent_coef: float = 0.0  # TensorForce `entropy_regularization`
    normalize_advantages: bool = True
    bootstrap: bool = True  # False: the value after the batch's last tick is 0 (TensorForce)
    baseline_mode: Optional[str] = "states"  # None, "states" or "network"
    baseline_network: str = "mlp"  # "states" mode: "mlp", "cnn" (image observations) or "aggregated"
    baseline_sizes: tuple[int, ...] = (32, 32)  # dense layers of the baseline (tanh, as TensorForce)
    baseline_conv_sizes: tuple[int, ...] = (16, 16)  # "cnn": channels of the 3x3 convolutions
    # "aggregated": {state name: {"type": "mlp", "sizes": [...]} or {"type": "cnn", "conv_sizes":
    # [...], "dense_sizes": [...]}} for every state (`agents.policy.state_names`: the observation's
    # dict keys, "state" for a bare observation); TensorForce's `baselines`
    state_baselines: Optional[dict] = None
    baseline_optimizer: Any = "adam"  # "rmsprop", "sgd", a spec dict, or None: joint with the policy
    baseline_learning_rate: float = 1e-3  # of a named baseline optimizer
    baseline_optimizer_steps: int = 1  # fnrl.multi_step num_steps of a named one (TensorForce test: 5)
    baseline_coef: float = 1.0  # weight of the baseline loss when baseline_optimizer is None
    gae_lambda: Optional[float] = None  # None: R − b; in [0, 1]: GAE (needs a baseline)
    bounded_actions: str = "beta"  # or "clipped_gaussian" (see agents.ppo)
    init_log_std: float = 0.0  # initial log-std of gaussian policies
    variable_noise: float = 0.0  # stddev of Gaussian noise on the policy's parameters per sampled tick (TensorForce)

    def __post_init__(self):
        for name in ("hidden_sizes", "baseline_sizes", "baseline_conv_sizes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "network", policy.network_spec("VPGConfig", self.network))
        check_field_types("VPGConfig", self)
        check_counts("VPGConfig", self, ("num_envs", "num_steps", "total_steps", "baseline_optimizer_steps",
                                         "memory_size"))
        check_choice("VPGConfig", "memory", self.memory, policy.MEMORY_CELLS)
        check_ranges("VPGConfig", self, (("gamma", 0, 1), ("learning_rate", 0, None), ("max_grad_norm", 0, None),
                                         ("baseline_learning_rate", 0, None), ("baseline_coef", 0, None),
                                         ("variable_noise", 0, None)))
        check_optimizer("VPGConfig", "optimizer", self.optimizer)
        check_choice("VPGConfig", "baseline_mode", self.baseline_mode, BASELINE_MODES)
        check_choice("VPGConfig", "baseline_network", self.baseline_network, BASELINE_NETWORKS)
        check_optimizer("VPGConfig", "baseline_optimizer", self.baseline_optimizer, allow_none=True)
        if self.baseline_mode is not None and self.baseline_optimizer is None and _uses_kl(self.optimizer):
            raise ValueError("VPGConfig: a natural-gradient `optimizer` cannot also train the baseline "
                             "(baseline_optimizer=None): the policy's KL does not bound the baseline's "
                             "step, so its trust region would not hold it; give the baseline its own "
                             "`baseline_optimizer`")
        check_choice("VPGConfig", "bounded_actions", self.bounded_actions, policy.BOUNDED_ACTIONS)
        if self.gae_lambda is not None:
            check_ranges("VPGConfig", self, (("gae_lambda", 0, 1),))
            if self.baseline_mode is None:
                raise ValueError("VPGConfig: field `gae_lambda` needs a baseline: set `baseline_mode` "
                                 "to 'states' or 'network', or gae_lambda to None")
        if self.baseline_network in ("cnn", "aggregated") and self.baseline_mode != "states":
            raise ValueError(f"VPGConfig: field `baseline_network`={self.baseline_network!r} needs "
                             f"baseline_mode='states', got {self.baseline_mode!r}")
        if (self.baseline_network == "aggregated") != (self.state_baselines is not None):
            raise ValueError("VPGConfig: field `state_baselines` must be given exactly when baseline_network is "
                             f"'aggregated', got baseline_network={self.baseline_network!r} and "
                             f"state_baselines={self.state_baselines!r}")
        if self.state_baselines is not None:
            object.__setattr__(self, "state_baselines", _state_baselines(self.state_baselines))


def _state_baselines(specs: Any) -> policy.FrozenSpec:
    """VPGConfig's `state_baselines` checked and frozen (lists become tuples)."""
    where = "VPGConfig: field `state_baselines`"
    if not isinstance(specs, dict) or not specs or not all(isinstance(name, str) for name in specs):
        raise ValueError(f"{where} must be a non-empty dict from state names to baseline specs, got {specs!r}")
    frozen = {}
    for name, spec in specs.items():
        kind = spec.get("type") if isinstance(spec, dict) else None
        if kind not in STATE_BASELINE_KEYS:
            raise ValueError(f"{where}[{name!r}] must be a dict whose 'type' is 'mlp' or 'cnn', got {spec!r}")
        keys = STATE_BASELINE_KEYS[kind]
        unknown = sorted(set(spec) - {"type", *keys})
        if unknown or not all(is_positive_int_sequence(spec.get(key, ())) for key in keys):
            raise ValueError(f"{where}[{name!r}]: a {kind!r} baseline takes {keys} as lists of ints >= 1, "
                             f"got {spec!r}")
        frozen[name] = policy.FrozenSpec({"type": kind, **{key: policy.freeze(spec.get(key, ())) for key in keys}})
    return policy.FrozenSpec(frozen)


class VPGState(NamedTuple):
    """The whole training state (arrays only: checkpointed and vmapped over seeds)."""

    params: PyTree  # {"policy": haiku params, "baseline": haiku params ({} without a baseline)}
    opt_state: optax.OptState  # of the policy optimizer (over all params when joint)
    baseline_opt_state: optax.OptState  # () unless the baseline has its own optimizer
    rollout: RolloutCarry  # env state, last timestep and the acting key
    key: PRNGKey  # for stochastic optimizers (TensorForce `evolutionary`)
    update_count: Array  # int32, updates done


class VPGBatch(NamedTuple):
    """Learning data, one entry per (tick, env): what was seen and done, the advantage Â the
    policy gradient weighs, the return R the baseline regresses, and whether the tick is valid."""

    observation: PyTree
    action: PyTree
    advantage: Array
    returns: Array
    mask: Array
    first: Array = ()  # [T, B] episode starts (recurrent: the replay resets there)
    memory: PyTree = ()  # [B, ...] the policy's memory before tick 0 (recurrent)


class _Agent(NamedTuple):
    """Everything static the recipe functions need (`network` and `spaces` as `agents.policy`
    reads them; `network` returns the embedding where an actor-critic returns V)."""

    config: VPGConfig
    network: hk.Transformed  # policy: features -> (list of per-part distribution params, embedding)
    baseline: Optional[hk.Transformed]  # baseline input -> value
    spaces: policy.Spaces
    state_names: tuple[str, ...]  # of the observation leaves (`agents.policy.state_names`)
    optimizer: fnrl.Minimizer
    baseline_optimizer: Optional[fnrl.Minimizer]  # None: baseline loss joins the policy's
    num_updates: int
    initial_memory: PyTree  # one env's policy memory at episode starts; () when feed-forward


# --------------------------------------------------------------------------------------------
# Networks.


def _policy_network(config: VPGConfig, spaces: policy.Spaces) -> hk.Transformed:
    """`agents.policy.torso` (dense `hidden_sizes`, orthogonal √2 init, or the `network` spec;
    a memory cell with `memory`) whose output is the embedding, then `agents.policy` heads.
    Feed-forward: `apply(params, features) -> (distribution params, embedding)`; recurrent: with
    the memory `{"torso": TorsoMemory}` in and out."""
    body = functools.partial(policy.torso, "torso", hidden_sizes=config.hidden_sizes, activation=config.activation,
                             network=config.network, memory=config.memory, memory_size=config.memory_size)

    def heads(embedding: Array) -> list:
        return [policy.head(part, i, embedding, config.init_log_std) for i, part in enumerate(spaces.parts)]

    def feed_forward(features: Array) -> tuple[list, Array]:
        embedding, _ = body(features, None)
        return heads(embedding), embedding

    def recurrent(features: Array, carried: dict) -> tuple[list, Array, dict]:
        embedding, memory = body(features, carried["torso"])
        return heads(embedding), embedding, {"torso": memory}

    return hk.without_apply_rng(hk.transform(
        recurrent if policy.is_recurrent_spec(config.network, config.memory) else feed_forward))


def _conv_torso(channels: tuple[int, ...], images: Array) -> Array:
    """TensorForce `conv2d` layers (3×3, stride 1, SAME, ReLU) on `[..., H, W, C]`, flattened."""
    lead = images.shape[:-3]
    h = images.reshape((-1,) + images.shape[-3:])
    for i, size in enumerate(channels):
        h = jax.nn.relu(hk.Conv2D(size, 3, stride=1, padding="SAME", name=f"conv_{i}")(h))
    return h.reshape(lead + (-1,))


def _value(conv_sizes: tuple[int, ...], dense_sizes: tuple[int, ...], x: Array) -> Array:
    """MLPBaseline / CNNBaseline: [3×3 convs on an image,] dense layers (tanh), linear value."""
    if conv_sizes:
        x = _conv_torso(conv_sizes, x)
    x = fnrl.MLP(dense_sizes, "tanh", name="dense")(x) if dense_sizes else x
    return fnrl.ValueHead(name="value")(x)


def _baseline_network(config: VPGConfig, state_names: tuple[str, ...]) -> hk.Transformed:
    """The baseline b: `_value` on the baseline input, or for "aggregated" the per-state values
    combined by a linear layer, initialised to their mean (`state_<i>/...` in leaf order)."""

    def forward(x: Array) -> Array:
        conv_sizes = config.baseline_conv_sizes if config.baseline_network == "cnn" else ()
        return _value(conv_sizes, config.baseline_sizes, x)

    def aggregated(leaves: list) -> Array:
        values = []
        for i, (name, leaf) in enumerate(zip(state_names, leaves)):
            spec = config.state_baselines[name]
            conv_sizes, dense_sizes = (spec["conv_sizes"], spec["dense_sizes"]) if spec["type"] == "cnn" \
                else ((), spec["sizes"])
            with hk.name_scope(f"state_{i}"):
                values.append(_value(conv_sizes, dense_sizes, leaf))
        stacked = jnp.stack(values, axis=-1)
        combine = hk.Linear(1, w_init=hk.initializers.Constant(1.0 / len(values)), name="aggregate")
        return combine(stacked)[..., 0]

    return hk.without_apply_rng(hk.transform(aggregated if config.baseline_network == "aggregated" else forward))


def _baseline_input(agent: _Agent, observation: PyTree, embedding: Array) -> Array | list:
    """What the baseline sees: the embedding ("network"), the image ("cnn"), each state as a float
    array of its own ("aggregated": images whole, others flattened to `[..., F]`) or the features."""
    if agent.config.baseline_mode == "network":
        return embedding
    leaves = agent.spaces.obs_treedef.flatten_up_to(observation)
    if agent.config.baseline_network == "cnn":
        return jnp.asarray(leaves[0], jnp.float32)
    if agent.config.baseline_network == "aggregated":
        return [_state_input(agent.config.state_baselines[name], spec, leaf) for name, spec, leaf
                in zip(agent.state_names, agent.spaces.obs_specs, leaves)]
    return policy.features(agent.spaces, observation)


def _state_input(baseline: dict, spec: fnrl.Spec, leaf: Array) -> Array:
    """One state for its baseline: the `[..., H, W, C]` image for a cnn, else `[..., F]`."""
    leaf = jnp.asarray(leaf, jnp.float32)
    if baseline["type"] == "cnn":
        return leaf
    return leaf.reshape(leaf.shape[: leaf.ndim - len(spec.shape)] + (-1,))


def _forward(agent: _Agent, params: PyTree, observation: PyTree,
             memory: PyTree = ()) -> tuple[list, Array, Array, PyTree]:
    """One tick: (distribution params, embedding, baseline value b(s) (0 without a baseline),
    the policy's memory after the tick); `memory` is the memory before it (recurrent)."""
    dist_params, embedding, memory = policy.forward_with_memory(agent, params["policy"], (), observation, memory)
    return dist_params, embedding, _baseline_value(agent, params, observation, embedding), memory


def _baseline_value(agent: _Agent, params: PyTree, observation: PyTree, embedding: Array) -> Array:
    if agent.baseline is None:
        return jnp.zeros(embedding.shape[:-1], embedding.dtype)
    return agent.baseline.apply(params["baseline"], _baseline_input(agent, observation, embedding))


def policy_step(agent: _Agent, state: VPGState, key: PRNGKey, observation: PyTree, memory: PyTree,
                action: PyTree = None) -> PolicyOutput:
    """`fnrl.rollout` policy step; records the baseline value b(s) as the "value" extra. With
    `variable_noise` a sampled action comes from the policy network with perturbed parameters
    (as `agents.policy.behaviour`); learning then takes it as the unperturbed policy's action, as
    TensorForce does (biased, little for small σ; PPO's ratio corrects for it)."""
    dist_params, _, value, next_memory = _forward(agent, state.params, observation, memory)
    if action is None:
        key, dist_params = policy.noisy_dist_params(agent, state.params["policy"], (), key, observation, memory,
                                                    dist_params)
        action = policy.sample(agent.spaces, key, dist_params)
    return PolicyOutput(action, next_memory, {"value": value})


# --------------------------------------------------------------------------------------------
# Learning.


def estimate(config: VPGConfig, trajectory: Trajectory, bootstrap: Array) -> tuple[Array, Array]:
    """TensorForce's reward estimation (H7, H8): returns R `[T, B]` and advantages Â `[T, B]`.

    R_i = r_i + γ(1 − term_i)·R_{i+1}, bootstrapping from b(o_T) = `bootstrap` after the last
    tick (0 if not `config.bootstrap`) and from b(final observation) at truncations. Â = R − b
    or, with `gae_lambda`, the GAE of the baseline. Both are 0 at invalid ticks.
    """
    values = trajectory.extras["value"]
    if not config.bootstrap:
        bootstrap = jnp.zeros_like(bootstrap)
    values_ext = jnp.concatenate([values, bootstrap[None]], axis=0)
    discount = config.gamma * (1.0 - trajectory.terminated.astype(values.dtype))
    flags = dict(truncated_t=trajectory.truncated, valid_t=trajectory.valid)
    returns = fnrl.discounted_returns(trajectory.reward, discount, values_ext[1:], **flags)
    if config.gae_lambda is None:
        return returns, jnp.where(trajectory.valid, returns - values, 0.0)
    return returns, fnrl.gae(trajectory.reward, discount, values_ext, config.gae_lambda, **flags)


def _evaluate(agent: _Agent, policy_params: PyTree, batch: VPGBatch) -> tuple[list, Array]:
    """The learner's (distribution params, embedding) of the batch: the policy network on every
    tick, or for a recurrent policy each env's sequence replayed from `batch.memory`."""
    return policy.evaluate(agent, policy_params, (), batch.observation, batch.action, batch.first, batch.memory)


def baseline_loss(agent: _Agent, baseline_params: PyTree, inputs: Array, returns: Array, mask: Array) -> Array:
    """0.5 · mean_valid((b(x) − R)²) (TensorForce `Baseline.tf_loss`, H1)."""
    return fnrl.value_loss(agent.baseline.apply(baseline_params, inputs), returns, mask)


def vpg_loss(agent: _Agent, params: PyTree, batch: VPGBatch) -> tuple[Array, dict]:
    """REINFORCE on Â minus the entropy bonus; plus `baseline_coef` · the baseline loss when the
    baseline has no optimizer of its own."""
    cfg = agent.config
    dist_params, embedding = _evaluate(agent, params["policy"], batch)
    policy_loss = fnrl.reinforce_loss(policy.log_prob(agent.spaces, dist_params, batch.action), batch.advantage,
                                      mask_t=batch.mask)
    mean_entropy = -fnrl.entropy_loss(policy.entropy(agent.spaces, dist_params), batch.mask)
    total = policy_loss - cfg.ent_coef * mean_entropy
    value_loss = jnp.zeros_like(total)
    if agent.baseline is not None and agent.baseline_optimizer is None:
        inputs = _baseline_input(agent, batch.observation, embedding)
        value_loss = baseline_loss(agent, params["baseline"], inputs, batch.returns, batch.mask)
        total = total + cfg.baseline_coef * value_loss
    return total, {"loss": total, "policy_loss": policy_loss, "value_loss": value_loss, "entropy": mean_entropy}


def _mean_kl(agent: _Agent, old_dist_params: list, policy_params: PyTree, batch: VPGBatch) -> Array:
    """E_s[KL(π_old(.|s) ‖ π_θ(.|s))] over the valid ticks (for `natural_gradient` optimizers)."""
    new_dist_params, _ = _evaluate(agent, policy_params, batch)
    return fnrl.mean_kl(functools.partial(policy.kl, agent.spaces), old_dist_params, new_dist_params, batch.mask)


def _policy_update(agent: _Agent, params: PyTree, opt_state: PyTree, batch: VPGBatch,
                   key: PRNGKey) -> tuple[PyTree, PyTree, dict]:
    """One `minimize` of the policy optimizer: over all params when joint, else over the policy's
    only. Metrics are those of the pre-update params."""
    old_dist_params, _ = _evaluate(agent, params["policy"], batch)
    old_dist_params = jax.lax.stop_gradient(old_dist_params)
    if agent.baseline_optimizer is None:
        new, opt_state, info = agent.optimizer.minimize(
            lambda p: vpg_loss(agent, p, batch), params, opt_state, key,
            kl_fn=lambda p: _mean_kl(agent, old_dist_params, p["policy"], batch))
        return new, opt_state, info.aux
    new, opt_state, info = agent.optimizer.minimize(
        lambda p: vpg_loss(agent, {**params, "policy": p}, batch), params["policy"], opt_state, key,
        kl_fn=lambda p: _mean_kl(agent, old_dist_params, p, batch))
    return {**params, "policy": new}, opt_state, info.aux


def _baseline_update(agent: _Agent, params: PyTree, opt_state: PyTree, batch: VPGBatch,
                     key: PRNGKey) -> tuple[PyTree, PyTree, Array]:
    """One `minimize` of the baseline's own optimizer on the batch (inputs from the pre-update
    policy); returns the loss before it."""
    _, embedding = _evaluate(agent, params["policy"], batch)
    inputs = _baseline_input(agent, batch.observation, embedding)
    loss = lambda p: (baseline_loss(agent, p, inputs, batch.returns, batch.mask), ())  # noqa: E731
    new, opt_state, info = agent.baseline_optimizer.minimize(loss, params["baseline"], opt_state, key)
    return new, opt_state, info.loss


def learn(agent: _Agent, state: VPGState, trajectory: Trajectory, bootstrap: Array,
          memory: PyTree = ()) -> tuple[VPGState, dict]:
    """VPG's learning phase on one batch.

    `trajectory.extras["value"]` holds the baseline values b(s_i) `[T, B]` (zeros without a
    baseline); `bootstrap` is b(o_T) `[B]`. The policy step and the baseline's own steps both use
    the advantages of the pre-update baseline (TensorForce groups the two optimizations). With
    its own optimizer, the "value_loss" metric is the baseline loss before its steps. A recurrent
    policy replays each env's sequence from `memory` `[B, ...]`, its memory before tick 0.
    """
    returns, advantage = estimate(agent.config, trajectory, bootstrap)
    if agent.config.normalize_advantages:
        advantage = fnrl.normalize_advantages(advantage, trajectory.valid)
    batch = VPGBatch(trajectory.observation, trajectory.action, advantage, returns, trajectory.valid)
    if policy.is_recurrent(agent):
        batch = batch._replace(first=trajectory.first, memory=memory)
    key, policy_key, baseline_key = jax.random.split(state.key, 3)
    params, opt_state, metrics = _policy_update(agent, state.params, state.opt_state, batch, policy_key)
    baseline_opt_state = state.baseline_opt_state
    if agent.baseline_optimizer is not None:
        baseline, baseline_opt_state, metrics["value_loss"] = _baseline_update(
            agent, state.params, baseline_opt_state, batch, baseline_key)
        params = {**params, "baseline": baseline}
    return state._replace(params=params, opt_state=opt_state, baseline_opt_state=baseline_opt_state,
                          key=key), metrics


# --------------------------------------------------------------------------------------------
# The recipe.


def start(agent: _Agent, key: PRNGKey, rollout: RolloutCarry) -> VPGState:
    """A fresh state around the envs' first timestep: the networks and optimizers."""
    policy_key, baseline_key, key = jax.random.split(key, 3)
    observation = rollout.timestep.observation
    rollout = rollout._replace(memory=policy.batched_memory(agent, rollout.memory, rollout.timestep.reward.shape))
    policy_params = policy.init_network(agent, policy_key, policy.features(agent.spaces, observation), rollout.memory)
    params = {"policy": policy_params, "baseline": {}}
    if agent.baseline is not None:
        _, embedding, _ = policy.forward_with_memory(agent, policy_params, (), observation, rollout.memory)
        params["baseline"] = agent.baseline.init(baseline_key, _baseline_input(agent, observation, embedding))
    if agent.baseline_optimizer is None:
        return VPGState(params, agent.optimizer.init(params), (), rollout, key, jnp.zeros((), jnp.int32))
    return VPGState(params, agent.optimizer.init(policy_params), agent.baseline_optimizer.init(params["baseline"]),
                    rollout, key, jnp.zeros((), jnp.int32))


def learn_rollout(agent: _Agent, state: VPGState, rollout: RolloutCarry,
                  trajectory: Trajectory) -> tuple[VPGState, dict]:
    """The update after a batch: bootstrap from b(o_T) (with the memory the policy would act
    with at tick T), `learn` (from the memory before the rollout, `state.rollout.memory`),
    count; contract metrics."""
    cfg = agent.config
    memory = fnrl.rollout.reset_memory(rollout.memory, agent.initial_memory, rollout.first)
    bootstrap = _forward(agent, state.params, rollout.timestep.observation, memory)[2]
    state, metrics = learn(agent, state._replace(rollout=rollout), trajectory, bootstrap, state.rollout.memory)
    return common.count_update(state, metrics, trajectory, cfg.num_envs * cfg.num_steps)


def _check_image_observation(env: Env) -> None:
    observation = env.spec().observation
    if not isinstance(observation, fnrl.Spec) or len(observation.shape) != 3:
        raise ValueError("vpg.make_trainer: config.baseline_network='cnn' needs one image observation "
                         f"Spec of shape (H, W, C), got {observation}")


def _check_state_baselines(config: VPGConfig, state_names: tuple[str, ...], obs_specs: tuple) -> None:
    """`state_baselines` names every state of the env once, and its cnn states are images."""
    if set(config.state_baselines) != set(state_names):
        raise ValueError(f"vpg.make_trainer: config.state_baselines must name each of the env's states "
                         f"{list(state_names)} once, got {list(config.state_baselines)}")
    for name, spec in zip(state_names, obs_specs):
        if config.state_baselines[name]["type"] == "cnn" and len(spec.shape) != 3:
            raise ValueError(f"vpg.make_trainer: config.state_baselines[{name!r}] is a cnn baseline, which needs "
                             f"an image state of shape (H, W, C), got {spec}")


def _uses_kl(spec: Any) -> bool:
    """An optimizer spec with a `natural_gradient` anywhere in it (it needs the policy's KL)."""
    if not isinstance(spec, dict):
        return False
    return spec.get("type") == "natural_gradient" or any(_uses_kl(v) for v in spec.values())


def make_agent(config: VPGConfig, env: Env) -> _Agent:
    """The static parts of the recipe for `env`'s specs (networks, distributions, optimizers)."""
    common.check_env("vpg.make_trainer", config, env)
    if config.baseline_network == "cnn":
        _check_image_observation(env)
    spaces = policy.spaces("vpg.make_trainer", env.spec(), config.bounded_actions)
    state_names = policy.state_names(env.spec().observation)
    if config.baseline_network == "aggregated":
        _check_state_baselines(config, state_names, spaces.obs_specs)
    has_baseline = config.baseline_mode is not None
    baseline_optimizer = None
    if has_baseline and isinstance(config.baseline_optimizer, dict):
        baseline_optimizer = fnrl.optimizer_from_spec(config.baseline_optimizer)
    elif has_baseline and config.baseline_optimizer is not None:
        named = common.named_optimizer(config.baseline_optimizer, config.baseline_learning_rate)
        baseline_optimizer = fnrl.optimizer_from_spec(
            {"type": "multi_step", "optimizer": named, "num_steps": config.baseline_optimizer_steps})
    return _Agent(config, _policy_network(config, spaces),
                  _baseline_network(config, state_names) if has_baseline else None, spaces, state_names,
                  common.minimizer(config.optimizer, config.learning_rate, config.max_grad_norm), baseline_optimizer,
                  config.total_steps // (config.num_envs * config.num_steps),
                  policy.initial_memory(config.network, config.memory, config.memory_size, torsos=("torso",)))


def make_trainer(config: VPGConfig, env: Env) -> common.Trainer:
    """The `agents.common.Trainer` of VPG on a batched `env` of `config.num_envs` envs."""
    return policy.trainer(make_agent(config, env), env, start, policy_step, learn_rollout,
                          params=lambda state: {"network": state.params["policy"], "obs_stats": ()})


def make_train(config: VPGConfig, env: Env):
    """`train(key) -> (state, metrics)`: the whole run, jit- and vmap-able (PureJaxRL contract)."""
    return common.train_from_trainer(make_trainer(config, env))
