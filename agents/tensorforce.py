"""A TensorForce-style facade over the pure recipes: a stateful `Agent` with `act` / `observe` /
`reset` / `save` / `restore`, a `Runner` with episode callbacks, and the translation of TensorForce agent
specs into recipe configs (Kuhnle, Schaarschmidt & Fricke 2017, "TensorForce: a TensorFlow
library for applied reinforcement learning"; seed features A11–A15, A17, A20, L1, L2, L5,
M10–M13, Q1–Q3).

Nothing here learns by itself. `Agent` builds the recipe's `Trainer` (`agents.cli.AGENTS`) on a
spec-only env of one env and drives its `OnPolicy` split with TensorForce's inverted control:

    action = agent.act(state)                      # jitted `policy_step` on a batch of one
    state, terminal, reward = env.execute(action)
    agent.observe(terminal, reward)                # records the tick; a full batch runs `learn`

The ticks are recorded exactly as the host loop (`agents.host`, `fnrl.rollout.collect`) records
them, so a batch is the `Trajectory` `[num_steps, 1]` the pure functions would see: after every
finished episode the next `act` first records the envpool-style reset tick (`valid=False`, its
observation the episode's final state) and then starts the new episode (`first=True`, memory
reset). TensorForce's `batch_size` (`num_steps` here) therefore counts those reset ticks too, and
an `Agent` fed by `Runner` from a pure-JAX env reproduces `trainer.init` + `trainer.update`
(tested bit for bit). A full batch is learned from as soon as the bootstrap observation o_T is
known: at `observe(..., next_states=o_T)` or else at the next `act`, which brings it.

Episode ends. TensorForce 0.3/0.4 knew only `terminal` ∈ {False, True}, and its `Runner` marked
the `max_episode_timesteps` cut `terminal=True` (no bootstrap); TensorForce 0.5 added
`terminal=2` for such an abort. Here `observe(terminal, reward, truncated=False)` takes a bool
terminal or 0 / 1 / 2 (2 = truncated), and `truncated=True` marks a time-limit end, which
bootstraps from the value of the final state (DESIGN.md) — pass that state as `next_states`;
without it the bootstrap uses the state of the next `act` (the next episode's first one).

Preprocessing and exploration. TensorForce's `states_preprocessing_spec` /
`reward_preprocessing_spec` (`fnrl.preprocessing.from_spec`) run in the agent, as in TensorForce:
`act` processes the state (the preprocessors' state restarts with each episode), `observe` the
reward, and the recipe is built for, records and learns from the processed states and rewards.
`next_states` is processed as the next `act` would see it, without advancing the preprocessors.
`explorations_spec` (`fnrl.exploration_from_spec`) changes a sampled action as TensorForce does
per action type; the tick is then recorded with the explored action and the policy's log-prob of it.

Checkpoints (`fnrl.checkpoint`, no pickle) hold the learner state, the acting key and memory, the
episode statistics, the preprocessors' and explorations' states, the counters and the partly
filled batch (a fixed-size buffer), so a restored agent continues exactly where the saved one was.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import math
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

import fnrl
from fnrl import checkpoint, preprocessing
from fnrl._validation import is_positive_int_sequence
from fnrl.envs.wrappers import EpisodeStats, episode_stats_init, episode_stats_update
from fnrl.rollout import PolicyOutput, RolloutCarry, Trajectory
from fnrl.types import Env, EnvSpec, PRNGKey, PyTree, Spec, TimeStep

from agents import policy
from agents.common import OnPolicy, Trainer

# --------------------------------------------------------------------------------------------
# Specs.

_TF_SPEC_KEYS = ("type", "shape", "num_actions", "min_value", "max_value")
_TF_TYPES = ("bool", "int", "float")


def _is_spec(x: Any) -> bool:
    return isinstance(x, Spec)


def _tf_shape(where: str, shape: Any) -> tuple[int, ...]:
    shape = (shape,) if isinstance(shape, int) and not isinstance(shape, bool) else shape
    if not is_positive_int_sequence(shape):
        raise ValueError(f"{where}: `shape` must be an int or a tuple of ints >= 1, got {shape!r}")
    return tuple(shape)


def _tf_leaf(where: str, spec: dict) -> Spec:
    """One TensorForce spec dict (`type` bool / int / float, `shape`, int `num_actions` and
    optionally a first value `min_value`, float `min_value` and `max_value` together) as a `Spec`
    (int32 / float32 / bool)."""
    unknown = sorted(set(spec) - set(_TF_SPEC_KEYS))
    kind = spec.get("type", "float")
    if unknown or kind not in _TF_TYPES:
        raise ValueError(f"{where}: a TensorForce spec has keys {_TF_SPEC_KEYS} and type in {_TF_TYPES}, "
                         f"got {spec!r}")
    shape = _tf_shape(where, spec.get("shape", ()))
    num, low, high = spec.get("num_actions"), spec.get("min_value"), spec.get("max_value")
    if kind == "int":
        return _tf_int_spec(where, spec, shape, num, low, high)
    if num is not None or (kind == "bool" and (low, high) != (None, None)):
        raise ValueError(f"{where}: a {kind} spec takes no `num_actions`{'' if kind == 'float' else ' or bounds'}, "
                         f"got {spec!r}")
    if kind == "bool":
        return Spec(shape, jnp.bool_)
    if (low is None) != (high is None) or (low is not None and not np.all(np.asarray(low) < np.asarray(high))):
        raise ValueError(f"{where}: give both `min_value` < `max_value` or neither, got {spec!r}")
    return Spec(shape, jnp.float32, minimum=low, maximum=high)


def _tf_int_spec(where: str, spec: dict, shape: tuple, num: Any, low: Any, high: Any) -> Spec:
    """An int spec: `num_actions` values from 0, or from `min_value` (then `max_value`, if
    given, must be min_value + num_actions − 1; alone, the two bounds give the count)."""
    for key, value in (("num_actions", num), ("min_value", low), ("max_value", high)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{where}: `{key}` of an int spec must be an int, got {spec!r}")
    if num is None and low is not None and high is not None:
        num = high - low + 1
    if num is not None and num < 1:
        raise ValueError(f"{where}: an int spec needs num_actions >= 1 (or min_value <= max_value), got {spec!r}")
    if (high is not None and (low is None or high != low + num - 1)) or (low is not None and num is None):
        raise ValueError(f"{where}: an int spec's values are min_value .. min_value + num_actions − 1 "
                         f"(max_value, if given, must be the last), got {spec!r}")
    if low is None or low == 0:
        return Spec(shape, jnp.int32, num_values=num)
    return Spec(shape, jnp.int32, num_values=num, minimum=low, maximum=low + num - 1)


def specs(where: str, tree: Any) -> PyTree:
    """`fnrl.Spec` pytree of TensorForce `states` / `actions` specs: one spec dict, a dict of
    named ones (nested freely), or `Spec` leaves (passed through). A dict is one spec when its
    `type` is a string or it has a non-dict `shape` (TensorForce's own rule)."""
    if isinstance(tree, Spec):
        return tree
    if isinstance(tree, dict) and tree and (isinstance(tree.get("type"), str)
                                            or ("shape" in tree and not isinstance(tree["shape"], dict))):
        return _tf_leaf(where, tree)
    if isinstance(tree, dict) and tree:
        return {name: specs(f"{where}[{name!r}]", sub) for name, sub in tree.items()}
    if isinstance(tree, (tuple, list)) and tree:
        return type(tree)(specs(f"{where}[{i}]", sub) for i, sub in enumerate(tree))
    raise ValueError(f"{where}: expected a TensorForce spec dict, a dict of them or fnrl Specs, got {tree!r}")


def spec_env(env_spec: EnvSpec) -> Env:
    """A host `Env` of one env that only describes `env_spec`: what `make_trainer` needs to build
    a recipe for act/observe. Its `reset`/`step` raise: the facade's data comes from `observe`."""

    def unavailable(*_):
        raise ValueError("agents.tensorforce: this env only carries specs; the Agent is fed through "
                         "act/observe (play an env with Runner)")

    return Env(reset=unavailable, step=unavailable, spec=lambda: env_spec, num_envs=1, is_jax=False)


# --------------------------------------------------------------------------------------------
# Recipes and configs.


def _recipe_module(agent: str) -> tuple[Any, type]:
    from agents.cli import AGENTS  # the CLI's table of recipes (imported late, so the CLI may import us)

    if agent not in AGENTS:
        raise ValueError(f"Agent: argument `agent` must be one of {sorted(AGENTS)}, got {agent!r}")
    module_name, config_name = AGENTS[agent]
    module = importlib.import_module(module_name)
    return module, getattr(module, config_name)


def make_config(agent: str, config: Any = None, **fields: Any) -> Any:
    """The recipe's config for one env: `config` (its config object, a dict of fields, or None
    for the defaults) with `fields` on top and `num_envs` = 1 (another value is an error). An
    agent acts for as long as it is used, so learning-rate annealing over `total_steps` is off
    unless asked for."""
    _, config_cls = _recipe_module(agent)
    names = {f.name for f in dataclasses.fields(config_cls)}
    if isinstance(config, config_cls):
        values = {name: getattr(config, name) for name in names}
    elif config is None or isinstance(config, dict):
        values = {"num_envs": 1, **({"anneal_lr": False} if "anneal_lr" in names else {}), **(config or {})}
    else:
        raise ValueError(f"Agent: argument `config` must be a {config_cls.__name__}, a dict or None, "
                         f"got {type(config).__name__}")
    values.update(fields)
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"Agent: unknown config field(s) {unknown} for {config_cls.__name__}; "
                         f"fields: {', '.join(sorted(names))}")
    if values["num_envs"] != 1:
        raise ValueError(f"Agent: config field `num_envs` must be 1 (the facade plays one env), "
                         f"got {values['num_envs']!r}")
    return config_cls(**values)


