"""Tests for the loss-closure optimizers of fnrl.optimizers: conjugate gradient, line search,
natural gradient / TRPO step, evolution strategies, multi-step, optimized and clipped steps."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree

from fnrl.optimizers import (
    centered_ranks,
    clipped_step,
    conjugate_gradient,
    es_gradient,
    es_step,
    fisher_vector_product,
    line_search,
    multi_step,
    natural_gradient,
    natural_gradient_direction,
    natural_gradient_step,
    optimized_step,
)
from tests.helpers import floats, jit_variants, variant

# --------------------------------------------------------------------------------------------
# Conjugate gradient.


def _np_cg(a, b, damping, max_iterations, residual_tol):
    """Conjugate gradient in float64, straight from the recursion in the docstring."""
    a = np.asarray(a, np.float64) + damping * np.eye(len(b))
    x, r = np.zeros(len(b)), np.asarray(b, np.float64)
    p, rr = r.copy(), r @ r
    for _ in range(max_iterations):
        if rr <= residual_tol:
            break
        ap = a @ p
        if p @ ap <= 0:  # not positive definite along p: stop (truncated CG)
            break
        alpha = rr / (p @ ap)
        x, r = x + alpha * p, r - alpha * ap
        rr_next = r @ r
        p, rr = r + rr_next / rr * p, rr_next
    return x


def _cg_solve(a, b, damping, max_iterations):
    return conjugate_gradient(lambda v: a @ v, b, max_iterations=max_iterations, damping=damping)


def _spd(rng, n):
    m = rng.standard_normal((n, n))
    return (m @ m.T / n + 0.2 * np.eye(n)).astype(np.float32)


@jit_variants
@given(n=st.sampled_from([1, 6, 20]), seed=st.integers(0, 2**16), damping=st.sampled_from([0.0, 0.3]))
def test_conjugate_gradient_solves_spd_systems(use_jit, n, seed, damping):
    rng = np.random.default_rng(seed)
    a, b = _spd(rng, n), rng.standard_normal(n).astype(np.float32)
    x, info = variant(_cg_solve, use_jit, static_argnames="max_iterations")(a, b, damping, 3 * n)
    expected = np.linalg.solve(a.astype(np.float64) + damping * np.eye(n), b)
    np.testing.assert_allclose(x, expected, rtol=2e-3, atol=2e-3 * np.abs(expected).max())
    assert 1 <= int(info.iterations) <= 3 * n
    assert float(info.squared_residual) <= 1e-6 * max(1.0, float(b @ b))


@jit_variants
@given(seed=st.integers(0, 2**16), damping=st.sampled_from([0.0, 0.3]))
def test_conjugate_gradient_iterates_match_numpy_loop(use_jit, seed, damping):
    rng = np.random.default_rng(seed)
    a, b = _spd(rng, 6), rng.standard_normal(6).astype(np.float32)
    x, info = variant(_cg_solve, use_jit, static_argnames="max_iterations")(a, b, damping, 3)
    expected = _np_cg(a, b, damping, 3, 1e-10)
    np.testing.assert_allclose(x, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert int(info.iterations) == 3


def test_conjugate_gradient_pytrees_warm_start_and_zero_rhs():
    rng = np.random.default_rng(0)
    a, b = _spd(rng, 5), rng.standard_normal(5).astype(np.float32)

    def matvec(tree):
        y = a @ jnp.concatenate([tree["u"], tree["v"].ravel()])
        return {"u": y[:1], "v": y[1:].reshape(2, 2)}

    tree_b = {"u": b[:1], "v": b[1:].reshape(2, 2)}
    x, _ = conjugate_gradient(matvec, tree_b, max_iterations=15)
    flat = np.concatenate([x["u"], x["v"].ravel()])
    np.testing.assert_allclose(flat, np.linalg.solve(a, b), rtol=1e-3, atol=1e-4)
    # From the solution itself nothing is left to do; from zero with 0 iterations x stays 0.
    x_warm, info = conjugate_gradient(matvec, tree_b, x0=x)
    assert int(info.iterations) <= 1
    np.testing.assert_allclose(x_warm["v"], x["v"], rtol=1e-3, atol=1e-5)
    x_none, info = conjugate_gradient(matvec, tree_b, max_iterations=0)
    assert int(info.iterations) == 0 and not np.any(np.asarray(x_none["v"]))
    x_zero, info = conjugate_gradient(matvec, jax.tree.map(jnp.zeros_like, tree_b))
    assert int(info.iterations) == 0 and not np.any(np.asarray(x_zero["u"]))


@jit_variants
@given(seed=st.integers(0, 2**16), negative=st.integers(1, 3))
def test_conjugate_gradient_stops_at_nonpositive_curvature(use_jit, seed, negative):
    """On a symmetric indefinite A the recursion would divide by pᵀAp <= 0; it must stop there
    with the last iterate of the NumPy loop, finite, and say so."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    eigenvalues = np.concatenate([-rng.uniform(0.5, 2.0, negative), rng.uniform(0.5, 2.0, 5 - negative)])
    a = (q * eigenvalues @ q.T).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    x, info = variant(_cg_solve, use_jit, static_argnames="max_iterations")(a, b, 0.0, 10)
    expected = _np_cg(a, b, 0.0, 10, 1e-10)
    assert np.all(np.isfinite(np.asarray(x)))
    np.testing.assert_allclose(x, expected, rtol=1e-3, atol=1e-3 * max(1.0, np.abs(expected).max()))
    if bool(info.nonpositive_curvature):
        assert np.linalg.norm(a.astype(np.float64) @ expected - b) > 1e-3  # stopped short of the solution


