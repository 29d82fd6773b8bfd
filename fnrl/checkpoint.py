"""Checkpoints: save and restore any pytree (params, optimizer state, replay, rng, counters).

Covers TensorForce's `save_model` / `restore_model` (seed-features M13) and AgentNet's
`persistence.save` / `load` (N1, N2) for a whole functional agent state.

File format (version 1). One checkpoint is one uncompressed zip file readable with
`np.load(path, allow_pickle=False)`:

* `manifest.json` — `{"format": "fnrl-checkpoint", "version": 1, "step", "tree", "leaves"}`.
  `leaves[i]` describes leaf i: its key path (`jax.tree_util.keystr`), its type (`jax` array,
  `numpy` array, numpy `scalar`, `python` scalar or typed PRNG `key`), dtype and shape.
  `tree` encodes the nesting in JSON: `null` (None), `{"leaf": i}`, `{"dict": [[key, child]...]}`,
  `{"list": [...]}`, `{"tuple": [...]}`, `{"node": class_name, "items": [[key, child]...]}` for
  any other pytree node (NamedTuple, chex dataclass, ...).
* `<i>.npy` — the data of leaf i, written with `allow_pickle=False`. Dtypes numpy cannot name
  portably (bfloat16 and the other ml_dtypes) are stored as same-size unsigned integers and viewed
  back; typed PRNG keys are stored as `jax.random.key_data` and rebuilt with `wrap_key_data`.

Nothing in a file is ever executed: no pickle, no class is imported by name. Consequently, without
`like`, every non-builtin node (NamedTuple, dataclass, optax state) comes back as a plain dict
from field name to child; pass `like=` (e.g. `init(key)` or `jax.eval_shape(init, key)`) to get
the original classes back, validated leaf by leaf.

Writes are atomic: the file is written under a hidden temporary name in the same directory,
fsynced, then moved over the final name with `os.replace`, so an interrupted save (crash,
Ctrl-C, full disk) leaves the previous checkpoint intact and nothing that `latest` would pick.
A single writer per directory is assumed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
import zipfile
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from fnrl.types import PyTree

__all__ = ["CheckpointError", "latest", "restore", "save"]

FORMAT = "fnrl-checkpoint"
VERSION = 1
_MANIFEST = "manifest.json"
_NUMBERED = re.compile(r"^ckpt-(\d+)\.npz$")
_UNNUMBERED = "ckpt.npz"
_PY_SCALARS = {"bool": bool, "int": int, "float": float, "complex": complex}
_PY_DTYPES = {"bool": "bool", "int": "int64", "float": "float64", "complex": "complex128"}


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, corrupted, or does not match `like`."""


# --------------------------------------------------------------------------------------------
# Leaves: classification and the (type, dtype, shape) description stored in the manifest.


def _leaf_type(x: Any) -> str | None:
    """The manifest type of a leaf, or None if `x` is not a storable leaf."""
    if isinstance(x, np.generic):  # before `float`: np.float64 subclasses it
        return "scalar"
    if isinstance(x, (bool, int, float, complex)):
        return "python"
    if isinstance(x, np.ndarray):
        return "numpy"
    if isinstance(x, (jax.Array, jax.ShapeDtypeStruct)):
        return "key" if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else "jax"
    return None


def _describe_leaf(x: Any) -> dict:
    """Type, dtype and shape of a leaf (of a tree being saved, or of a `like` template)."""
    kind = _leaf_type(x)
    if kind == "python":
        name = _py_name(x)
        return {"type": kind, "pytype": name, "dtype": _PY_DTYPES[name], "shape": []}
    return {"type": kind, "dtype": str(x.dtype), "shape": [int(d) for d in np.shape(x)]}


def _py_name(x: Any) -> str:
    """The builtin scalar type of `x` (an IntEnum member is stored as its int)."""
    return next(name for name, cls in _PY_SCALARS.items() if isinstance(x, cls))


def _storable_dtype(dtype: np.dtype) -> bool:
    """Bool and numeric dtypes (ml_dtypes included); object/string/void would need pickle."""
    return dtype == np.bool_ or bool(jnp.issubdtype(dtype, jnp.number))


