"""VPG recipe (agents/vpg.py): reward estimation against the formula, every baseline mode,
TensorForce's MinimalTest pass rule (R13) and a CartPole learning threshold."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnrl.envs
from agents import policy, vpg
from fnrl.envs import toy, wrappers
from fnrl.rollout import Trajectory
from fnrl.types import Env, EnvSpec, Spec
from tests.helpers import episode_flags, floats, jit_variants, variant

# TensorForce's agent tests (R3): a [dense 32, dense 32] network; R13: batch_size = 8 timesteps.
TF_TEST = dict(num_envs=1, num_steps=8, hidden_sizes=(32, 32), baseline_mode=None, normalize_advantages=False,
               bootstrap=False)


def recent_return(metrics: dict, fraction: float = 0.2) -> np.ndarray:
    """Per seed: mean return of the episodes finished in the last `fraction` of the updates."""
    sums, counts = np.asarray(metrics["episode_return_sum"]), np.asarray(metrics["episode_count"])
    tail = max(1, int(sums.shape[-1] * fraction))
    return sums[..., -tail:].sum(-1) / np.maximum(counts[..., -tail:].sum(-1), 1)


# --------------------------------------------------------------------------------------------
# Reward estimation against the formula.


def _env_consistent_flags(terminated, truncated, first_valid):
    """Envpool convention: the tick after a done tick is the invalid reset tick, which is not
    done itself."""
    valid = np.ones_like(terminated)
    for i in range(len(valid)):
        valid[i] = first_valid if i == 0 else ~(terminated[i - 1] | truncated[i - 1])
        terminated[i] &= valid[i]
        truncated[i] &= valid[i]
    return terminated, truncated, valid


def _numpy_estimate(r, term, trunc, valid, values, bootstrap, gamma, lam):
    """R_i = r_i + γ(1 − term_i)·C_i with C_i = v(next obs) at a truncation or the last tick,
    else R_{i+1}; Â = R − V, or GAE: A_i = δ_i + γλ(1 − term_i)·A_{i+1} (cut likewise)."""
    num_steps, num_envs = r.shape
    v_ext = np.concatenate([values, bootstrap[None]], axis=0)
    returns, adv = np.zeros_like(r), np.zeros_like(r)
    for b in range(num_envs):
        for i in reversed(range(num_steps)):
            if not valid[i, b]:
                continue
            cut = trunc[i, b] or i == num_steps - 1
            keep = gamma * (1.0 - term[i, b])
            returns[i, b] = r[i, b] + keep * (v_ext[i + 1, b] if cut else returns[i + 1, b])
            if lam is None:
                adv[i, b] = returns[i, b] - values[i, b]
            else:
                delta = r[i, b] + keep * v_ext[i + 1, b] - values[i, b]
                adv[i, b] = delta + keep * lam * (0.0 if cut else adv[i + 1, b])
    return returns, adv


ESTIMATE_CONFIGS = [vpg.VPGConfig(gamma=0.9), vpg.VPGConfig(gamma=0.9, gae_lambda=0.8),
                    vpg.VPGConfig(gamma=0.9, bootstrap=False)]


@jit_variants
@pytest.mark.parametrize("config", ESTIMATE_CONFIGS, ids=["returns", "gae", "no_bootstrap"])
@given(r=floats((6, 2)), values=floats((6, 2)), bootstrap=floats((2,)), flags=episode_flags((6, 2), p_invalid=0.0),
       first_valid=st.booleans())
def test_estimate_matches_numpy(use_jit, config, r, values, bootstrap, flags, first_valid):
    terminated, truncated, valid = _env_consistent_flags(flags[0].copy(), flags[1].copy(), first_valid)
    traj = Trajectory(observation=(), action=(), reward=r, terminated=terminated, truncated=truncated, valid=valid,
                      first=~valid, extras={"value": values}, memory=())
    returns, adv = variant(vpg.estimate, use_jit, static_argnames="config")(config, traj, bootstrap)
    boot = bootstrap if config.bootstrap else np.zeros_like(bootstrap)
    want_returns, want_adv = _numpy_estimate(r.astype(np.float64), terminated, truncated, valid, values, boot,
                                             config.gamma, config.gae_lambda)
    np.testing.assert_allclose(returns, want_returns, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(adv, want_adv, rtol=1e-4, atol=1e-3)


# --------------------------------------------------------------------------------------------
# Learning.


def _train(config, env: Env, seeds: int):
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    return jax.jit(jax.vmap(vpg.make_train(config, env)))(keys)


def test_learns_cartpole():
    # Measured: ~390 / ~245 for the two seeds over steps 48k–60k (random play: ~22).
    config = vpg.VPGConfig(total_steps=60_000)
    _, metrics = _train(config, fnrl.envs.make("CartPole-v1", num_envs=config.num_envs), seeds=2)
    recent = recent_return(metrics)
    assert np.all(recent >= 100.0), recent
    for name in ("loss", "policy_loss", "value_loss", "entropy"):
        assert np.all(np.isfinite(metrics[name])), name


BASELINE_CASES = {
    # TensorForce's TestVPGBaselines: network baseline, gae, baseline without its own optimizer.
    "network_gae": dict(baseline_mode="network", gae_lambda=0.95),
    "states_no_optimizer": dict(baseline_mode="states", baseline_optimizer=None),
    "network_no_optimizer": dict(baseline_mode="network", baseline_optimizer=None, baseline_coef=0.5),
}


@pytest.mark.parametrize("case", list(BASELINE_CASES))
def test_baseline_modes_learn(case):
    config = vpg.VPGConfig(num_envs=4, num_steps=16, total_steps=6400, hidden_sizes=(32, 32), learning_rate=1e-2,
                           **BASELINE_CASES[case])
    _, metrics = _train(config, fnrl.envs.make("MinimalTest-v0", num_envs=4), seeds=1)
    assert np.all(recent_return(metrics) >= 3.2)  # random play: 2.0, the best: ~4
    assert np.all(np.isfinite(metrics["value_loss"])) and np.all(np.asarray(metrics["value_loss"]) > 0)


def _early_and_late(value_loss: np.ndarray) -> tuple[float, float]:
    """Mean of the first tenth and of the last quarter of the updates."""
    return float(value_loss[: len(value_loss) // 10].mean()), float(value_loss[-(len(value_loss) // 4):].mean())


def test_states_baseline_value_loss_decreases():
    # TensorForce's test_states_baseline: mlp [32, 32], multi_step(adam, num_steps=5). The policy
    # is frozen (learning rate 0) so the returns the baseline regresses keep their distribution.
    config = vpg.VPGConfig(num_envs=4, num_steps=32, total_steps=12_800, learning_rate=0.0, gamma=0.9,
                           baseline_optimizer_steps=5, baseline_learning_rate=3e-3)
    _, metrics = _train(config, fnrl.envs.make("CartPole-v1", num_envs=4), seeds=1)
    early, late = _early_and_late(np.asarray(metrics["value_loss"])[0])
    assert late < 0.25 * early, (early, late)  # measured: ~16 -> ~1


def _minimal_test_seen_as(num_envs: int, observe, observation_spec) -> Env:
    """MinimalTest-int whose (x, y) observation the agent sees as `observe(pair)` (`observation_spec`)."""
    raw = toy.minimal_test("int")

    def reset(key):
        state, ts = raw.reset(key)
        return state, ts._replace(observation=observe(ts.observation))

    def step(state, action):
        state, ts = raw.step(state, action)
        return state, ts._replace(observation=observe(ts.observation))

    env_spec = EnvSpec(observation_spec, raw.spec().action)
    env = Env(reset=reset, step=step, spec=lambda: env_spec)
    return wrappers.vectorize(wrappers.episode_statistics(wrappers.auto_reset(env)), num_envs)


def _image_minimal_test(num_envs: int) -> Env:
    """MinimalTest-int whose (x, y) observation is tiled into a 3x3x2 image."""
    return _minimal_test_seen_as(num_envs, lambda pair: jnp.broadcast_to(pair, (3, 3, 2)),
                                 Spec((3, 3, 2), jnp.float32))


def test_cnn_states_baseline_on_images():
    # A frozen uniform policy on MinimalTest-int earns 1/2 a step and survives a step with
    # probability 3/4 from every state, so V = 0.5 / (1 − 0.99 · 0.75) ≈ 1.94 everywhere.
    config = vpg.VPGConfig(num_envs=4, num_steps=16, total_steps=6400, hidden_sizes=(32,), learning_rate=0.0,
                           baseline_network="cnn", baseline_conv_sizes=(4,), baseline_sizes=(8,),
                           baseline_learning_rate=3e-3)
    env = _image_minimal_test(4)
    state, _ = _train(config, env, seeds=1)
    baseline = jax.tree.map(lambda x: x[0], state.params["baseline"])
    assert baseline["conv_0"]["w"].shape == (3, 3, 2, 4)
    images = jnp.broadcast_to(jnp.array([[1.0, 0.0], [0.0, 1.0]])[:, None, None, :], (2, 3, 3, 2))
    values = vpg.make_agent(config, env).baseline.apply(baseline, images)
    np.testing.assert_allclose(values, 0.5 / (1 - 0.99 * 0.75), atol=0.25)


def _two_state_minimal_test(num_envs: int) -> Env:
    """MinimalTest-int seen as two states: an "image" (the (x, y) pair tiled to 3x3x2) and the
    "pair" itself."""
    return _minimal_test_seen_as(num_envs, lambda pair: {"image": jnp.broadcast_to(pair, (3, 3, 2)), "pair": pair},
                                 {"image": Spec((3, 3, 2), jnp.float32), "pair": Spec((2,), jnp.float32)})


TWO_STATE_BASELINES = {"image": {"type": "cnn", "conv_sizes": [4], "dense_sizes": [8]},
                       "pair": {"type": "mlp", "sizes": [16, 16]}}


def test_aggregated_baseline_is_a_linear_combination_of_per_state_baselines():
    """H5: b(s) = w · [b_image(s_image), b_pair(s_pair)] + c, w starting at the mean."""
    config = vpg.VPGConfig(num_envs=2, num_steps=4, total_steps=8, baseline_network="aggregated",
                           state_baselines=TWO_STATE_BASELINES)
    env = _two_state_minimal_test(2)
    agent = vpg.make_agent(config, env)
    params = jax.jit(lambda key: vpg.make_trainer(config, env).init(key).params["baseline"])(jax.random.PRNGKey(0))
    assert params["state_0/conv_0"]["w"].shape == (3, 3, 2, 4)  # "image", the first state in leaf order
    assert params["state_1/dense/linear_1"]["w"].shape == (16, 16)
    np.testing.assert_array_equal(params["aggregate"]["w"], np.full((2, 1), 0.5))
    pair = jax.random.normal(jax.random.PRNGKey(1), (5, 2))
    observation = {"image": jnp.broadcast_to(pair[:, None, None, :], (5, 3, 3, 2)), "pair": pair}
    inputs = vpg._baseline_input(agent, observation, None)

    def value(w, c):
        aggregate = {"w": jnp.asarray(w, jnp.float32).reshape(2, 1), "b": jnp.full((1,), c, jnp.float32)}
        return np.asarray(agent.baseline.apply({**params, "aggregate": aggregate}, inputs))

    per_state = value([1, 0], 0.0), value([0, 1], 0.0)
    assert np.all(np.abs(per_state[0] - per_state[1]) > 0)  # two different networks
    np.testing.assert_allclose(value([2, -1], 0.5), 2 * per_state[0] - per_state[1] + 0.5, rtol=1e-5, atol=1e-5)


def test_aggregated_baseline_learns_the_value_and_helps_the_policy():
    # Frozen near-uniform policy: V = 0.5 / (1 − 0.99 · 0.75) ≈ 1.94 from every state (as in the cnn
    # test); then a learning policy on the same two states (random play: 2.0, the best: ~4).
    frozen = vpg.VPGConfig(num_envs=4, num_steps=16, total_steps=6400, hidden_sizes=(32,), learning_rate=0.0,
                           baseline_network="aggregated", state_baselines=TWO_STATE_BASELINES,
                           baseline_learning_rate=3e-3)
    env = _two_state_minimal_test(4)
    state, _ = _train(frozen, env, seeds=1)
    pair = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    observation = {"image": jnp.broadcast_to(pair[:, None, None, :], (2, 3, 3, 2)), "pair": pair}
    agent = vpg.make_agent(frozen, env)
    values = agent.baseline.apply(jax.tree.map(lambda x: x[0], state.params["baseline"]),
                                  vpg._baseline_input(agent, observation, None))
    np.testing.assert_allclose(values, 0.5 / (1 - 0.99 * 0.75), atol=0.25)
    learning = dataclasses.replace(frozen, learning_rate=1e-2)
    _, metrics = _train(learning, env, seeds=1)
    assert np.all(recent_return(metrics) >= 3.2), recent_return(metrics)


def test_state_baselines_survive_a_json_round_trip():
    """The CLI writes the config to run.json and rebuilds it on --resume."""
    config = vpg.VPGConfig(baseline_network="aggregated", state_baselines=TWO_STATE_BASELINES)
    again = vpg.VPGConfig(**json.loads(json.dumps(dataclasses.asdict(config))))
    assert again == config and hash(again) == hash(config)
    assert again.state_baselines["pair"]["sizes"] == (16, 16)


def test_variable_noise_samples_from_the_perturbed_policy_network():
    config = vpg.VPGConfig(num_envs=4, variable_noise=0.5)
    env = fnrl.envs.make("CartPole-v1", num_envs=4)
    agent = vpg.make_agent(config, env)
    state = jax.jit(vpg.make_trainer(config, env).init)(jax.random.PRNGKey(0))
    obs, key = jax.random.normal(jax.random.PRNGKey(1), (256, 4)), jax.random.PRNGKey(2)
    out = vpg.policy_step(agent, state, key, obs, ())
    noise_key, sample_key = jax.random.split(key)
    noisy = fnrl.perturb_params(noise_key, state.params["policy"], 0.5)
    dist_params, _ = agent.network.apply(noisy, obs)
    np.testing.assert_array_equal(out.action, policy.sample(agent.spaces, sample_key, dist_params))
    np.testing.assert_allclose(out.extras["value"], vpg._forward(agent, state.params, obs)[2], rtol=1e-6)
    clean, _ = agent.network.apply(state.params["policy"], obs)
    assert not np.array_equal(out.action, policy.sample(agent.spaces, sample_key, clean))


@pytest.mark.parametrize("baseline_optimizer", [None, "adam"])
def test_network_baseline_trains_the_torso_only_without_its_own_optimizer(baseline_optimizer):
    """H6: the baseline loss reaches the shared policy torso only when it joins the policy loss."""
    config = vpg.VPGConfig(num_envs=2, num_steps=4, total_steps=8, baseline_mode="network",
                           baseline_optimizer=baseline_optimizer, normalize_advantages=False)
    env = fnrl.envs.make("CartPole-v1", num_envs=2)
    agent = vpg.make_agent(config, env)
    params = jax.jit(lambda key: vpg.make_trainer(config, env).init(key).params)(jax.random.PRNGKey(0))
    observation = jax.random.normal(jax.random.PRNGKey(1), (4, 2, 4))
    batch = vpg.VPGBatch(observation, jnp.zeros((4, 2), jnp.int32), advantage=jnp.zeros((4, 2)),
                         returns=jnp.full((4, 2), 5.0), mask=jnp.ones((4, 2), bool))
    grads, metrics = jax.jit(jax.grad(lambda p: vpg.vpg_loss(agent, p, batch), has_aux=True))(params)
    torso_norm = float(jnp.linalg.norm(grads["policy"]["torso/linear_0"]["w"]))
    if baseline_optimizer is None:
        assert torso_norm > 0 and float(metrics["value_loss"]) > 0
    else:
        assert torso_norm == 0 and float(metrics["value_loss"]) == 0


# --------------------------------------------------------------------------------------------
# Argument checks.


@pytest.mark.parametrize("fields, name", [
    (dict(baseline_mode=None, gae_lambda=0.9), "gae_lambda"),
    (dict(gae_lambda=1.5), "gae_lambda"),
    (dict(baseline_mode="values"), "baseline_mode"),
    (dict(baseline_mode="network", baseline_network="cnn"), "baseline_network"),
    (dict(baseline_optimizer="lbfgs"), "baseline_optimizer"),
    (dict(baseline_optimizer_steps=0), "baseline_optimizer_steps"),
    (dict(baseline_optimizer=None, optimizer={"type": "optimized_step", "optimizer": {
        "type": "natural_gradient", "learning_rate": 0.01}}), "natural-gradient `optimizer`.*baseline_optimizer"),
    (dict(variable_noise=-1.0), "variable_noise"),
    (dict(baseline_network="aggregated"), "state_baselines"),
    (dict(state_baselines={"state": {"type": "mlp"}}), "state_baselines"),
    (dict(baseline_mode="network", baseline_network="aggregated", state_baselines={"state": {"type": "mlp"}}),
     "baseline_network"),
    (dict(baseline_network="aggregated", state_baselines={}), "state_baselines"),
    (dict(baseline_network="aggregated", state_baselines={"state": {"type": "lstm"}}), "'mlp' or 'cnn'"),
    (dict(baseline_network="aggregated", state_baselines={"state": {"type": "mlp", "sizes": [0]}}), "ints >= 1"),
    (dict(baseline_network="aggregated", state_baselines={"state": {"type": "mlp", "dense_sizes": [8]}}),
     r"\('sizes',\)"),
])
def test_config_rejects_bad_fields(fields, name):
    with pytest.raises(ValueError, match=name):
        vpg.VPGConfig(**fields)


def test_make_trainer_rejects_cnn_baseline_without_image():
    env = fnrl.envs.make("CartPole-v1", num_envs=4)
    with pytest.raises(ValueError, match="baseline_network"):
        vpg.make_trainer(vpg.VPGConfig(baseline_network="cnn"), env)


@pytest.mark.parametrize("state_baselines, match", [
    ({"image": {"type": "cnn"}}, r"each of the env's states \['image', 'pair'\] once"),
    ({**TWO_STATE_BASELINES, "extra": {"type": "mlp"}}, "once"),
    ({"image": {"type": "cnn"}, "pair": {"type": "cnn"}}, r"state_baselines\['pair'\].*shape \(H, W, C\)"),
])
def test_make_trainer_checks_state_baselines_against_the_env(state_baselines, match):
    config = vpg.VPGConfig(baseline_network="aggregated", state_baselines=state_baselines)
    with pytest.raises(ValueError, match=match):
        vpg.make_trainer(config, _two_state_minimal_test(4))


OPTIMIZER_SPECS = {
    # TensorForce's TestVPGOptimizers (R14): VPG, int action, batch 8, these optimizer specs.
    "adam": {"type": "adam", "learning_rate": 1e-3},
    "evolutionary": {"type": "evolutionary", "learning_rate": 1e-2},
    "natural_gradient": {"type": "natural_gradient", "learning_rate": 1e-3},
    "multi_step": {"type": "multi_step", "optimizer": {"type": "adam", "learning_rate": 1e-4}},
    "optimized_step": {"type": "optimized_step", "optimizer": {"type": "adam", "learning_rate": 1e-3}},
    "clipped_step": {"type": "clipped_step", "optimizer": {"type": "adam", "learning_rate": 1e-3},
                     "clipping_value": 0.01},
}


@pytest.mark.parametrize("name", list(OPTIMIZER_SPECS))
def test_tensorforce_optimizer_specs_learn(name):
    config = vpg.VPGConfig(optimizer=OPTIMIZER_SPECS[name], total_steps=4000, **TF_TEST)
    _, metrics = _train(config, fnrl.envs.make("MinimalTest-v0", num_envs=1), seeds=2)
    assert np.all(recent_return(metrics) >= 3.2), recent_return(metrics)  # random play: 2.0, the best: ~4


def test_optimizer_spec_errors_name_the_field():
    with pytest.raises(ValueError, match="`optimizer`.*spec"):
        vpg.VPGConfig(optimizer={"type": "adamm"})
    with pytest.raises(ValueError, match="`baseline_optimizer`"):
        vpg.VPGConfig(baseline_optimizer={"type": "multi_step", "optimizer": "adam", "num_steps": 0})