# --------------------------------------------------------------------------------------------
# TensorForce agent specs.

AGENT_TYPES = {"ppo_agent": "ppo", "trpo_agent": "trpo", "vpg_agent": "vpg", "random_agent": "random",
               "constant_agent": "constant"}
# Applied by `Agent` itself (`Agent.from_spec`), not by a recipe config.
AGENT_KEYS = ("states_preprocessing_spec", "reward_preprocessing_spec", "explorations_spec")
# Keys with no meaning here (TensorFlow devices and sessions, logging, batching of observe
# calls, TensorForce's batch-memory bookkeeping): accepted and ignored.
IGNORED_KEYS = ("scope", "device", "session_config", "summary_spec", "saver_spec", "batched_observe",
                "keep_last_timestep", "log_level", "cg_unroll_loop")
# Keys accepted at TensorForce's default None (its quickstart spells them out), refused otherwise:
# per-action distribution overrides (fnrl picks by action type: `bounded_actions` chooses for
# bounded floats) and distributed TensorFlow.
NONE_ONLY_KEYS = ("distributions_spec", "distributed_spec")
_PG_DEFAULTS = {"batch_size": 1000, "discount": 0.99, "entropy_regularization": None, "gae_lambda": None,
                "baseline_mode": None, "baseline": None, "baseline_optimizer": None, "network": None,
                "variable_noise": None}
# TensorForce 0.3.5's defaults (its agents' signatures; PPO's step optimizer from its source).
TENSORFORCE_DEFAULTS = {
    "ppo_agent": {**_PG_DEFAULTS, "entropy_regularization": 0.01, "likelihood_ratio_clipping": None,
                  "step_optimizer": {"type": "adam", "learning_rate": 1e-4}, "optimization_steps": 10},
    "trpo_agent": {**_PG_DEFAULTS, "likelihood_ratio_clipping": None, "learning_rate": 1e-3,
                   "cg_max_iterations": 20, "cg_damping": 1e-3},
    "vpg_agent": {**_PG_DEFAULTS, "optimizer": {"type": "adam", "learning_rate": 1e-3}},
    "random_agent": {},
    "constant_agent": {"action_values": None},
}
_NAMED_OPTIMIZERS = {"adam": "adam", "gradient_descent": "sgd"}  # TensorForce type -> recipe name


def _tf_error(agent_type: str, key: str, message: str) -> ValueError:
    return ValueError(f"tensorforce_config: {agent_type} key `{key}` {message}")


def _network_fields(layers: Any) -> dict:
    """A dense-only layer list with one activation as `hidden_sizes` / `activation` (every
    recipe's MLP torso); any other layers spec as the recipe's `network` field."""
    if layers is None:
        return {}
    dense = isinstance(layers, (list, tuple)) and layers and all(
        isinstance(layer, dict) and layer.get("type") == "dense" and "size" in layer
        and set(layer) <= {"type", "size", "activation"} for layer in layers)
    activations = {layer.get("activation", "tanh") for layer in layers} if dense else set()
    if dense and len(activations) == 1:
        return {"hidden_sizes": tuple(layer["size"] for layer in layers), "activation": activations.pop()}
    return {"network": layers}


def _optimizer_fields(agent_type: str, key: str, spec: Any, names: set) -> dict:
    """A TensorForce optimizer spec as the recipe's fields: a plain adam / gradient_descent as a
    named optimizer and learning rate; any other spec as the `optimizer` field (a recipe taking
    `fnrl.optimizer_from_spec` specs); a recipe without that field takes adam only."""
    spec = {"type": spec} if isinstance(spec, str) else spec
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise _tf_error(agent_type, key, f"must be an optimizer spec dict with a `type`, got {spec!r}")
    plain = spec["type"] in _NAMED_OPTIMIZERS and set(spec) <= {"type", "learning_rate"}
    if "optimizer" in names:
        if plain:
            return {"optimizer": _NAMED_OPTIMIZERS[spec["type"]], "learning_rate": spec.get("learning_rate", 1e-3)}
        return {"optimizer": spec}
    if spec["type"] == "adam" and set(spec) <= {"type", "learning_rate", "epsilon"}:
        return {"learning_rate": spec.get("learning_rate", 1e-3), "adam_eps": spec.get("epsilon", 1e-8)}
    raise _tf_error(agent_type, key, f"must be an adam spec (keys type, learning_rate, epsilon) for this recipe, "
                    f"got {spec!r}")