def _storage_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype the .npy file holds: numpy's own, or a same-size uint for ml_dtypes."""
    return dtype if dtype.kind in "biufc" else np.dtype(f"u{dtype.itemsize}")


def _leaf_data(path: str, x: Any, meta: dict) -> np.ndarray:
    """The numpy array written for one leaf; refuses leaves that cannot be stored safely."""
    if meta["type"] == "key":
        return np.asarray(jax.random.key_data(x))
    try:
        data = np.asarray(x, meta["dtype"]) if meta["type"] == "python" else np.asarray(x)
    except OverflowError as err:
        raise ValueError(f"save: leaf {path}: Python int {x} does not fit in int64") from err
    if not _storable_dtype(data.dtype):
        raise ValueError(
            f"save: leaf {path} has dtype {data.dtype}; only bool and numeric arrays can be "
            "saved (object, string and void arrays would need pickle)"
        )
    return data.view(_storage_dtype(data.dtype))


def _leaf_value(meta: dict, data: np.ndarray) -> Any:
    """Rebuilds a leaf of the manifest's type from its stored data (restore without `like`)."""
    kind = meta["type"]
    if kind == "key":
        return jax.random.wrap_key_data(jnp.asarray(data), impl=meta["impl"])
    if kind == "jax":
        return jnp.asarray(data)
    if kind == "numpy":
        return data
    if kind == "scalar":
        return data[()]
    return _PY_SCALARS[meta["pytype"]](data.item())


def _fmt(meta: dict) -> str:
    if meta["type"] == "python":
        return f"Python {meta['pytype']}"
    return f"{meta['dtype']}{list(meta['shape'])}"


def _path_name(path: str) -> str:
    return path or "<root>"


# --------------------------------------------------------------------------------------------
# Structure: the JSON encoding of the tree and its inverse.


def _items(node: Any) -> list[tuple[Any, Any]] | None:
    """One level of the pytree below `node` as (key entry, child), None children kept; None if
    `node` is a leaf to jax (an unsupported object, since storable leaves are handled first)."""
    pairs, _ = jax.tree_util.tree_flatten_with_path(node, is_leaf=lambda y: y is not node)
    if len(pairs) == 1 and not pairs[0][0]:
        return None
    return [(path[0], child) for path, child in pairs]


def _key_value(path: str, entry: Any) -> str | int:
    """The JSON-storable name of a key-path entry (dict key, field name or index)."""
    for attr in ("key", "name", "idx"):
        value = getattr(entry, attr, None)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return value
    raise ValueError(
        f"save: node at {_path_name(path)} has key {entry!r}; only str and int keys can be saved"
    )


def _encode(node: Any, path: tuple, leaves: list) -> Any:
    """JSON for the structure of `node`; appends (key path, leaf) to `leaves` in order."""
    if node is None:
        return None
    if _leaf_type(node) is not None and not isinstance(node, jax.ShapeDtypeStruct):
        leaves.append((jax.tree_util.keystr(path), node))
        return {"leaf": len(leaves) - 1}
    items = _items(node)
    if items is None:  # an object jax treats as a leaf (str, ShapeDtypeStruct, ...): no data
        where = _path_name(jax.tree_util.keystr(path))
        raise ValueError(f"save: leaf {where} of type {type(node).__name__} is not an array or scalar")
    children = [_encode(child, path + (entry,), leaves) for entry, child in items]
    if type(node) in (list, tuple):
        return {type(node).__name__: children}
    keys = [_key_value(jax.tree_util.keystr(path), entry) for entry, _ in items]
    if isinstance(node, dict):
        return {"dict": [list(kc) for kc in zip(keys, children)]}
    return {"node": type(node).__name__, "items": [list(kc) for kc in zip(keys, children)]}


def _decode(spec: Any, values: list) -> Any:
    """Rebuilds builtin containers from the JSON structure (non-builtin nodes become dicts)."""
    if spec is None:
        return None
    if "leaf" in spec:
        return values[spec["leaf"]]
    if "list" in spec:
        return [_decode(child, values) for child in spec["list"]]
    if "tuple" in spec:
        return tuple(_decode(child, values) for child in spec["tuple"])
    pairs = spec["dict"] if "dict" in spec else spec["items"]
    return {key: _decode(child, values) for key, child in pairs}