def test_conjugate_gradient_zero_curvature_gives_zero_not_overflow():
    x, info = conjugate_gradient(lambda v: jnp.zeros_like(v), jnp.ones(3))
    assert bool(info.nonpositive_curvature) and int(info.iterations) == 1
    np.testing.assert_array_equal(x, np.zeros(3))


def test_conjugate_gradient_keeps_each_leafs_dtype():
    """Mixed-precision params (a bfloat16 leaf next to a float32 one) are solved, each leaf in its
    own dtype; the while loop's carry would reject a leaf promoted to float32."""
    a = np.diag([2.0, 4.0, 1.0, 0.5]).astype(np.float32)

    def matvec(tree):
        y = a @ jnp.concatenate([tree["f"], tree["h"].astype(jnp.float32)])
        return {"f": y[:2], "h": y[2:].astype(jnp.bfloat16)}

    b = {"f": jnp.ones(2, jnp.float32), "h": jnp.ones(2, jnp.bfloat16)}
    x, _ = jax.jit(lambda b: conjugate_gradient(matvec, b, damping=0.1))(b)
    assert x["f"].dtype == jnp.float32 and x["h"].dtype == jnp.bfloat16
    expected = 1.0 / (np.diag(a) + 0.1)
    np.testing.assert_allclose(x["f"], expected[:2], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(x["h"], np.float32), expected[2:], rtol=2e-2)


def test_conjugate_gradient_vmaps_over_right_hand_sides():
    a = _spd(np.random.default_rng(1), 4)
    bs = np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32)
    xs, _ = jax.vmap(lambda b: _cg_solve(a, b, 0.0, 12))(bs)
    np.testing.assert_allclose(xs, np.linalg.solve(a, bs.T).T, rtol=1e-3, atol=1e-4)


# --------------------------------------------------------------------------------------------
# Line search.


def _ls_loss(x, center, curvature):
    """A non-convex loss, so candidates get rejected for several reasons."""
    return jnp.sum(curvature * jnp.square(x - center) + jnp.sin(3.0 * x))


def _np_ls_loss(x, center, curvature):
    return float(np.sum(curvature * np.square(x - center) + np.sin(3.0 * x)))


def _ls(x, step, center, curvature, bound, *, mode, parameter, accept_ratio, max_iterations):
    return line_search(
        lambda p: _ls_loss(p, center, curvature), x, step, max_iterations=max_iterations,
        accept_ratio=accept_ratio, mode=mode, parameter=parameter,
        constraint_fn=lambda p: jnp.sum(jnp.square(p)), max_constraint=bound,
    )


def _np_line_search(x, step, center, curvature, bound, mode, parameter, accept_ratio, max_iterations):
    """Plain loop from the docstring; None where some test sits too close to its threshold."""
    x, step = x.astype(np.float64), step.astype(np.float64)
    grad = 2 * curvature * (x - center) + 3 * np.cos(3 * x)
    expected, loss0 = -float(grad @ step), _np_ls_loss(x, center, curvature)
    if abs(expected) < 1e-3:
        return None
    evaluations = 0
    for i in range(max_iterations if expected > 0 else 0):
        fraction = parameter**i if mode == "exponential" else 1 - i * parameter
        if fraction <= 1e-6:
            break
        evaluations += 1
        cand = x + fraction * step
        improvement = loss0 - _np_ls_loss(cand, center, curvature)
        need = accept_ratio * fraction * expected
        constraint = float(np.sum(np.square(cand)))
        margins = (improvement, improvement - need, bound - constraint)
        if min(abs(m) for m in margins) < 1e-3 * (1 + abs(loss0)):
            return None
        if min(margins) > 0:
            return True, fraction, evaluations, cand
    return False, 0.0, evaluations, x


