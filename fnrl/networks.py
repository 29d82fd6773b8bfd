"""Networks as haiku modules: torsos, policy/value heads, AgentNet's one-step memory layers and
augmentations, and TensorForce's layered network specs.

Every module here is an `hk.Module`: build it inside a function wrapped by `hk.transform` to get
pure `init(key, ...) -> params` and `apply(params, key, ...) -> outputs`, which work under
`jax.jit` and `jax.vmap`. Contents (seed-features rows in brackets):

* Torsos: `MLP`, `NatureCNN` (Mnih et al. 2015), `ImpalaCNN` (Espeholt et al. 2018), `Embedding`
  for integer observations.
* Heads: `QHead`, `DuelingQHead` (+ `dueling_combine`), `CategoricalPolicyHead`,
  `BernoulliPolicyHead`, `GaussianPolicyHead`, `BetaPolicyHead`, `ValueHead`, `NAFHead`,
  `DistributionalQHead` (C51 logits or quantiles, `[..., A, N]`). Gaussian / beta heads return
  `fnrl.distributions` parameters directly.
* Memory cells [F1-F3, F35] with an explicit state: `RNNCell`, `GRUCell` and `LSTMCell` (with
  peepholes). They are `hk.RNNCore`s: `cell(inputs, prev_state) -> (output, new_state)` and
  `cell.initial_state(batch_size)`, so `hk.dynamic_unroll` or `fnrl.rollout` can roll them.
  `inputs` is one array or a tuple of arrays (AgentNet's `input_or_inputs`, one weight matrix
  each); any leading batch shape works.
* Gradient clipping [N9, F35]: `clip_gradient(x, bound)`, the identity whose backward pass clips
  the incoming gradient elementwise to [-bound, bound] (theano's `grad_clip`). The cells apply it
  where AgentNet does (see each cell; `grad_clipping=0` or None turns it off).
* Augmentations [F4-F9] as pure state updates: `window_augmentation`, `stack_augmentation` and
  `counter` return an `Augmentation(init, update)` pair; `switch` is a per-sample `where`; `Gate`
  (AgentNet's GateLayer) and `BahdanauAttention` are modules.
* TensorForce specs [F15-F31]: `network_from_spec(layers_spec)` builds a `LayeredNetwork` from a
  list of layer dicts (`{"type": "dense", "size": 32}`), with TensorForce's defaults and
  initializers; `type` may also be a callable (a custom layer class). Internal LSTM state is an
  explicit carry (`initial_internals`, `return_internals=True`), dropout needs
  `is_training=True` and an rng, and `regularization_loss()` gives the layers' l1/l2 penalty.

Network cloning (AgentNet `clone_network`, N3) needs no function: applying the same `params` to
new inputs is a clone with shared weights (DDPG's critic on the actor's action), and keeping the
current `params` pytree is a frozen copy (a target network) since JAX arrays are immutable;
`hk.data_structures.merge/partition` rewire part of a network.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, NamedTuple, Sequence

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from fnrl._validation import TENSORFORCE_SCOPE_KEYS, check_array, check_same_shape
from fnrl.distributions import (
    TENSORFORCE_MAX_LOG_STD,
    TENSORFORCE_MIN_LOG_STD,
    BetaParams,
    GaussianParams,
    beta_params_from_outputs,
    gaussian_params_from_outputs,
)
from fnrl.types import Array, ArrayLike
from fnrl.value_learning import lower_triangular

Activation = Callable[[Array], Array]
Initializer = hk.initializers.Initializer

# Lasagne's defaults, which AgentNet's layers use: GlorotUniform, Normal(std=0.01), Constant(0).
_GLOROT_UNIFORM = hk.initializers.VarianceScaling(1.0, "fan_avg", "uniform")
_NORMAL_001 = hk.initializers.RandomNormal(stddev=0.01)
_ZEROS = hk.initializers.Constant(0.0)

# --------------------------------------------------------------------------------------------
# Shared checks.
# --------------------------------------------------------------------------------------------


def _fail(fn: str, message: str) -> None:
    raise ValueError(f"{fn}: {message}")


def _check_size(fn: str, name: str, value: Any) -> int:
    """A static Python int >= 1 (a layer size fixed at trace time)."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        _fail(fn, f"argument `{name}` must be a static Python int >= 1, got {value!r}")
    return int(value)


def _check_bound(fn: str, name: str, value: Any, allow_off: bool) -> float | None:
    """A static positive number; 0 / None mean "off" when `allow_off`."""
    if allow_off and not value:
        return None
    if not isinstance(value, (int, float, np.number)) or isinstance(value, bool) or not value > 0:
        off = " (or 0 / None for no clipping)" if allow_off else ""
        _fail(fn, f"argument `{name}` must be a static number > 0{off}, got {value!r}")
    return float(value)


def _features(fn: str, x: ArrayLike, name: str = "features") -> Array:
    return check_array(name, x, kind="float", min_rank=1, fn=fn)


# --------------------------------------------------------------------------------------------
# Gradient clipping (AgentNet `clip_grads`, N9; per-cell `grad_clipping`, F35).
# --------------------------------------------------------------------------------------------


@jax.custom_vjp
def _clip_gradient(x: Array, bound: Array) -> Array:
    return x


def _clip_gradient_fwd(x: Array, bound: Array) -> tuple[Array, Array]:
    return x, bound


def _clip_gradient_bwd(bound: Array, g: Array) -> tuple[Array, Array]:
    return jnp.clip(g, -bound, bound), jnp.zeros_like(bound)


_clip_gradient.defvjp(_clip_gradient_fwd, _clip_gradient_bwd)


def clip_gradient(x: ArrayLike, bound: float) -> Array:
    """Identity forward; backward clips the incoming gradient elementwise (AgentNet `clip_grads`,
    theano's `grad_clip`):

        y = x,    dL/dx = clip(dL/dy, -bound, bound).

    Gradients reaching `x` through *other* paths are not clipped. Used by the memory cells to
    stop exploding gradients through time (Pascanu, Mikolov & Bengio 2013, sec. 3.2).

    Args:
      x: float array.
      bound: static number > 0.
    """
    fn = "clip_gradient"
    x = check_array("x", x, kind="float", fn=fn)
    bound = _check_bound(fn, "bound", bound, allow_off=False)
    return _clip_gradient(x, jnp.asarray(bound, x.dtype))


def _maybe_clip(x: Array, bound: float | None) -> Array:
    return x if bound is None else _clip_gradient(x, jnp.asarray(bound, x.dtype))


# --------------------------------------------------------------------------------------------
# Torsos.
# --------------------------------------------------------------------------------------------


class MLP(hk.Module):
    """A stack of dense layers: x -> act(x W_1 + b_1) -> ... (TensorForce `dense` layers).

    Args:
      hidden_sizes: the layer widths.
      activation: a callable or a TensorForce activation name (`"relu"`, `"tanh"`, ...).
      with_bias: add biases (TensorForce `bias=True/False`).
      activate_final: apply the activation after the last layer too (a torso does).
      w_init / b_init: haiku initializers (haiku's defaults when None).
    """

    def __init__(self, hidden_sizes: Sequence[int], activation: Activation | str = jax.nn.relu,
                 with_bias: bool = True, activate_final: bool = True,
                 w_init: Initializer | None = None, b_init: Initializer | None = None,
                 name: str | None = None):
        super().__init__(name=name)
        self.hidden_sizes = [_check_size("MLP", f"hidden_sizes[{i}]", s)
                             for i, s in enumerate(hidden_sizes)]
        self.activation = _activation("MLP", "activation", activation)
        self.with_bias, self.activate_final = with_bias, activate_final
        self.w_init, self.b_init = w_init, b_init

    def __call__(self, x: ArrayLike) -> Array:
        """x `[..., F]` -> `[..., hidden_sizes[-1]]`."""
        x = _features("MLP", x, "x")
        for i, size in enumerate(self.hidden_sizes):
            x = hk.Linear(size, with_bias=self.with_bias, w_init=self.w_init,
                          b_init=self.b_init, name=f"linear_{i}")(x)
            if self.activate_final or i < len(self.hidden_sizes) - 1:
                x = self.activation(x)
        return x


def _apply_to_images(fn: str, module: Callable[[Array], Array], x: ArrayLike) -> Array:
    """Runs `module` on `[..., H, W, C]` images by folding the leading axes into one batch."""
    x = check_array("x", x, kind="float", min_rank=3, fn=fn)
    lead = x.shape[:-3]
    out = module(x.reshape((-1,) + x.shape[-3:]))
    return out.reshape(lead + out.shape[1:])