# --------------------------------------------------------------------------------------------
# Files: naming, atomic writing, guarded reading.


def _numbered(directory: str) -> list[tuple[int, str]]:
    """(step, path) of every `ckpt-<step>.npz` in `directory`, by increasing step."""
    if not os.path.isdir(directory):
        return []
    found = [(_NUMBERED.match(name), name) for name in os.listdir(directory)]
    return sorted((int(m.group(1)), os.path.join(directory, name)) for m, name in found if m)


def _write_atomic(path: str, manifest: dict, arrays: list[np.ndarray]) -> None:
    """Writes the zip under a hidden temporary name, fsyncs it, then renames it into place."""
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.tmp-{uuid.uuid4().hex}")
    try:
        with open(tmp, "xb") as f:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                zf.writestr(_MANIFEST, json.dumps(manifest))
                for i, data in enumerate(arrays):
                    with zf.open(f"{i}.npy", "w", force_zip64=True) as out:
                        np.lib.format.write_array(out, data, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # including KeyboardInterrupt: never leave the partial file behind
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Makes the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _reading(path: str) -> Iterator[None]:
    """Turns any failure to parse an (untrusted) file into a CheckpointError naming it."""
    try:
        yield
    except CheckpointError:
        raise
    except Exception as err:  # a garbled file can fail anywhere in zipfile/numpy/json
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupted ({type(err).__name__}: {err})"
        ) from err


def _read_manifest(path: str, zf: zipfile.ZipFile) -> dict:
    manifest = json.loads(zf.read(_MANIFEST).decode("utf-8"))
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an fnrl checkpoint (no {FORMAT!r} manifest)")
    if not isinstance(manifest.get("version"), int) or manifest["version"] > VERSION:
        raise CheckpointError(
            f"{path} has format version {manifest.get('version')!r}; this fnrl reads up to {VERSION}"
        )
    return manifest


def _read_leaf(zf: zipfile.ZipFile, i: int, meta: dict) -> np.ndarray:
    """Reads leaf i and checks it against its manifest entry; views ml_dtypes back."""
    with zf.open(f"{i}.npy") as fp:
        data = np.lib.format.read_array(fp, allow_pickle=False)
        fp.read()  # reach the end of the member so zipfile verifies its CRC-32
    shape = tuple(meta["shape"])
    if meta["type"] == "key":
        ok = data.dtype == np.uint32 and data.shape[: len(shape)] == shape
    else:
        dtype = np.dtype(meta["dtype"])
        ok = _storable_dtype(dtype) and data.dtype == _storage_dtype(dtype) and data.shape == shape
        data = data.view(dtype) if ok else data
    if not ok:
        raise ValueError(f"leaf {i} holds {data.dtype}{list(data.shape)}, manifest says {_fmt(meta)}")
    return data


# --------------------------------------------------------------------------------------------
# Restoring into a `like` template.


def _dtype_kind(meta: dict) -> str:
    """bool / int / float / complex / other: what a weakly typed Python scalar must agree with."""
    if meta["type"] == "key":
        return "key"
    dtype = np.dtype(meta["dtype"])
    if dtype == np.bool_:
        return "bool"
    for kind in ("integer", "floating", "complexfloating"):
        if jnp.issubdtype(dtype, getattr(jnp, kind)):
            return kind
    return "other"


def _differs(expected: dict, found: dict) -> bool:
    """Exact dtype and shape; a Python scalar on either side is weak: kind and rank 0 suffice."""
    if "python" in (expected["type"], found["type"]):
        return bool(expected["shape"] or found["shape"]) or _dtype_kind(expected) != _dtype_kind(found)
    return expected["dtype"] != found["dtype"] or list(expected["shape"]) != list(found["shape"])


def _like_leaves(like: PyTree) -> list[tuple[str, Any, dict]]:
    """(key path, leaf, description) of each leaf of the `like` template, in flatten order."""
    out = []
    for key_path, leaf in jax.tree_util.tree_flatten_with_path(like)[0]:
        name = jax.tree_util.keystr(key_path)
        if _leaf_type(leaf) is None:
            raise ValueError(
                f"restore: argument `like` has a leaf at {_path_name(name)} of type "
                f"{type(leaf).__name__}; expected arrays, ShapeDtypeStructs or scalars"
            )
        out.append((name, leaf, _describe_leaf(leaf)))
    return out


