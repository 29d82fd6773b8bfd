"""Tests of agents/tensorforce.py: the TensorForce-style `Agent` / `Runner` facade drives the
recipes' pure functions exactly as the host loop does (bit for bit against `trainer.update`),
checkpoints round-trip mid-batch, TensorForce specs and agent specs translate, and the runner's
callbacks, limits, time limits and action repeats behave as TensorForce's (L1, L2, M10–M13)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnrl
import fnrl.envs
from agents import ppo
from agents.tensorforce import Agent, Runner, make_config, spec_env, specs, tensorforce_config
from fnrl.checkpoint import CheckpointError
from fnrl.envs import toy, wrappers
from fnrl.types import Spec

# TensorForce's PPO test config (R11) on MinimalTest-int: the agents built from it here and in
# tests/test_tensorforce_matrix.py share their compilations (`Agent` caches them).
_, PPO = tensorforce_config({"type": "ppo_agent", "batch_size": 8,
                             "network": [dict(type="dense", size=32), dict(type="dense", size=32)]})
INT_STATES, INT_ACTIONS = dict(type="float", shape=(2,)), dict(type="int", num_actions=2)
MULTI = {"bool": (), "int": (2,), "float": (1, 1), "bounded": (1,)}


def _tree_equal(a, b) -> bool:
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(np.array_equal(x, y)), a, b)))


def _minimal_env(max_steps=None):
    """MinimalTest-int as `fnrl.envs.make` builds it, optionally time-limited inside auto_reset."""
    env = toy.minimal_test("int")
    if max_steps is not None:
        env = wrappers.time_limit(env, max_steps)
    return wrappers.vectorize(wrappers.episode_statistics(wrappers.auto_reset(env)), 1)


# ------------------------------------------------------------------ the facade equals the host loop


def test_runner_on_a_jax_env_reproduces_trainer_updates():
    """Agent(seed) + Runner on the same pure-JAX env == `trainer.init(PRNGKey(seed))` and jitted
    `trainer.update`s, bit for bit: every learner field (params, optimizer, keys, the rollout
    carry: o_T, flags, `first`) after 4 batches whose episodes end by termination and by the
    env's time limit (truncations bootstrap from the final observation)."""
    env = _minimal_env(max_steps=3)
    trainer = ppo.make_trainer(make_config("ppo", PPO), env)
    state = jax.jit(trainer.init)(jax.random.PRNGKey(7))
    update = jax.jit(trainer.update)
    for _ in range(4):
        state, metrics = update(state)
    agent = Agent("ppo", INT_STATES, INT_ACTIONS, config=PPO, seed=7)
    runner = Runner(agent, env)
    while agent.updates < 4:  # a batch also holds the reset ticks, which the runner does not count
        runner.run(timesteps=1)
    assert _tree_equal(agent.learner_state._replace(rollout=()), state._replace(rollout=()))
    assert _tree_equal(agent.learner_state.rollout._replace(env_state=()), state.rollout._replace(env_state=()))
    assert agent.last_metrics.keys() == metrics.keys()
    np.testing.assert_array_equal([agent.last_metrics[k] for k in metrics], [float(metrics[k]) for k in metrics])
    assert min(runner.episode_timesteps) < 3 and max(runner.episode_timesteps) == 3


