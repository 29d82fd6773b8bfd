"""Types shared by every fnrl module. Kept tiny on purpose: nothing here computes."""

from __future__ import annotations

from typing import Any, Union

import jax
import numpy as np

Array = jax.Array
ArrayLike = Union[jax.Array, np.ndarray, float, int, bool]
PRNGKey = jax.Array
PyTree = Any
Scalar = Union[float, int, jax.Array]
