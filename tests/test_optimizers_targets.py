"""Tests for the target-network section of fnrl.optimizers: hard, periodic, Polyak, partial."""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnrl.optimizers import partial_target_update, periodic_target_update, polyak_target_update
from tests.helpers import floats, jit_variants, variant

SHAPES = {"w": (3, 2), "b": (2,)}
MODULES = ["torso/~/linear_0", "torso/~/linear_1", "head", "head_aux"]


def _tree(w, b):
    return {"layer": {"w": w, "b": b}}


def _np_polyak(target, online, tau):
    """τ·online + (1 − τ)·target, in float32 like the leaves."""
    tau = np.float32(tau)
    return {k: (tau * online[k] + (np.float32(1) - tau) * target[k]).astype(np.float32) for k in target}


@jit_variants
@given(tw=floats(SHAPES["w"]), tb=floats(SHAPES["b"]), ow=floats(SHAPES["w"]), ob=floats(SHAPES["b"]),
       tau=st.floats(0.0, 1.0, width=32))
def test_polyak_matches_numpy(use_jit, tw, tb, ow, ob, tau):
    fn = variant(polyak_target_update, use_jit)
    out = fn(_tree(tw, tb), _tree(ow, ob), jnp.float32(tau))
    expected = _np_polyak({"w": tw, "b": tb}, {"w": ow, "b": ob}, tau)
    for k in ("w", "b"):
        assert out["layer"][k].dtype == jnp.float32
        np.testing.assert_allclose(out["layer"][k], expected[k], rtol=1e-6, atol=1e-6)


@jit_variants
@given(tw=floats(SHAPES["w"]), tb=floats(SHAPES["b"]), ow=floats(SHAPES["w"]), ob=floats(SHAPES["b"]),
       step=st.integers(0, 40), period=st.integers(1, 7), tau=st.sampled_from([1.0, 0.25]))
def test_periodic_matches_numpy(use_jit, tw, tb, ow, ob, step, period, tau):
    fn = variant(periodic_target_update, use_jit, static_argnames="tau")
    out = fn(_tree(tw, tb), _tree(ow, ob), jnp.int32(step), period, tau)
    target, online = {"w": tw, "b": tb}, {"w": ow, "b": ob}
    expected = _np_polyak(target, online, tau) if step % period == 0 else target
    for k in ("w", "b"):
        np.testing.assert_allclose(out["layer"][k], expected[k], rtol=1e-6, atol=1e-6)


def test_periodic_syncs_at_step_zero_and_every_period_under_vmap():
    target, online = _tree(jnp.zeros((3, 2)), jnp.zeros(2)), _tree(jnp.ones((3, 2)), jnp.ones(2))
    steps = jnp.arange(10)
    out = jax.jit(jax.vmap(periodic_target_update, in_axes=(None, None, 0, None)))(target, online, steps, 4)
    np.testing.assert_array_equal(out["layer"]["b"][:, 0], [1, 0, 0, 0, 1, 0, 0, 0, 1, 0])


def test_polyak_vmaps_over_tau():
    target, online = _tree(jnp.zeros((3, 2)), jnp.zeros(2)), _tree(jnp.ones((3, 2)), jnp.full(2, 2.0))
    taus = jnp.array([0.0, 0.5, 1.0])
    out = jax.jit(jax.vmap(polyak_target_update, in_axes=(None, None, 0)))(target, online, taus)
    np.testing.assert_allclose(out["layer"]["b"][:, 1], [0.0, 1.0, 2.0])


def test_hard_copy_is_exact_for_any_dtype():
    target = {"count": jnp.int32(3), "w": jnp.array([np.nan, np.inf], jnp.float32), "m": jnp.zeros(2, bool)}
    online = {"count": jnp.int32(9), "w": jnp.array([1.5, -2.0], jnp.float32), "m": jnp.ones(2, bool)}
    for out in (polyak_target_update(target, online, 1.0), periodic_target_update(target, online, 6, 3)):
        jax.tree.map(np.testing.assert_array_equal, out, online)
        assert jax.tree.map(lambda x: x.dtype, out) == jax.tree.map(lambda x: x.dtype, online)
    kept = periodic_target_update(target, online, 7, 3)
    jax.tree.map(np.testing.assert_array_equal, kept, target)


def test_soft_update_keeps_low_precision_dtype():
    target, online = {"w": jnp.zeros(4, jnp.bfloat16)}, {"w": jnp.ones(4, jnp.bfloat16)}
    out = jax.jit(polyak_target_update)(target, online, jnp.float32(0.5))
    assert out["w"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(out["w"], np.float32), 0.5)


def _params(key) -> dict:
    """Haiku-style params: a two-layer torso, a head and a look-alike `head_aux` module."""
    keys = jax.random.split(key, len(MODULES))
    return {m: {"w": jax.random.normal(k, (2, 2)), "b": jax.random.normal(k, (2,)) + 1} for m, k in zip(MODULES, keys)}


