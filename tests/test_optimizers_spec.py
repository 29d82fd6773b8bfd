"""Tests for fnrl.optimizers' `Minimizer` convention and `optimizer_from_spec` (TensorForce
optimizer specs): each type against optax, the TensorFlow 1.x update formulas or the fnrl
function it is built on, nesting, jit/vmap, and the spec errors' key paths."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from fnrl.optimizers import (
    OPTIMIZER_TYPES,
    LineSearchInfo,
    Minimizer,
    MinimizeInfo,
    NaturalGradientStepInfo,
    OptimizedStepInfo,
    minimizer_from_optax,
    multi_step,
    natural_gradient_direction,
    natural_gradient_step,
    optimized_step,
    optimizer_from_spec,
)

# A quadratic 0.5·Σ a_i (x_i − c_i)²: its gradient a·(x − c) changes every step, so the
# optimizers' state (moments, accumulators) matters.
A = np.array([1.0, 3.0, 0.5, 2.0])
C = np.array([1.0, -2.0, 0.3, 0.7])
X0 = {"x": jnp.array([0.5, -1.0, 2.0, 0.0], jnp.float32)}


def quad_loss(params):
    d = params["x"] - C
    loss = 0.5 * jnp.sum(A * d * d)
    return loss, {"loss": loss, "first": params["x"][0]}


def quad_grad(x):
    return A * (x - C)


# A softmax policy over 3 actions in 2 states, at its old logits: the TRPO setting.
OLD_LOGITS = jnp.array([[0.2, -0.1, 0.4], [0.0, 0.3, -0.5]], jnp.float32)
ADVANTAGES = jnp.array([[1.0, -0.5, 0.2], [-0.3, 0.8, 0.1]], jnp.float32)
THETA0 = {"logits": OLD_LOGITS}


def surrogate_loss(params):
    """−E_s Σ_a π(a|s) A(s, a): the negated TRPO surrogate for the old policy's samples."""
    probs = jax.nn.softmax(params["logits"])
    entropy = -jnp.sum(probs * jnp.log(probs), -1).mean()
    return -jnp.mean(jnp.sum(probs * ADVANTAGES, -1)), {"entropy": entropy}


def kl_fn(params):
    old, new = jax.nn.log_softmax(OLD_LOGITS), jax.nn.log_softmax(params["logits"])
    return jnp.mean(jnp.sum(jnp.exp(old) * (old - new), -1))


def _run(minimizer: Minimizer, loss_fn, params, steps: int, use_jit: bool, key=None, **extra):
    """`steps` successive `minimize` calls (key split per call); returns params, state, infos."""
    step = lambda p, s, k: minimizer.minimize(loss_fn, p, s, k, **extra)  # noqa: E731
    step = jax.jit(step) if use_jit else step
    state, infos = minimizer.init(params), []
    for i in range(steps):
        params, state, info = step(params, state, None if key is None else jax.random.fold_in(key, i))
        infos.append(info)
    return params, state, infos


def _optax_steps(tx, loss_fn, params, steps):
    state = tx.init(params)
    for _ in range(steps):
        grads = jax.grad(lambda p: loss_fn(p)[0])(params)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params