def _match(path: str, wanted: list[tuple[str, Any, dict]], metas: list[dict]) -> list[int]:
    """Stored leaf index for each `like` leaf; raises at the first path that does not match."""
    index = {meta["path"]: i for i, meta in enumerate(metas)}
    order = []
    for name, _, expected in wanted:
        found = metas[index[name]] if name in index else None
        if found is None or _differs(expected, found):
            what = "nothing (not in the checkpoint)" if found is None else _fmt(found)
            raise CheckpointError(
                f"checkpoint {path} does not match `like` at {_path_name(name)}: "
                f"expected {_fmt(expected)}, found {what}"
            )
        order.append(index[name])
    used = set(order)
    extra = [meta for i, meta in enumerate(metas) if i not in used]
    if extra:
        raise CheckpointError(
            f"checkpoint {path} does not match `like` at {_path_name(extra[0]['path'])}: "
            f"expected nothing (not in `like`), found {_fmt(extra[0])}"
        )
    return order


def _as_like(leaf: Any, meta: dict, data: np.ndarray, name: str) -> Any:
    """The stored value in the type of the `like` leaf (jax/numpy array, numpy or Python scalar)."""
    kind = _leaf_type(leaf)
    if kind == "key":
        return jax.random.wrap_key_data(jnp.asarray(data), impl=meta["impl"])
    if kind == "python":
        return _PY_SCALARS[_describe_leaf(leaf)["pytype"]](data.item())
    dtype = np.dtype(leaf.dtype)
    value = data.astype(dtype) if data.dtype != dtype else data
    exact = dtype == np.bool_ or jnp.issubdtype(dtype, jnp.integer)
    if exact and not np.array_equal(value, data):  # a weak Python int out of the like's range
        raise CheckpointError(
            f"restore: value {data.item()} at {_path_name(name)} does not fit `like`'s {dtype}"
        )
    if kind == "jax":
        return jnp.asarray(value)
    return value if kind == "numpy" else value[()]


# --------------------------------------------------------------------------------------------
# Public API.


def _check_step(step: Any) -> int | None:
    """None, or a non-negative Python int / rank-0 integer array (not bool), as an int."""
    if step is None:
        return None
    dtype = getattr(step, "dtype", None)
    is_int = isinstance(step, int) and not isinstance(step, bool)
    if not (is_int or dtype is not None and jnp.issubdtype(dtype, jnp.integer) and np.ndim(step) == 0):
        raise ValueError(f"save: argument `step` must be None or a non-negative integer, got {step!r}")
    if int(step) < 0:
        raise ValueError(f"save: argument `step` must be non-negative, got {int(step)}")
    return int(step)


