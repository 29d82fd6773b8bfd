"""Tests for fnrl.checkpoint: exact round trips, `like` validation, corruption, atomicity, no pickle."""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
from typing import NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnrl import checkpoint
from fnrl.checkpoint import CheckpointError


class Counters(NamedTuple):
    steps: jax.Array
    episodes: int
    extra: object = None


def _mlp(x):
    return hk.nets.MLP([16, 3])(x)


def _agent_state() -> dict:
    """Everything a real agent keeps: params, adam state (after a step), replay, keys, counters."""
    net = hk.without_apply_rng(hk.transform(_mlp))
    params = net.init(jax.random.key(0), jnp.zeros((1, 8)))
    opt = optax.adam(1e-3)
    opt_state = opt.init(params)
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
    _, opt_state = opt.update(grads, opt_state, params)
    rng = np.random.default_rng(0)
    return {
        "params": params,
        "opt_state": opt_state,
        "replay": {
            "frames": rng.integers(0, 256, (10, 84, 84, 4), dtype=np.uint8),
            "done": jnp.asarray(rng.random(10) < 0.3),
            "reward": jnp.asarray(rng.normal(size=10), dtype=jnp.bfloat16),
            "size": jnp.int32(7),
        },
        "raw_key": jax.random.PRNGKey(3),
        "typed_keys": jax.random.split(jax.random.key(4), 2),
        "counters": Counters(steps=jnp.int32(1234), episodes=17),
        "schedule": [0.5, np.float32(2.5), True],
        "nothing": None,
    }


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _assert_leaf_equal(a, b) -> None:
    assert type(a) is type(b), (type(a), type(b))
    if _is_key(a):
        assert a.dtype == b.dtype
        a, b = jax.random.key_data(a), jax.random.key_data(b)
    if hasattr(a, "dtype"):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    else:
        assert a == b


def _assert_tree_equal(a, b) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    jax.tree.map(_assert_leaf_equal, a, b)