class NatureCNN(hk.Module):
    """The DQN torso of Mnih et al. 2015 ("Human-level control through deep RL", Methods):
    conv 32x8x8 stride 4, conv 64x4x4 stride 2, conv 64x3x3 stride 1 (VALID padding, ReLU),
    then dense 512 + ReLU. Input: float images `[..., H, W, C]` (scale pixels beforehand, e.g.
    by 1/255), output `[..., 512]`.
    """

    def __call__(self, x: ArrayLike) -> Array:
        def torso(images: Array) -> Array:
            for channels, kernel, stride in ((32, 8, 4), (64, 4, 2), (64, 3, 1)):
                images = jax.nn.relu(hk.Conv2D(channels, kernel, stride, padding="VALID")(images))
            return jax.nn.relu(hk.Linear(512)(images.reshape(images.shape[0], -1)))

        return _apply_to_images("NatureCNN", torso, x)


class ImpalaCNN(hk.Module):
    """The IMPALA residual torso (Espeholt et al. 2018, fig. 3): per stack, conv 3x3 + max-pool
    3x3 stride 2 (SAME) and `num_blocks` residual blocks x + conv(relu(conv(relu(x)))); then
    ReLU, flatten, dense `hidden_size` + ReLU. Input float images `[..., H, W, C]`.
    """

    def __init__(self, channels: Sequence[int] = (16, 32, 32), num_blocks: int = 2,
                 hidden_size: int = 256, name: str | None = None):
        super().__init__(name=name)
        self.channels = [_check_size("ImpalaCNN", f"channels[{i}]", c) for i, c in enumerate(channels)]
        self.num_blocks = _check_size("ImpalaCNN", "num_blocks", num_blocks)
        self.hidden_size = _check_size("ImpalaCNN", "hidden_size", hidden_size)

    def __call__(self, x: ArrayLike) -> Array:
        def torso(h: Array) -> Array:
            for channels in self.channels:
                h = hk.Conv2D(channels, 3, padding="SAME")(h)
                h = hk.max_pool(h, (1, 3, 3, 1), (1, 2, 2, 1), padding="SAME")
                for _ in range(self.num_blocks):
                    y = hk.Conv2D(channels, 3, padding="SAME")(jax.nn.relu(h))
                    h = h + hk.Conv2D(channels, 3, padding="SAME")(jax.nn.relu(y))
            h = jax.nn.relu(h).reshape(h.shape[0], -1)
            return jax.nn.relu(hk.Linear(self.hidden_size)(h))

        return _apply_to_images("ImpalaCNN", torso, x)


class Embedding(hk.Module):
    """Integer ids `[...]` -> vectors `[..., size]` (TensorForce `embedding`: a lookup table of
    `indices` rows initialized N(0, min(0.1, sqrt(1/size))^2)). Ids outside [0, indices) cannot be
    checked at trace time: they look up NaN rows, so a bad id fails loudly."""

    def __init__(self, indices: int, size: int, name: str | None = None):
        super().__init__(name=name)
        self.indices = _check_size("Embedding", "indices", indices)
        self.size = _check_size("Embedding", "size", size)

    def __call__(self, ids: ArrayLike) -> Array:
        ids = check_array("ids", ids, kind="int", fn="Embedding")
        stddev = min(0.1, math.sqrt(1.0 / self.size))
        table = hk.get_parameter("embeddings", [self.indices, self.size], jnp.float32,
                                 init=hk.initializers.RandomNormal(stddev))
        return table.at[ids].get(mode="fill", fill_value=jnp.nan, wrap_negative_indices=False)


# --------------------------------------------------------------------------------------------
# Heads.
# --------------------------------------------------------------------------------------------


def dueling_combine(value: ArrayLike, advantages: ArrayLike) -> Array:
    """Dueling aggregation (Wang et al. 2016, eq. 9; TensorForce `dueling`):

        Q(s, a) = V(s) + A(s, a) - mean_a' A(s, a'),

    so that mean_a Q(s, a) = V(s) and V, A are identifiable.

    Args:
      value: V(s), float `[...]`.
      advantages: A(s, .), float `[..., A]`.
    """
    fn = "dueling_combine"
    advantages = check_array("advantages", advantages, kind="float", min_rank=1, fn=fn)
    value = check_array("value", value, kind="float", fn=fn)
    if value.shape != advantages.shape[:-1]:
        _fail(fn, f"argument `value` must have shape {advantages.shape[:-1]} (`advantages` "
                  f"without its action axis), got {value.shape}")
    return value[..., None] + advantages - jnp.mean(advantages, axis=-1, keepdims=True)


class _LinearHead(hk.Module):
    """features `[..., F]` -> `[..., size]` through one linear layer."""

    def __init__(self, size: int, w_init: Initializer | None = None, name: str | None = None):
        super().__init__(name=name)
        self.size = _check_size(type(self).__name__, "size", size)
        self.w_init = w_init

    def __call__(self, features: ArrayLike) -> Array:
        features = _features(type(self).__name__, features)
        return hk.Linear(self.size, w_init=self.w_init)(features)


class QHead(_LinearHead):
    """Q-values `[..., num_actions]` = linear(features) (DQN's output layer)."""

    def __init__(self, num_actions: int, w_init: Initializer | None = None, name: str | None = None):
        super().__init__(num_actions, w_init, name)


class CategoricalPolicyHead(_LinearHead):
    """Policy logits `[..., num_actions]` for `fnrl.categorical()`."""

    def __init__(self, num_actions: int, w_init: Initializer | None = None, name: str | None = None):
        super().__init__(num_actions, w_init, name)


class BernoulliPolicyHead(_LinearHead):
    """Logits `[..., num_actions]` of independent bool actions, for `fnrl.bernoulli()`."""

    def __init__(self, num_actions: int, w_init: Initializer | None = None, name: str | None = None):
        super().__init__(num_actions, w_init, name)


class ValueHead(hk.Module):
    """State value V(s) `[...]` = linear(features) with one output."""

    def __init__(self, w_init: Initializer | None = None, name: str | None = None):
        super().__init__(name=name)
        self.w_init = w_init

    def __call__(self, features: ArrayLike) -> Array:
        features = _features("ValueHead", features)
        return hk.Linear(1, w_init=self.w_init)(features)[..., 0]


class DuelingQHead(hk.Module):
    """Dueling Q-values (Wang et al. 2016): linear V and linear A streams on shared features,
    combined by `dueling_combine`. Returns `[..., num_actions]`."""

    def __init__(self, num_actions: int, w_init: Initializer | None = None, name: str | None = None):
        super().__init__(name=name)
        self.num_actions = _check_size("DuelingQHead", "num_actions", num_actions)
        self.w_init = w_init

    def __call__(self, features: ArrayLike) -> Array:
        features = _features("DuelingQHead", features)
        value = hk.Linear(1, w_init=self.w_init, name="value")(features)[..., 0]
        advantages = hk.Linear(self.num_actions, w_init=self.w_init, name="advantages")(features)
        return dueling_combine(value, advantages)


class DistributionalQHead(hk.Module):
    """Per-action distributions `[..., num_actions, num_atoms]`: C51 logits over fixed atoms
    (Bellemare et al. 2017) or quantile values (Dabney et al. 2018)."""

    def __init__(self, num_actions: int, num_atoms: int, w_init: Initializer | None = None,
                 name: str | None = None):
        super().__init__(name=name)
        self.num_actions = _check_size("DistributionalQHead", "num_actions", num_actions)
        self.num_atoms = _check_size("DistributionalQHead", "num_atoms", num_atoms)
        self.w_init = w_init

    def __call__(self, features: ArrayLike) -> Array:
        features = _features("DistributionalQHead", features)
        out = hk.Linear(self.num_actions * self.num_atoms, w_init=self.w_init)(features)
        return out.reshape(out.shape[:-1] + (self.num_actions, self.num_atoms))


