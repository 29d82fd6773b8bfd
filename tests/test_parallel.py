"""fnrl.parallel: batches of independent runs split over devices.

The suite's process has one CPU device, so the multi-device checks run in a child process with
four host devices.
"""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnrl

CHILD = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_num_cpu_devices", 4)
    import fnrl

    assert jax.device_count() == 4
    assert [fnrl.batch_mesh(n).size for n in (1, 2, 3, 4, 6, 8, 9)] == [1, 2, 3, 4, 3, 4, 3]
    assert fnrl.batch_mesh(8, jax.devices()[:3]).size == 2

    def run(x, key):
        # A scan with a data-dependent cond, as a training chunk has (an env reset).
        def step(c, k):
            c = jax.lax.cond(c.sum() > 3.0, lambda c: c * 0.0, lambda c: c + jax.random.uniform(k, c.shape), c)
            return c, c.sum()
        return jax.lax.scan(step, x, jax.random.split(key, 20))

    xs, keys = jnp.zeros((8, 5)), jax.random.split(jax.random.PRNGKey(0), 8)
    want = jax.jit(jax.vmap(run))(xs, keys)
    got = jax.jit(fnrl.vmap_over_devices(run, 8))(xs, keys)
    for w, g in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
        np.testing.assert_array_equal(np.asarray(w), np.asarray(g))
    assert len(got[0].sharding.device_set) == 4
    again = jax.jit(fnrl.vmap_over_devices(run, 8))(got[0], keys)  # outputs feed back in
    assert again[0].shape == (8, 5)
    try:
        fnrl.vmap_over_devices(run, 8)(jnp.zeros((4, 5)), keys)
    except ValueError as error:
        assert "batch_size=8" in str(error), error
    else:
        raise AssertionError("a wrong leading size was accepted")
    print("ok")
""")


def test_vmap_over_devices_matches_vmap_on_four_devices():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_one_device_is_plain_vmap():
    fn = lambda x: jnp.sin(x) * 2.0  # noqa: E731
    xs = jnp.arange(6.0).reshape(3, 2)
    got = jax.jit(fnrl.vmap_over_devices(fn, 3, jax.devices()[:1]))(xs)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(jax.vmap(fn)(xs)))
    assert fnrl.batch_mesh(3, jax.devices()[:1]).size == 1
    assert fnrl.batch_sharding(3, jax.devices()[:1]).mesh.size == 1


@pytest.mark.parametrize("bad", [0, -2, 1.5])
def test_batch_mesh_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="batch_mesh: argument `batch_size` must be a positive int"):
        fnrl.batch_mesh(bad)