def _close(a, b, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(ravel_pytree(a)[0], ravel_pytree(b)[0], rtol=rtol, atol=atol)


# --------------------------------------------------------------------------------------------
# TensorFlow 1.x optimizers: NumPy references written from the TF 1.x update formulas.


def _tf1_gradient_descent(x, steps, learning_rate):
    for _ in range(steps):
        x = x - learning_rate * quad_grad(x)
    return x


def _tf1_momentum(x, steps, learning_rate, momentum, use_nesterov=False):
    accumulation = np.zeros_like(x)
    for _ in range(steps):
        g = quad_grad(x)
        accumulation = momentum * accumulation + g
        x = x - learning_rate * (g + momentum * accumulation if use_nesterov else accumulation)
    return x


def _tf1_rmsprop(x, steps, learning_rate, decay=0.9, momentum=0.0, epsilon=1e-10, centered=False):
    mean_square, mean_grad, mom = np.ones_like(x), np.zeros_like(x), np.zeros_like(x)
    for _ in range(steps):
        g = quad_grad(x)
        mean_square = decay * mean_square + (1 - decay) * g * g
        mean_grad = decay * mean_grad + (1 - decay) * g
        denominator = mean_square - mean_grad**2 if centered else mean_square
        mom = momentum * mom + learning_rate * g / np.sqrt(denominator + epsilon)
        x = x - mom
    return x


def _tf1_adagrad(x, steps, learning_rate, initial_accumulator_value=0.1):
    accumulator = np.full_like(x, initial_accumulator_value)
    for _ in range(steps):
        g = quad_grad(x)
        accumulator = accumulator + g * g
        x = x - learning_rate * g / np.sqrt(accumulator)
    return x


def _tf1_adadelta(x, steps, learning_rate=0.001, rho=0.95, epsilon=1e-8):
    accumulator, accumulator_update = np.zeros_like(x), np.zeros_like(x)
    for _ in range(steps):
        g = quad_grad(x)
        accumulator = rho * accumulator + (1 - rho) * g * g
        update = np.sqrt(accumulator_update + epsilon) / np.sqrt(accumulator + epsilon) * g
        accumulator_update = rho * accumulator_update + (1 - rho) * update * update
        x = x - learning_rate * update
    return x


TF1_CASES = [
    ("gradient_descent", dict(learning_rate=0.1), _tf1_gradient_descent),
    ("momentum", dict(learning_rate=0.05, momentum=0.8), _tf1_momentum),
    ("momentum", dict(learning_rate=0.05, momentum=0.8, use_nesterov=True), _tf1_momentum),
    # A large epsilon and decay != default make the ones-init and epsilon-in-sqrt visible.
    ("rmsprop", dict(learning_rate=0.05, decay=0.8, epsilon=1e-2), _tf1_rmsprop),
    ("rmsprop", dict(learning_rate=0.05, momentum=0.5, epsilon=1e-2, centered=True), _tf1_rmsprop),
    ("adagrad", dict(learning_rate=0.3, initial_accumulator_value=0.5), _tf1_adagrad),
    ("adadelta", dict(learning_rate=1.0, rho=0.9, epsilon=1e-3), _tf1_adadelta),
]


@pytest.mark.parametrize("kind, options, reference", TF1_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(TF1_CASES)])
def test_tf1_optimizers_follow_the_tf1_update(kind, options, reference):
    minimizer = optimizer_from_spec({"type": kind, **options})
    params, _, _ = _run(minimizer, quad_loss, X0, 4, True)
    want = reference(np.asarray(X0["x"], np.float64), 4, **options)
    np.testing.assert_allclose(params["x"], want, rtol=2e-5, atol=2e-6)
    assert not np.allclose(params["x"], X0["x"])