class GaussianPolicyHead(hk.Module):
    """Diagonal gaussian policy parameters (`fnrl.GaussianParams`, mean and log-std `[..., D]`).

    State-dependent std (TensorForce `Gaussian`): one linear layer gives mean and log-std.
    State-independent std (Schulman et al. 2015/2017's continuous-control policies): the log-std
    is a free parameter `[D]` initialized to `init_log_std`, broadcast over the batch. Either way
    the log-std is clipped to [min_log_std, max_log_std] (TensorForce's [log 1e-6, -log 1e-6]).
    """

    def __init__(self, action_dim: int, state_dependent_std: bool = True, init_log_std: float = 0.0,
                 min_log_std: float = TENSORFORCE_MIN_LOG_STD,
                 max_log_std: float = TENSORFORCE_MAX_LOG_STD,
                 w_init: Initializer | None = None, name: str | None = None):
        super().__init__(name=name)
        self.action_dim = _check_size("GaussianPolicyHead", "action_dim", action_dim)
        if not min_log_std < max_log_std:
            _fail("GaussianPolicyHead", f"argument `min_log_std` must be < `max_log_std`, got "
                                        f"{min_log_std} and {max_log_std}")
        self.state_dependent_std, self.init_log_std = state_dependent_std, init_log_std
        self.min_log_std, self.max_log_std, self.w_init = min_log_std, max_log_std, w_init

    def __call__(self, features: ArrayLike) -> GaussianParams:
        features = _features("GaussianPolicyHead", features)
        if self.state_dependent_std:
            outputs = hk.Linear(2 * self.action_dim, w_init=self.w_init)(features)
            return gaussian_params_from_outputs(outputs, self.min_log_std, self.max_log_std)
        mean = hk.Linear(self.action_dim, w_init=self.w_init, name="mean")(features)
        log_std = hk.get_parameter("log_std", [self.action_dim], mean.dtype,
                                   init=hk.initializers.Constant(self.init_log_std))
        log_std = jnp.clip(log_std, self.min_log_std, self.max_log_std)
        return GaussianParams(mean, jnp.broadcast_to(log_std, mean.shape))


class BetaPolicyHead(hk.Module):
    """Beta policy parameters (`fnrl.BetaParams`, `[..., D]`): alpha, beta = softplus(linear) + 1
    (TensorForce `Beta`; Chou et al. 2017)."""

    def __init__(self, action_dim: int, w_init: Initializer | None = None, name: str | None = None):
        super().__init__(name=name)
        self.action_dim = _check_size("BetaPolicyHead", "action_dim", action_dim)
        self.w_init = w_init

    def __call__(self, features: ArrayLike) -> BetaParams:
        features = _features("BetaPolicyHead", features)
        return beta_params_from_outputs(hk.Linear(2 * self.action_dim, w_init=self.w_init)(features))


class NAFOutput(NamedTuple):
    """NAF head outputs: V(s) `[...]`, mu(s) `[..., D]`, the D(D+1)/2 entries of L `[..., E]`
    and L itself `[..., D, D]` (lower triangular, exponentiated diagonal)."""

    value: Array
    mu: Array
    l_entries: Array
    l_matrix: Array