def _plain(tree):
    """`tree` with every non-builtin node turned into a dict (what restore without `like` gives)."""
    if isinstance(tree, dict):
        return {k: _plain(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_plain(v) for v in tree]
    if type(tree) is tuple:
        return tuple(_plain(v) for v in tree)
    if isinstance(tree, tuple):  # NamedTuple, optax states
        return {k: _plain(v) for k, v in tree._asdict().items()}
    return tree


def test_round_trip_with_like_is_exact(tmp_path):
    state = _agent_state()
    path = checkpoint.save(tmp_path, state, step=10)
    assert os.path.basename(path) == "ckpt-10.npz"
    _assert_tree_equal(checkpoint.restore(path, like=state), state)
    # A template made without allocating (eval_shape) gives jax arrays where it has structs.
    abstract = jax.eval_shape(lambda: state["params"])
    checkpoint.save(tmp_path / "p", state["params"])
    _assert_tree_equal(checkpoint.restore(tmp_path / "p", like=abstract), state["params"])


def test_round_trip_without_like_rebuilds_builtins(tmp_path):
    state = _agent_state()
    checkpoint.save(tmp_path, state, step=1)
    restored = checkpoint.restore(tmp_path)
    assert isinstance(restored["counters"], dict) and restored["counters"]["extra"] is None
    assert isinstance(restored["opt_state"], tuple) and restored["opt_state"][1] == {}
    assert restored["nothing"] is None
    _assert_tree_equal(restored, _plain(state))


def test_single_leaf_and_empty_trees(tmp_path):
    for i, tree in enumerate([jnp.arange(3.0), 7, {}, None, [], (None, {"a": ()})]):
        checkpoint.save(tmp_path, tree, step=i)
        _assert_tree_equal(checkpoint.restore(tmp_path), tree)


def _drop_size(s):
    del s["replay"]["size"]


def _reshape_frames(s):
    s["replay"]["frames"] = np.zeros((10, 84, 84, 3), np.uint8)


def _float_size(s):
    s["replay"]["size"] = jnp.float32(7)


def _typed_raw_key(s):
    s["raw_key"] = jax.random.key(3)


def _float_episodes(s):
    s["counters"] = Counters(jnp.int32(1), 2.0)


@pytest.mark.parametrize(
    "edited, edit, where, expected, found",
    [
        ("file", _drop_size, "['replay']['size']", "int32[]", "nothing"),
        ("like", _drop_size, "['replay']['size']", "nothing", "int32[]"),
        ("like", _reshape_frames, "['replay']['frames']", "uint8[10, 84, 84, 3]", "uint8[10, 84, 84, 4]"),
        ("like", _float_size, "['replay']['size']", "float32[]", "int32[]"),
        ("like", _typed_raw_key, "['raw_key']", "key<fry>[]", "uint32[2]"),
        ("like", _float_episodes, "['counters'].episodes", "Python float", "Python int"),
    ],
    ids=["missing-in-file", "missing-in-like", "shape", "dtype", "key-kind", "scalar-kind"],
)
def test_like_mismatch_names_the_path(tmp_path, edited, edit, where, expected, found):
    saved, like = _agent_state(), _agent_state()
    edit(saved if edited == "file" else like)
    path = checkpoint.save(tmp_path, saved, step=0)
    with pytest.raises(CheckpointError) as info:
        checkpoint.restore(path, like=like)
    message = str(info.value)
    assert path in message and f"at {where}:" in message
    assert f"expected {expected}" in message and f"found {found}" in message


def test_python_scalars_are_weakly_typed(tmp_path):
    checkpoint.save(tmp_path, {"n": 5, "x": 0.25}, step=0)
    out = checkpoint.restore(tmp_path, like={"n": jnp.int32(0), "x": np.float16(0)})
    _assert_tree_equal(out, {"n": jnp.int32(5), "x": np.float16(0.25)})
    checkpoint.save(tmp_path, {"n": 2**40}, step=1)
    with pytest.raises(CheckpointError, match=r"\['n'\].*int32"):
        checkpoint.restore(tmp_path, like={"n": jnp.int32(0)})
    with pytest.raises(ValueError, match="argument `like`.*\\['n'\\]"):
        checkpoint.restore(tmp_path, like={"n": "text"})


def _saved_bytes(tmp_path) -> tuple[str, bytes]:
    path = checkpoint.save(tmp_path, _agent_state(), step=5)
    with open(path, "rb") as f:
        return path, f.read()


@pytest.mark.parametrize("damage", ["truncate", "garble-data", "garble-manifest", "junk", "empty"])
def test_damaged_file_raises_checkpoint_error(tmp_path, damage):
    path, data = _saved_bytes(tmp_path)
    if damage == "truncate":
        data = data[: len(data) * 2 // 3]
    elif damage in ("garble-data", "garble-manifest"):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            member = "manifest.json" if damage == "garble-manifest" else "2.npy"
            offset = zf.getinfo(member).header_offset
        name_len, extra_len = struct.unpack("<HH", data[offset + 26 : offset + 30])
        start = offset + 30 + name_len + extra_len + 20  # 20 bytes into the member's data
        data = data[:start] + bytes(b ^ 0x5A for b in data[start : start + 16]) + data[start + 16 :]
    else:
        data = np.random.default_rng(0).bytes(1000) if damage == "junk" else b""
    with open(path, "wb") as f:
        f.write(data)
    with pytest.raises(CheckpointError, match="truncated or corrupted") as info:
        checkpoint.restore(path)
    assert path in str(info.value)


def _rewrite(path, manifest_edit=None, members=None) -> None:
    """Rewrites a checkpoint zip with an edited manifest and/or replaced members."""
    with zipfile.ZipFile(path) as zf:
        contents = {name: zf.read(name) for name in zf.namelist()}
    manifest = json.loads(contents["manifest.json"])
    if manifest_edit:
        manifest_edit(manifest)
    contents["manifest.json"] = json.dumps(manifest).encode()
    contents.update(members or {})
    with zipfile.ZipFile(path, "w") as zf:
        for name, blob in contents.items():
            zf.writestr(name, blob)


def test_foreign_or_newer_files_are_refused(tmp_path):
    foreign = tmp_path / "ckpt-1.npz"
    np.savez(foreign, a=np.zeros(3))
    with pytest.raises(CheckpointError, match="truncated or corrupted"):  # no manifest at all
        checkpoint.restore(foreign)
    path = checkpoint.save(tmp_path, {"a": np.zeros(3)}, step=2)
    _rewrite(path, manifest_edit=lambda m: m.update(version=checkpoint.VERSION + 1))
    with pytest.raises(CheckpointError, match="version"):
        checkpoint.restore(path)
    path = checkpoint.save(tmp_path, {"a": np.zeros(3)}, step=3)
    _rewrite(path, manifest_edit=lambda m: m["leaves"][0].update(shape=[4]))
    with pytest.raises(CheckpointError, match="manifest says"):
        checkpoint.restore(path)


_EXECUTED = []


class _Payload:
    """An object whose unpickling would run code (appending to `_EXECUTED`)."""

    def __reduce__(self):
        return (_EXECUTED.append, ("ran",))


def test_loading_never_unpickles(tmp_path):
    path = checkpoint.save(tmp_path, {"a": np.arange(3), "b": jnp.ones((2, 2), jnp.bfloat16)}, step=0)
    with np.load(path, allow_pickle=False) as npz:  # the file is a plain pickle-free npz
        assert json.loads(npz["manifest.json"])["format"] == "fnrl-checkpoint"
        np.testing.assert_array_equal(npz["0"], np.arange(3))
    evil = io.BytesIO()
    np.save(evil, np.array([_Payload()], dtype=object), allow_pickle=True)
    _rewrite(path, members={"0.npy": evil.getvalue()})
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        checkpoint.restore(path)
    assert _EXECUTED == []


@pytest.mark.parametrize(
    "leaf", [np.array([object()], dtype=object), np.array(["a", "b"]), "text", object(), 2**63, -2**63 - 1],
    ids=["object-array", "str-array", "str", "object", "int-above-int64", "int-below-int64"],
)
def test_save_refuses_what_needs_pickle(tmp_path, leaf):
    with pytest.raises(ValueError, match=r"save: leaf \['ok'\]\[1\]"):
        checkpoint.save(tmp_path, {"ok": [jnp.zeros(2), leaf]}, step=0)
    assert checkpoint.latest(tmp_path) is None and os.listdir(tmp_path) == []


def _boom(*args, **kwargs):
    raise OSError("disk full")


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    "target, attribute, failure",
    [(os, "replace", _boom), (np.lib.format, "write_array", _interrupt), (os, "fsync", _boom)],
    ids=["replace-fails", "ctrl-c-while-writing", "fsync-fails"],
)
def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch, target, attribute, failure):
    old = {"w": jnp.arange(4.0), "n": jnp.int32(1)}
    checkpoint.save(tmp_path, old, step=1)
    checkpoint.save(tmp_path, old)  # the unnumbered ckpt.npz is replaced in place too
    monkeypatch.setattr(target, attribute, failure)
    with pytest.raises((OSError, KeyboardInterrupt)):
        checkpoint.save(tmp_path, {"w": jnp.zeros(4), "n": jnp.int32(2)}, step=2)
    with pytest.raises((OSError, KeyboardInterrupt)):
        checkpoint.save(tmp_path, {"w": jnp.zeros(4), "n": jnp.int32(2)})
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["ckpt-1.npz", "ckpt.npz"]  # no partial file left
    assert checkpoint.latest(tmp_path) == str(tmp_path / "ckpt-1.npz")
    _assert_tree_equal(checkpoint.restore(tmp_path, like=old), old)
    _assert_tree_equal(checkpoint.restore(tmp_path / "ckpt.npz", like=old), old)


