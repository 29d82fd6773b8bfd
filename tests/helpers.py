"""Shared test utilities: jit/no-jit variants and random episode-boundary strategies."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fnrl.envs.wrappers import episode_stats
from fnrl.rollout import PolicyOutput, rollout_init, unroll
from fnrl.types import Env

# Parametrize a test over running the function under `jax.jit` and eagerly.
jit_variants = pytest.mark.parametrize("use_jit", [False, True], ids=["nojit", "jit"])


def variant(fn, use_jit: bool, static_argnames=()):
    """Returns `fn` jitted (Python-config arguments named in `static_argnames`) or as is.

    Pass a module-level function, not a lambda made inside the test: the jitted wrapper is
    memoized per function, so hypothesis examples of an already-seen shape reuse the compilation.
    """
    if not use_jit:
        return fn
    return _jitted(fn, tuple(sorted(static_argnames)) if not isinstance(static_argnames, str) else (static_argnames,))


@functools.lru_cache(maxsize=None)
def _jitted(fn, static_argnames):
    return jax.jit(fn, static_argnames=static_argnames)


def floats(shape, low=-5.0, high=5.0):
    """A float32 array strategy with bounded, finite entries (bounds rounded to float32)."""
    low, high = float(np.float32(low)), float(np.float32(high))
    return hnp.arrays(
        np.float32, shape, elements=st.floats(low, high, width=32, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    )


@st.composite
def episode_flags(draw, shape, p_term=0.15, p_trunc=0.1, p_invalid=0.1):
    """Random terminated / truncated / valid flags of `shape` (time-major).

    A step is never both terminated and truncated. Invalid steps are drawn anywhere, including
    right after a done step (envpool's reset step) and elsewhere.
    """
    size = int(np.prod(shape))
    u = np.asarray(draw(hnp.arrays(np.float64, (3, size), elements=st.floats(0, 1)))).reshape((3,) + tuple(shape))
    terminated = u[0] < p_term
    truncated = (u[1] < p_trunc) & ~terminated
    valid = u[2] >= p_invalid
    return terminated, truncated, valid


# --------------------------------------------------------------------------------------------
# TensorForce's MinimalTest pass rule (R1), judged on a trained policy.


def episode_ratios(act, params, env: Env, key, ticks: int = 200):
    """Plays `act` stochastically (TensorForce's `deterministic=False`) in `env` for `ticks` ticks;
    returns `finished [T, B]` and the return / length of the episode finishing there."""

    def policy(k, observation, memory, action=None):
        return PolicyOutput(act(params, k, observation, False), memory)

    _, traj = unroll(policy, env, rollout_init(env, key), ticks, env_info=episode_stats)
    finished = (traj.terminated | traj.truncated) & traj.valid
    return finished, traj.env_info.last_return / jnp.maximum(traj.env_info.last_length, 1)


def tensorforce_passes(finished: np.ndarray, ratios: np.ndarray, threshold: float = 0.8) -> bool:
    """R1's criterion: at least 100 finished episodes, and each of the last 100 (in time order)
    earned return / length >= `threshold`."""
    done = np.asarray(ratios)[np.asarray(finished)]
    return done.size >= 100 and bool(np.all(done[-100:] >= threshold))
