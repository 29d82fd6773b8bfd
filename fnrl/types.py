"""Types shared by every fnrl module. Kept tiny on purpose: nothing here computes beyond
constructing and describing these containers."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import numpy as np

Array = jax.Array
ArrayLike = Union[jax.Array, np.ndarray, float, int, bool]
PRNGKey = jax.Array
PyTree = Any
Scalar = Union[float, int, jax.Array]


class Spec(NamedTuple):
    """Shape and type of one array of observations or actions (TensorForce C7 / K6 specs).

    The kind follows from the fields: `bool` (dtype bool), `int` with `num_values` choices,
    `float`, or bounded float (`minimum`/`maximum` set, scalars or arrays of `shape`). Nested
    dicts / tuples of specs describe multi-part observations and actions.
    """

    shape: tuple[int, ...]
    dtype: Any
    num_values: Optional[int] = None
    minimum: Any = None
    maximum: Any = None

    @property
    def kind(self) -> str:
        """One of "bool", "int", "float", "bounded"."""
        dtype = np.dtype(self.dtype)
        if dtype == np.bool_:
            return "bool"
        if np.issubdtype(dtype, np.integer):
            return "int"
        return "bounded" if self.minimum is not None else "float"


class EnvSpec(NamedTuple):
    """What an environment consumes and produces (pytrees of `Spec`)."""

    observation: PyTree
    action: PyTree


class TimeStep(NamedTuple):
    """What one `reset` or `step` returns, for one env or a batch of envs (leading axis).

    Alignment: `step(state, a_i)` returns the observation o_{i+1}, the reward r_i of a_i, and
    whether o_{i+1} ended the episode by termination (`terminated`) or by a time limit
    (`truncated`). Every backend resets the way envpool does: the step *after* a terminated or
    truncated one ignores its action and returns the first observation of the next episode with
    reward 0 and `valid=False`; learning must mask that transition out (`valid_t` in
    `fnrl.returns`). `reset` returns `valid=True`.
    """

    observation: PyTree
    reward: Array
    terminated: Array
    truncated: Array
    valid: Array

    @property
    def done(self) -> Array:
        return self.terminated | self.truncated


class Env(NamedTuple):
    """The functional environment protocol shared by both backends.

    `reset(key) -> (state, timestep)` and `step(state, action) -> (state, timestep)`; `spec()`
    gives the `EnvSpec` of one env; `num_envs` is the leading batch size of the timesteps
    (None for an unbatched env). For pure-JAX envs `reset`/`step` are jit-able pure functions
    and `state` is a pytree of arrays; for envpool the state is a host-side handle and `step` runs
    on the host.
    """

    reset: Callable[[PRNGKey], tuple[Any, TimeStep]]
    step: Callable[[Any, PyTree], tuple[Any, TimeStep]]
    spec: Callable[[], EnvSpec]
    num_envs: Optional[int] = None
    is_jax: bool = True
