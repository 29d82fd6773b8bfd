"""Spreading independent work over devices.

Runs of different seeds or hyperparameters never talk to each other, so they parallelize without
any collective: split the batch axis over the local devices and let each device run `vmap` on its
slice. On a CPU host this is how a batch of runs uses every core: XLA:CPU runs one device's small
ops on one thread, and each extra CPU device (`jax.config.update("jax_num_cpu_devices", n)`, or
`XLA_FLAGS=--xla_force_host_platform_device_count=n`, set before JAX first touches a device) is one
more thread of work.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from fnrl._validation import check_positive_int

BATCH_AXIS = "batch"


def batch_mesh(batch_size: int, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh (`"batch"`) of the most devices whose count divides `batch_size`.

    Slices stay equal, so no device pads or idles: 8 runs on 3 devices use 2 of them (4 runs each),
    and a batch of 1 uses one device.
    """
    batch_size = check_positive_int("batch_mesh", "batch_size", batch_size)
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("batch_mesh: devices must hold at least one device")
    count = max(n for n in range(1, len(devices) + 1) if batch_size % n == 0)
    return Mesh(np.array(devices[:count]), (BATCH_AXIS,))


def vmap_over_devices(fn: Callable, batch_size: int,
                      devices: Sequence[jax.Device] | None = None) -> Callable:
    """`jax.vmap(fn)` over a leading axis of `batch_size`, that axis split across devices.

    Every argument and every output of the returned function carries the batch axis first; device
    k of `batch_mesh(batch_size, devices)` computes `vmap(fn)` of its contiguous slice, so each
    element's result is what `vmap(fn)` gives it, without any communication between devices.
    Call it under `jax.jit`; the outputs come back sharded along the batch axis and can be fed
    straight back in (a scan of training chunks keeps its state on the devices).

    Args:
      fn: a function of unbatched pytrees, returning a pytree of arrays.
      batch_size: the length of the leading axis the result will be called with.
      devices: the devices to spread over (default: `jax.local_devices()`).
    """
    mesh = batch_mesh(batch_size, devices)
    batched = jax.vmap(fn)
    if mesh.size == 1:
        return batched
    spec = PartitionSpec(BATCH_AXIS)

    def call(*args):
        sizes = {x.shape[0] if np.ndim(x) else None for x in jax.tree.leaves(args)}
        if sizes != {batch_size}:
            raise ValueError(f"vmap_over_devices: every argument leaf needs a leading axis of "
                             f"batch_size={batch_size}; found leading sizes {sorted(sizes, key=str)}")
        # The slices never communicate, so shard_map's check of which values vary across devices
        # protects nothing here; it rejects `lax.cond`s whose branches mix per-slice and constant
        # values, which recipes' env resets contain.
        sharded = jax.shard_map(batched, mesh=mesh, in_specs=(spec,) * len(args), out_specs=spec,
                                check_vma=False)
        return sharded(*args)

    return call


def batch_sharding(batch_size: int, devices: Sequence[jax.Device] | None = None) -> NamedSharding:
    """The sharding `vmap_over_devices` gives its outputs: the leading axis split over
    `batch_mesh(batch_size, devices)` (for `jax.device_put` of states restored from disk)."""
    return NamedSharding(batch_mesh(batch_size, devices), PartitionSpec(BATCH_AXIS))