def test_latest_ignores_leftovers_of_a_hard_crash(tmp_path):
    checkpoint.save(tmp_path, {"a": jnp.ones(2)}, step=3)
    for junk in [".ckpt-9.npz.tmp-0123abcd", "ckpt-9.npz.tmp", "ckpt-x.npz", "notes.txt"]:
        (tmp_path / junk).write_bytes(b"partial")
    assert checkpoint.latest(tmp_path) == str(tmp_path / "ckpt-3.npz")


def test_latest_orders_by_step_then_unnumbered(tmp_path):
    assert checkpoint.latest(tmp_path / "missing") is None
    checkpoint.save(tmp_path, {"a": 0})
    assert checkpoint.latest(tmp_path) == str(tmp_path / "ckpt.npz")
    for step in [9, 10, 2]:  # numeric, not lexicographic, order
        checkpoint.save(tmp_path, {"a": step}, step=jnp.int32(step))
    assert checkpoint.latest(tmp_path) == str(tmp_path / "ckpt-10.npz")
    assert checkpoint.restore(tmp_path) == {"a": 10}


def test_keep_prunes_oldest_steps(tmp_path):
    for step in range(1, 6):
        checkpoint.save(tmp_path, {"s": step}, step=step, keep=2)
    assert sorted(os.listdir(tmp_path)) == ["ckpt-4.npz", "ckpt-5.npz"]
    checkpoint.save(tmp_path, {"s": 2}, step=2, keep=2)  # the file just written always stays
    assert sorted(os.listdir(tmp_path)) == ["ckpt-2.npz", "ckpt-5.npz"]
    checkpoint.save(tmp_path, {"s": 6}, step=6, keep=1)
    assert os.listdir(tmp_path) == ["ckpt-6.npz"]


def test_argument_errors(tmp_path):
    for step in [-1, 1.5, True, jnp.zeros(2, jnp.int32)]:
        with pytest.raises(ValueError, match="argument `step`"):
            checkpoint.save(tmp_path, {}, step=step)
    for keep in [0, 1.0]:
        with pytest.raises(ValueError, match="argument `keep`"):
            checkpoint.save(tmp_path, {}, step=1, keep=keep)
    with pytest.raises(ValueError, match="argument `keep` needs a `step`"):
        checkpoint.save(tmp_path, {}, keep=2)
    with pytest.raises(CheckpointError, match="no checkpoint in directory"):
        checkpoint.restore(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.restore(tmp_path / "ckpt-1.npz")