def _pg_fields(agent_type: str, tf: dict) -> dict:
    """Keys every policy-gradient agent shares: a batch of `batch_size` ticks of one env, the
    discount, the entropy bonus, the network and the parameter noise when acting."""
    batch = tf["batch_size"]
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise _tf_error(agent_type, "batch_size", f"must be an int >= 1, got {batch!r}")
    noise = tf["variable_noise"]
    if noise is not None and (isinstance(noise, bool) or not isinstance(noise, (int, float)) or not noise >= 0):
        raise _tf_error(agent_type, "variable_noise", f"must be None or a number >= 0, got {noise!r}")
    return {"num_envs": 1, "num_steps": batch, "gamma": tf["discount"],
            "ent_coef": tf["entropy_regularization"] or 0.0, "normalize_advantages": False,
            **({} if noise is None else {"variable_noise": float(noise)}),
            **_network_fields(tf["network"])}


def _ppo_fields(tf: dict, names: set) -> dict:
    """PPO: `optimization_steps` full-batch steps of `step_optimizer` (TensorForce's multi_step;
    a plain adam keeps TensorForce's epsilon 1e-8), no gradient clipping, and the ratio clipped to
    TensorForce's [1/(1+ε), 1+ε], or not at all when `likelihood_ratio_clipping` is None. Unlike
    TensorForce, fnrl's PPO always trains its critic (a "states" baseline, also for
    `baseline_mode=None`) jointly with the policy."""
    if tf["baseline_mode"] not in (None, "states") or tf["baseline"] is not None or tf["baseline_optimizer"]:
        raise _tf_error("ppo_agent", "baseline_mode", "may only be None or 'states' (PPO's own critic), "
                        "without `baseline` / `baseline_optimizer`")
    clip = tf["likelihood_ratio_clipping"]
    return {**_pg_fields("ppo_agent", tf), "update_epochs": tf["optimization_steps"], "num_minibatches": 1,
            "anneal_lr": False, "clip_eps": math.inf if clip is None else clip, "clip_range": "tensorforce",
            "clip_value_loss": False,
            "gae_lambda": 1.0 if tf["gae_lambda"] is None else tf["gae_lambda"],
            "max_grad_norm": 0.0, "adam_eps": 1e-8,
            **_optimizer_fields("ppo_agent", "step_optimizer", tf["step_optimizer"], names)}


def _value_optimizer(spec: Any) -> dict:
    """TRPO's baseline optimizer: adam, or multi_step of adam (its `num_steps` as epochs)."""
    steps = 1
    if isinstance(spec, dict) and spec.get("type") == "multi_step" and set(spec) <= {"type", "optimizer", "num_steps"}:
        spec, steps = spec.get("optimizer"), spec.get("num_steps", 5)
    if not (isinstance(spec, dict) and spec.get("type") == "adam" and set(spec) <= {"type", "learning_rate"}):
        raise _tf_error("trpo_agent", "baseline_optimizer", f"must be adam or multi_step of adam, got {spec!r}")
    return {"value_learning_rate": spec.get("learning_rate", 1e-3), "value_epochs": steps, "value_minibatches": 1}


def _trpo_fields(tf: dict, names: set) -> dict:
    """TRPO: `learning_rate` is the KL bound; TensorForce's optimized_step line search accepts at
    ratio 0.9. `baseline_mode='states'` trains fnrl's critic."""
    if tf["baseline_mode"] not in (None, "states") or tf["baseline"] is not None:
        raise _tf_error("trpo_agent", "baseline_mode", "may only be None or 'states' (TRPO's own critic), "
                        "without a `baseline` spec")
    fields = {**_pg_fields("trpo_agent", tf), "max_kl": tf["learning_rate"],
              "cg_max_iterations": tf["cg_max_iterations"], "cg_damping": tf["cg_damping"], "ls_accept_ratio": 0.9,
              "likelihood_ratio_clipping": tf["likelihood_ratio_clipping"] or 0.0, "clip_range": "tensorforce",
              "gae_lambda": 1.0 if tf["gae_lambda"] is None else tf["gae_lambda"],
              "use_baseline": tf["baseline_mode"] is not None, "value_minibatches": 1}
    if tf["baseline_optimizer"] is not None:
        fields.update(_value_optimizer(tf["baseline_optimizer"]))
    return fields


def _baseline_fields(spec: Any) -> dict:
    """VPG's `baseline`: {"type": "mlp", "sizes"}, {"type": "cnn", "conv_sizes", "dense_sizes"} or
    {"type": "aggregated", "baselines": {state name: an mlp or cnn spec}} (checked by VPGConfig)."""
    if spec is None:
        return {}
    if isinstance(spec, dict) and spec.get("type") == "aggregated" and set(spec) == {"type", "baselines"}:
        return {"baseline_network": "aggregated", "state_baselines": spec["baselines"]}
    if isinstance(spec, dict) and spec.get("type") == "mlp" and set(spec) <= {"type", "sizes"}:
        return {"baseline_network": "mlp", "baseline_sizes": tuple(spec.get("sizes", ()))}
    if isinstance(spec, dict) and spec.get("type") == "cnn" and set(spec) <= {"type", "conv_sizes", "dense_sizes"}:
        return {"baseline_network": "cnn", "baseline_conv_sizes": tuple(spec.get("conv_sizes", ())),
                "baseline_sizes": tuple(spec.get("dense_sizes", ()))}
    raise _tf_error("vpg_agent", "baseline", f"must be an mlp, cnn or aggregated baseline spec, got {spec!r}")


def _vpg_fields(tf: dict, names: set) -> dict:
    """VPG: TensorForce's reward estimation (no bootstrap after the batch, no advantage
    normalization); the baseline optimizer spec goes to the recipe as is (None: joint)."""
    return {**_pg_fields("vpg_agent", tf), "gae_lambda": tf["gae_lambda"], "bootstrap": False,
            "baseline_mode": tf["baseline_mode"], "baseline_optimizer": tf["baseline_optimizer"],
            **_baseline_fields(tf["baseline"]), **_optimizer_fields("vpg_agent", "optimizer", tf["optimizer"], names)}


def _constant_fields(tf: dict, names: set) -> dict:
    """`action_values` ({action name: value}) must give every action the same value."""
    values = tf["action_values"]
    if not isinstance(values, dict) or not values or len(set(values.values())) != 1:
        raise _tf_error("constant_agent", "action_values", f"must be a non-empty dict giving every action "
                        f"one value (fnrl's ConstantConfig.action_value), got {values!r}")
    return {"num_envs": 1, "action_value": float(next(iter(values.values())))}


_FIELDS = {"ppo_agent": _ppo_fields, "trpo_agent": _trpo_fields, "vpg_agent": _vpg_fields,
           "random_agent": lambda tf, names: {"num_envs": 1}, "constant_agent": _constant_fields}