@pytest.mark.parametrize("kind, optax_fn", [("adam", optax.adam), ("nadam", optax.nadam)])
def test_adam_and_nadam_are_optax_with_tf_argument_names(kind, optax_fn):
    spec = {"type": kind, "learning_rate": 0.05, "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-3}
    params, _, _ = _run(optimizer_from_spec(spec), quad_loss, X0, 3, True)
    _close(params, _optax_steps(optax_fn(0.05, b1=0.8, b2=0.99, eps=1e-3), quad_loss, X0, 3))


def test_string_spec_uses_tf_defaults_and_accepts_a_schedule():
    params, _, _ = _run(optimizer_from_spec("adam"), quad_loss, X0, 2, use_jit=True)
    _close(params, _optax_steps(optax.adam(1e-3), quad_loss, X0, 2))
    schedule = optax.linear_schedule(0.1, 0.01, 3)
    params, _, _ = _run(optimizer_from_spec({"type": "adam", "learning_rate": schedule}),
                        quad_loss, X0, 3, use_jit=True)
    _close(params, _optax_steps(optax.adam(schedule), quad_loss, X0, 3))


def test_optax_minimizer_reports_loss_and_aux_before_the_step_and_ignores_extras():
    minimizer = minimizer_from_optax(optax.sgd(0.1))
    params, _, infos = _run(minimizer, quad_loss, X0, 1, use_jit=True, kl_fn=kl_fn)
    loss, aux = quad_loss(X0)
    np.testing.assert_allclose(infos[0].loss, loss, rtol=1e-6)
    np.testing.assert_allclose(infos[0].aux["first"], aux["first"])
    assert infos[0].details == ()
    np.testing.assert_allclose(params["x"], X0["x"] - 0.1 * quad_grad(np.asarray(X0["x"])), rtol=1e-6)


# --------------------------------------------------------------------------------------------
# Meta-optimizers.


def test_multi_step_adam_equals_three_optax_steps_and_fnrl_multi_step():
    spec = {"type": "multi_step", "optimizer": {"type": "adam", "learning_rate": 0.1}, "num_steps": 3}
    params, state, infos = _run(optimizer_from_spec(spec), quad_loss, X0, 1, True)
    _close(params, _optax_steps(optax.adam(0.1), quad_loss, X0, 3))
    ref_params, ref_state, losses = jax.jit(lambda p: multi_step(
        optax.adam(0.1), lambda q: quad_loss(q)[0], p, optax.adam(0.1).init(p), num_steps=3))(X0)
    _close(params, ref_params)
    _close(state, ref_state)
    info = infos[0]
    np.testing.assert_allclose(info.details.loss, losses, rtol=1e-6)  # per-step losses [3]
    np.testing.assert_allclose(info.loss, quad_loss(X0)[0], rtol=1e-6)
    np.testing.assert_allclose(info.aux["first"], X0["x"][0])  # aux before the first step
    assert info.details.aux["loss"].shape == (3,)


def test_clipped_step_clips_the_step_elementwise():
    grads = quad_grad(np.asarray(X0["x"], np.float64))  # [-0.5, 3, 0.85, -1.4]
    spec = {"type": "clipped_step", "clipping_value": 0.5,
            "optimizer": {"type": "gradient_descent", "learning_rate": 1.0}}
    params, _, _ = _run(optimizer_from_spec(spec), quad_loss, X0, 1, True)
    np.testing.assert_allclose(params["x"] - X0["x"], np.clip(-grads, -0.5, 0.5), rtol=1e-6)
    # Around a non-optax optimizer (two steps of gradient descent), the total step is clipped.
    inner = {"type": "multi_step", "num_steps": 2,
             "optimizer": {"type": "gradient_descent", "learning_rate": 0.1}}
    params, _, _ = _run(optimizer_from_spec({"type": "clipped_step", "optimizer": inner,
                                             "clipping_value": 0.2}), quad_loss, X0, 1, True)
    two_steps = _tf1_gradient_descent(np.asarray(X0["x"], np.float64), 2, 0.1)
    step = np.clip(two_steps - X0["x"], -0.2, 0.2)
    np.testing.assert_allclose(params["x"] - X0["x"], step, rtol=1e-5, atol=1e-6)
    assert np.abs(two_steps - X0["x"]).max() > 0.2  # the clip was active


def test_optimized_step_matches_fnrl_optimized_step_and_backtracks():
    # A step of 0.9 on curvature 3 overshoots: the search must shorten it.
    spec = {"type": "optimized_step", "optimizer": {"type": "gradient_descent", "learning_rate": 0.9},
            "ls_max_iterations": 6, "ls_accept_ratio": 0.3, "ls_parameter": 0.5}
    params, _, infos = _run(optimizer_from_spec(spec), quad_loss, X0, 1, True)
    ref, _, ref_info = jax.jit(lambda p: optimized_step(
        optax.sgd(0.9), lambda q: quad_loss(q)[0], p, optax.sgd(0.9).init(p), ls_max_iterations=6,
        ls_accept_ratio=0.3, ls_parameter=0.5))(X0)
    _close(params, ref)
    details = infos[0].details
    assert isinstance(details, OptimizedStepInfo) and isinstance(details.line_search, LineSearchInfo)
    assert bool(details.line_search.accepted) and float(details.line_search.step_fraction) < 1.0
    np.testing.assert_allclose(details.line_search.step_fraction, ref_info.step_fraction)
    assert float(quad_loss(params)[0]) < float(quad_loss(X0)[0])


# --------------------------------------------------------------------------------------------
# Natural gradient and TRPO.

TRPO_SPEC = {
    "type": "optimized_step",
    "optimizer": {"type": "natural_gradient", "learning_rate": 0.02, "cg_max_iterations": 7,
                  "cg_damping": 0.01},
    "ls_max_iterations": 5, "ls_accept_ratio": 0.5, "ls_mode": "linear", "ls_parameter": 0.2,
    "kl_tolerance": 2.0,
}


def _jitted_trpo_step(kl_tolerance):
    """`natural_gradient_step` with TRPO_SPEC's settings, jitted (eager while-loops are slow)."""
    return jax.jit(lambda p: natural_gradient_step(
        lambda q: surrogate_loss(q)[0], kl_fn, p, 0.02, cg_max_iterations=7, cg_damping=0.01,
        ls_max_iterations=5, ls_accept_ratio=0.5, ls_mode="linear", ls_parameter=0.2,
        kl_tolerance=kl_tolerance))(THETA0)


def test_optimized_step_natural_gradient_is_natural_gradient_step():
    params, state, infos = _run(optimizer_from_spec(TRPO_SPEC), surrogate_loss, THETA0, 1, True,
                                kl_fn=kl_fn)
    ref, ref_info = _jitted_trpo_step(2.0)
    _close(params, ref, rtol=1e-6)
    details = infos[0].details
    assert isinstance(details, NaturalGradientStepInfo) and bool(details.line_search.accepted)
    np.testing.assert_array_equal(details.natural_gradient.cg_iterations,
                                  ref_info.natural_gradient.cg_iterations)
    np.testing.assert_allclose(infos[0].aux["entropy"], surrogate_loss(THETA0)[1]["entropy"], rtol=1e-6)
    assert float(surrogate_loss(params)[0]) < float(surrogate_loss(THETA0)[0])
    assert float(kl_fn(params)) <= 2.0 * 0.02


def test_trpo_kl_tolerance_none_is_tensorforce_search_without_kl_check():
    spec = dict(TRPO_SPEC, kl_tolerance=None)
    params, _, _ = _run(optimizer_from_spec(spec), surrogate_loss, THETA0, 1, True, kl_fn=kl_fn)
    ref, _ = _jitted_trpo_step(None)
    _close(params, ref, rtol=1e-6)


def test_natural_gradient_alone_takes_the_full_kl_step():
    spec = {"type": "natural_gradient", "learning_rate": 0.01}
    params, _, infos = _run(optimizer_from_spec(spec), surrogate_loss, THETA0, 1, True, kl_fn=kl_fn)
    grads = jax.grad(lambda p: surrogate_loss(p)[0])(THETA0)
    step, _ = jax.jit(lambda g, p: natural_gradient_direction(g, kl_fn, p, 0.01))(grads, THETA0)
    _close(params, optax.apply_updates(THETA0, step), rtol=1e-6)
    np.testing.assert_allclose(infos[0].details.quadratic_kl, 0.01, rtol=1e-4)


def test_natural_gradient_without_kl_fn_raises_naming_the_spec_entry():
    spec = {"type": "multi_step", "optimizer": {"type": "natural_gradient", "learning_rate": 0.01}}
    minimizer = optimizer_from_spec(spec)
    with pytest.raises(ValueError, match=r"spec\['optimizer'\] \(natural_gradient\).*`kl_fn`"):
        minimizer.minimize(surrogate_loss, THETA0, minimizer.init(THETA0))
    trpo = optimizer_from_spec(TRPO_SPEC)
    with pytest.raises(ValueError, match=r"optimized_step.*`kl_fn`"):
        trpo.minimize(surrogate_loss, THETA0, trpo.init(THETA0))


# --------------------------------------------------------------------------------------------
# Evolutionary.


def test_evolutionary_reduces_a_quadratic_in_a_jitted_scan():
    minimizer = optimizer_from_spec({"type": "evolutionary", "learning_rate": 0.05, "num_samples": 8})

    def train(key):
        def one(carry, k):
            params, state = carry
            params, state, info = minimizer.minimize(quad_loss, params, state, k)
            return (params, state), info.loss

        (params, _), losses = jax.lax.scan(one, (X0, minimizer.init(X0)), jax.random.split(key, 300))
        return params, losses

    params, losses = jax.jit(train)(jax.random.key(0))
    assert float(quad_loss(params)[0]) < 0.05 * float(quad_loss(X0)[0])
    assert losses.shape == (300,) and float(losses[0]) == pytest.approx(float(quad_loss(X0)[0]))


def test_evolutionary_single_sample_moves_by_learning_rate_times_the_noise():
    """TensorForce's step for one sample is ±learning_rate·ε: the mapping must keep that size."""
    lr, key = 0.03, jax.random.key(3)
    minimizer = optimizer_from_spec({"type": "evolutionary", "learning_rate": lr})
    params, _, info = jax.jit(lambda p, k: minimizer.minimize(quad_loss, p, minimizer.init(p), k))(X0, key)
    eps = jax.random.normal(key, (1, 4))[0]  # `es_gradient`'s perturbation for this key
    ratio = np.asarray((params["x"] - X0["x"]) / (lr * eps))
    np.testing.assert_allclose(np.abs(ratio), 1.0, rtol=1e-4)
    assert len(set(np.sign(ratio))) == 1
    assert info.details.fitness.shape == (2,)
    with pytest.raises(ValueError, match=r"spec \(evolutionary\).*`key`"):
        minimizer.minimize(quad_loss, X0, minimizer.init(X0))


# --------------------------------------------------------------------------------------------
# Every type under one convention; vmap; custom entries; JSON.

ALL_SPECS = {
    "adam": {"type": "adam", "learning_rate": 0.05},
    "nadam": {"type": "nadam", "learning_rate": 0.05},
    "adagrad": {"type": "adagrad", "learning_rate": 0.1},
    "adadelta": {"type": "adadelta", "learning_rate": 1.0},
    "gradient_descent": {"type": "gradient_descent", "learning_rate": 0.5},
    "momentum": {"type": "momentum", "learning_rate": 0.5, "momentum": 0.9},
    "rmsprop": {"type": "rmsprop", "learning_rate": 0.05},
    "evolutionary": {"type": "evolutionary", "learning_rate": 0.05, "num_samples": 3},
    "natural_gradient": {"type": "natural_gradient", "learning_rate": 0.01},
    "multi_step": {"type": "multi_step", "optimizer": "adam", "num_steps": 2},
    "optimized_step": TRPO_SPEC,
    "clipped_step": {"type": "clipped_step", "optimizer": {"type": "natural_gradient",
                                                           "learning_rate": 0.05}, "clipping_value": 0.05},
}


def test_all_spec_types_are_covered():
    assert sorted(ALL_SPECS) == sorted(OPTIMIZER_TYPES)


@pytest.mark.parametrize("kind", sorted(ALL_SPECS))
def test_every_type_reports_loss_and_aux_at_the_input_and_jit_agrees(kind):
    minimizer = optimizer_from_spec(ALL_SPECS[kind])
    key = jax.random.key(1)
    eager, _, _ = _run(minimizer, surrogate_loss, THETA0, 1, False, key, kl_fn=kl_fn)
    jitted, _, jit_infos = _run(minimizer, surrogate_loss, THETA0, 1, True, key, kl_fn=kl_fn)
    _close(eager, jitted, rtol=1e-4, atol=1e-6)
    loss, aux = surrogate_loss(THETA0)
    assert isinstance(jit_infos[0], MinimizeInfo)
    np.testing.assert_allclose(jit_infos[0].loss, loss, rtol=1e-6)
    np.testing.assert_allclose(jit_infos[0].aux["entropy"], aux["entropy"], rtol=1e-6)
    assert jitted["logits"].dtype == jnp.float32
    assert not np.allclose(jitted["logits"], THETA0["logits"])


def test_minimize_vmaps_over_params_keys_and_hyperparameters():
    minimizer = optimizer_from_spec({"type": "multi_step", "optimizer": {"type": "momentum",
                                     "learning_rate": 0.1, "momentum": 0.5}, "num_steps": 3})
    batch = {"x": jnp.stack([X0["x"], X0["x"] + 1.0, X0["x"] * 2.0])}
    step = jax.vmap(lambda p: minimizer.minimize(quad_loss, p, minimizer.init(p))[0])
    out = jax.jit(step)(batch)
    for i in range(3):
        one = jax.tree.map(lambda x: x[i], batch)
        np.testing.assert_allclose(out["x"][i], _tf1_momentum(np.asarray(one["x"], np.float64), 3, 0.1, 0.5),
                                   rtol=1e-5, atol=1e-6)
    # A hyperparameter sweep: the spec built inside vmap with a traced learning rate.
    def sweep(lr):
        adam = optimizer_from_spec({"type": "adam", "learning_rate": lr})
        return adam.minimize(quad_loss, X0, adam.init(X0))[0]["x"]

    swept = jax.jit(jax.vmap(sweep))(jnp.array([0.01, 0.1]))
    for lr, row in zip([0.01, 0.1], swept):
        np.testing.assert_allclose(row, _optax_steps(optax.adam(lr), quad_loss, X0, 1)["x"], rtol=1e-6)
    es = optimizer_from_spec({"type": "evolutionary", "learning_rate": 0.1})
    keys = jax.random.split(jax.random.key(0), 4)
    moved = jax.vmap(lambda k: es.minimize(quad_loss, X0, es.init(X0), k)[0])(keys)
    assert moved["x"].shape == (4, 4) and len({tuple(np.asarray(r)) for r in moved["x"]}) == 4


def test_custom_entries_json_and_ignored_keys():
    inner = optax.sgd(0.1)
    params, _, _ = _run(optimizer_from_spec({"type": "multi_step", "optimizer": inner, "num_steps": 2}),
                        quad_loss, X0, 1, True)
    _close(params, _optax_steps(inner, quad_loss, X0, 2))
    custom = minimizer_from_optax(inner)
    assert optimizer_from_spec(custom) is custom
    text = json.dumps(dict(TRPO_SPEC, ls_unroll_loop=True, summaries=None, summary_labels=["loss"],
                           optimizer=dict(TRPO_SPEC["optimizer"], cg_unroll_loop=True)))
    a, _, _ = _run(optimizer_from_spec(json.loads(text)), surrogate_loss, THETA0, 1, True, kl_fn=kl_fn)
    b, _, _ = _run(optimizer_from_spec(TRPO_SPEC), surrogate_loss, THETA0, 1, True, kl_fn=kl_fn)
    _close(a, b, rtol=0, atol=0)


# --------------------------------------------------------------------------------------------
# Errors name the key path.

ERROR_CASES = [
    ({"type": "multi_step", "optimizer": {"type": "adamm"}},
     r"spec\['optimizer'\]\['type'\] is 'adamm'.*valid types: adadelta, adagrad, adam, clipped_step"),
    ({"type": "optimized_step", "optimizer": {"type": "clipped_step", "clipping_value": 1.0,
                                              "optimizer": {"type": "adam", "lr": 0.1}}},
     r"spec\['optimizer'\]\['optimizer'\]\['lr'\] is not a key of type 'adam'; "
     r"valid keys: learning_rate, beta1, beta2, epsilon"),
    ({"type": "momentum", "learning_rate": 0.1}, r"spec\['momentum'\] is required for type 'momentum'"),
    ("gradient_descent", r"spec\['learning_rate'\] is required"),
    ({"type": "multi_step", "optimizer": "adam", "num_steps": 0},
     r"spec\['num_steps'\] must be a Python int >= 1, got 0"),
    ({"type": "adam", "beta1": 1.0}, r"spec\['beta1'\] must be a number in \[0.0, 1.0\), got 1.0"),
    ({"type": "adam", "learning_rate": "0.001"}, r"spec\['learning_rate'\] must be a number"),
    ({"type": "optimized_step", "optimizer": "adam", "ls_mode": "cubic"},
     r"spec\['ls_mode'\] must be 'exponential' or 'linear'"),
    ({"type": "optimized_step", "optimizer": "adam", "kl_tolerance": 1.5},
     r"spec\['kl_tolerance'\] applies only when the inner optimizer is a natural_gradient"),
    ({"type": "clipped_step", "optimizer": "adam", "clipping_value": 0.0},
     r"spec\['clipping_value'\] must be a number in \(0.0, inf\)"),
    ({"type": "natural_gradient", "learning_rate": 0.0},
     r"spec\['learning_rate'\] must be a number in \(0.0"),
    ({"type": "synchronization"}, r"spec\['type'\] is 'synchronization'.*periodic_target_update"),
    ({"type": "multi_step", "optimizer": 3}, r"spec\['optimizer'\] must be an optimizer type name"),
    ({"optimizer": "adam"}, r"spec must be an optimizer type name, a dict with a 'type' key"),
    ({"type": "rmsprop", "learning_rate": 0.1, "centered": 1}, r"spec\['centered'\] must be a bool"),
]


@pytest.mark.parametrize("spec, pattern", ERROR_CASES, ids=[str(i) for i in range(len(ERROR_CASES))])
def test_spec_errors_name_the_key_path(spec, pattern):
    with pytest.raises(ValueError, match=pattern):
        optimizer_from_spec(spec)


def test_loss_fn_must_return_loss_and_aux():
    minimizer = optimizer_from_spec("adam")
    with pytest.raises(ValueError, match=r"`loss_fn` must return \(float scalar loss, aux\)"):
        minimizer.minimize(lambda p: quad_loss(p)[0], X0, minimizer.init(X0))