@jit_variants
@given(
    x=floats((3,), -2, 2), step=floats((3,), -3, 3), center=floats((3,), -2, 2),
    curvature=st.floats(0.1, 2.0), bound=st.floats(0.5, 12.0),
    mode_parameter=st.sampled_from(
        [("exponential", 0.5), ("exponential", 0.3), ("linear", 0.25), ("linear", 0.1)]
    ),
    accept_ratio=st.sampled_from([0.1, 0.9]), max_iterations=st.sampled_from([3, 8]),
)
def test_line_search_matches_python_loop(use_jit, x, step, center, curvature, bound, mode_parameter,
                                         accept_ratio, max_iterations):
    mode, parameter = mode_parameter
    # Point the step downhill (ascent steps are tested below) so that candidates get evaluated.
    grad = 2 * curvature * (x - center) + 3 * np.cos(3 * x)
    step = np.where(grad @ step > 0, -step, step).astype(np.float32)
    ref = _np_line_search(x, step, center, curvature, bound, mode, parameter, accept_ratio, max_iterations)
    assume(ref is not None)
    fn = variant(_ls, use_jit, static_argnames=("mode", "parameter", "accept_ratio", "max_iterations"))
    out, info = fn(x, step, center, np.float32(curvature), np.float32(bound), mode=mode,
                   parameter=parameter, accept_ratio=accept_ratio, max_iterations=max_iterations)
    accepted, fraction, evaluations, expected_x = ref
    assert bool(info.accepted) == accepted
    assert int(info.num_evaluations) == evaluations
    np.testing.assert_allclose(info.step_fraction, fraction, rtol=1e-5)
    np.testing.assert_allclose(out, expected_x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(info.loss, _np_ls_loss(expected_x, center, curvature), rtol=1e-4, atol=1e-4)


def _quadratic(p):
    return jnp.sum(jnp.square(p["x"] - 1.0))


def test_line_search_backtracks_to_first_acceptable_fraction():
    # L = (x − 1)², x = 0, s = 4: E = 8; fraction f gives improvement 8f − 16f², ratio 1 − 2f,
    # which first reaches 0.9 at f = 1/32.
    params, step = {"x": jnp.zeros(1)}, {"x": jnp.full(1, 4.0)}
    for fn in (line_search, jax.jit(line_search, static_argnums=0)):
        out, info = fn(_quadratic, params, step)
        assert bool(info.accepted) and int(info.num_evaluations) == 6
        np.testing.assert_allclose(info.step_fraction, 1 / 32)
        np.testing.assert_allclose(out["x"], [0.125])
        np.testing.assert_allclose(info.expected_improvement, 8.0)
        np.testing.assert_allclose(info.improvement, 1 - 0.765625)
    # Linear mode, any ratio: f = 1, 0.75, 0.5 improve by −8, −3, 0; f = 0.25 is the first to improve.
    out, info = line_search(_quadratic, params, step, mode="linear", parameter=0.25, accept_ratio=0.0)
    assert int(info.num_evaluations) == 4 and float(info.step_fraction) == 0.25


def test_line_search_rejects_ascent_nan_and_constraint_violations():
    params = {"x": jnp.zeros(2)}
    # An ascent step: nothing is evaluated, params are returned unchanged.
    out, info = line_search(_quadratic, params, {"x": -jnp.ones(2)})
    assert not bool(info.accepted) and int(info.num_evaluations) == 0
    np.testing.assert_array_equal(out["x"], params["x"])
    # Non-finite losses are rejected: L = Σ log(5 − x) along s = (10, 10) is −inf at f = 1/2
    # (and NaN beyond); at
    # f = 1/4 it improves by 2·log 2 >= 0.9 · f · E with E = −gᵀs = 4.
    out, info = line_search(lambda p: jnp.sum(jnp.log(5.0 - p["x"])), params, {"x": jnp.full(2, 10.0)})
    assert bool(info.accepted) and int(info.num_evaluations) == 3
    np.testing.assert_allclose(out["x"], [2.5, 2.5])
    np.testing.assert_allclose(info.improvement, 2 * np.log(2.0), rtol=1e-6)
    _, info = line_search(lambda p: jnp.sum(jnp.log(5.0 - p["x"])), params, {"x": jnp.full(2, 1e4)},
                          max_iterations=3)
    assert not bool(info.accepted) and float(info.improvement) == 0.0
    # The constraint forces extra backtracking: |x|² <= 0.1 needs f <= 0.22 → f = 1/8.
    step = {"x": jnp.full(2, 1.0)}
    _, free = line_search(_quadratic, params, step, accept_ratio=0.1)
    _, bounded = line_search(_quadratic, params, step, accept_ratio=0.1,
                             constraint_fn=lambda p: jnp.sum(jnp.square(p["x"])), max_constraint=0.1)
    assert float(free.step_fraction) == 1.0 and float(bounded.step_fraction) == 0.125


def test_line_search_vmaps_over_steps():
    params = {"x": jnp.zeros(1)}
    steps = {"x": jnp.array([[4.0], [1.0], [-1.0]])}
    out, info = jax.vmap(lambda s: line_search(_quadratic, params, s))(steps)
    np.testing.assert_array_equal(info.accepted, [True, True, False])
    np.testing.assert_allclose(info.step_fraction, [1 / 32, 1 / 8, 0.0])
    np.testing.assert_allclose(out["x"][:, 0], [0.125, 0.125, 0.0])


# --------------------------------------------------------------------------------------------
# Fisher-vector products and the natural-gradient / TRPO step, on a small categorical policy.

_RNG = np.random.default_rng(7)
OBS = _RNG.standard_normal((8, 3)).astype(np.float32)
ACTIONS = _RNG.integers(0, 4, size=8)
ADVANTAGES = _RNG.standard_normal(8).astype(np.float32)
PARAMS = {"w": (0.5 * _RNG.standard_normal((3, 4))).astype(np.float32), "b": np.zeros(4, np.float32)}


def _log_pi(params):
    return jax.nn.log_softmax(OBS @ params["w"] + params["b"])


def _kl_fn(old_params):
    """θ ↦ mean_s KL(π_old(·|s) ‖ π_θ(·|s)), the old policy held fixed."""
    old = jax.lax.stop_gradient(_log_pi(old_params))
    return lambda p: jnp.mean(jnp.sum(jnp.exp(old) * (old - _log_pi(p)), axis=-1))


def _loss_fn(old_params, advantages=ADVANTAGES):
    """θ ↦ −TRPO surrogate mean(π_θ(a|s) / π_old(a|s) · A)."""
    old = jax.lax.stop_gradient(jnp.take_along_axis(_log_pi(old_params), ACTIONS[:, None], 1)[:, 0])
    return lambda p: -jnp.mean(
        jnp.exp(jnp.take_along_axis(_log_pi(p), ACTIONS[:, None], 1)[:, 0] - old) * advantages
    )


def _explicit_fisher(params):
    """F = mean_s Σ_a π(a|s) ∇log π(a|s) ∇log π(a|s)ᵀ, from the Jacobian of the log-probs."""
    flat, unravel = ravel_pytree(params)
    jac = np.asarray(jax.jacobian(lambda f: _log_pi(unravel(f)))(flat), np.float64)
    pi = np.exp(np.asarray(_log_pi(params), np.float64))
    return np.einsum("sa,sad,sae->de", pi, jac, jac) / OBS.shape[0]


def _fvp(params, v):
    return fisher_vector_product(_kl_fn(params), params)(v)


@jit_variants
@pytest.mark.parametrize("seed", [0, 1])
def test_fisher_vector_product_is_kl_hessian_and_fisher(use_jit, seed):
    rng = np.random.default_rng(seed)
    params = jax.tree.map(lambda x: x + 0.3 * rng.standard_normal(x.shape).astype(np.float32), PARAMS)
    v = jax.tree.map(lambda x: rng.standard_normal(x.shape).astype(np.float32), PARAMS)
    out, _ = ravel_pytree(variant(_fvp, use_jit)(params, v))
    flat, unravel = ravel_pytree(params)
    flat_v, _ = ravel_pytree(v)
    hessian = np.asarray(jax.hessian(lambda f: _kl_fn(params)(unravel(f)))(flat), np.float64)
    fisher = _explicit_fisher(params)
    np.testing.assert_allclose(hessian, fisher, atol=1e-5)
    np.testing.assert_allclose(out, hessian @ flat_v, rtol=1e-4, atol=1e-5)


def _ng_direction(params, max_kl):
    grads = jax.grad(_loss_fn(params))(params)
    return natural_gradient_direction(grads, _kl_fn(params), params, max_kl)


@jit_variants
def test_natural_gradient_direction_meets_kl_bound(use_jit):
    max_kl = 1e-3
    step, info = variant(_ng_direction, use_jit)(PARAMS, max_kl)
    s, _ = ravel_pytree(step)
    s = np.asarray(s, np.float64)
    g, _ = ravel_pytree(jax.grad(_loss_fn(PARAMS))(PARAMS))
    fisher = _explicit_fisher(PARAMS)
    # Direction: the damped Fisher solve of −g, scaled so that ½ sᵀFs = max_kl.
    x = np.linalg.solve(fisher + 1e-3 * np.eye(len(s)), -np.asarray(g, np.float64))
    expected = x * np.sqrt(max_kl / (0.5 * x @ fisher @ x))
    np.testing.assert_allclose(s, expected, rtol=2e-2, atol=2e-2 * np.abs(expected).max())
    np.testing.assert_allclose(0.5 * s @ fisher @ s, max_kl, rtol=1e-3)
    np.testing.assert_allclose(info.quadratic_kl, max_kl, rtol=1e-5)
    np.testing.assert_allclose(info.expected_improvement, -np.asarray(g, np.float64) @ s, rtol=1e-4)
    assert float(info.expected_improvement) > 0
    # The true KL of the step agrees with its quadratic model for a small trust region.
    new_params = optax.apply_updates(PARAMS, step)
    np.testing.assert_allclose(_kl_fn(PARAMS)(new_params), max_kl, rtol=0.1)


def _trpo(params, max_kl):
    return natural_gradient_step(_loss_fn(params), _kl_fn(params), params, max_kl)


@jit_variants
def test_natural_gradient_step_improves_surrogate_within_kl(use_jit):
    max_kls = jnp.array([1e-3, 1e-2, 5e-2])
    fn = variant(jax.vmap(_trpo, in_axes=(None, 0)), use_jit)
    new_params, info = fn(PARAMS, max_kls)
    assert np.all(info.line_search.accepted)
    np.testing.assert_allclose(info.natural_gradient.quadratic_kl, max_kls, rtol=1e-4)
    for k, max_kl in enumerate(np.asarray(max_kls)):
        candidate = jax.tree.map(lambda x: x[k], new_params)
        gain = -_loss_fn(PARAMS)(candidate) + _loss_fn(PARAMS)(PARAMS)
        predicted = info.line_search.step_fraction[k] * info.natural_gradient.expected_improvement[k]
        assert float(gain) >= 0.9 * float(predicted)
        assert float(gain) > 0
        assert float(_kl_fn(PARAMS)(candidate)) <= 1.5 * max_kl
    # Larger trust regions buy larger surrogate gains.
    assert np.all(np.diff(np.asarray(info.line_search.improvement)) > 0)


def test_natural_gradient_step_zero_advantages_is_a_no_op():
    loss_fn = _loss_fn(PARAMS, advantages=np.zeros(8, np.float32))
    new_params, info = natural_gradient_step(loss_fn, _kl_fn(PARAMS), PARAMS, 1e-2)
    assert not bool(info.line_search.accepted)
    assert float(info.natural_gradient.quadratic_kl) == 0.0
    for k in PARAMS:
        np.testing.assert_array_equal(new_params[k], PARAMS[k])


def test_natural_gradient_optax_transform_matches_direction_and_chains():
    grads = jax.grad(_loss_fn(PARAMS))(PARAMS)
    tx = natural_gradient(1e-2)
    updates, _ = jax.jit(lambda g, p: tx.update(g, tx.init(p), p, kl_fn=_kl_fn(p)))(grads, PARAMS)
    step, _ = natural_gradient_direction(grads, _kl_fn(PARAMS), PARAMS, 1e-2)
    for k in PARAMS:
        np.testing.assert_allclose(updates[k], step[k], rtol=1e-5, atol=1e-7)
    clipped = clipped_step(tx, 0.01)
    updates, _ = clipped.update(grads, clipped.init(PARAMS), PARAMS, kl_fn=_kl_fn(PARAMS))
    for k in PARAMS:
        np.testing.assert_allclose(updates[k], np.clip(step[k], -0.01, 0.01), rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------------------------
# Evolution strategies.


def _np_centered_ranks(x):
    """rank_i = #{j: x_j < x_i} + (#{j: x_j = x_i} − 1) / 2 (ties share their mean rank), NaN
    lowest, then scaled to [−½, ½]."""
    flat = np.where(np.isnan(x.ravel()), -np.inf, x.ravel()).astype(np.float64)
    ranks = np.array([np.sum(flat < v) + (np.sum(flat == v) - 1) / 2 for v in flat])
    return (ranks / (flat.size - 1) - 0.5).reshape(x.shape)


@jit_variants
@given(x=floats((7,), -3, 3) | floats((2, 3), -1, 1).map(np.round) | floats((5,), -2, 2).map(
    lambda v: np.where(v > 1, np.nan, v).astype(np.float32)))
def test_centered_ranks_match_numpy(use_jit, x):
    out = variant(centered_ranks, use_jit)(x)
    np.testing.assert_allclose(out, _np_centered_ranks(x), rtol=1e-6, atol=1e-7)
    assert abs(float(out.sum())) < 1e-5  # centered
    if len(np.unique(x)) == x.size and not np.isnan(x).any():
        assert float(out.min()) == -0.5 and float(out.max()) == 0.5


def test_centered_ranks_are_exact_for_low_precision_fitness():
    """1000 distinct bfloat16 fitnesses (consecutive bit patterns from 1.0) keep 1000 distinct ranks."""
    bits = np.arange(0x3F80, 0x3F80 + 1000, dtype=np.uint16)[np.random.default_rng(0).permutation(1000)]
    x = jax.lax.bitcast_convert_type(jnp.asarray(bits), jnp.bfloat16)
    out = centered_ranks(x)
    assert out.dtype == jnp.float32 and len(np.unique(np.asarray(out))) == 1000
    np.testing.assert_allclose(out, _np_centered_ranks(np.asarray(x, np.float32)), atol=1e-7)


def test_es_does_not_move_on_tied_fitness():
    """Every pair scoring the same (a flat fitness, common with sparse rewards) carries no signal."""
    params = {"theta": jnp.array([0.5, -1.0, 2.0])}
    for shaping in ("centered_rank", "none"):
        grad, _ = es_gradient(jax.random.PRNGKey(3), lambda p: jnp.float32(1.0), params, num_samples=4,
                              noise_std=0.1, fitness_shaping=shaping)
        np.testing.assert_array_equal(grad["theta"], np.zeros(3))
    # One tied pair among informative ones weighs nothing; the others still move θ.
    fitness = lambda p: jnp.where(p["theta"][0] > 0.5, jnp.round(p["theta"][1]), p["theta"][1])  # noqa: E731
    key = jax.random.PRNGKey(4)
    grad, info = es_gradient(key, fitness, params, num_samples=3, noise_std=0.1)
    eps = np.asarray(jax.random.normal(key, (3, 3)))
    shaped = _np_centered_ranks(np.asarray(info.fitness))
    np.testing.assert_allclose(grad["theta"], (shaped[:3] - shaped[3:]) @ eps / (2 * 3 * 0.1), rtol=1e-5)


QUAD_A = np.diag([1.0, 2.0, 0.5, 1.5]).astype(np.float32)
QUAD_B = np.array([1.0, -2.0, 0.5, 3.0], np.float32)


def _quad_fitness(params):
    """F(θ) = −½ θᵀAθ + bᵀθ, maximised at θ* = A⁻¹b."""
    theta = params["theta"]
    return -0.5 * theta @ QUAD_A @ theta + QUAD_B @ theta


def test_es_gradient_is_unbiased_for_quadratic_fitness():
    params = {"theta": jnp.array([0.5, 0.5, -1.0, 0.0])}
    keys = jax.random.split(jax.random.PRNGKey(0), 100)
    grads, info = jax.jit(jax.vmap(lambda k: es_gradient(
        k, _quad_fitness, params, num_samples=50, noise_std=0.2, fitness_shaping="none")))(keys)
    true = QUAD_B - QUAD_A @ np.asarray(params["theta"])
    # Antithetic pairs on a quadratic give g = (1/n) Σ ε εᵀ ∇F: per pair variance |∇F|² + ∇F_k².
    stderr = np.sqrt((true @ true + true**2) / (100 * 50))
    np.testing.assert_array_less(np.abs(np.mean(grads["theta"], axis=0) - true), 5 * stderr)
    assert info.fitness.shape == (100, 100)


def test_es_gradient_has_aux_returns_each_evaluations_aux():
    """With `has_aux` the fitness function's aux comes back per evaluation (θ + σε_i, then
    θ − σε_i) and the gradient equals the one without aux, bit for bit."""
    key, params, kwargs = jax.random.PRNGKey(4), {"theta": jnp.array([0.3, -0.2, 0.1, 0.0])}, dict(num_samples=5,
                                                                                                  noise_std=0.1)

    def with_aux(p):
        return _quad_fitness(p), {"theta": p["theta"], "norm": jnp.linalg.norm(p["theta"])}

    for use_jit in (False, True):
        gradient = jax.jit(es_gradient, static_argnames=("fitness_fn", "num_samples", "has_aux")) if use_jit \
            else es_gradient
        g, info = gradient(key, with_aux, params, has_aux=True, **kwargs)
        g_plain, info_plain = gradient(key, _quad_fitness, params, **kwargs)
        np.testing.assert_array_equal(g["theta"], g_plain["theta"])
        np.testing.assert_array_equal(info.fitness, info_plain.fitness)
        assert info_plain.aux == () and info.aux["theta"].shape == (10, 4)
        thetas = np.asarray(info.aux["theta"], np.float64)
        np.testing.assert_allclose((thetas[:5] + thetas[5:]) / 2, np.broadcast_to(params["theta"], (5, 4)), atol=1e-6)
        for theta, fitness, norm in zip(thetas, np.asarray(info.fitness), np.asarray(info.aux["norm"])):
            want = -0.5 * theta @ QUAD_A @ theta + QUAD_B @ theta  # the formula at each evaluated point
            np.testing.assert_allclose(fitness, want, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(norm, np.linalg.norm(theta), rtol=1e-5)
    _, stepped = es_step(key, with_aux, params, learning_rate=0.1, has_aux=True, **kwargs)
    assert stepped.aux["norm"].shape == (10,)
    with pytest.raises(ValueError, match="`has_aux`"):
        es_gradient(key, _quad_fitness, params, has_aux=1, **kwargs)
    with pytest.raises(ValueError, match="`fitness_fn` must return a float scalar"):
        es_gradient(key, with_aux, params, **kwargs)


def test_es_gradient_rank_shaping_is_invariant_to_monotone_fitness_transforms():
    key, params = jax.random.PRNGKey(3), {"theta": jnp.zeros(4)}
    kwargs = dict(num_samples=6, noise_std=0.1)
    g, _ = es_gradient(key, _quad_fitness, params, **kwargs)
    g_exp, _ = es_gradient(key, lambda p: jnp.exp(_quad_fitness(p)), params, **kwargs)
    np.testing.assert_allclose(g["theta"], g_exp["theta"], rtol=1e-6)
    # Without shaping the estimate is linear in the fitness values.
    g1, _ = es_gradient(key, _quad_fitness, params, fitness_shaping="none", **kwargs)
    g2, _ = es_gradient(key, lambda p: 2 * _quad_fitness(p) + 5, params, fitness_shaping="none", **kwargs)
    np.testing.assert_allclose(g2["theta"], 2 * g1["theta"], rtol=1e-3, atol=1e-5)
    # The fitness lists θ + σε_i then θ − σε_i: for a linear F each pair sums to 2F(θ).
    _, info = es_gradient(key, lambda p: QUAD_B @ p["theta"], {"theta": jnp.ones(4)}, **kwargs)
    assert info.fitness.shape == (12,)
    np.testing.assert_allclose(info.fitness[:6] + info.fitness[6:], 2 * QUAD_B.sum(), rtol=1e-5)


def test_es_step_improves_quadratic_fitness():
    def train(key):
        def body(params, k):
            params, info = es_step(k, _quad_fitness, params, learning_rate=0.1, num_samples=16, noise_std=0.1)
            return params, jnp.mean(info.fitness)

        return jax.lax.scan(body, {"theta": jnp.zeros(4)}, jax.random.split(key, 150))

    params, fitness = jax.jit(jax.vmap(train))(jax.random.split(jax.random.PRNGKey(1), 2))
    best = float(_quad_fitness({"theta": np.linalg.solve(QUAD_A, QUAD_B)}))
    start = float(_quad_fitness({"theta": jnp.zeros(4)}))
    for seed in range(2):
        final = float(_quad_fitness({"theta": params["theta"][seed]}))
        assert final - start > 0.95 * (best - start)
        assert float(fitness[seed, -10:].mean()) > float(fitness[seed, :10].mean())


# --------------------------------------------------------------------------------------------
# Meta-optimizers: multi_step, optimized_step, clipped_step.

# polyak_sgd needs the `value` extra argument that multi_step passes on.
_MS_OPTIMIZERS = {"adam": optax.adam(0.05), "polyak_sgd": optax.polyak_sgd(max_learning_rate=0.5, f_min=-2.0)}


def _multi(name, params):
    opt = _MS_OPTIMIZERS[name]
    return multi_step(opt, _loss_fn(PARAMS), params, opt.init(params), num_steps=4)


@jit_variants
@pytest.mark.parametrize("name", ["adam", "polyak_sgd"])
def test_multi_step_equals_manual_steps(use_jit, name):
    params, state, losses = variant(_multi, use_jit, static_argnames="name")(name, PARAMS)
    opt, loss_fn = _MS_OPTIMIZERS[name], _loss_fn(PARAMS)
    p, s, expected = PARAMS, opt.init(PARAMS), []
    for _ in range(4):
        loss, g = jax.value_and_grad(loss_fn)(p)
        updates, s = opt.update(g, s, p, value=loss, grad=g, value_fn=loss_fn)
        p, expected = optax.apply_updates(p, updates), expected + [loss]
    np.testing.assert_allclose(losses, expected, rtol=1e-5, atol=1e-6)
    for k in PARAMS:
        np.testing.assert_allclose(params[k], p[k], rtol=1e-5, atol=1e-6)
    assert float(losses[-1]) < float(losses[0])
    same = jax.tree.map(lambda a, b: np.allclose(a, b, rtol=1e-5, atol=1e-6), state, s)
    assert all(jax.tree.leaves(same))


def test_optimized_step_line_searches_the_optimizer_step():
    opt, loss_fn = optax.sgd(20.0), _loss_fn(PARAMS)  # a step far too long: must backtrack
    params, state, info = jax.jit(lambda p: optimized_step(opt, loss_fn, p, opt.init(p)))(PARAMS)
    loss, g = jax.value_and_grad(loss_fn)(PARAMS)
    updates = jax.tree.map(lambda x: -20.0 * x, g)
    expected, ref = line_search(loss_fn, PARAMS, updates)
    assert bool(info.accepted) and float(info.step_fraction) < 1.0
    np.testing.assert_allclose(info.step_fraction, ref.step_fraction)
    for k in PARAMS:
        np.testing.assert_allclose(params[k], expected[k], rtol=1e-5, atol=1e-6)
    assert float(loss_fn(params)) < float(loss)


def _clipped_sgd_update(grads, learning_rate, clipping_value):
    tx = clipped_step(optax.sgd(learning_rate), clipping_value)
    return tx.update(grads, tx.init(grads))[0]


@jit_variants
@given(g=floats((5,), -10, 10), lr=st.floats(0.0625, 2.0, width=32), clip=st.floats(0.0625, 3.0, width=32))
def test_clipped_step_clips_the_step(use_jit, g, lr, clip):
    out = variant(_clipped_sgd_update, use_jit)({"g": g}, jnp.float32(lr), jnp.float32(clip))
    expected = np.clip(-np.float32(lr) * g, -np.float32(clip), np.float32(clip))
    np.testing.assert_allclose(out["g"], expected, rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------------------------
# Errors name the argument.


def _matvec(v):
    return v


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: conjugate_gradient(_matvec, jnp.ones(3), max_iterations=-1), "max_iterations"),
        (lambda: conjugate_gradient(_matvec, jnp.ones(3), damping=-1.0), "damping"),
        (lambda: conjugate_gradient(_matvec, jnp.arange(3)), "b"),
        (lambda: conjugate_gradient(_matvec, jnp.ones(3), x0=jnp.ones(2)), "x0"),
        (lambda: conjugate_gradient(None, jnp.ones(3)), "matvec"),
        (lambda: line_search(_quadratic, {"x": jnp.ones(2)}, {"x": jnp.ones(3)}), "step"),
        (lambda: line_search(_quadratic, {"x": jnp.ones(2)}, {"x": jnp.ones(2)}, mode="cubic"), "mode"),
        (lambda: line_search(_quadratic, {"x": jnp.ones(2)}, {"x": jnp.ones(2)}, parameter=1.0), "parameter"),
        (lambda: line_search(_quadratic, {"x": jnp.ones(2)}, {"x": jnp.ones(2)}, max_iterations=0),
         "max_iterations"),
        (lambda: line_search(_quadratic, {"x": jnp.ones(2)}, {"x": jnp.ones(2)}, constraint_fn=_quadratic),
         "max_constraint"),
        (lambda: line_search(lambda p: p["x"], {"x": jnp.ones(2)}, {"x": jnp.ones(2)}), "loss_fn"),
        (lambda: fisher_vector_product(lambda p: p["w"], PARAMS), "kl_fn"),
        (lambda: natural_gradient_direction(PARAMS, _kl_fn(PARAMS), PARAMS, 0.0), "max_kl"),
        (lambda: natural_gradient_direction({"w": PARAMS["w"]}, _kl_fn(PARAMS), PARAMS, 0.1), "grads"),
        (lambda: natural_gradient_direction(PARAMS, _kl_fn(PARAMS), PARAMS, 0.1, cg_max_iterations=2.5),
         "cg_max_iterations"),
        (lambda: natural_gradient(0.1, cg_damping=-1.0), "cg_damping"),
        (lambda: natural_gradient(float("nan")), "max_kl"),
        (lambda: conjugate_gradient(_matvec, jnp.ones(3), damping=float("nan")), "damping"),
        (lambda: natural_gradient(0.1).update(PARAMS, optax.EmptyState(), PARAMS), "kl_fn"),
        (lambda: natural_gradient_step(_loss_fn(PARAMS), _kl_fn(PARAMS), PARAMS, 0.1, kl_tolerance=0.5),
         "kl_tolerance"),
        (lambda: natural_gradient_step(_loss_fn(PARAMS), _kl_fn(PARAMS), PARAMS, 0.1, ls_mode="x"),
         "ls_mode"),
        (lambda: natural_gradient_step(_loss_fn(PARAMS), _kl_fn(PARAMS), PARAMS, 0.0),
         "natural_gradient_step: .*max_kl"),
        (lambda: natural_gradient_step(_loss_fn(PARAMS), lambda p: p["w"], PARAMS, 0.1),
         "natural_gradient_step: .*kl_fn"),
        (lambda: es_step(jax.random.PRNGKey(0), _quad_fitness, {"theta": jnp.ones(4)}, learning_rate=0.1,
                         num_samples=0, noise_std=0.1), "es_step: .*num_samples"),
        (lambda: centered_ranks(jnp.ones(1)), "x"),
        (lambda: es_gradient(jax.random.PRNGKey(0), _quad_fitness, {"theta": jnp.ones(4)}, num_samples=0,
                             noise_std=0.1), "num_samples"),
        (lambda: es_gradient(jax.random.PRNGKey(0), _quad_fitness, {"theta": jnp.ones(4)}, num_samples=2,
                             noise_std=0.0), "noise_std"),
        (lambda: es_gradient(jax.random.PRNGKey(0), _quad_fitness, {"theta": jnp.ones(4)}, num_samples=2,
                             noise_std=0.1, fitness_shaping="rank"), "fitness_shaping"),
        (lambda: es_gradient(jnp.ones(3), _quad_fitness, {"theta": jnp.ones(4)}, num_samples=2,
                             noise_std=0.1), "key"),
        (lambda: es_gradient(jax.random.PRNGKey(0), lambda p: p["theta"], {"theta": jnp.ones(4)},
                             num_samples=2, noise_std=0.1), "fitness_fn"),
        (lambda: es_step(jax.random.PRNGKey(0), _quad_fitness, {"theta": jnp.ones(4)}, learning_rate=-1.0,
                         num_samples=2, noise_std=0.1), "learning_rate"),
        (lambda: multi_step(optax.sgd(0.1), _quadratic, {"x": jnp.ones(2)}, (), num_steps=0), "num_steps"),
        (lambda: multi_step("adam", _quadratic, {"x": jnp.ones(2)}, ()), "optimizer"),
        (lambda: optimized_step(optax.sgd(0.1), _quadratic, {"x": jnp.ones(2)}, (), ls_parameter=0.0),
         "ls_parameter"),
        (lambda: clipped_step(optax.sgd(0.1), 0.0), "clipping_value"),
    ],
)
def test_errors_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name if ":" in name else f"`{name}"):
        call()