def tensorforce_config(spec: dict) -> tuple[str, dict]:
    """`(agent, config dict)` of a TensorForce agent spec (`Agent.from_spec`, seed features Q1–Q3).

    `spec["type"]` is one of `AGENT_TYPES` (e.g. "ppo_agent"); every key TensorForce 0.3.5's agent
    takes and fnrl can honour maps to the recipe's fields, keys not given take TensorForce's
    defaults (`TENSORFORCE_DEFAULTS`), `IGNORED_KEYS` are dropped, anything else is an error.
    Mapping: batch_size → num_steps with num_envs = 1; discount → gamma; entropy_regularization
    → ent_coef; likelihood_ratio_clipping → clip_eps (PPO; None = no clipping) or
    likelihood_ratio_clipping (TRPO), both with TensorForce's ratio range [1/(1+ε), 1+ε]
    (`clip_range="tensorforce"`); optimization_steps → update_epochs with one minibatch;
    gae_lambda (None: discounted returns − baseline, i.e. λ = 1 for PPO / TRPO); baseline_mode /
    baseline / baseline_optimizer; learning_rate (TRPO) → max_kl; cg_max_iterations, cg_damping;
    network (or network_spec) → hidden_sizes + activation, or the recipe's `network` field;
    step_optimizer / optimizer → the recipe's optimizer fields; action_values → action_value.
    TensorForce does not normalize advantages, so neither does the translated config. The
    result suits `Agent(agent, states, actions, config=...)` and the CLI's config files.
    """
    if not isinstance(spec, dict) or spec.get("type") not in AGENT_TYPES:
        got = spec.get("type") if isinstance(spec, dict) else spec
        raise ValueError(f"tensorforce_config: argument `spec` must be a dict whose `type` is one of "
                         f"{sorted(AGENT_TYPES)}, got {got!r}")
    agent_type = spec["type"]
    set_none_only = [key for key in NONE_ONLY_KEYS if spec.get(key) is not None]
    if set_none_only:
        raise ValueError(f"tensorforce_config: {set_none_only} must be None (TensorForce's default): fnrl picks "
                         "each action's distribution by its type and does not run distributed TensorFlow")
    given = {("network" if key == "network_spec" else key): value for key, value in spec.items()
             if key != "type" and key not in IGNORED_KEYS + NONE_ONLY_KEYS}
    defaults = TENSORFORCE_DEFAULTS[agent_type]
    applied_by_agent = sorted(set(given) & set(AGENT_KEYS))
    if applied_by_agent:
        raise ValueError(f"tensorforce_config: {applied_by_agent} are applied by agents.tensorforce.Agent "
                         "(Agent.from_spec takes them), not by a recipe config: a recipe learns from what its env "
                         "returns and from the actions its policy samples")
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"tensorforce_config: {agent_type} does not support key(s) {unknown}; supported: "
                         f"{sorted(defaults) + ['network_spec']}; ignored: {list(IGNORED_KEYS)}")
    agent = AGENT_TYPES[agent_type]
    _, config_cls = _recipe_module(agent)
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    config = _FIELDS[agent_type]({**defaults, **given}, set(fields))
    steps = config.get("num_steps", 0)
    if "total_steps" in fields and fields["total_steps"].default < steps:
        config["total_steps"] = steps
    return agent, config


# --------------------------------------------------------------------------------------------
# The stateful agent.


class _Built(NamedTuple):
    """An `Agent`'s recipe, built and jitted once per (recipe, config, specs) and shared, so new
    agents of the same kind (attempts, restores) reuse the compilations."""

    recipe: OnPolicy
    tick: Callable  # (learner, key, observation [1, ...], memory) -> (key, env action, PolicyOutput)
    greedy_tick: Callable
    forced_tick: Callable  # (learner, observation, memory, action) -> (env action, PolicyOutput)
    learn: Callable  # jitted `OnPolicy.learn`
    start: Callable  # jitted `OnPolicy.start`


_BUILT: dict[str, _Built] = {}
_BUILT_MAX = 32


def _tick(recipe: OnPolicy, act: Callable, params: Callable, greedy: bool, learner: PyTree, key: PRNGKey,
          observation: PyTree, memory: PyTree) -> tuple[PRNGKey, PyTree, PolicyOutput]:
    """One policy tick as `fnrl.rollout` ticks (`key, step_key = split(key)`); `greedy` acts with
    the recipe's `act(..., greedy=True)` and records that action through `policy_step`."""
    key, step_key = jax.random.split(key)
    action = act(params(learner), step_key, observation, True) if greedy else None
    out = recipe.policy_step(learner, step_key, observation, memory, action)
    return key, recipe.to_env(out.action), out


def _forced_tick(recipe: OnPolicy, learner: PyTree, observation: PyTree, memory: PyTree,
                 action: PyTree) -> tuple[PyTree, PolicyOutput]:
    """`policy_step` teacher-forced with `action` (an explored one): what the learner records
    for it (its log-prob, the value, the memory). No sampling, so no key is drawn."""
    out = recipe.policy_step(learner, jax.random.PRNGKey(0), observation, memory, action)
    return recipe.to_env(out.action), out


def _build(agent: str, config: Any, env_spec: EnvSpec) -> _Built:
    cache_key = repr((agent, config, jax.tree.flatten(env_spec, is_leaf=_is_spec)))
    if cache_key in _BUILT:
        return _BUILT[cache_key]
    module, _ = _recipe_module(agent)
    try:
        trainer: Trainer = module.make_trainer(config, spec_env(env_spec))
    except ValueError as error:
        raise ValueError(f"Agent: the {agent!r} recipe cannot act/observe for these specs: {error}") from None
    recipe = trainer.on_policy
    if recipe is None:
        raise ValueError(f"Agent: the {agent!r} recipe has no act/observe form (its Trainer.on_policy is None)")
    tick = functools.partial(_tick, recipe, trainer.act, trainer.params)
    built = _Built(recipe, jax.jit(functools.partial(tick, False)), jax.jit(functools.partial(tick, True)),
                   jax.jit(functools.partial(_forced_tick, recipe)), jax.jit(recipe.learn), jax.jit(recipe.start))
    if len(_BUILT) >= _BUILT_MAX:
        _BUILT.pop(next(iter(_BUILT)))
    _BUILT[cache_key] = built
    return built


def _zeros(length: int, tree: PyTree) -> PyTree:
    """Host buffers `[length, *shape]` shaped like `tree`'s arrays (or ShapeDtypeStructs)."""
    return jax.tree.map(lambda x: np.zeros((length,) + tuple(x.shape), x.dtype), tree)


def _put(buffer: PyTree, index: int, value: PyTree) -> None:
    jax.tree.map(lambda buf, x: buf.__setitem__(index, np.asarray(x)), buffer, value)


def _episode_end(terminal: Any, truncated: Any) -> tuple[bool, bool]:
    """(terminated, truncated) of TensorForce's `terminal` (bool, or 0 / 1 / 2 = truncated) and
    the `truncated` flag; a termination wins over a truncation (it must not bootstrap)."""
    if isinstance(terminal, (bool, np.bool_)):
        code = int(terminal)
    elif isinstance(terminal, (int, np.integer)) and int(terminal) in (0, 1, 2):
        code = int(terminal)
    else:
        raise ValueError(f"Agent.observe: argument `terminal` must be a bool or 0, 1, 2 (2 = truncated), "
                         f"got {terminal!r}")
    if not isinstance(truncated, (bool, np.bool_)):
        raise ValueError(f"Agent.observe: argument `truncated` must be a bool, got {truncated!r}")
    return code == 1, code != 1 and (code == 2 or bool(truncated))