def test_batch_counts_reset_ticks_and_marks_episode_starts():
    """Scripted ticks: terminal after the 2nd, truncated (TensorForce 0.5's terminal=2) after the
    4th; the batch holds the reset ticks (valid=False, reward 0) and `first` on each start."""
    agent = Agent("ppo", INT_STATES, INT_ACTIONS, config=PPO)
    ends = [False, True, False, 2]
    for t, terminal in enumerate(ends):
        agent.act([1.0, float(t)])
        agent.observe(terminal, 0.5)
    agent.act([0.0, 0.0])  # records the reset tick, then acts (pending until observed)
    batch = agent.batch
    np.testing.assert_array_equal(batch.valid[:, 0], [1, 1, 0, 1, 1, 0])
    np.testing.assert_array_equal(batch.first[:, 0], [1, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(batch.terminated[:, 0], [0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(batch.truncated[:, 0], [0, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(batch.reward[:, 0], [0.5, 0.5, 0, 0.5, 0.5, 0])
    # Without `next_states` a reset tick acts on the next episode's first state.
    np.testing.assert_array_equal(batch.observation[:, 0, 1], [0, 1, 2, 2, 3, 0])
    assert (agent.episode, agent.timestep, agent.updates) == (2, 4, 0)
    np.testing.assert_array_equal(batch.env_info.last_return[:, 0], [0, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(batch.env_info.last_length[:, 0], [0, 2, 2, 2, 2, 2])
    agent.observe(False, 1.0)
    assert agent.batch.first[6, 0] and agent.batch.valid[6, 0]


def _play(agent, ticks, reset_after=()):
    """Scripted ticks `(state, terminal, reward)`; `agent.reset()` after the ticks in `reset_after`."""
    for t, (state, terminal, reward) in enumerate(ticks):
        agent.act(state)
        agent.observe(terminal, reward)
        if t in reset_after:
            agent.reset()


TICKS = [([1.0, 0.0], False, 0.5), ([0.0, 1.0], True, 1.0), ([1.0, 1.0], False, 0.25), ([0.5, 0.0], False, 2.0),
         ([0.0, 0.5], False, 1.5), ([1.0, 0.5], True, 0.0), ([0.5, 1.0], False, 1.0), ([1.0, 0.0], False, 0.5)]


def test_reset_between_episodes_changes_nothing():
    """TensorForce loops call `reset()` at every episode start: before the first act and right
    after a terminal observe it is a no-op (same batches, same learning)."""
    plain, resetting = (Agent("ppo", INT_STATES, INT_ACTIONS, config=PPO, seed=5) for _ in range(2))
    resetting.reset()
    _play(plain, TICKS)
    _play(resetting, TICKS, reset_after=(1, 5))
    assert plain.updates == resetting.updates == 1 and plain.episode == resetting.episode == 2
    assert _tree_equal(plain.batch, resetting.batch)
    assert _tree_equal(plain.learner_state, resetting.learner_state)


def test_reset_mid_episode_cuts_it_as_a_truncation():
    """`observe(terminal=False)` then `reset()` == `observe(..., truncated=True)`: the tick is
    recorded truncated, the episode counts as finished (its return in the metrics), the next act
    records the reset tick and starts a new episode; learning is the same bit for bit."""
    cut, truncated = (Agent("ppo", INT_STATES, INT_ACTIONS, config=PPO, seed=5) for _ in range(2))
    _play(cut, TICKS, reset_after=(3,))
    _play(truncated, [(s, 2 if t == 3 else terminal, r) for t, (s, terminal, r) in enumerate(TICKS)])
    assert cut.episode == truncated.episode == 3 and cut.updates == truncated.updates == 1
    assert _tree_equal(cut.batch, truncated.batch)
    assert _tree_equal(cut.learner_state, truncated.learner_state)
    assert cut.last_metrics == truncated.last_metrics
    # The learned batch of 8: ticks 0, 1 (terminal), a reset tick, 2, 3 (cut), a reset tick, 4, 5 (terminal).
    assert cut.last_metrics["episode_count"] == 3.0
    with pytest.raises(ValueError, match="between `act` and `observe`"):
        cut.act([0.0, 0.0])
        cut.reset()


def test_observe_with_next_states_learns_at_once_and_feeds_the_reset_tick():
    agent = Agent("ppo", INT_STATES, INT_ACTIONS, config=PPO)
    for t in range(7):
        agent.act([1.0, 0.0])
        agent.observe(False, 1.0)
    agent.act([1.0, 0.0])
    agent.observe(True, 1.0, next_states=[0.25, 0.75])
    assert agent.updates == 1 and agent.batch.valid.shape == (0, 1)
    agent.act([0.5, 0.5])
    agent.observe(False, 1.0)
    np.testing.assert_array_equal(agent.batch.observation[:, 0], [[0.25, 0.75], [0.5, 0.5]])
    np.testing.assert_array_equal(agent.batch.valid[:, 0], [False, True])


def test_deterministic_act_is_the_recipes_greedy_action():
    agent = Agent("ppo", INT_STATES, INT_ACTIONS, config=PPO, seed=3)
    trainer = ppo.make_trainer(agent.config, spec_env(agent.spec))
    states = np.random.default_rng(0).uniform(size=(20, 2)).astype(np.float32)
    act = jax.jit(trainer.act, static_argnums=3)
    acted, greedy = [], []
    for i, s in enumerate(states):  # 20 ticks: the agent learns twice on the way
        params = trainer.params(agent.learner_state)
        greedy.append(act(params, jax.random.PRNGKey(i), s[None], True)[0])  # the mode: any key
        acted.append(agent.act(s, deterministic=True))
        agent.observe(False, float(i % 2))
    assert agent.updates == 2
    np.testing.assert_array_equal(acted, greedy)
    assert acted[0].shape == () and acted[0].dtype == np.int32


# ------------------------------------------------------------------ checkpoints


def _drive(agent, ticks, start, actions, finish_pending=False):
    """A scripted env: state (t mod 3, t / 50), reward t mod 2, terminal every 5th tick."""
    if finish_pending:
        agent.observe((start - 1) % 5 == 4, float((start - 1) % 2))
    for t in range(start, start + ticks):
        actions.append(agent.act([t % 3, t / 50]))
        agent.observe(t % 5 == 4, float(t % 2))


def test_save_restore_mid_batch_continues_identically(tmp_path):
    """Saved mid-episode, mid-batch and between an `act` and its `observe`; a fresh agent of
    another seed restores it and plays on exactly as the original (actions, learner, counters)."""
    agent = Agent("ppo", INT_STATES, INT_ACTIONS, config=PPO, seed=1)
    _drive(agent, 13, 0, [])
    agent.act([13 % 3, 13 / 50])
    path = agent.save(str(tmp_path))
    assert path.endswith("ckpt-13.npz")
    original, restored = [], []
    _drive(agent, 30, 14, original, finish_pending=True)
    other = Agent("ppo", INT_STATES, INT_ACTIONS, config=PPO, seed=2)
    other.restore(str(tmp_path))
    _drive(other, 30, 14, restored, finish_pending=True)
    np.testing.assert_array_equal(original, restored)
    assert _tree_equal(agent.learner_state, other.learner_state)
    counters = (agent.episode, agent.timestep, agent.updates)
    assert counters == (other.episode, other.timestep, other.updates) == (8, 44, 6)
    assert _tree_equal(agent.batch, other.batch)


def test_restore_into_another_agent_names_the_mismatch(tmp_path):
    Agent("ppo", INT_STATES, INT_ACTIONS, config=PPO).save(str(tmp_path))
    other = Agent("random", INT_STATES, INT_ACTIONS)
    with pytest.raises(CheckpointError, match=r"differs in .*agent"):
        other.restore(str(tmp_path))
    # Same shapes, other numbers: still refused, naming the fields.
    tuned = Agent("ppo", INT_STATES, INT_ACTIONS, config=PPO, gamma=0.5, ent_coef=0.3)
    with pytest.raises(CheckpointError, match=r"config.ent_coef, config.gamma .*0.5"):
        tuned.restore(str(tmp_path))
    scaled = Agent("ppo", INT_STATES, INT_ACTIONS, config=PPO, states_preprocessing=[{"type": "clip", "min_value": -1.0,
                                                                                     "max_value": 1.0}])
    with pytest.raises(CheckpointError, match=r"differs in states_preprocessing"):
        scaled.restore(str(tmp_path))
    Agent("ppo", INT_STATES, INT_ACTIONS, config=PPO, seed=7).restore(str(tmp_path))  # another seed is fine


def test_open_ended_agents_do_not_anneal_the_learning_rate():
    assert not Agent("ppo", INT_STATES, INT_ACTIONS).config.anneal_lr
    assert Agent("ppo", INT_STATES, INT_ACTIONS, anneal_lr=True).config.anneal_lr


def test_quickstart_spec_keys_at_their_defaults_are_accepted():
    _, config = tensorforce_config({"type": "ppo_agent", "distributions_spec": None, "distributed_spec": None})
    assert "distributions_spec" not in config
    with pytest.raises(ValueError, match=r"\['distributions_spec'\] must be None"):
        tensorforce_config({"type": "ppo_agent", "distributions_spec": {"action": {"type": "beta"}}})


# ------------------------------------------------------------------ specs and configs


def test_states_and_reward_preprocessing_is_what_the_recipe_sees():
    """A stateless states preprocessor and a reward clip: the same agent as one fed the
    processed states and rewards by hand, bit for bit (batches, learning, actions)."""
    processed = Agent("ppo", INT_STATES, INT_ACTIONS, config=PPO, seed=5,
                      states_preprocessing=[{"type": "scale", "factor": 2.0}],
                      reward_preprocessing=[{"type": "clip", "min_value": 0.0, "max_value": 1.0}])
    by_hand = Agent("ppo", INT_STATES, INT_ACTIONS, config=PPO, seed=5)
    _play(processed, TICKS)
    _play(by_hand, [([2 * x for x in state], terminal, min(reward, 1.0)) for state, terminal, reward in TICKS])
    assert processed.updates == by_hand.updates == 1
    assert _tree_equal(processed.learner_state, by_hand.learner_state)
    _play(processed, TICKS[:3])
    _play(by_hand, [([2 * x for x in state], terminal, min(reward, 1.0)) for state, terminal, reward in TICKS[:3]])
    assert _tree_equal(processed.batch, by_hand.batch)
    assert np.array_equal(processed.batch.observation[0, 0], 2 * np.asarray(TICKS[6][0]))  # left after the update


def test_frame_stack_preprocessing_restarts_with_each_episode(tmp_path):
    """TensorForce's `sequence`: the history starts afresh at an episode start (the first state
    fills it), `next_states` is processed without advancing it, and a checkpoint keeps it."""
    agent = Agent("ppo", INT_STATES, INT_ACTIONS, config=PPO, seed=1,
                  states_preprocessing=[{"type": "sequence", "length": 2}])
    assert agent.spec.observation.shape == (2,)  # the user's spec; the recipe sees (4,)
    agent.act([1.0, 2.0])
    agent.observe(False, 1.0, next_states=[3.0, 4.0])
    agent.act([3.0, 4.0])  # [1, 2, 3, 4]: processing next_states left the history as it was
    agent.save(tmp_path)
    agent.observe(True, 1.0, next_states=[9.0, 9.0])
    agent.act([5.0, 6.0])  # the reset tick (on the final state), then the new episode's first tick
    agent.observe(False, 1.0)
    observations = agent.batch.observation[:, 0]
    np.testing.assert_array_equal(observations, [[1, 2, 1, 2], [1, 2, 3, 4], [3, 4, 9, 9], [5, 6, 5, 6]])
    restored = Agent("ppo", INT_STATES, INT_ACTIONS, config=PPO, seed=1,
                     states_preprocessing=[{"type": "sequence", "length": 2}])
    restored.restore(tmp_path)
    restored.observe(False, 1.0)
    restored.act([7.0, 8.0])
    restored.observe(False, 1.0)
    np.testing.assert_array_equal(restored.batch.observation[-1, 0], [3, 4, 7, 8])


def test_preprocessing_specs_go_to_the_agent_not_the_recipe():
    spec = {"type": "ppo_agent", "batch_size": 8, "states_preprocessing_spec": [{"type": "scale", "factor": 2.0}],
            "reward_preprocessing_spec": [{"type": "clip", "min_value": -1.0, "max_value": 1.0}]}
    agent = Agent.from_spec(spec, INT_STATES, INT_ACTIONS)
    agent.act([1.0, 0.5])
    agent.observe(False, 5.0)
    np.testing.assert_array_equal(agent.batch.observation[0, 0], [2.0, 1.0])
    assert agent.batch.reward[0, 0] == 1.0
    with pytest.raises(ValueError, match=r"applied by agents.tensorforce.Agent"):
        tensorforce_config(spec)
    with pytest.raises(ValueError, match="`states_preprocessing`.*unknown"):
        Agent("ppo", INT_STATES, INT_ACTIONS, config=PPO, states_preprocessing=[{"type": "centre"}])


def _acted(agent, states, ticks, deterministic=False):
    """The actions of `ticks` act/observe rounds on one state (no episode ends)."""
    actions = []
    for _ in range(ticks):
        actions.append(agent.act(states, deterministic=deterministic))
        agent.observe(False, 0.0)
    return np.asarray(actions)


def test_explorations_replace_and_perturb_sampled_actions():
    """TensorForce's explorations_spec on a policy that always says 1 (the constant agent): an
    int action is replaced by a uniform one w.p. epsilon, a bounded float one gets the noise
    within its bounds; deterministic acting is left alone."""
    four = dict(type="int", num_actions=4)
    epsilon = Agent("constant", INT_STATES, four, action_value=1.0, explorations={"type": "constant", "constant": 0.5})
    actions = _acted(epsilon, [0.0, 0.0], 2000)
    counts = np.bincount(actions, minlength=4) / actions.size
    np.testing.assert_allclose(counts, [0.125, 0.625, 0.125, 0.125], atol=0.04)  # 1 − ε + ε/4 for the 1
    assert np.all(_acted(epsilon, [0.0, 0.0], 50, deterministic=True) == 1)
    bounded = dict(type="float", shape=(1,), min_value=0.0, max_value=1.0)
    noisy = Agent("constant", INT_STATES, bounded, action_value=0.9, explorations={"type": "gaussian", "sigma": 0.1})
    values = _acted(noisy, [0.0, 0.0], 2000)[:, 0]
    assert values.max() <= 1.0 and np.mean(values == 1.0) > 0.1  # clipped at the bound: P(noise > 0.1) ≈ 0.16
    np.testing.assert_allclose(np.median(values), 0.9, atol=0.02)
    assert np.array_equal(noisy.batch.action[:, 0], values[-noisy.batch.action.shape[0]:, None])


def test_explored_actions_are_recorded_with_their_own_log_prob(tmp_path):
    """The learner sees the explored action and the policy's log-prob of it; the explorations'
    state (Ornstein-Uhlenbeck) is checkpointed."""
    bounded = dict(type="float", shape=(1,), min_value=-1.0, max_value=1.0)
    config = {**PPO, "num_steps": 64}
    agent = Agent("ppo", INT_STATES, bounded, config=config, seed=2,
                  explorations={"type": "ornstein_uhlenbeck", "sigma": 0.5})
    _acted(agent, [0.5, 0.5], 20)
    batch, recipe = agent.batch, ppo.make_agent(agent.config, spec_env(agent.spec))
    log_prob = jax.vmap(lambda o, a: ppo.policy_step(recipe, agent.learner_state, jax.random.PRNGKey(0), o, (),
                                                     a).extras["log_prob"])
    np.testing.assert_allclose(batch.extras["log_prob"], log_prob(batch.observation, batch.action), rtol=1e-5,
                               atol=1e-5)
    agent.save(tmp_path)
    ahead = _acted(agent, [0.5, 0.5], 5)
    again = Agent("ppo", INT_STATES, bounded, config=config, seed=2,
                  explorations={"type": "ornstein_uhlenbeck", "sigma": 0.5})
    again.restore(tmp_path)
    np.testing.assert_array_equal(_acted(again, [0.5, 0.5], 5), ahead)


def test_exploration_specs_go_to_the_agent():
    spec = {"type": "constant_agent", "action_values": {"action": 1.0},
            "explorations_spec": {"type": "constant", "constant": 1.0}}
    agent = Agent.from_spec(spec, INT_STATES, dict(type="int", num_actions=3))
    assert set(_acted(agent, [0.0, 0.0], 200)) == {0, 1, 2}
    with pytest.raises(ValueError, match="applied by agents.tensorforce.Agent"):
        tensorforce_config(spec)
    with pytest.raises(ValueError, match=r"names actions \['steer'\]"):
        Agent("constant", INT_STATES, INT_ACTIONS, explorations={"steer": {"type": "constant", "constant": 0.1}})
    with pytest.raises(ValueError, match="`explorations`"):
        Agent("constant", INT_STATES, INT_ACTIONS, explorations={"type": "epsilon_greedy"})


def test_tensorforce_specs_convert_to_fnrl_specs():
    assert specs("s", dict(type="float", shape=2)) == Spec((2,), jnp.float32)
    assert specs("s", dict(shape=(3, 4))) == Spec((3, 4), jnp.float32)
    assert specs("a", dict(type="int", num_actions=5)) == Spec((), jnp.int32, num_values=5)
    assert specs("a", dict(type="int", num_actions=3, min_value=5)) == Spec((), jnp.int32, num_values=3, minimum=5,
                                                                           maximum=7)
    assert specs("a", dict(type="int", min_value=-1, max_value=1)) == Spec((), jnp.int32, num_values=3, minimum=-1,
                                                                          maximum=1)
    assert specs("a", dict(type="bool", shape=(2,))) == Spec((2,), jnp.bool_)
    assert specs("a", dict(type="float", min_value=-0.5, max_value=1.5)) == Spec((), jnp.float32, minimum=-0.5,
                                                                                 maximum=1.5)
    nested = specs("a", {"move": dict(type="int", num_actions=3), "aim": {"x": dict(type="float")},
                         "fire": Spec((), jnp.bool_)})
    assert nested == {"move": Spec((), jnp.int32, num_values=3), "aim": {"x": Spec((), jnp.float32)},
                      "fire": Spec((), jnp.bool_)}


@pytest.mark.parametrize("spec, match", [
    (dict(type="double"), "type in"),
    (dict(type="float", shape=(2,), size=3), "keys"),
    (dict(type="float", min_value=0.0), "both"),
    (dict(type="float", min_value=1.0, max_value=0.0), "min_value"),
    (dict(type="int", num_actions=0), "num_actions"),
    (dict(type="int", num_actions=3, min_value=5, max_value=8), "max_value, if given, must be the last"),
    (dict(type="int", min_value=0), "min_value"),
    (dict(type="int", num_actions=2.0), "must be an int"),
    (dict(type="bool", num_actions=2), "takes no"),
    (dict(type="float", shape=(0,)), "shape"),
    ({}, "expected"),
])
def test_bad_tensorforce_specs_are_rejected(spec, match):
    with pytest.raises(ValueError, match=match):
        Agent("random", spec, INT_ACTIONS)


def test_tensorforce_config_maps_keys_and_tensorforce_defaults():
    agent, config = tensorforce_config({
        "type": "ppo_agent", "batch_size": 8, "discount": 0.9, "likelihood_ratio_clipping": 0.2,
        "network_spec": [dict(type="dense", size=32), dict(type="dense", size=32, activation="tanh")],
        "scope": "ppo", "device": None})
    assert agent == "ppo"
    assert config == {"num_envs": 1, "num_steps": 8, "gamma": 0.9, "ent_coef": 0.01, "normalize_advantages": False,
                      "hidden_sizes": (32, 32), "activation": "tanh", "update_epochs": 10, "num_minibatches": 1,
                      "anneal_lr": False, "clip_eps": 0.2, "clip_range": "tensorforce", "clip_value_loss": False,
                      "gae_lambda": 1.0,
                      "max_grad_norm": 0.0, "adam_eps": 1e-8, "optimizer": "adam", "learning_rate": 1e-4}
    assert tensorforce_config({"type": "ppo_agent"})[1]["clip_eps"] == np.inf  # TensorForce: no clipping
    rmsprop = {"type": "rmsprop", "learning_rate": 1e-3, "decay": 0.95}
    assert tensorforce_config({"type": "ppo_agent", "step_optimizer": rmsprop})[1]["optimizer"] == rmsprop
    _, trpo = tensorforce_config({"type": "trpo_agent", "learning_rate": 0.005, "baseline_mode": "states",
                                  "baseline_optimizer": {"type": "multi_step", "num_steps": 5,
                                                         "optimizer": {"type": "adam", "learning_rate": 0.01}}})
    assert (trpo["max_kl"], trpo["num_steps"], trpo["cg_max_iterations"], trpo["ls_accept_ratio"]) == \
        (0.005, 1000, 20, 0.9)
    assert (trpo["use_baseline"], trpo["value_learning_rate"], trpo["value_epochs"]) == (True, 0.01, 5)
    assert trpo["clip_range"] == "tensorforce"  # TensorForce's ratio range [1/(1+ε), 1+ε]
    _, vpg = tensorforce_config({"type": "vpg_agent", "batch_size": 64, "gae_lambda": 0.95,
                                 "optimizer": {"type": "adam", "learning_rate": 0.01},
                                 "baseline_mode": "states", "baseline": {"type": "mlp", "sizes": [16]}})
    assert (vpg["optimizer"], vpg["learning_rate"], vpg["baseline_sizes"], vpg["bootstrap"]) == \
        ("adam", 0.01, (16,), False)
    baselines = {"pair": {"type": "mlp", "sizes": [8]}, "image": {"type": "cnn", "conv_sizes": [4], "dense_sizes": []}}
    _, aggregated = tensorforce_config({"type": "vpg_agent", "baseline_mode": "states",
                                        "baseline": {"type": "aggregated", "baselines": baselines}})
    assert (aggregated["baseline_network"], aggregated["state_baselines"]) == ("aggregated", baselines)
    assert make_config("vpg", aggregated).state_baselines["image"] == {"type": "cnn", "conv_sizes": (4,),
                                                                       "dense_sizes": ()}
    for agent_type in ("ppo_agent", "trpo_agent", "vpg_agent"):
        name, noisy = tensorforce_config({"type": agent_type, "variable_noise": 0.1})
        assert make_config(name, noisy).variable_noise == 0.1
    assert tensorforce_config({"type": "constant_agent", "action_values": {"action": 1}}) == \
        ("constant", {"num_envs": 1, "action_value": 1.0})
    for spec in ({"type": "ppo_agent", "batch_size": 8}, {"type": "trpo_agent", "batch_size": 16},
                 {"type": "vpg_agent", "batch_size": 8}, {"type": "random_agent"}):
        name, values = tensorforce_config(spec)
        make_config(name, values)  # every translation is a valid recipe config


@pytest.mark.parametrize("spec, match", [
    ({"type": "dqn_agent"}, "must be a dict whose `type`"),
    ({"type": "ppo_agent", "memory": {}}, r"does not support key\(s\) \['memory'\]; supported: .*batch_size"),
    ({"type": "ppo_agent", "baseline_mode": "network"}, "baseline_mode"),
    ({"type": "vpg_agent", "batch_size": 0}, "batch_size"),
    ({"type": "vpg_agent", "baseline": {"type": "aggregated"}}, "mlp, cnn or aggregated"),
    ({"type": "ppo_agent", "variable_noise": -0.1}, "variable_noise"),
    ({"type": "vpg_agent", "variable_noise": "0.1"}, "variable_noise"),
    ({"type": "vpg_agent", "baseline": {"type": "lstm", "sizes": [8]}}, "mlp, cnn or aggregated"),
    ({"type": "trpo_agent", "baseline_optimizer": {"type": "rmsprop"}}, "adam"),
    ({"type": "constant_agent", "action_values": {"a": 1.0, "b": 0.0}}, "one value"),
])
def test_bad_tensorforce_agent_specs_are_rejected(spec, match):
    with pytest.raises(ValueError, match=match):
        tensorforce_config(spec)


def test_network_beyond_dense_layers_goes_to_the_network_field():
    lstm = [dict(type="dense", size=32), dict(type="internal_lstm", size=32)]
    for agent_type in ("ppo_agent", "trpo_agent", "vpg_agent"):
        name, config = tensorforce_config({"type": agent_type, "network": lstm})
        assert config["network"] == lstm and "hidden_sizes" not in config
    assert make_config("vpg", config).network[1] == {"type": "internal_lstm", "size": 32}
    dense = [dict(type="dense", size=16, activation="relu")] * 2
    assert tensorforce_config({"type": "vpg_agent", "network": dense})[1]["hidden_sizes"] == (16, 16)


# ------------------------------------------------------------------ the runner


class CountingEnv:
    """A TensorForce-style env: state [t, 0], reward = the action, terminal after `length` steps
    (or `terminal_value`, e.g. 2); counts `execute` calls."""

    states = dict(type="float", shape=(2,))

    def __init__(self, length: int, terminal_value=True):
        self.length, self.terminal_value, self.t, self.executes = length, terminal_value, 0, 0

    def reset(self):
        self.t = 0
        return np.array([0.0, 0.0])

    def execute(self, actions):
        self.t += 1
        self.executes += 1
        return np.array([float(self.t), 0.0]), self.terminal_value if self.t >= self.length else False, float(actions)


def _constant():
    """TensorForce's constant-agent test config (R4): every action 1.0."""
    return Agent.from_spec({"type": "constant_agent", "action_values": {"action": 1.0}}, CountingEnv.states,
                           dict(type="float"))


def test_runner_episode_callback_stops_and_records():
    env, seen = CountingEnv(3), []

    def episode_finished(runner):
        seen.append((runner.episode, runner.timestep, runner.episode_rewards[-1], runner.episode_timesteps[-1]))
        return runner.episode < 4

    runner = Runner(_constant(), env)
    runner.run(episodes=10, episode_finished=episode_finished)
    assert seen == [(1, 3, 3.0, 3), (2, 6, 3.0, 3), (3, 9, 3.0, 3), (4, 12, 3.0, 3)]
    runner.run(episodes=2)  # counts are per call; totals keep growing
    assert runner.episode == 6 and runner.episode_timesteps == [3] * 6 and runner.agent.episode == 6


def test_runner_timesteps_stop_mid_episode_and_the_next_run_continues_it():
    env = CountingEnv(5)
    runner = Runner(_constant(), env)
    runner.run(timesteps=7)
    assert (runner.timestep, runner.episode, runner.episode_timestep) == (7, 1, 2)
    runner.run(timesteps=3)
    assert (runner.timestep, runner.episode, runner.episode_timesteps) == (10, 2, [5, 5])


def test_runner_time_limit_truncates_and_repeat_actions_sum_rewards():
    env = CountingEnv(100)
    agent = _constant()
    runner = Runner(agent, env, repeat_actions=3)
    runner.run(episodes=2, max_episode_timesteps=4)
    assert runner.episode_timesteps == [4, 4] and runner.episode_rewards == [12.0, 12.0]
    assert env.executes == 24
    batch = agent.batch
    np.testing.assert_array_equal(batch.truncated[:, 0], [0, 0, 0, 1, 0, 0, 0, 0, 1])
    assert not batch.terminated.any()
    # An env's own early end stops the repeats; terminal=2 (TensorForce 0.5) is a truncation.
    env, agent = CountingEnv(5, terminal_value=2), _constant()
    Runner(agent, env, repeat_actions=3).run(episodes=1)
    assert env.executes == 5
    np.testing.assert_array_equal(agent.batch.truncated[:, 0], [0, 1])
    np.testing.assert_array_equal(agent.batch.reward[:, 0], [3.0, 2.0])


def test_runner_history_and_reset_restart_the_episode_records():
    """TensorForce's `Runner(history=...)` / `reset(history)`: the records continue from an
    earlier run's; `reset()` empties them while env and agent carry on; the older `max_timesteps`
    name cuts episodes as `max_episode_timesteps` does."""
    runner = Runner(_constant(), CountingEnv(100), history={"episode_rewards": [5, 6], "episode_timesteps": [2, 3],
                                                           "episode_times": [0.1, 0.2]})
    runner.run(episodes=1, max_timesteps=4)
    assert runner.episode_rewards == [5.0, 6.0, 4.0] and runner.episode_timesteps == [2, 3, 4]
    runner.reset()
    runner.run(episodes=1, max_timesteps=2)
    assert runner.episode_rewards == [2.0] and runner.episode_timesteps == [2] and runner.agent.episode == 2
    with pytest.raises(ValueError, match="`history` must be a dict with keys among"):
        runner.reset({"rewards": [1.0]})
    with pytest.raises(ValueError, match="not both"):
        runner.run(episodes=1, max_timesteps=2, max_episode_timesteps=2)


def test_runner_plays_a_multi_part_jax_env_with_the_random_agent():
    env = fnrl.envs.make("MinimalTest-v0", num_envs=1, specification=MULTI)
    spec = env.spec()
    agent = Agent("random", spec.observation, spec.action)
    pair = [1.0, 0.0]
    action = agent.act({"bool": pair, "int": pair, "float": pair, "bounded": pair})
    assert action["bool"].dtype == np.bool_ and action["int"].shape == (2,) and action["float"].shape == (1, 1)
    assert np.all((action["bounded"] >= -0.5) & (action["bounded"] <= 1.5))
    agent.observe(False, 0.0)
    runner = Runner(agent, env)
    runner.run(episodes=60)
    returns, lengths = np.asarray(runner.episode_rewards), np.asarray(runner.episode_timesteps)
    assert runner.episode == 60 and np.all((returns >= 0) & (returns <= lengths))
    assert agent.updates >= 1 and agent.last_metrics["episode_count"] >= 1


# ------------------------------------------------------------------ errors


def test_agent_and_runner_argument_errors():
    with pytest.raises(ValueError, match="argument `agent` must be one of"):
        Agent("dqn", INT_STATES, INT_ACTIONS)
    with pytest.raises(ValueError, match="'es' recipe cannot act/observe"):
        Agent("es", INT_STATES, INT_ACTIONS)
    with pytest.raises(ValueError, match="`num_envs` must be 1"):
        Agent("ppo", INT_STATES, INT_ACTIONS, config=ppo.PPOConfig())
    with pytest.raises(ValueError, match=r"unknown config field\(s\) \['batch_size'\]"):
        Agent("ppo", INT_STATES, INT_ACTIONS, batch_size=8)
    agent = _constant()
    with pytest.raises(ValueError, match="nothing to observe"):
        agent.observe(False, 1.0)
    with pytest.raises(ValueError, match=r"must have shape \(2,\)"):
        agent.act([1.0, 2.0, 3.0])
    agent.act([0.0, 0.0])
    with pytest.raises(ValueError, match="twice without `observe`"):
        agent.act([0.0, 0.0])
    with pytest.raises(ValueError, match="terminal"):
        agent.observe(3, 1.0)
    with pytest.raises(ValueError, match="only carries specs"):
        spec_env(agent.spec).reset(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="num_envs=1"):
        Runner(agent, fnrl.envs.make("MinimalTest-v0", num_envs=2, specification="float"))
    with pytest.raises(ValueError, match="reset"):
        Runner(agent, object())
    with pytest.raises(ValueError, match="max_episode_timesteps"):
        Runner(agent, CountingEnv(3)).run(max_episode_timesteps=0)


def test_runner_plays_an_envpool_env_and_cuts_episodes_with_a_reset():
    """A host env (envpool CartPole-v1): the runner's time limit cuts an episode the env did not
    end, so the next episode starts from `env.reset` (the env's own ends reset envpool-style)."""
    env = fnrl.envs.make("CartPole-v1", backend="envpool", num_envs=1)
    agent = Agent("random", env.spec().observation, env.spec().action)
    runner = Runner(agent, env)
    runner.run(episodes=6, max_episode_timesteps=15)
    lengths = np.asarray(runner.episode_timesteps)
    assert np.all(lengths <= 15) and np.any(lengths == 15) and np.any(lengths < 15), lengths
    np.testing.assert_array_equal(runner.episode_rewards, lengths)  # CartPole pays 1 per step
    np.testing.assert_array_equal(agent.batch.truncated.sum() + agent.batch.terminated.sum(), 6)