def save(directory: str | os.PathLike, tree: PyTree, step: Any = None, keep: int | None = None) -> str:
    """Atomically writes `tree` to `directory/ckpt-<step>.npz` (or `ckpt.npz` if step is None).

    TensorForce `save_model(directory, append_timestep)`: with a `step` the file name carries it,
    so earlier checkpoints are kept (append_timestep=True); with `step=None` the same
    `ckpt.npz` is overwritten each time (append_timestep=False). AgentNet `persistence.save`
    stores weights only; here the whole agent state goes in (params, optimizer state, replay
    buffer, rng keys, counters), as a pickle-free file (see the module docstring).

    Args:
      directory: created if missing.
      tree: any pytree of jax/numpy arrays (bool, int, uint, float, complex, bfloat16, ...),
        numpy or Python scalars, raw or typed PRNG keys; dict keys and fields must be str or int.
      step: a non-negative integer (Python or 0-d array), or None.
      keep: if set, delete the oldest numbered checkpoints after the write so that the one
        just written and the `keep - 1` highest-step others remain. Requires `step`.

    Returns:
      The path written.

    Raises:
      ValueError: a bad argument, or a leaf that cannot be stored without pickle (object or
        string arrays, arbitrary Python objects), naming its key path.
    """
    step = _check_step(step)
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
        raise ValueError(f"save: argument `keep` must be None or an integer >= 1, got {keep!r}")
    if keep is not None and step is None:
        raise ValueError("save: argument `keep` needs a `step`: ckpt.npz is overwritten in place")
    leaves: list = []
    structure = _encode(tree, (), leaves)
    metas, arrays = [], []
    for path, leaf in leaves:
        meta = {"path": path, **_describe_leaf(leaf)}
        if meta["type"] == "key":
            meta["impl"] = str(jax.random.key_impl(leaf))
        metas.append(meta)
        arrays.append(_leaf_data(_path_name(path), leaf, meta))
    if len({meta["path"] for meta in metas}) != len(metas):
        raise ValueError("save: two leaves of `tree` have the same key path; rename their keys")
    manifest = {"format": FORMAT, "version": VERSION, "step": step, "tree": structure, "leaves": metas}
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, _UNNUMBERED if step is None else f"ckpt-{step}.npz")
    _write_atomic(path, manifest, arrays)
    if keep is not None:
        others = [p for _, p in _numbered(directory) if p != path]
        for old in others[: max(len(others) - (keep - 1), 0)]:
            with contextlib.suppress(FileNotFoundError):
                os.remove(old)
    return path


def latest(directory: str | os.PathLike) -> str | None:
    """The checkpoint with the highest step in `directory`, else its `ckpt.npz`, else None.

    TensorForce `restore_model(directory)` without a file restores the latest one the same way.
    Temporary files of an interrupted save never match (they are hidden `.ckpt-...tmp-...` files).
    """
    directory = os.fspath(directory)
    numbered = _numbered(directory)
    if numbered:
        return numbered[-1][1]
    path = os.path.join(directory, _UNNUMBERED)
    return path if os.path.isfile(path) else None


def restore(path_or_directory: str | os.PathLike, like: PyTree = None) -> PyTree:
    """Reads a checkpoint file, or the `latest` one of a directory, back into a pytree.

    Without `like`, dicts, lists, tuples, None and every leaf come back as saved (jax arrays as
    jax arrays, typed keys as typed keys, Python scalars as Python scalars); any other node
    (NamedTuple, optax state, dataclass) comes back as a dict from field name to child, because
    rebuilding a class named in a file would mean importing and running code.

    With `like` (a template such as `init(key)` or `jax.eval_shape(init, key)`), the result
    has `like`'s exact tree structure, and every leaf has the type of the `like` leaf; each leaf
    path must exist in the file with the same dtype and shape (a Python scalar on either side
    is weakly typed: it matches any rank-0 leaf of its kind), and the file must hold nothing
    else. This is AgentNet `persistence.load` (architecture must match), made functional.

    Raises:
      CheckpointError: no checkpoint found; the file is truncated, corrupted or not an fnrl
        checkpoint; or it does not match `like` (the message names the first mismatching key
        path, with the expected and found dtype/shape). The message names the file.
      ValueError: `like` holds a leaf that is not an array, ShapeDtypeStruct or scalar.
    """
    wanted = None if like is None else _like_leaves(like)
    path = _resolve(path_or_directory)
    with _reading(path), zipfile.ZipFile(path) as zf:
        manifest = _read_manifest(path, zf)
        metas = manifest["leaves"]
        order = None if wanted is None else _match(path, wanted, metas)
        data = [_read_leaf(zf, i, meta) for i, meta in enumerate(metas)]
        if wanted is None:
            return _decode(manifest["tree"], [_leaf_value(m, d) for m, d in zip(metas, data)])
        values = [_as_like(leaf, metas[i], data[i], name) for (name, leaf, _), i in zip(wanted, order)]
        return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(like), values)


def _resolve(path_or_directory: str | os.PathLike) -> str:
    path = os.fspath(path_or_directory)
    if os.path.isdir(path):
        found = latest(path)
        if found is None:
            raise CheckpointError(f"restore: no checkpoint in directory {path}")
        return found
    if not os.path.isfile(path):
        raise CheckpointError(f"restore: checkpoint {path} does not exist")
    return path
