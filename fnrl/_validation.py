"""Argument checks shared by fnrl's public functions.

Every check runs at trace time (shapes and dtypes are static under `jit`) and raises a
`ValueError` that names the offending argument and states what was expected, so a shape mix-up
fails loudly instead of broadcasting silently.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax.numpy as jnp
import numpy as np

_KINDS = {
    "float": ("floating", "a floating-point"),
    "int": ("integer", "an integer"),
    "bool": ("bool", "a boolean"),
    "numeric": ("number", "a numeric"),
    "bool_or_numeric": ("any", "a boolean or numeric"),
}


def _dtype_ok(dtype: np.dtype, kind: str) -> bool:
    if kind == "float":
        return jnp.issubdtype(dtype, jnp.floating)
    if kind == "int":
        return jnp.issubdtype(dtype, jnp.integer)
    if kind == "bool":
        return dtype == jnp.bool_
    if kind == "numeric":
        return jnp.issubdtype(dtype, jnp.number)
    if kind == "bool_or_numeric":
        return dtype == jnp.bool_ or jnp.issubdtype(dtype, jnp.number)
    raise ValueError(f"unknown dtype kind {kind!r}")


def check_array(
    name: str,
    x: Any,
    *,
    kind: str = "float",
    rank: int | Sequence[int] | None = None,
    min_rank: int | None = None,
    shape: Sequence[int | None] | None = None,
    fn: str | None = None,
) -> jnp.ndarray:
    """Converts `x` to a jax array and checks its dtype kind, rank and shape.

    Args:
      name: the argument's name, used in the error message.
      x: the value to check (array, numpy array or Python scalar).
      kind: one of "float", "int", "bool", "numeric", "bool_or_numeric".
      rank: exact rank, or a collection of accepted ranks.
      min_rank: minimum rank.
      shape: expected shape; `None` entries match any size.
      fn: the public function's name, prefixed to the message.

    Returns:
      `x` as a jax array.

    Raises:
      ValueError: naming `name` and the expectation it broke.
    """
    where = f"{fn}: " if fn else ""
    try:
        arr = jnp.asarray(x)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}argument `{name}` must be an array, got {type(x).__name__}") from err
    if not _dtype_ok(arr.dtype, kind):
        raise ValueError(
            f"{where}argument `{name}` must be {_KINDS[kind][1]} array, got dtype {arr.dtype}"
        )
    if rank is not None:
        ranks = (rank,) if isinstance(rank, int) else tuple(rank)
        if arr.ndim not in ranks:
            want = " or ".join(str(r) for r in ranks)
            raise ValueError(
                f"{where}argument `{name}` must have rank {want}, got shape {tuple(arr.shape)}"
            )
    if min_rank is not None and arr.ndim < min_rank:
        raise ValueError(
            f"{where}argument `{name}` must have rank >= {min_rank}, got shape {tuple(arr.shape)}"
        )
    if shape is not None:
        ok = len(shape) == arr.ndim and all(s is None or s == d for s, d in zip(shape, arr.shape))
        if not ok:
            want = tuple("?" if s is None else s for s in shape)
            raise ValueError(
                f"{where}argument `{name}` must have shape {want}, got {tuple(arr.shape)}"
            )
    return arr


def check_same_shape(fn: str | None, **arrays: jnp.ndarray) -> None:
    """Raises a ValueError naming the arguments if their shapes differ."""
    shapes = {k: tuple(jnp.shape(v)) for k, v in arrays.items()}
    if len(set(shapes.values())) > 1:
        where = f"{fn}: " if fn else ""
        listed = ", ".join(f"`{k}` {s}" for k, s in shapes.items())
        raise ValueError(f"{where}arguments must have the same shape, got {listed}")


def check_broadcastable(fn: str | None, name: str, x: jnp.ndarray, target_shape: Sequence[int]) -> jnp.ndarray:
    """Broadcasts `x` to `target_shape`, raising a ValueError naming `name` if it cannot."""
    try:
        return jnp.broadcast_to(x, tuple(target_shape))
    except ValueError as err:
        where = f"{fn}: " if fn else ""
        raise ValueError(
            f"{where}argument `{name}` of shape {tuple(jnp.shape(x))} does not broadcast to "
            f"{tuple(target_shape)}"
        ) from err


def check_static_range(
    fn: str | None, name: str, value: Any, low: float | None = None, high: float | None = None
) -> None:
    """Checks a Python (static) number lies in [low, high] (NaN does not); traced values are not
    checked."""
    if not isinstance(value, (int, float, np.number)):
        return
    where = f"{fn}: " if fn else ""
    if (low is not None and not value >= low) or (high is not None and not value <= high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{where}argument `{name}` must lie in [{lo}, {hi}], got {value}")


def is_positive_int_sequence(value: Any) -> bool:
    """A tuple or list of Python ints >= 1 (no bools): a shape, or layer sizes."""
    return isinstance(value, (tuple, list)) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)


def check_positive_int(fn: str | None, name: str, value: Any) -> int:
    """Checks a static count (capacity, batch size, width) is an int >= 1 (not a bool) and
    returns it as a Python int."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        where = f"{fn}: " if fn else ""
        raise ValueError(f"{where}argument `{name}` must be a positive int, got {value!r}")
    return int(value)


# Keys every TensorForce layer, exploration and preprocessor spec may carry (TF variable scopes,
# TensorBoard labels): no meaning in fnrl, so the spec parsers accept and drop them.
TENSORFORCE_SCOPE_KEYS = ("scope", "summary_labels")