class NAFHead(hk.Module):
    """Normalized advantage function head (Gu et al. 2016, sec. 3.2; AgentNet
    `LowerTriangularLayer` + `NAFLayer`, TensorForce NAF): linear V, mu and L entries, so that
    Q(s, u) = V(s) - 1/2 (u - mu)^T L L^T (u - mu) (`fnrl.naf_q_value(out.value, out.mu,
    out.l_matrix, u)`). `mu_activation` (e.g. `jnp.tanh`) bounds the greedy action.
    """

    def __init__(self, action_dim: int, mu_activation: Activation | None = None,
                 w_init: Initializer | None = None, name: str | None = None):
        super().__init__(name=name)
        self.action_dim = _check_size("NAFHead", "action_dim", action_dim)
        self.mu_activation, self.w_init = mu_activation, w_init

    def __call__(self, features: ArrayLike) -> NAFOutput:
        features = _features("NAFHead", features)
        d = self.action_dim
        value = hk.Linear(1, w_init=self.w_init, name="value")(features)[..., 0]
        mu = hk.Linear(d, w_init=self.w_init, name="mu")(features)
        if self.mu_activation is not None:
            mu = self.mu_activation(mu)
        entries = hk.Linear(d * (d + 1) // 2, w_init=self.w_init, name="l_entries")(features)
        return NAFOutput(value, mu, entries, lower_triangular(entries, d))


# --------------------------------------------------------------------------------------------
# Memory cells (AgentNet `RNNCell`, `GRUCell`, `LSTMCell`; F1-F3).
# --------------------------------------------------------------------------------------------


def _cell_inputs(fn: str, inputs: Any, state: Array) -> list[Array]:
    """One array or a tuple/list of arrays `[..., F_k]` sharing the state's leading shape."""
    seq = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    checked = []
    for k, x in enumerate(seq):
        name = "inputs" if not isinstance(inputs, (list, tuple)) else f"inputs[{k}]"
        x = check_array(name, x, kind="float", min_rank=1, fn=fn)
        if x.shape[:-1] != state.shape[:-1]:
            _fail(fn, f"argument `{name}` must have leading shape {state.shape[:-1]} (the state's "
                      f"batch shape) and a feature axis, got {x.shape}")
        checked.append(x)
    return checked


def _cell_state(fn: str, name: str, x: Any, units: int) -> Array:
    x = check_array(name, x, kind="float", min_rank=1, fn=fn)
    if x.shape[-1] != units:
        _fail(fn, f"argument `{name}` must end in num_units = {units}, got shape {x.shape}")
    return x


def _per_gate_init(fn: str, name: str, init: Any, num_gates: int) -> Initializer:
    """One initializer, or `num_gates` of them for consecutive blocks of the last axis."""
    if callable(init):
        return init
    inits = list(init)
    if len(inits) != num_gates or not all(callable(i) for i in inits):
        _fail(fn, f"argument `{name}` must be an initializer or a sequence of {num_gates}, got {init!r}")

    def stacked(shape: Sequence[int], dtype: Any) -> Array:
        block = tuple(shape[:-1]) + (shape[-1] // num_gates,)
        return jnp.concatenate([i(block, dtype) for i in inits], axis=-1)

    return stacked


def _project(name: str, x: Array, size: int, init: Initializer) -> Array:
    """x @ W with W `[F, size]` named `name` (no bias)."""
    return x @ hk.get_parameter(name, [x.shape[-1], size], x.dtype, init=init)


def _inputs_projection(inputs: list[Array], size: int, init: Initializer, clip: float | None):
    """sum_k clip(x_k) @ W_k, one weight matrix `w_input_k` per input (0 when there are none)."""
    return sum((_project(f"w_input_{k}", _maybe_clip(x, clip), size, init)
                for k, x in enumerate(inputs)), 0.0)


class _AgentNetCell(hk.RNNCore):
    """Shared constructor checks and the zero initial state `[B, num_units]`."""

    def __init__(self, num_units: int, grad_clipping: float | None, name: str | None):
        super().__init__(name=name)
        fn = type(self).__name__
        self.num_units = _check_size(fn, "num_units", num_units)
        self.grad_clipping = _check_bound(fn, "grad_clipping", grad_clipping, allow_off=True)

    def initial_state(self, batch_size: int | None) -> Any:
        """Zeros `[batch_size, num_units]` (`[num_units]` when batch_size is None) in JAX's default
        float (float64 under jax_enable_x64, as the steps' outputs on float64 inputs)."""
        shape = (self.num_units,) if batch_size is None else (batch_size, self.num_units)
        return jnp.zeros(shape)


class RNNCell(_AgentNetCell):
    """One step of a vanilla RNN (Elman 1990; AgentNet `RNNCell`):

        h' = f(clip(h) W_h + b + sum_k clip(x_k) W_k)

    Gradient clipping (AgentNet): the gradients flowing from this step into `prev_state` and
    into each input are clipped to [-grad_clipping, grad_clipping]. Parameters: `w_hidden`
    `[U, U]`, `b` `[U]`, `w_input_k` `[F_k, U]`. Output and new state are both h' `[..., U]`.
    """

    def __init__(self, num_units: int, nonlinearity: Activation = jax.nn.sigmoid,
                 grad_clipping: float | None = 5.0, w_hidden_init: Initializer = _GLOROT_UNIFORM,
                 w_input_init: Initializer = _GLOROT_UNIFORM, b_init: Initializer = _ZEROS,
                 name: str | None = None):
        super().__init__(num_units, grad_clipping, name)
        self.nonlinearity = nonlinearity
        self.w_hidden_init, self.w_input_init, self.b_init = w_hidden_init, w_input_init, b_init

    def __call__(self, inputs: Any, prev_state: ArrayLike) -> tuple[Array, Array]:
        h = _cell_state("RNNCell", "prev_state", prev_state, self.num_units)
        xs = _cell_inputs("RNNCell", inputs, h)
        u, clip = self.num_units, self.grad_clipping
        pre = (_project("w_hidden", _maybe_clip(h, clip), u, self.w_hidden_init)
               + hk.get_parameter("b", [u], h.dtype, init=self.b_init)
               + _inputs_projection(xs, u, self.w_input_init, clip))
        new_h = self.nonlinearity(pre)
        return new_h, new_h


class GRUCell(_AgentNetCell):
    """One step of a gated recurrent unit (Cho et al. 2014; AgentNet `GRUCell`), with the reset
    ("forget") gate applied after the hidden projection as in AgentNet/Lasagne:

        [h_r, h_z, h_c] = clip(h W_h)              [x_r, x_z, x_c] = sum_k clip(x_k) W_k + b
        r = sig(x_r + h_r)    z = sig(x_z + h_z)    c = tanh(clip(x_c + r * h_c))
        h' = (1 - z) * h + z * c

    `clip` is the gradient clipping of AgentNet (identity forward). Parameters: `w_hidden`
    `[U, 3U]`, `w_input_k` `[F_k, 3U]`, `b` `[3U]` (blocks r, z, c; `b_init` may be one
    initializer or three). Output and new state are both h' `[..., U]`.
    """

    def __init__(self, num_units: int, grad_clipping: float | None = 5.0,
                 w_hidden_init: Initializer = _NORMAL_001, w_input_init: Initializer = _NORMAL_001,
                 b_init: Initializer | Sequence[Initializer] = _ZEROS,
                 forgetgate_nonlinearity: Activation = jax.nn.sigmoid,
                 updategate_nonlinearity: Activation = jax.nn.sigmoid,
                 hidden_update_nonlinearity: Activation = jnp.tanh, name: str | None = None):
        super().__init__(num_units, grad_clipping, name)
        self.w_hidden_init, self.w_input_init = w_hidden_init, w_input_init
        self.b_init = _per_gate_init("GRUCell", "b_init", b_init, 3)
        self.gate_nl, self.update_nl = forgetgate_nonlinearity, updategate_nonlinearity
        self.hidden_nl = hidden_update_nonlinearity

    def __call__(self, inputs: Any, prev_state: ArrayLike) -> tuple[Array, Array]:
        h = _cell_state("GRUCell", "prev_state", prev_state, self.num_units)
        xs = _cell_inputs("GRUCell", inputs, h)
        u, clip = self.num_units, self.grad_clipping
        hidden = _maybe_clip(_project("w_hidden", h, 3 * u, self.w_hidden_init), clip)
        h_r, h_z, h_c = jnp.split(hidden, 3, -1)
        x_all = (_inputs_projection(xs, 3 * u, self.w_input_init, clip)
                 + hk.get_parameter("b", [3 * u], h.dtype, init=self.b_init))
        x_r, x_z, x_c = jnp.split(jnp.broadcast_to(x_all, h.shape[:-1] + (3 * u,)), 3, -1)
        r, z = self.gate_nl(x_r + h_r), self.update_nl(x_z + h_z)
        candidate = self.hidden_nl(_maybe_clip(x_c + r * h_c, clip))
        new_h = (1.0 - z) * h + z * candidate
        return new_h, new_h


class LSTMCellState(NamedTuple):
    """LSTM memory: the private cell c `[..., U]` and the public output h `[..., U]` (AgentNet's
    `(new_cell, new_output)` order)."""

    cell: Array
    output: Array


class LSTMCell(_AgentNetCell):
    """One LSTM step with peephole connections (Hochreiter & Schmidhuber 1997; peepholes: Gers &
    Schmidhuber 2000, Gers, Schraudolph & Schmidhuber 2002; AgentNet `LSTMCell`):

        [p_i, p_f, p_g, p_o] = clip(h W_h + sum_k x_k W_k + b)
        i = sig(p_i + w_ci * c)     f = sig(p_f + w_cf * c)     g = tanh(p_g)
        c' = i * g + f * c
        o = sig(p_o + w_co * c')    h' = o * tanh(c')

    (the nonlinearities are configurable; `peepholes=False` drops the w_c* terms). As in
    AgentNet/Lasagne, gradient clipping acts on the gradients of the four gate pre-activations
    p_* (before the peepholes are added); the cell path c -> c' is not clipped. Parameters:
    `w_hidden` `[U, 4U]`, `w_input_k` `[F_k, 4U]`, `b` `[4U]` (blocks i, f, g, o; `b_init` one
    initializer or four), `peephole_i/f/o` `[U]` (`peephole_init` one initializer or three).
    Returns (h', LSTMCellState(c', h')).
    """

    def __init__(self, num_units: int, peepholes: bool = True, grad_clipping: float | None = 5.0,
                 w_hidden_init: Initializer = _NORMAL_001, w_input_init: Initializer = _NORMAL_001,
                 b_init: Initializer | Sequence[Initializer] = _ZEROS,
                 peephole_init: Initializer | Sequence[Initializer] = _NORMAL_001,
                 inputgate_nonlinearity: Activation = jax.nn.sigmoid,
                 forgetgate_nonlinearity: Activation = jax.nn.sigmoid,
                 outputgate_nonlinearity: Activation = jax.nn.sigmoid,
                 cell_nonlinearity: Activation = jnp.tanh,
                 output_nonlinearity: Activation = jnp.tanh, name: str | None = None):
        super().__init__(num_units, grad_clipping, name)
        self.peepholes = peepholes
        self.w_hidden_init, self.w_input_init = w_hidden_init, w_input_init
        self.b_init = _per_gate_init("LSTMCell", "b_init", b_init, 4)
        inits = [peephole_init] * 3 if callable(peephole_init) else list(peephole_init)
        if len(inits) != 3 or not all(callable(i) for i in inits):
            _fail("LSTMCell", f"argument `peephole_init` must be an initializer or a sequence of 3, "
                              f"got {peephole_init!r}")
        self.peephole_inits = inits
        self.nl = (inputgate_nonlinearity, forgetgate_nonlinearity, cell_nonlinearity,
                   outputgate_nonlinearity, output_nonlinearity)

    def initial_state(self, batch_size: int | None) -> LSTMCellState:
        zeros = super().initial_state(batch_size)
        return LSTMCellState(zeros, zeros)

    def __call__(self, inputs: Any, prev_state: LSTMCellState) -> tuple[Array, LSTMCellState]:
        fn, u = "LSTMCell", self.num_units
        if not isinstance(prev_state, LSTMCellState):  # hk.LSTMState orders its fields otherwise
            _fail(fn, f"argument `prev_state` must be an LSTMCellState(cell, output), got "
                      f"{type(prev_state).__name__}")
        c = _cell_state(fn, "prev_state.cell", prev_state.cell, u)
        h = _cell_state(fn, "prev_state.output", prev_state.output, u)
        check_same_shape(fn, **{"prev_state.cell": c, "prev_state.output": h})
        xs = _cell_inputs(fn, inputs, h)
        pre = (_project("w_hidden", h, 4 * u, self.w_hidden_init)
               + _inputs_projection(xs, 4 * u, self.w_input_init, None)
               + hk.get_parameter("b", [4 * u], h.dtype, init=self.b_init))
        p_i, p_f, p_g, p_o = jnp.split(_maybe_clip(pre, self.grad_clipping), 4, -1)
        if self.peepholes:
            w_ci, w_cf, w_co = (hk.get_parameter(f"peephole_{g}", [u], h.dtype, init=init)
                                for g, init in zip("ifo", self.peephole_inits))
            p_i, p_f = p_i + w_ci * c, p_f + w_cf * c
        in_nl, forget_nl, cell_nl, out_gate_nl, out_nl = self.nl
        new_c = in_nl(p_i) * cell_nl(p_g) + forget_nl(p_f) * c
        if self.peepholes:
            p_o = p_o + w_co * new_c
        new_h = out_gate_nl(p_o) * out_nl(new_c)
        return new_h, LSTMCellState(new_c, new_h)


# --------------------------------------------------------------------------------------------
# Augmentations and logic (AgentNet F4-F9).
# --------------------------------------------------------------------------------------------


class Augmentation(NamedTuple):
    """A parameter-free memory: `init(batch_size=None) -> state`, `update(state, *inputs) ->
    new state` (the new state is also the layer's output, as in AgentNet)."""

    init: Callable[..., Array]
    update: Callable[..., Array]


def _leading(batch_size: int | None) -> tuple[int, ...]:
    return () if batch_size is None else (int(batch_size),)


def window_augmentation(window_size: int, item_shape: Sequence[int] = (),
                        dtype: Any = jnp.float32) -> Augmentation:
    """The last `window_size` items, newest first (AgentNet `WindowAugmentation`; the frame
    window of Mnih et al. 2015):

        window'[..., 0] = item,    window'[..., j] = window[..., j - 1]  (j >= 1).

    State: `[..., K, *item_shape]` (any leading batch shape); `update(window, item)` takes
    `item` `[..., *item_shape]` and drops the oldest entry.
    """
    fn = "window_augmentation"
    k = _check_size(fn, "window_size", window_size)
    item_shape = tuple(_check_size(fn, f"item_shape[{i}]", s) for i, s in enumerate(item_shape))

    def init(batch_size: int | None = None) -> Array:
        return jnp.zeros(_leading(batch_size) + (k,) + item_shape, dtype)

    def update(window: ArrayLike, item: ArrayLike) -> Array:
        window = check_array("window", window, kind="bool_or_numeric", fn=fn)
        item = check_array("item", item, kind="bool_or_numeric", fn=fn)
        lead = item.shape[: item.ndim - len(item_shape)]
        if item.shape[len(lead):] != item_shape:
            _fail(fn, f"argument `item` must end in item_shape {item_shape}, got {item.shape}")
        if window.shape != lead + (k,) + item_shape:
            _fail(fn, f"argument `window` must have shape {lead + (k,) + item_shape} "
                      f"(batch, window_size, *item_shape), got {window.shape}")
        axis = len(lead)
        newest = jnp.expand_dims(item.astype(window.dtype), axis)
        older = jax.lax.slice_in_dim(window, 0, k - 1, axis=axis)
        return jnp.concatenate([newest, older], axis=axis)

    return Augmentation(init, update)


def stack_augmentation(depth: int, width: int) -> Augmentation:
    """A differentiable stack (Joulin & Mikolov 2015, eqs. 5-7; AgentNet `StackAugmentation`)
    controlled by probabilities a = (a_push, a_pop, a_no_op) that sum to one:

        push[0] = item,   push[j] = stack[j - 1]          (the top is index 0)
        pop[j] = stack[j + 1],   pop[depth - 1] = 0
        stack' = a_push * push + a_pop * pop + a_no_op * stack

    State `[..., depth, width]`; `update(stack, item [..., width], controls [..., 3])`.
    """
    fn = "stack_augmentation"
    depth = _check_size(fn, "depth", depth)
    width = _check_size(fn, "width", width)

    def init(batch_size: int | None = None) -> Array:
        return jnp.zeros(_leading(batch_size) + (depth, width), jnp.float32)

    def update(stack: ArrayLike, item: ArrayLike, controls: ArrayLike) -> Array:
        stack = check_array("stack", stack, kind="float", min_rank=2, fn=fn)
        lead = stack.shape[:-2]
        if stack.shape[-2:] != (depth, width):
            _fail(fn, f"argument `stack` must end in (depth, width) = {(depth, width)}, got {stack.shape}")
        item = check_array("item", item, kind="float", shape=lead + (width,), fn=fn)
        controls = check_array("controls", controls, kind="float", shape=lead + (3,), fn=fn)
        push = jnp.concatenate([item[..., None, :], stack[..., :-1, :]], axis=-2)
        pop = jnp.concatenate([stack[..., 1:, :], jnp.zeros_like(stack[..., :1, :])], axis=-2)
        a = controls[..., None, None]
        return a[..., 0, :, :] * push + a[..., 1, :, :] * pop + a[..., 2, :, :] * stack

    return Augmentation(init, update)


def counter(k: int | None = None) -> Augmentation:
    """A tick counter (AgentNet `CounterLayer`): count' = count + 1, or (count + 1) mod k.

    State: int32 `[...]` (`init(batch_size)` gives zeros).
    """
    fn = "counter"
    if k is not None:
        k = _check_size(fn, "k", k)

    def init(batch_size: int | None = None) -> Array:
        return jnp.zeros(_leading(batch_size), jnp.int32)

    def update(count: ArrayLike) -> Array:
        count = check_array("count", count, kind="int", fn=fn)
        return count + 1 if k is None else (count + 1) % k

    return Augmentation(init, update)


def switch(condition: ArrayLike, then_branch: ArrayLike, else_branch: ArrayLike) -> Array:
    """Per-sample if/else (AgentNet `SwitchLayer`): row i is `then_branch[i]` where
    `condition[i] != 0` and `else_branch[i]` otherwise.

    Args:
      condition: bool or int `[B]` (any batch shape that prefixes the branches' shape).
      then_branch / else_branch: arrays of one shape and dtype `[B, ...]`.
    """
    fn = "switch"
    condition = check_array("condition", condition, kind="bool_or_numeric", fn=fn)
    then_branch = check_array("then_branch", then_branch, kind="bool_or_numeric", fn=fn)
    else_branch = check_array("else_branch", else_branch, kind="bool_or_numeric", fn=fn)
    check_same_shape(fn, then_branch=then_branch, else_branch=else_branch)
    if then_branch.dtype != else_branch.dtype:
        _fail(fn, f"arguments `then_branch` and `else_branch` must share a dtype, got "
                  f"{then_branch.dtype} and {else_branch.dtype}")
    if then_branch.shape[: condition.ndim] != condition.shape:
        _fail(fn, f"argument `condition` must have shape {then_branch.shape[: condition.ndim]} "
                  f"(a prefix of the branches' shape {then_branch.shape}), got {condition.shape}")
    cond = condition.reshape(condition.shape + (1,) * (then_branch.ndim - condition.ndim))
    return jnp.where(cond != 0, then_branch, else_branch)


class Gate(hk.Module):
    """AgentNet's `GateLayer`: gates computed from controllers and applied to channels.

    For channel j with gate nonlinearity s_j:

        gate_j = s_j(sum_c flat(controller_c) W_{c,j} + b_j)
        out_j  = gate_j * channel_j     (channel given as an array `[B, n_j]`)
        out_j  = gate_j                 (channel given as an int n_j: the gate itself)

    Controllers and array channels are flattened to `[B, -1]`. Parameters: `w_{c}` `[F_c, sum n_j]`
    per controller, `b` `[sum n_j]` (if `with_bias`).

    Args:
      gate_nonlinearities: one callable (or None = identity) or one per channel.
      with_bias: AgentNet's `bias_init=None` is `with_bias=False`.
    """

    def __init__(self, gate_nonlinearities: Activation | None | Sequence[Activation | None] = jax.nn.sigmoid,
                 with_bias: bool = True, w_init: Initializer = _NORMAL_001,
                 b_init: Initializer = _ZEROS, name: str | None = None):
        super().__init__(name=name)
        self.gate_nonlinearities, self.with_bias = gate_nonlinearities, with_bias
        self.w_init, self.b_init = w_init, b_init

    def __call__(self, controllers: Any, channels: Any) -> tuple[Array, ...]:
        fn = "Gate"
        ctrls = _flat_rows(fn, "controllers", controllers)
        batch = ctrls[0].shape[0]
        chans = channels if isinstance(channels, (list, tuple)) else [channels]
        sizes, values = _gate_channels(fn, chans, batch)
        nls = self._nonlinearities(fn, len(sizes))
        total = sum(sizes)
        pre = sum(_project(f"w_{c}", x, total, self.w_init) for c, x in enumerate(ctrls))
        if self.with_bias:
            pre = pre + hk.get_parameter("b", [total], pre.dtype, init=self.b_init)
        gates = jnp.split(pre, np.cumsum(sizes)[:-1], axis=-1)
        outs = [(nl or _identity)(g) for g, nl in zip(gates, nls)]
        return tuple(g if v is None else g * v for g, v in zip(outs, values))

    def _nonlinearities(self, fn: str, n: int) -> list[Activation | None]:
        nls = self.gate_nonlinearities
        nls = list(nls) if isinstance(nls, (list, tuple)) else [nls] * n
        if len(nls) != n:
            _fail(fn, f"argument `gate_nonlinearities` must be one callable or {n} (one per "
                      f"channel), got {len(nls)}")
        return nls


def _identity(x: Array) -> Array:
    return x


def _flat_rows(fn: str, name: str, xs: Any) -> list[Array]:
    """Arrays `[B, ...]` flattened to `[B, -1]`, all with the same B."""
    seq = list(xs) if isinstance(xs, (list, tuple)) else [xs]
    if not seq:
        _fail(fn, f"argument `{name}` must hold at least one array")
    out = [check_array(f"{name}[{i}]", x, kind="float", min_rank=2, fn=fn) for i, x in enumerate(seq)]
    for i, x in enumerate(out):
        if x.shape[0] != out[0].shape[0]:
            _fail(fn, f"argument `{name}[{i}]` must have batch size {out[0].shape[0]}, got {x.shape}")
    return [x.reshape(x.shape[0], -1) for x in out]


def _gate_channels(fn: str, chans: Sequence[Any], batch: int) -> tuple[list[int], list[Array | None]]:
    """Channel sizes and values (None for int channels, whose output is the gate itself)."""
    sizes, values = [], []
    for j, ch in enumerate(chans):
        if isinstance(ch, (int, np.integer)) and not isinstance(ch, bool):
            sizes.append(_check_size(fn, f"channels[{j}]", ch))
            values.append(None)
            continue
        (flat,) = _flat_rows(fn, f"channels[{j}]", [ch])
        if flat.shape[0] != batch:
            _fail(fn, f"argument `channels[{j}]` must have the controllers' batch size {batch}, got {flat.shape}")
        sizes.append(flat.shape[1])
        values.append(flat)
    if not sizes:
        _fail(fn, "argument `channels` must hold at least one channel")
    return sizes, values


class AttentionOutput(NamedTuple):
    """The attended vector `attn` `[..., E]` and the attention weights `probs` `[..., T]`."""

    attn: Array
    probs: Array


class BahdanauAttention(hk.Module):
    """Additive attention (Bahdanau, Cho & Bengio 2015, eq. 6 and appendix A.1.2; AgentNet
    `AttentionLayer`):

        logits_t = w_out . tanh(enc_t W_enc + dec W_dec)       (no biases)
        probs = weights_nonlinearity(logits) over unmasked t,    attn = sum_t probs_t enc_t

    Masked positions (mask 0) get probability exactly 0 (rows with no unmasked position get all
    zeros). `hard=True` replaces the weights by a one-hot of the argmax over unmasked logits and
    `attn` by that encoder state (AgentNet's `hard_attention`).
    """

    def __init__(self, num_units: int, nonlinearity: Activation = jnp.tanh,
                 weights_nonlinearity: Activation = jax.nn.softmax,
                 w_init: Initializer = _GLOROT_UNIFORM, name: str | None = None):
        super().__init__(name=name)
        self.num_units = _check_size("BahdanauAttention", "num_units", num_units)
        self.nonlinearity, self.weights_nonlinearity = nonlinearity, weights_nonlinearity
        self.w_init = w_init

    def __call__(self, input_sequence: ArrayLike, controller_state: ArrayLike,
                 mask: ArrayLike | None = None, hard: bool = False) -> AttentionOutput:
        """input_sequence `[..., T, E]`, controller_state `[..., D]`, mask `[..., T]` (0/1 or bool)."""
        fn = "BahdanauAttention"
        enc = check_array("input_sequence", input_sequence, kind="float", min_rank=2, fn=fn)
        dec = check_array("controller_state", controller_state, kind="float", rank=enc.ndim - 1, fn=fn)
        if dec.shape[:-1] != enc.shape[:-2]:
            _fail(fn, f"argument `controller_state` must have batch shape {enc.shape[:-2]}, got {dec.shape}")
        keep = jnp.ones(enc.shape[:-1], bool) if mask is None else check_array(
            "mask", mask, kind="bool_or_numeric", shape=enc.shape[:-1], fn=fn) != 0
        hidden = self.nonlinearity(_project("w_enc", enc, self.num_units, self.w_init)
                                   + _project("w_dec", dec, self.num_units, self.w_init)[..., None, :])
        logits = _project("w_out", hidden, 1, self.w_init)[..., 0]
        logits = jnp.where(keep, logits, jnp.finfo(logits.dtype).min)
        if hard:
            probs = jax.nn.one_hot(jnp.argmax(logits, axis=-1), enc.shape[-2], dtype=enc.dtype)
        else:
            probs = self.weights_nonlinearity(logits)
        probs = jnp.where(keep, probs, 0.0)
        return AttentionOutput(jnp.einsum("...t,...te->...e", probs, enc), probs)


# --------------------------------------------------------------------------------------------
# TensorForce layered networks (F15-F31).
# --------------------------------------------------------------------------------------------


def _crelu(x: Array) -> Array:
    return jnp.concatenate([jax.nn.relu(x), jax.nn.relu(-x)], axis=-1)


def _leaky_relu(x: Array) -> Array:
    return jax.nn.leaky_relu(x, negative_slope=0.2)  # TensorForce's default alpha


_TF_ACTIVATIONS: dict[str, Activation] = {
    "elu": jax.nn.elu, "relu": jax.nn.relu, "selu": jax.nn.selu, "sigmoid": jax.nn.sigmoid,
    "swish": jax.nn.swish, "softmax": jax.nn.softmax, "lrelu": _leaky_relu,
    "leaky_relu": _leaky_relu, "crelu": _crelu, "softplus": jax.nn.softplus,
    "softsign": jax.nn.soft_sign, "tanh": jnp.tanh, "none": _identity,
}


def _activation(fn: str, name: str, value: Activation | str) -> Activation:
    """A callable, or a TensorForce nonlinearity name."""
    if callable(value):
        return value
    if value not in _TF_ACTIVATIONS:
        _fail(fn, f"argument `{name}` must be a callable or one of {sorted(_TF_ACTIVATIONS)}, got {value!r}")
    return _TF_ACTIVATIONS[value]


def _tf_constant_init(where: str, name: str, value: Any, shape: tuple[int, ...]) -> Initializer:
    """A fixed initial value (TensorForce `weights=`/`bias=` as a number or an array)."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        _fail(where, f"argument `{name}` must be a number or an array of numbers, got {value!r}")
    arr = arr.astype(np.float32)
    if arr.ndim and arr.shape != shape:
        _fail(where, f"argument `{name}` must have shape {shape}, got {arr.shape}")
    return hk.initializers.Constant(jnp.broadcast_to(arr, shape))


class _TFLayer(hk.Module):
    """A TensorForce layer with l1/l2 penalties on all of its parameters:
    l2 * sum(p^2) / 2 + l1 * sum|p| (TensorFlow's `l2_loss` halves the square)."""

    def __init__(self, where: str, l2_regularization: float = 0.0, l1_regularization: float = 0.0,
                 name: str | None = None):
        super().__init__(name=name)
        self.where, self.l2, self.l1 = where, float(l2_regularization), float(l1_regularization)

    def regularization_loss(self) -> Array:
        params = jax.tree.leaves(self.params_dict())
        loss = jnp.zeros(())
        if self.l2:
            loss = loss + self.l2 * sum(0.5 * jnp.sum(jnp.square(p)) for p in params)
        if self.l1:
            loss = loss + self.l1 * sum(jnp.sum(jnp.abs(p)) for p in params)
        return loss


class _TFLinear(_TFLayer):
    """TensorForce `linear`: x W + b, W ~ N(0, min(0.1, sqrt(2 / (in + size)))^2) unless `weights`
    fixes it; `bias` True (zeros), False or None (none), or a fixed value."""

    def __init__(self, where: str, size: int | None = None, weights: Any = None, bias: Any = True,
                 l2_regularization: float = 0.0, l1_regularization: float = 0.0, name: str | None = None):
        super().__init__(where, l2_regularization, l1_regularization, name)
        self.size = None if size is None else _check_size(where, "size", size)
        self.weights, self.bias = weights, bias

    def __call__(self, x: ArrayLike) -> Array:
        x = check_array("x", x, kind="float", min_rank=1, fn=self.where)
        fan_in = x.shape[-1]
        size = fan_in if self.size is None else self.size
        w_init = (hk.initializers.RandomNormal(min(0.1, math.sqrt(2.0 / (fan_in + size))))
                  if self.weights is None else
                  _tf_constant_init(self.where, "weights", self.weights, (fan_in, size)))
        y = x @ hk.get_parameter("W", [fan_in, size], x.dtype, init=w_init)
        if self.bias is False or self.bias is None:
            return y
        b_init = _ZEROS if self.bias is True else _tf_constant_init(self.where, "bias", self.bias, (size,))
        return y + hk.get_parameter("b", [size], x.dtype, init=b_init)


class _TFDense(_TFLayer):
    """TensorForce `dense`: act(linear(x)); with `skip`, act(linear2(act(linear1(x))) + x)
    (a residual block, He et al. 2016), which needs size=None (output size = input size)."""

    def __init__(self, where: str, size: int | None = None, bias: bool = True,
                 activation: str | Activation = "tanh", l2_regularization: float = 0.0,
                 l1_regularization: float = 0.0, skip: bool = False, name: str | None = None):
        super().__init__(where, l2_regularization, l1_regularization, name)
        if skip and size is not None:
            _fail(where, f"argument `size` must be None when `skip=True` (the residual needs "
                         f"output size = input size), got {size}")
        self.activation = _activation(where, "activation", activation)
        self.linear = _TFLinear(where, size, bias=bias, name="linear")
        self.linear_skip = _TFLinear(where, size, bias=bias, name="linear_skip") if skip else None

    def __call__(self, x: ArrayLike) -> Array:
        h = self.activation(self.linear(x))
        if self.linear_skip is None:
            return h
        return self.activation(self.linear_skip(h) + x)


class _TFConv(_TFLayer):
    """TensorForce `conv1d` / `conv2d`: act(conv(x) + b), filters ~ N(0, min(0.1,
    sqrt(2 / size))^2); channels-last input `[B, L, C]` / `[B, H, W, C]`."""

    def __init__(self, where: str, ndim: int, size: int, window: int | Sequence[int] = 3,
                 stride: int | Sequence[int] = 1, padding: str = "SAME", bias: bool = True,
                 activation: str | Activation = "relu", l2_regularization: float = 0.0,
                 l1_regularization: float = 0.0, name: str | None = None):
        super().__init__(where, l2_regularization, l1_regularization, name)
        if padding not in ("SAME", "VALID"):
            _fail(where, f"argument `padding` must be 'SAME' or 'VALID', got {padding!r}")
        size = _check_size(where, "size", size)
        self.ndim = ndim
        self.activation = _activation(where, "activation", activation)
        self.conv = hk.ConvND(ndim, size, window, stride, padding=padding, with_bias=bias,
                              w_init=hk.initializers.RandomNormal(min(0.1, math.sqrt(2.0 / size))),
                              b_init=_ZEROS, name="conv")

    def __call__(self, x: ArrayLike) -> Array:
        x = check_array("x", x, kind="float", rank=self.ndim + 2, fn=self.where)
        return self.activation(self.conv(x))


class _TFEmbedding(_TFLayer):
    """TensorForce `embedding` (see `Embedding`) with l1/l2 penalties."""

    def __init__(self, where: str, indices: int, size: int, l2_regularization: float = 0.0,
                 l1_regularization: float = 0.0, name: str | None = None):
        super().__init__(where, l2_regularization, l1_regularization, name)
        self.embedding = Embedding(indices, size)

    def __call__(self, x: ArrayLike) -> Array:
        return self.embedding(x)


class _TFDueling(_TFLayer):
    """TensorForce `dueling`: act(E + A - mean(A)) with linear E (size 1) and A (size `size`),
    no biases by default (Wang et al. 2016)."""

    def __init__(self, where: str, size: int, bias: bool = False, activation: str | Activation = "none",
                 l2_regularization: float = 0.0, l1_regularization: float = 0.0, name: str | None = None):
        super().__init__(where, l2_regularization, l1_regularization, name)
        self.activation = _activation(where, "activation", activation)
        self.expectation = _TFLinear(where, 1, bias=bias, name="expectation")
        self.advantage = _TFLinear(where, _check_size(where, "size", size), bias=bias, name="advantage")

    def __call__(self, x: ArrayLike) -> Array:
        return self.activation(dueling_combine(self.expectation(x)[..., 0], self.advantage(x)))


def _check_dropout(where: str, rate: float | None) -> float:
    rate = 0.0 if rate is None else rate
    if not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        _fail(where, f"argument `rate`/`dropout` must be a number in [0, 1), got {rate!r}")
    return float(rate)


def _dropout(rate: float, x: Array, is_training: bool) -> Array:
    """Inverted dropout while training (needs an rng in `apply`), identity otherwise."""
    if not is_training or rate == 0.0:
        return x
    return hk.dropout(hk.next_rng_key(), rate, x)


class _TFInternalLstm(hk.Module):
    """TensorForce `internal_lstm`: one LSTM step per call, state carried by the caller
    (TensorFlow's `LSTMCell`, forget bias 1, no peepholes = `hk.LSTM`); dropout on the output."""

    def __init__(self, where: str, size: int, dropout: float | None = None, name: str | None = None):
        super().__init__(name=name)
        self.where, self.size = where, _check_size(where, "size", size)
        self.rate = _check_dropout(where, dropout)
        self.core = hk.LSTM(self.size, name="lstm")

    def __call__(self, x: ArrayLike, state: hk.LSTMState, is_training: bool) -> tuple[Array, hk.LSTMState]:
        x = check_array("x", x, kind="float", rank=2, fn=self.where)
        out, state = self.core(x, state)
        return _dropout(self.rate, out, is_training), state


class _TFLstm(hk.Module):
    """TensorForce `lstm`: an LSTM over the time axis of `[B, T, F]` (batch-major, as TensorFlow's
    `dynamic_rnn`). Steps t >= sequence_length[b] leave the state unchanged and output zeros.
    Returns concat(c_final, h_final) `[B, 2 size]` if `return_final_state`, else the outputs
    `[B, T, size]` (with output dropout while training)."""

    def __init__(self, where: str, size: int, dropout: float | None = None,
                 return_final_state: bool = True, name: str | None = None):
        super().__init__(name=name)
        self.where, self.size = where, _check_size(where, "size", size)
        self.rate, self.return_final_state = _check_dropout(where, dropout), return_final_state
        self.core = hk.LSTM(self.size, name="lstm")

    def __call__(self, x: ArrayLike, sequence_length: ArrayLike | None, is_training: bool) -> Array:
        x = check_array("x", x, kind="float", rank=3, fn=self.where)
        batch, steps = x.shape[:2]
        length = jnp.full((batch,), steps) if sequence_length is None else check_array(
            "sequence_length", sequence_length, kind="int", shape=(batch,), fn=self.where)
        valid = jnp.arange(steps)[:, None] < length[None, :]  # [T, B]

        def step(state, inputs):
            x_t, valid_t = inputs
            out, new = self.core(x_t, state)
            new = jax.tree.map(lambda n, o: jnp.where(valid_t[:, None], n, o), new, state)
            return new, jnp.where(valid_t[:, None], out, 0.0)

        final, outs = hk.scan(step, self.core.initial_state(batch), (jnp.swapaxes(x, 0, 1), valid))
        if self.return_final_state:
            return jnp.concatenate([final.cell, final.hidden], axis=-1)
        return _dropout(self.rate, jnp.swapaxes(outs, 0, 1), is_training)


class _TFPool2d:
    """TensorForce `pool2d`: max or average pooling over `[B, H, W, C]` (average over the valid
    entries of each window under SAME padding, as TensorFlow)."""

    def __init__(self, where: str, pooling_type: str = "max", window: int | Sequence[int] = 2,
                 stride: int | Sequence[int] = 2, padding: str = "SAME"):
        if pooling_type not in ("max", "average"):
            _fail(where, f"argument `pooling_type` must be 'max' or 'average', got {pooling_type!r}")
        if padding not in ("SAME", "VALID"):
            _fail(where, f"argument `padding` must be 'SAME' or 'VALID', got {padding!r}")
        self.where, self.pool = where, hk.max_pool if pooling_type == "max" else hk.avg_pool
        self.window, self.stride = _pair(where, "window", window), _pair(where, "stride", stride)
        self.padding = padding

    def __call__(self, x: ArrayLike) -> Array:
        x = check_array("x", x, kind="float", rank=4, fn=self.where)
        return self.pool(x, (1,) + self.window + (1,), (1,) + self.stride + (1,), self.padding)


def _pair(where: str, name: str, value: Any) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2:
        _fail(where, f"argument `{name}` must be an int or a pair of ints, got {value!r}")
    return tuple(_check_size(where, name, v) for v in pair)


class _TFNonlinearity:
    """TensorForce `nonlinearity`: the named activation (default relu)."""

    def __init__(self, where: str, name: str = "relu"):
        self.fn = _activation(where, "name", name)

    def __call__(self, x: ArrayLike) -> Array:
        return self.fn(jnp.asarray(x))


class _TFDropout:
    """TensorForce `dropout`: drop with probability `rate` while training, identity otherwise."""

    def __init__(self, where: str, rate: float = 0.0):
        self.rate = _check_dropout(where, rate)

    def __call__(self, x: ArrayLike, is_training: bool) -> Array:
        return _dropout(self.rate, jnp.asarray(x), is_training)


class _TFFlatten:
    """TensorForce `flatten`: `[B, ...]` -> `[B, prod(...)]`."""

    def __init__(self, where: str):
        self.where = where

    def __call__(self, x: ArrayLike) -> Array:
        x = check_array("x", x, kind="bool_or_numeric", min_rank=1, fn=self.where)
        return x.reshape(x.shape[0], -1)


def _linear(where: str, size: int, weights: Any = None, bias: Any = True,
            l2_regularization: float = 0.0, l1_regularization: float = 0.0,
            name: str | None = None) -> _TFLinear:
    """The `linear` spec layer: unlike `dense`, its size is required."""
    return _TFLinear(where, size, weights, bias, l2_regularization, l1_regularization, name)


def _conv1d(where: str, **kwargs: Any) -> _TFConv:
    return _TFConv(where, 1, **kwargs)


def _conv2d(where: str, **kwargs: Any) -> _TFConv:
    return _TFConv(where, 2, **kwargs)


# Registry: type name -> (factory(where, **spec_arguments), is a haiku module, signature source).
_TF_LAYERS: dict[str, tuple[Callable[..., Any], bool, Callable[..., Any]]] = {
    "dense": (_TFDense, True, _TFDense.__init__),
    "linear": (_linear, True, _linear),
    "nonlinearity": (_TFNonlinearity, False, _TFNonlinearity.__init__),
    "dropout": (_TFDropout, False, _TFDropout.__init__),
    "flatten": (_TFFlatten, False, _TFFlatten.__init__),
    "conv1d": (_conv1d, True, _TFConv.__init__),
    "conv2d": (_conv2d, True, _TFConv.__init__),
    "pool2d": (_TFPool2d, False, _TFPool2d.__init__),
    "embedding": (_TFEmbedding, True, _TFEmbedding.__init__),
    "dueling": (_TFDueling, True, _TFDueling.__init__),
    "lstm": (_TFLstm, True, _TFLstm.__init__),
    "internal_lstm": (_TFInternalLstm, True, _TFInternalLstm.__init__),
}
TF_LAYER_TYPES: tuple[str, ...] = tuple(_TF_LAYERS)


def _spec_arguments(where: str, init: Callable[..., Any], is_module: bool, given: dict) -> None:
    """Checks a layer dict's arguments against the layer's signature (unknown / missing ones)."""
    params = inspect.signature(init).parameters
    internal = {"self", "where", "ndim"} | ({"name"} if is_module else set())
    accepted = [p for p in params if p not in internal]
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        _fail(where, f"unknown argument `{unknown[0]}`; accepted arguments: {accepted}")
    missing = [p for p in accepted if params[p].default is inspect.Parameter.empty and p not in given]
    if missing:
        _fail(where, f"missing required argument `{missing[0]}`")


def _build_layer(index: int, entry: Any) -> tuple[str, Any]:
    """(kind, callable layer) for one entry of a layers spec."""
    if not isinstance(entry, dict) or "type" not in entry:
        _fail("network_from_spec", f"argument `layers_spec[{index}]` must be a dict with a 'type' key, got {entry!r}")
    kind, kwargs = entry["type"], {k: v for k, v in entry.items() if k != "type"}
    if callable(kind):  # a custom layer class / factory (TensorForce F31)
        return "custom", kind(**kwargs)
    kwargs = {k: v for k, v in kwargs.items() if k not in TENSORFORCE_SCOPE_KEYS}
    if kind not in _TF_LAYERS:
        _fail("network_from_spec", f"argument `layers_spec[{index}]` has unknown type {kind!r}; "
                                   f"known types: {list(TF_LAYER_TYPES)} (or a callable)")
    where = f"network_from_spec: layers_spec[{index}] ({kind!r})"
    factory, is_module, signature = _TF_LAYERS[kind]
    _spec_arguments(where, signature, is_module, kwargs)
    if is_module:
        kwargs["name"] = f"{kind}_{index}"
    return kind, factory(where, **kwargs)


class LayeredNetwork(hk.Module):
    """A sequential network from a TensorForce layers spec (`LayeredNetwork`, F28-F31); build it
    with `network_from_spec`. Call:

        net(x, internals=None, *, is_training=False, sequence_length=None, return_internals=False)

    `internals` holds one `hk.LSTMState` per `internal_lstm` layer (zeros when None, see
    `initial_internals`); with `return_internals=True` the call returns `(y, new_internals)`.
    `is_training` is TensorForce's `update` flag (dropout; needs an rng in `apply`).
    `sequence_length` `[B]` is passed to `lstm` layers.
    """

    def __init__(self, layers_spec: Sequence[dict], name: str | None = None):
        super().__init__(name=name)
        if isinstance(layers_spec, dict) or not isinstance(layers_spec, (list, tuple)) or not layers_spec:
            _fail("network_from_spec", f"argument `layers_spec` must be a non-empty list of layer "
                                       f"dicts, got {layers_spec!r}")
        self.layers = [_build_layer(i, entry) for i, entry in enumerate(layers_spec)]

    def initial_internals(self, batch_size: int) -> tuple[hk.LSTMState, ...]:
        """Zero states, one per `internal_lstm` layer."""
        return tuple(layer.core.initial_state(batch_size) for kind, layer in self.layers
                     if kind == "internal_lstm")

    def __call__(self, x: ArrayLike, internals: Sequence[hk.LSTMState] | None = None, *,
                 is_training: bool = False, sequence_length: ArrayLike | None = None,
                 return_internals: bool = False) -> Array | tuple[Array, tuple[hk.LSTMState, ...]]:
        carried = self._check_internals(x, internals)
        new_internals = []
        for kind, layer in self.layers:
            if kind == "internal_lstm":
                x, state = layer(x, carried[len(new_internals)], is_training)
                new_internals.append(state)
            elif kind == "lstm":
                x = layer(x, sequence_length, is_training)
            elif kind == "dropout":
                x = layer(x, is_training)
            else:
                x = layer(x)
        return (x, tuple(new_internals)) if return_internals else x

    def _check_internals(self, x: ArrayLike, internals: Any) -> tuple[hk.LSTMState, ...]:
        count = sum(kind == "internal_lstm" for kind, _ in self.layers)
        if internals is None:
            return self.initial_internals(jnp.shape(x)[0]) if count else ()
        internals = tuple(internals)
        if len(internals) != count:
            _fail("LayeredNetwork", f"argument `internals` must hold {count} states (one per "
                                    f"internal_lstm layer), got {len(internals)}")
        return internals

    def regularization_loss(self) -> Array:
        """Sum of the layers' l1/l2 penalties; call after the network in the same transform."""
        losses = [layer.regularization_loss() for _, layer in self.layers if isinstance(layer, _TFLayer)]
        return sum(losses, jnp.zeros(()))


def network_from_spec(layers_spec: Sequence[dict], name: str | None = "layered_network") -> LayeredNetwork:
    """Builds a `LayeredNetwork` from a TensorForce layers spec (F30/F31), e.g.

        [{"type": "conv2d", "size": 32, "window": 8, "stride": 4},
         {"type": "flatten"}, {"type": "dense", "size": 64}]

    Types and defaults (TensorForce 0.3.5 docs): dense(size=None, bias=True, activation='tanh',
    l2_regularization=0.0, l1_regularization=0.0, skip=False); linear(size, weights=None,
    bias=True, l2/l1); nonlinearity(name='relu'); dropout(rate=0.0); flatten();
    conv1d/conv2d(size, window=3, stride=1, padding='SAME', bias=True, activation='relu', l2/l1);
    pool2d(pooling_type='max' | 'average', window=2, stride=2, padding='SAME');
    embedding(indices, size, l2/l1); dueling(size, bias=False, activation='none', l2/l1);
    lstm(size, dropout=None, return_final_state=True); internal_lstm(size, dropout=None).
    Activation names: elu, relu, selu, sigmoid, swish, softmax, lrelu / leaky_relu, crelu,
    softplus, softsign, tanh, none. Every layer's `scope` and `summary_labels` (TF variable
    scopes, TensorBoard) are accepted and ignored. A callable `type` is a custom layer:
    `type(**arguments)` must return a function of x. Must be called inside `hk.transform`; spec
    errors are raised here, naming the layer and the argument.
    """
    return LayeredNetwork(layers_spec, name=name)