class _Preprocessing(NamedTuple):
    """A TensorForce preprocessing spec built for one env's states or rewards (a batch of one):
    jitted `apply` / `reset`, the state to start from and the processed states' specs."""

    apply: Callable  # (state, x [1, ...]) -> (state, y)
    reset: Callable  # state -> state at an episode start
    initial: PyTree
    spec: PyTree  # `Spec`s of one processed state (no batch axis)

    @staticmethod
    def build(name: str, spec: Any, example: PyTree) -> Optional["_Preprocessing"]:
        if spec is None:
            return None
        try:
            pp = preprocessing.from_spec(spec)
            initial = pp.init(example)
            out = jax.eval_shape(pp.apply, initial, example)[1]
        except (ValueError, TypeError) as error:
            raise ValueError(f"Agent: argument `{name}`: {error}") from None
        processed = jax.tree.map(lambda s: Spec(s.shape[1:], s.dtype), out)
        return _Preprocessing(jax.jit(pp.apply), jax.jit(lambda state: pp.reset(state)), initial, processed)


class _Explorations(NamedTuple):
    """A TensorForce `explorations_spec` for one env's actions (a batch of one), applied as
    TensorForce applies it per action type (`fnrl.explore_discrete` for int and bool parts,
    `fnrl.explore_continuous` within the bounds for float parts): jitted
    `explore(key, states, action, episode, timestep) -> (action, states)` and the states to start from."""

    explore: Callable
    initial: list

    @staticmethod
    def build(spec: Any, action_spec: PyTree) -> Optional["_Explorations"]:
        if spec is None:
            return None
        parts, treedef = jax.tree.flatten(action_spec, is_leaf=_is_spec)
        names = policy.state_names(action_spec, single="action")
        try:
            built = fnrl.exploration_from_spec(spec)
        except ValueError as error:
            raise ValueError(f"Agent: argument `explorations`: {error}") from None
        if isinstance(built, dict) and not set(built) <= set(names):
            raise ValueError(f"Agent: argument `explorations` names actions {sorted(set(built) - set(names))} that "
                             f"are not among the actions {list(names)}")
        per_part = [built.get(name) for name in names] if isinstance(built, dict) else [built] * len(parts)
        initial = [() if e is None else e.init((1,) + tuple(p.shape)) for p, e in zip(parts, per_part)]

        def explore(key: PRNGKey, states: list, action: PyTree, episode: Any, timestep: Any) -> tuple[PyTree, list]:
            leaves, new_states = treedef.flatten_up_to(action), list(states)
            for i, (part, exploration, part_key) in enumerate(zip(parts, per_part, jax.random.split(key, len(parts)))):
                if exploration is None:
                    continue
                value_key, apply_key = jax.random.split(part_key)
                value, new_states[i] = exploration.explore(value_key, states[i], episode, timestep)
                if part.kind in ("int", "bool"):
                    low = 0 if part.kind == "bool" or part.minimum is None else part.minimum
                    explored = fnrl.explore_discrete(apply_key, leaves[i] - low if low else leaves[i],
                                                     part.num_values or 2, value)
                    leaves[i] = explored + low if low else explored
                else:
                    leaves[i] = fnrl.explore_continuous(leaves[i], value, part.minimum, part.maximum)
            return treedef.unflatten(leaves), new_states

        return _Explorations(jax.jit(explore), initial)


def _dig(tree: dict, dotted: str) -> Any:
    for key in dotted.split("."):
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree


class Agent:
    """TensorForce's `Agent` API on a recipe's pure functions (see the module docstring).

    Args:
      agent: a recipe name of `agents.cli.AGENTS` with an act/observe form ("ppo", "vpg",
        "trpo", "a2c", "random", "constant").
      states, actions: TensorForce spec dicts (`dict(type='float', shape=(2,))`, `dict(type='int',
        num_actions=2)`, `dict(type='float', min_value=-0.5, max_value=1.5)`, dicts of named ones)
        or `fnrl.Spec` pytrees, for one (unbatched) env.
      config: the recipe's config object, a dict of its fields, or None (defaults); `num_envs` is 1.
      seed: keys derive from `PRNGKey(seed)` as `agents.common.on_policy_trainer` derives them.
      states_preprocessing, reward_preprocessing: TensorForce's `states_preprocessing_spec` /
        `reward_preprocessing_spec` (`fnrl.preprocessing.from_spec`: a list of preprocessor
        dicts, or per state name), or None. The agent keeps their state, resets it when an
        episode starts, and the recipe sees and learns from the processed states and rewards.
      explorations: TensorForce's `explorations_spec` (`fnrl.exploration_from_spec`: one spec
        for every action, or per action name), or None: applied to sampled actions (not to
        `deterministic` ones), the recorded log-prob then being the explored action's.
      **fields: config fields set on top of `config`.

    Attributes: `episode` (finished episodes), `timestep` (observed ticks), `updates` (batches
    learned from), `last_metrics` (the recipe's metrics of the last update), `config`.
    """

    def __init__(self, agent: str, states: Any, actions: Any, config: Any = None, seed: int = 0,
                 states_preprocessing: Any = None, reward_preprocessing: Any = None, explorations: Any = None,
                 **fields: Any):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"Agent: argument `seed` must be an int, got {seed!r}")
        env_spec = EnvSpec(specs("Agent: argument `states`", states), specs("Agent: argument `actions`", actions))
        self.agent, self.seed, self.spec = agent, int(seed), env_spec
        self.config = make_config(agent, config, **fields)
        self._raw_specs, self._raw_treedef = jax.tree.flatten(env_spec.observation, is_leaf=_is_spec)
        self._states_pp = _Preprocessing.build("states_preprocessing", states_preprocessing,
                                               self._raw_treedef.unflatten([np.zeros((1,) + s.shape, s.dtype)
                                                                            for s in self._raw_specs]))
        self._reward_pp = _Preprocessing.build("reward_preprocessing", reward_preprocessing, np.zeros(1, np.float32))
        self._explorations = _Explorations.build(explorations, env_spec.action)
        recipe_spec = env_spec if self._states_pp is None else env_spec._replace(observation=self._states_pp.spec)
        self._built = _build(agent, self.config, recipe_spec)
        self._identity = {"agent": agent, "config": dataclasses.asdict(self.config), "states": env_spec.observation,
                          "actions": env_spec.action, "states_preprocessing": states_preprocessing,
                          "reward_preprocessing": reward_preprocessing, "explorations": explorations}
        self._obs_specs, self._obs_treedef = jax.tree.flatten(recipe_spec.observation, is_leaf=_is_spec)
        self._start(self.seed)

    @classmethod
    def from_spec(cls, spec: dict, states: Any, actions: Any, seed: int = 0) -> "Agent":
        """An agent from a TensorForce agent spec (`{"type": "ppo_agent", "batch_size": 8, ...}`,
        translated by `tensorforce_config`; its `states_preprocessing_spec`,
        `reward_preprocessing_spec` and `explorations_spec` go to the agent)."""
        rest = {k: v for k, v in spec.items() if k not in AGENT_KEYS} if isinstance(spec, dict) else spec
        agent, config = tensorforce_config(rest)
        return cls(agent, states, actions, config=config, seed=seed,
                   states_preprocessing=spec.get("states_preprocessing_spec"),
                   reward_preprocessing=spec.get("reward_preprocessing_spec"),
                   explorations=spec.get("explorations_spec"))

    def _start(self, seed: int) -> None:
        """The learner from the recipe's `start` and an empty batch buffer; the acting key is the
        rollout key of `on_policy_trainer`'s `init(PRNGKey(seed))`."""
        start_key, env_key = jax.random.split(jax.random.PRNGKey(seed))
        self._key = jax.random.split(env_key)[1]
        recipe = self._built.recipe
        observation = self._obs_treedef.unflatten([np.zeros((1,) + s.shape, s.dtype) for s in self._obs_specs])
        no = np.zeros(1, bool)
        timestep = TimeStep(observation, np.zeros(1, np.float32), no, no, np.ones(1, bool))
        self._initial_memory = jax.tree.map(lambda m: np.broadcast_to(m, (1,) + np.shape(m)).copy(),
                                            recipe.initial_memory)
        self._memory = self._initial_memory
        self._learner = self._built.start(start_key, RolloutCarry((), timestep, self._memory, np.ones(1, bool),
                                                                  self._key))
        out = jax.eval_shape(self._built.tick, self._learner, self._key, observation, self._memory)[2]
        self._stats = jax.tree.map(np.asarray, episode_stats_init(timestep))
        length = recipe.num_steps
        flags = np.zeros((length, 1), bool)
        self._batch = Trajectory(_zeros(length, observation), _zeros(length, out.action),
                                 np.zeros((length, 1), np.float32), flags, flags.copy(), flags.copy(), flags.copy(),
                                 _zeros(length, out.extras), _zeros(length, out.memory), _zeros(length, self._stats))
        self._final = observation
        self._pp_states = {"states": () if self._states_pp is None else self._states_pp.initial,
                           "reward": () if self._reward_pp is None else self._reward_pp.initial}
        self._exploration_states = () if self._explorations is None else self._explorations.initial
        self._size, self._acted, self._done, self._first, self._has_final = 0, False, False, True, False
        self.episode = self.timestep = self.updates = 0
        self.last_metrics: dict[str, float] = {}

    # ---------------------------------------------------------------- acting and observing

    def act(self, states: Any, deterministic: bool = False) -> PyTree:
        """The action for one state (numpy, unbatched; a dict for multi-part actions).

        Sampled from the policy, or with `deterministic` the recipe's greedy action (recorded
        for learning all the same, as TensorForce does). Learns first from a full batch waiting
        for this state as its bootstrap observation, and after a finished episode records the
        reset tick before the new episode's first tick.
        """
        if self._acted:
            raise ValueError("Agent.act: called twice without `observe` in between")
        observation = self._observation("Agent.act: argument `states`", states)
        if self._states_pp is not None:
            if self._done or self._first:  # a new episode: the preprocessors start afresh
                self._pp_states["states"] = self._states_pp.reset(self._pp_states["states"])
            self._pp_states["states"], observation = self._states_pp.apply(self._pp_states["states"], observation)
        if self._size == self._built.recipe.num_steps:
            self._learn(self._final if self._done and self._has_final else observation)
        if self._done:
            self._reset_tick(observation, deterministic)
        memory = self._initial_memory if self._first else self._memory
        action = self._record_act(observation, memory, self._first, deterministic, explore=True)
        self._acted = True
        return jax.tree.map(lambda a: np.asarray(a)[0], action)

    def observe(self, terminal: Any, reward: float, truncated: bool = False, next_states: Any = None) -> None:
        """Records the reward and the episode end of the last `act`'s tick.

        Args:
          terminal: bool, or TensorForce 0.5's 0 / 1 / 2 (2: the episode was cut, as `truncated`).
          reward: the reward of the acted tick.
          truncated: the episode ended by a time limit (bootstraps; a termination does not).
          next_states: the state the env reached (optional): the bootstrap observation of a
            truncation and of a full batch, which is then learned from at once.
        """
        if not self._acted:
            raise ValueError("Agent.observe: nothing to observe; call `act` first")
        terminated, truncated = _episode_end(terminal, truncated)
        if next_states is not None:
            final = self._observation("Agent.observe: argument `next_states`", next_states)
            # Processed as the next `act` would, without advancing the state: that act sees it again.
            self._final = final if self._states_pp is None else self._states_pp.apply(self._pp_states["states"],
                                                                                     final)[1]
        reward = float(reward)
        if self._reward_pp is not None:
            self._pp_states["reward"], processed = self._reward_pp.apply(self._pp_states["reward"],
                                                                         np.asarray([reward], np.float32))
            reward = float(np.asarray(processed)[0])
            if terminated or truncated:
                self._pp_states["reward"] = self._reward_pp.reset(self._pp_states["reward"])
        self._record_observe(reward, terminated, truncated, True)
        self._acted, self._first, self._has_final = False, False, next_states is not None
        self._done = terminated or truncated
        self.timestep += 1
        self.episode += int(self._done)
        if self._size == self._built.recipe.num_steps and self._has_final:
            self._learn(self._final)

    def reset(self) -> None:
        """TensorForce's `Agent.reset()`: the next `act` starts a new episode, its memory back to
        the initial one. Right after an episode's end, or before the first `act`, that happens
        anyway and this does nothing (TensorForce loops call it at every episode start).
        Mid-episode it cuts the episode as `observe(..., truncated=True)` would have: the last
        observed tick is recorded as truncated (learning bootstraps from the state the next `act`
        gets, or from that `observe`'s `next_states`) and counts as a finished episode."""
        if self._acted:
            raise ValueError("Agent.reset: called between `act` and `observe`; observe the acted tick first")
        if self._done or self._first:
            return
        self._stats = _episode_ended(self._stats)
        if self._size:  # else the tick's batch was learned from at once, bootstrapping as a cut does
            self._batch.truncated[self._size - 1] = True
            _put(self._batch.env_info, self._size - 1, self._stats)
        if self._reward_pp is not None:
            self._pp_states["reward"] = self._reward_pp.reset(self._pp_states["reward"])
        self._done = True
        self.episode += 1

    def _observation(self, where: str, states: Any) -> PyTree:
        """One state (TensorForce: an array-like or a dict of them) as a batch of one per spec."""
        try:
            leaves = self._raw_treedef.flatten_up_to(states)
        except (ValueError, TypeError):
            raise ValueError(f"{where} must be structured like the states spec {self.spec.observation}, "
                             f"got {states!r}") from None
        batch = []
        for spec, leaf in zip(self._raw_specs, leaves):
            array = np.asarray(leaf)
            if array.shape != tuple(spec.shape):
                raise ValueError(f"{where} must have shape {tuple(spec.shape)} per the states spec, got {array.shape}")
            batch.append(array.astype(spec.dtype)[None])
        return self._raw_treedef.unflatten(batch)

    def _record_act(self, observation: PyTree, memory: PyTree, first: bool, deterministic: bool,
                    explore: bool = False) -> PyTree:
        """Runs the jitted tick (and the explorations on a sampled action, with `explore`) and
        writes what it saw and did at the batch's next slot."""
        tick = self._built.greedy_tick if deterministic else self._built.tick
        self._key, action, out = tick(self._learner, self._key, observation, memory)
        if explore and not deterministic and self._explorations is not None:
            self._key, explore_key = jax.random.split(self._key)
            explored, self._exploration_states = self._explorations.explore(
                explore_key, self._exploration_states, out.action, np.int32(self.episode), np.int32(self.timestep))
            action, out = self._built.forced_tick(self._learner, observation, memory, explored)
        batch, i = self._batch, self._size
        _put(batch.observation, i, observation)
        _put(batch.action, i, out.action)
        _put(batch.extras, i, out.extras)
        _put(batch.memory, i, out.memory)
        batch.first[i] = first
        self._memory = out.memory
        return action

    def _record_observe(self, reward: float, terminated: bool, truncated: bool, valid: bool) -> None:
        """Completes the slot: reward, flags and the episode statistics after the tick."""
        flags = [np.asarray([x]) for x in (terminated, truncated, valid)]
        self._stats = episode_stats_update(self._stats, TimeStep((), np.asarray([reward], np.float32), *flags))
        batch, i = self._batch, self._size
        batch.reward[i], batch.terminated[i], batch.truncated[i], batch.valid[i] = reward, terminated, truncated, valid
        _put(batch.env_info, i, self._stats)
        self._size += 1

    def _reset_tick(self, observation: PyTree, deterministic: bool) -> None:
        """The envpool-style tick after an episode's end: the policy acts on the final state
        (or, not given one, on the new state), the env ignores it (`valid=False`, reward 0); the
        next tick starts the new episode. Learns if it fills the batch (o_T: the new state)."""
        final = self._final if self._has_final else observation
        self._record_act(final, self._memory, False, deterministic)
        self._record_observe(0.0, False, False, False)
        self._done, self._first = False, True
        if self._size == self._built.recipe.num_steps:
            self._learn(observation)

    def _learn(self, bootstrap_observation: PyTree) -> None:
        """The recipe's jitted `learn` on the full batch, with the rollout carry the host loop
        would pass: o_T, the last tick's flags, the memory after it, `first` and the key."""
        batch, last = self._batch, self._size - 1
        timestep = TimeStep(bootstrap_observation, batch.reward[last], batch.terminated[last], batch.truncated[last],
                            batch.valid[last])
        carry = RolloutCarry((), timestep, self._memory, np.asarray([self._first]), self._key)
        self._learner, metrics = self._built.learn(self._learner, carry, batch)
        self.last_metrics = {name: float(value) for name, value in jax.device_get(metrics).items()}
        self.updates += 1
        self._size = 0

    # ---------------------------------------------------------------- checkpoints

    def _identity_bytes(self) -> np.ndarray:
        """What must match for a checkpoint to fit this agent (recipe, config, specs,
        preprocessing, explorations; not the seed), as JSON bytes."""
        text = json.dumps(self._identity, sort_keys=True, default=repr)
        return np.frombuffer(text.encode(), np.uint8)

    def _tree(self) -> dict:
        return {"identity": self._identity_bytes(),
                "learner": self._learner, "key": self._key, "memory": self._memory, "stats": self._stats,
                "batch": self._batch, "final_observation": self._final, "preprocessing": self._pp_states,
                "explorations": self._exploration_states,
                "counters": np.asarray([self._size, self.episode, self.timestep, self.updates], np.int64),
                "flags": np.asarray([self._acted, self._done, self._first, self._has_final])}

    def save(self, directory: str, keep: Optional[int] = None) -> str:
        """Writes the whole agent to `directory/ckpt-<timestep>.npz` (`fnrl.checkpoint.save`);
        returns the path. TensorForce `save_model(directory, append_timestep=True)`."""
        return checkpoint.save(directory, self._tree(), step=self.timestep, keep=keep)

    def restore(self, directory: str) -> None:
        """Loads a checkpoint file, or the latest in `directory`, saved by an agent of the same
        recipe, config, specs, preprocessing and explorations (else
        `fnrl.checkpoint.CheckpointError` names what differs); the seed may differ."""
        identity = checkpoint.restore(directory).get("identity")
        if identity is None:
            raise checkpoint.CheckpointError(f"Agent.restore: {directory} holds no Agent checkpoint (no identity)")
        saved = json.loads(np.asarray(identity, np.uint8).tobytes().decode())
        mine = json.loads(self._identity_bytes().tobytes().decode())
        if saved != mine:
            differ = [f"config.{k}" for k in sorted(set(saved["config"]) | set(mine["config"]))
                      if saved["config"].get(k) != mine["config"].get(k)]
            differ += [k for k in sorted(saved) if k != "config" and saved[k] != mine.get(k)]
            raise checkpoint.CheckpointError(
                f"Agent.restore: {directory} was saved by an agent that differs in {', '.join(differ)} "
                f"(saved: {', '.join(repr(_dig(saved, k)) for k in differ)}; "
                f"this agent: {', '.join(repr(_dig(mine, k)) for k in differ)})")
        tree = checkpoint.restore(directory, like=self._tree())
        self._learner, self._key, self._memory = tree["learner"], tree["key"], tree["memory"]
        self._stats, self._final, self._pp_states = tree["stats"], tree["final_observation"], tree["preprocessing"]
        self._exploration_states = tree["explorations"]
        self._batch = jax.tree.map(np.array, tree["batch"])  # writable copies
        self._size, self.episode, self.timestep, self.updates = (int(c) for c in tree["counters"])
        self._acted, self._done, self._first, self._has_final = (bool(f) for f in tree["flags"])
        self.last_metrics = {}

    @property
    def batch(self) -> Trajectory:
        """The ticks recorded since the last update, `[ticks, 1, ...]` (copies)."""
        return jax.tree.map(lambda x: x[: self._size].copy(), self._batch)

    @property
    def learner_state(self) -> PyTree:
        """The recipe's `TrainState` (parameters, optimizer state, ...); `trainer.params` of it
        gives what the recipe's `act` takes."""
        return self._learner