@jit_variants
@pytest.mark.parametrize("shared", [("torso",), "torso", "predicate"], ids=["tuple", "str", "predicate"])
def test_partial_shares_bottom_and_polyaks_the_rest(use_jit, shared):
    shared = _torso_predicate if shared == "predicate" else shared
    target, online = _params(jax.random.key(0)), _params(jax.random.key(1))
    fn = variant(partial_target_update, use_jit, static_argnames="shared")
    out = fn(target, online, shared, jnp.float32(0.1))
    assert sorted(out) == sorted(MODULES)
    for module in MODULES:
        for name in ("w", "b"):
            if module.startswith("torso"):  # shared: identical to online, whatever tau
                np.testing.assert_array_equal(out[module][name], online[module][name])
            else:
                want = 0.1 * np.asarray(online[module][name]) + 0.9 * np.asarray(target[module][name])
                np.testing.assert_allclose(out[module][name], want, rtol=1e-6)


def _torso_predicate(module_name, name, value):
    return module_name.startswith("torso/")


@jit_variants
def test_partial_periodic_syncs_the_rest_only_when_due(use_jit):
    target, online = _params(jax.random.key(0)), _params(jax.random.key(1))
    fn = variant(partial_target_update, use_jit, static_argnames="shared")
    for step, due in [(0, True), (7, False), (10, True)]:
        out = fn(target, online, ("torso/~/linear_0", "head"), step=jnp.int32(step), period=5)
        for module in MODULES:
            source = online if module in ("torso/~/linear_0", "head") or due else target
            jax.tree.map(np.testing.assert_array_equal, out[module], source[module])


def test_partial_prefix_matches_whole_components_only():
    target, online = _params(jax.random.key(0)), _params(jax.random.key(1))
    out = partial_target_update(target, online, "head", 0.0)  # tau 0: non-shared stay as target
    jax.tree.map(np.testing.assert_array_equal, out["head"], online["head"])
    jax.tree.map(np.testing.assert_array_equal, out["head_aux"], target["head_aux"])
    with pytest.raises(ValueError, match="argument `shared` prefix 'torso/~/linear'"):
        partial_target_update(target, online, "torso/~/linear", 0.5)
    with pytest.raises(ValueError, match="argument `shared`"):
        partial_target_update(target, online, [3], 0.5)
    with pytest.raises(ValueError, match="argument `target`"):
        partial_target_update({"w": jnp.zeros(2)}, {"w": jnp.zeros(2)}, "w")


def test_partial_works_on_real_haiku_params():
    net = hk.without_apply_rng(hk.transform(lambda x: hk.nets.MLP([4, 4, 2])(x)))
    online = net.init(jax.random.key(0), jnp.zeros((1, 3)))
    target = jax.tree.map(jnp.zeros_like, online)
    out = partial_target_update(target, online, "mlp/~/linear_0", 0.5)
    x = jnp.ones((1, 3))
    np.testing.assert_array_equal(out["mlp/~/linear_0"]["w"], online["mlp/~/linear_0"]["w"])
    np.testing.assert_allclose(out["mlp/~/linear_2"]["w"], 0.5 * online["mlp/~/linear_2"]["w"])
    assert net.apply(out, x).shape == (1, 2)


def test_argument_errors():
    target, online = _tree(jnp.zeros((3, 2)), jnp.zeros(2)), _tree(jnp.ones((3, 2)), jnp.ones(2))
    with pytest.raises(ValueError, match="argument `online` must have the tree structure"):
        polyak_target_update(target, {"layer": {"w": jnp.ones((3, 2))}}, 0.5)
    with pytest.raises(ValueError, match=r"argument `online` at \['layer'\]\['b'\] has float32\[3\]"):
        polyak_target_update(target, _tree(jnp.ones((3, 2)), jnp.ones(3)), 0.5)
    with pytest.raises(ValueError, match=r"argument `online` at \['layer'\]\['b'\] has int32\[2\]"):
        polyak_target_update(target, _tree(jnp.ones((3, 2)), jnp.ones(2, jnp.int32)), 0.5)
    with pytest.raises(ValueError, match="argument `tau` must lie in"):
        polyak_target_update(target, online, 1.5)
    with pytest.raises(ValueError, match="argument `tau` must have rank 0"):
        polyak_target_update(target, online, jnp.ones(2))
    with pytest.raises(ValueError, match=r"leaf \['n'\] has dtype int32; a soft update"):
        polyak_target_update({"n": jnp.int32(0)}, {"n": jnp.int32(1)}, 0.5)
    with pytest.raises(ValueError, match="argument `step` must be an integer"):
        periodic_target_update(target, online, 1.0, 2)
    with pytest.raises(ValueError, match="argument `period` must lie in"):
        periodic_target_update(target, online, 1, 0)