def _episode_ended(stats: EpisodeStats) -> EpisodeStats:
    """`stats` after the current episode ends where it stands, as a done tick ends it in
    `episode_stats_update` (its return and length become the last episode's)."""
    return EpisodeStats(np.zeros_like(stats.episode_return), np.zeros_like(stats.episode_length),
                        stats.episode_return, stats.episode_length, stats.num_episodes + 1)


# --------------------------------------------------------------------------------------------
# The runner.


class _TensorForceEnv:
    """A TensorForce `Environment` (`reset() -> state`, `execute(actions) -> (state, terminal,
    reward)`, terminal 2 = truncated as in TensorForce 0.5) behind the runner's interface."""

    def __init__(self, environment: Any):
        self.environment = environment

    def reset(self) -> Any:
        return self.environment.reset()

    def execute(self, action: PyTree) -> tuple[Any, bool, bool, float]:
        state, terminal, reward = self.environment.execute(action)
        terminated, truncated = _episode_end(terminal, False)
        return state, terminated, truncated, float(reward)


class _FnrlEnv:
    """An fnrl `Env` of one env (pure-JAX: `reset`/`step` jitted once; envpool: on the host).

    It resets the envpool way: the first `reset` calls `env.reset` with the key that
    `agents.common.on_policy_trainer`'s `init(PRNGKey(seed))` gives the env; after an episode the
    env ended, `reset` steps once more (the env resets itself and ignores the action); after one
    the runner cut (`max_episode_timesteps`), it calls `env.reset` with a key split off that one."""

    def __init__(self, env: Env, seed: int):
        if env.num_envs != 1:
            raise ValueError(f"Runner: argument `environment` must be an fnrl Env of num_envs=1, got {env.num_envs}")
        self.env = env
        self._reset = jax.jit(env.reset) if env.is_jax else env.reset
        self._step = jax.jit(env.step) if env.is_jax else env.step
        env_key = jax.random.split(jax.random.PRNGKey(seed))[1]
        self._reset_key, self._key = jax.random.split(env_key)
        self._state, self._action, self._env_done = None, None, False

    def reset(self) -> PyTree:
        if self._state is None:
            self._state, timestep = self._reset(self._reset_key)
        elif self._env_done:  # the step after a done one ignores its action and resets (fnrl.types.TimeStep)
            self._state, timestep = self._step(self._state, self._action)
        else:
            self._key, reset_key = jax.random.split(self._key)
            self._state, timestep = self._reset(reset_key)
        return jax.tree.map(lambda x: x[0], jax.device_get(timestep.observation))

    def execute(self, action: PyTree) -> tuple[Any, bool, bool, float]:
        self._action = jax.tree.map(lambda a: np.asarray(a)[None], action)
        self._state, timestep = self._step(self._state, self._action)
        timestep = jax.tree.map(lambda x: x[0], jax.device_get(timestep))  # one transfer, then numpy
        self._env_done = bool(timestep.terminated) or bool(timestep.truncated)
        return timestep.observation, bool(timestep.terminated), bool(timestep.truncated), float(timestep.reward)


def _check_limit(name: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
        raise ValueError(f"Runner.run: argument `{name}` must be None or an int >= 1, got {value!r}")


_HISTORY_KEYS = ("episode_rewards", "episode_timesteps", "episode_times")


class Runner:
    """TensorForce's `Runner` (L1, L2): plays `agent` in `environment`, act → execute → observe.

    `environment` is a TensorForce-style object (`reset()`, `execute(actions) -> (state,
    terminal, reward)`) or an fnrl `Env` with `num_envs=1` (pure-JAX or envpool; reset with
    `seed`, which defaults to the agent's, so the pair replays `on_policy_trainer` exactly).
    An action is repeated `repeat_actions` times (rewards summed, stopping at an episode end).

    Attributes (TensorForce's): `episode` and `timestep` (totals over `run` calls),
    `episode_timestep`, `episode_rewards` and `episode_timesteps` (one entry per finished episode;
    `history`, as for `reset`, starts them from an earlier run's).
    """

    def __init__(self, agent: Agent, environment: Any, repeat_actions: int = 1, seed: Optional[int] = None,
                 history: Optional[dict] = None):
        if not isinstance(agent, Agent):
            raise ValueError(f"Runner: argument `agent` must be an agents.tensorforce.Agent, "
                             f"got {type(agent).__name__}")
        _check_limit("repeat_actions", repeat_actions)
        if isinstance(environment, Env):
            environment = _FnrlEnv(environment, agent.seed if seed is None else seed)
        elif callable(getattr(environment, "execute", None)) and callable(getattr(environment, "reset", None)):
            environment = _TensorForceEnv(environment)
        else:
            raise ValueError("Runner: argument `environment` must be an fnrl Env or have reset() and execute(actions)")
        self.agent, self.environment, self.repeat_actions = agent, environment, repeat_actions
        self.episode = self.timestep = self.episode_timestep = 0
        self.reset(history)
        self._state, self._episode_reward = None, 0.0

    def reset(self, history: Optional[dict] = None) -> None:
        """TensorForce's `Runner.reset(history)`: the per-episode records restart from `history`
        (an earlier run's "episode_rewards" and "episode_timesteps" lists; its "episode_times",
        which this runner does not keep, are ignored), or empty. The env and agent carry on."""
        history = {} if history is None else history
        if not isinstance(history, dict) or set(history) - set(_HISTORY_KEYS):
            raise ValueError(f"Runner: argument `history` must be a dict with keys among {_HISTORY_KEYS}, "
                             f"got {history!r}")
        self.episode_rewards: list[float] = [float(r) for r in history.get("episode_rewards", ())]
        self.episode_timesteps: list[int] = [int(t) for t in history.get("episode_timesteps", ())]

    def run(self, timesteps: Optional[int] = None, episodes: Optional[int] = None,
            max_episode_timesteps: Optional[int] = None, deterministic: bool = False,
            episode_finished: Optional[Callable[["Runner"], bool]] = None,
            max_timesteps: Optional[int] = None) -> None:
        """Plays until this call has run `timesteps` ticks or finished `episodes` episodes, or
        `episode_finished(runner)` (called after each finished episode) returns False.

        An episode is truncated (not terminated: it bootstraps) after `max_episode_timesteps`
        ticks (`max_timesteps` is TensorForce's older name of it). TensorForce checked
        `timesteps` only at episode ends and restarted the env at each `run`; here a run stops
        right at `timesteps` and the next `run` continues the episode.
        """
        if max_timesteps is not None:
            if max_episode_timesteps is not None:
                raise ValueError("Runner.run: give `max_episode_timesteps` or its older name `max_timesteps`, not both")
            max_episode_timesteps = max_timesteps
        for name, value in (("timesteps", timesteps), ("episodes", episodes),
                            ("max_episode_timesteps", max_episode_timesteps)):
            _check_limit(name, value)
        if episode_finished is not None and not callable(episode_finished):
            raise ValueError(f"Runner.run: argument `episode_finished` must be callable, got {episode_finished!r}")
        ticks = finished = 0
        while timesteps is None or ticks < timesteps:
            done = self._step(max_episode_timesteps, deterministic)
            ticks += 1
            if done:
                finished += 1
                if episode_finished is not None and not episode_finished(self):
                    return
                if episodes is not None and finished >= episodes:
                    return

    def _step(self, max_episode_timesteps: Optional[int], deterministic: bool) -> bool:
        """One agent tick (the action repeated `repeat_actions` times); returns whether it ended
        the episode, after recording the episode if so."""
        if self._state is None:
            self._state, self.episode_timestep, self._episode_reward = self.environment.reset(), 0, 0.0
        action = self.agent.act(self._state, deterministic)
        reward = 0.0
        for _ in range(self.repeat_actions):
            state, terminated, truncated, step_reward = self.environment.execute(action)
            reward += step_reward
            if terminated or truncated:
                break
        self.episode_timestep += 1
        self.timestep += 1
        self._episode_reward += reward
        if max_episode_timesteps is not None and self.episode_timestep >= max_episode_timesteps and not terminated:
            truncated = True
        self.agent.observe(terminated, reward, truncated=truncated, next_states=state)
        if not (terminated or truncated):
            self._state = state
            return False
        self._state = None
        self.episode += 1
        self.episode_rewards.append(self._episode_reward)
        self.episode_timesteps.append(self.episode_timestep)
        return True
