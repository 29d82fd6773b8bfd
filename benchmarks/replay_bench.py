"""Throughput and memory of fnrl's replay buffers (`fnrl.uniform_replay`, `fnrl.prioritized_replay`).

Items:
- CartPole step: a `fnrl.Step` with a float32[4] observation (steps=True, n_step=1: `sample`
  assembles `Transition`s, the next observation read from the following slot);
- CartPole transition: a dict with its own next observation (steps=False, sampled as stored);
- Atari step: a `fnrl.Step` with a uint8[84, 84, 4] frame stack (steps=True).

Operations, on a buffer first filled to capacity (so adds overwrite the oldest items, the steady
state) with random items:
- add of a batch of 128, `jax.jit(buffer.add, donate_argnums=0)`; baseline: a plain
  `x.at[slots].set(batch)` of every item leaf into a donated array of the buffer's shape;
- the same add jitted without donation (XLA must then copy the whole buffer);
- sample of 128 (jitted); baseline: a plain uniform gather of the rows a batch needs (the slot, and
  for steps=True its successor);
- update_priorities of 128 (prioritized, donated).
Each figure is the median per-call time of `--repeats` calls after warm-up (a call blocks until
its result is ready); an operation and its baseline run interleaved, in alternating order, and
"speed vs" is the median of the per-call ratios baseline / fnrl (> 1: fnrl faster). Compile time
(lower + compile) is separate. Memory is the bytes of the state's leaves against capacity × the
bytes of one item. A "Some donated buffers were not usable" warning is an error, and every
donated call is checked to have consumed its input.

The copy check (the issue's goal): the donated add of 128 Atari items at the two largest Atari
capacities measured, interleaved with both buffers alive; its time must not grow more than 2×.

    python -m benchmarks.replay_bench                 # full run, prints markdown (minutes)
    python -m benchmarks.replay_bench --quick         # smoke run: small capacities, ~half a minute
    python -m benchmarks.replay_bench --write         # also updates BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import re
import statistics
import sys
import time
import warnings
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

import fnrl
from benchmarks._report import update_section

BATCH, GAMMA = 128, 0.99
BUILDERS = {"uniform": fnrl.uniform_replay, "prioritized": fnrl.prioritized_replay}
TIME_BUDGET_S = 10.0  # per interleaved measurement; at least MIN_CALLS calls each
MIN_CALLS = 3
# Headroom beyond twice the state (the buffer and its same-shape baseline, or a non-donated add's
# input and output, alive together), for jax, XLA and the batches.
MEMORY_MARGIN = 1 << 30


class Kind(NamedTuple):
    name: str
    steps: bool
    make: Callable[[np.random.Generator, int], object]  # rng, n -> a batch of n items
    capacities: tuple[int, ...]
    quick_capacities: tuple[int, ...]


def _flags(rng: np.random.Generator, n: int) -> dict:
    done = rng.random(n) < 0.01
    return dict(terminated=jnp.asarray(done), truncated=jnp.zeros(n, bool),
                valid=jnp.asarray(np.roll(~done, 1)))


def cartpole_step(rng: np.random.Generator, n: int) -> fnrl.Step:
    return fnrl.Step(observation=jnp.asarray(rng.normal(size=(n, 4)), jnp.float32),
                     action=jnp.asarray(rng.integers(0, 2, n), jnp.int32),
                     reward=jnp.ones(n, jnp.float32), **_flags(rng, n))


def cartpole_transition(rng: np.random.Generator, n: int) -> dict:
    return dict(observation=jnp.asarray(rng.normal(size=(n, 4)), jnp.float32),
                action=jnp.asarray(rng.integers(0, 2, n), jnp.int32), reward=jnp.ones(n, jnp.float32),
                discount=jnp.full(n, GAMMA, jnp.float32),
                next_observation=jnp.asarray(rng.normal(size=(n, 4)), jnp.float32))


def atari_step(rng: np.random.Generator, n: int) -> fnrl.Step:
    return fnrl.Step(observation=jnp.asarray(rng.integers(0, 256, (n, 84, 84, 4), np.uint8)),
                     action=jnp.asarray(rng.integers(0, 18, n), jnp.int32),
                     reward=jnp.asarray(rng.normal(size=n), jnp.float32), **_flags(rng, n))


KINDS = (
    Kind("CartPole step", True, cartpole_step, (10_000, 100_000, 1_000_000), (1_000,)),
    Kind("CartPole transition", False, cartpole_transition, (10_000, 100_000, 1_000_000), (1_000,)),
    Kind("Atari step", True, atari_step, (10_000, 100_000, 1_000_000), (1_000, 10_000)),
)
ATARI = KINDS[2]


def make_buffer(name: str, capacity: int, kind: Kind) -> fnrl.ReplayBuffer:
    return BUILDERS[name](capacity, **(dict(steps=True, discount=GAMMA) if kind.steps else {}))


def nbytes(tree) -> int:
    return sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def available_bytes() -> int:
    """MemAvailable of /proc/meminfo (what can be allocated without swapping)."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def _compile(fn: Callable, *args) -> tuple[Callable, float, str]:
    """(the compiled `fn`, seconds spent lowering and compiling it, its optimized HLO)."""
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    return compiled, time.perf_counter() - start, compiled.as_text()


def buffer_copies(hlo: str, shape: tuple[int, ...], dtype) -> int:
    """How many `copy` instructions of the optimized HLO produce an array of `shape` and `dtype`."""
    name = {"uint8": "u8", "float32": "f32", "int32": "s32", "bool": "pred"}[np.dtype(dtype).name]
    spelled = f"{name}[{','.join(map(str, shape))}]"
    return len(re.findall(re.escape(spelled) + r"\{[^}]*\} copy\(", hlo))


def check_donated(before) -> None:
    """Donation really happened: every leaf of the donated argument was consumed by the call."""
    kept = [x.shape for x in jax.tree.leaves(before) if not x.is_deleted()]
    if kept:
        raise RuntimeError(f"donated leaves still alive after the call (copied, not reused): {kept}")


def interleave(calls: dict[str, Callable[[int], object]], repeats: int) -> dict[str, list[float]]:
    """Per-call seconds of each call, run interleaved (order alternating every round) for `repeats`
    rounds or until TIME_BUDGET_S has passed (at least MIN_CALLS rounds). A call gets its round
    number and returns an output to block on; one leaf suffices, as all outputs of an XLA:CPU
    execution become ready together."""
    names = list(calls)
    times: dict[str, list[float]] = {name: [] for name in names}
    start = time.perf_counter()
    for r in range(repeats):
        if r >= MIN_CALLS and time.perf_counter() - start > TIME_BUDGET_S:
            break
        for name in names if r % 2 == 0 else reversed(names):
            t = time.perf_counter()
            jax.block_until_ready(jax.tree.leaves(calls[name](r))[0])
            times[name].append(time.perf_counter() - t)
    return times


def speed(baseline: list[float], ours: list[float]) -> float:
    return statistics.median(b / o for b, o in zip(baseline, ours))


class Filled(NamedTuple):
    buffer: fnrl.ReplayBuffer
    cell: dict  # {"state": the current state}; the state is donated on every add
    add: Callable
    add_compile_s: float
    add_hlo: str
    batches: list


@functools.lru_cache(maxsize=None)
def compiled_add(kind: Kind, name: str, capacity: int) -> tuple[fnrl.ReplayBuffer, Callable, float, str]:
    """A buffer, its add compiled with the state donated (cached: the copy check reuses it),
    compile seconds and optimized HLO."""
    buffer = make_buffer(name, capacity, kind)
    batch = jax.eval_shape(lambda: kind.make(np.random.default_rng(0), BATCH))
    state = jax.eval_shape(buffer.init, jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), batch))
    return (buffer, *_compile(jax.jit(buffer.add, donate_argnums=0), state, batch))


def filled(kind: Kind, name: str, capacity: int) -> Filled:
    """A buffer of `capacity` random items (written by 128-item donated adds, so the add is also
    warmed up), with its compiled donated add."""
    rng = np.random.default_rng(capacity)
    batches = [kind.make(rng, BATCH) for _ in range(4)]
    buffer, add, add_s, hlo = compiled_add(kind, name, capacity)
    state = buffer.init(jax.tree.map(lambda x: x[0], batches[0]))
    before = state
    cell = {"state": add(state, batches[0])}
    check_donated(before)
    del before, state
    for i in range(1, -(-capacity // BATCH)):
        cell["state"] = add(cell["state"], batches[i % len(batches)])
    jax.block_until_ready(cell["state"])
    return Filled(buffer, cell, add, add_s, hlo, batches)


def measure(kind: Kind, name: str, capacity: int, repeats: int) -> dict:
    """One table row: every operation's median time, speed against its baseline, compile seconds,
    the state's bytes and the buffer copies in the compiled adds."""
    f = filled(kind, name, capacity)
    batches, cell = f.batches, f.cell
    row: dict = dict(items=kind.name, buffer=name, capacity=capacity, compile_add=f.add_compile_s,
                     state_bytes=nbytes(cell["state"]), item_bytes=nbytes(batches[0]) // BATCH)
    largest = max(jax.tree.leaves(cell["state"].items), key=lambda x: x.size)
    row["copies_donated"] = buffer_copies(f.add_hlo, largest.shape, largest.dtype)

    # add against a plain in-place scatter of the same batch into arrays of the buffer's shape
    def scatter(items, position, batch):
        slots = (position + jnp.arange(BATCH)) % capacity
        return jax.tree.map(lambda x, b: x.at[slots].set(b), items, batch), (position + BATCH) % capacity

    plain = {"out": (jax.tree.map(jnp.zeros_like, cell["state"].items), jnp.zeros((), jnp.int32))}
    scatter_c, _, _ = _compile(jax.jit(scatter, donate_argnums=0), *plain["out"], batches[0])
    before = plain["out"][0]
    plain["out"] = scatter_c(*plain["out"], batches[0])
    check_donated(before)
    del before

    def add_call(r):
        cell["state"] = f.add(cell["state"], batches[r % len(batches)])
        return cell["state"].position

    def scatter_call(r):
        plain["out"] = scatter_c(*plain["out"], batches[r % len(batches)])
        return plain["out"][1]

    for r in range(2):
        scatter_call(r)
    times = interleave({"add": add_call, "scatter": scatter_call}, repeats)
    row.update(add=statistics.median(times["add"]), add_speed=speed(times["scatter"], times["add"]))
    plain.clear()  # frees the baseline buffers before the next measurement

    # sample against a plain uniform gather of the rows a batch reads
    def gather(items, key):
        slots = jax.random.randint(key, (BATCH,), 0, capacity)
        rows = jnp.stack([slots, (slots + 1) % capacity]) if kind.steps else slots
        return jax.tree.map(lambda x: x[rows], items)

    keys = list(jax.random.split(jax.random.PRNGKey(capacity), 16))
    sample_c, row["compile_sample"], _ = _compile(jax.jit(lambda s, k: f.buffer.sample(s, k, BATCH)),
                                                  cell["state"], keys[0])
    gather_c, _, _ = _compile(jax.jit(gather), cell["state"].items, keys[0])
    calls = {"sample": lambda r: sample_c(cell["state"], keys[r % len(keys)]),
             "gather": lambda r: gather_c(cell["state"].items, keys[r % len(keys)])}
    for r in range(2):
        jax.block_until_ready([call(r) for call in calls.values()])
    times = interleave(calls, repeats)
    row.update(sample=statistics.median(times["sample"]), sample_speed=speed(times["gather"], times["sample"]))

    if f.buffer.update_priorities is not None:
        rng = np.random.default_rng(1)
        updates = [(jnp.asarray(rng.integers(0, capacity, BATCH), jnp.int32),
                    jnp.asarray(rng.exponential(size=BATCH), jnp.float32)) for _ in range(8)]
        update_c, row["compile_update"], _ = _compile(
            jax.jit(f.buffer.update_priorities, donate_argnums=0), cell["state"], *updates[0])
        before = cell["state"]
        cell["state"] = update_c(cell["state"], *updates[0])
        check_donated(before)
        del before

        def update_call(r):
            cell["state"] = update_c(cell["state"], *updates[r % len(updates)])
            return cell["state"].max_priority

        update_call(1)
        row["update"] = statistics.median(interleave({"update": update_call}, repeats)["update"])

    # what the add costs when XLA may not write in place: it copies the whole buffer every call
    copy_add, _, copy_hlo = _compile(jax.jit(f.buffer.add), cell["state"], batches[0])
    row["copies_undonated"] = buffer_copies(copy_hlo, largest.shape, largest.dtype)

    def copy_call(r):
        cell["state"] = copy_add(cell["state"], batches[r % len(batches)])
        return cell["state"].position

    jax.block_until_ready(copy_call(0))
    row["add_undonated"] = statistics.median(interleave({"copy": copy_call}, repeats)["copy"])
    return row


def capacity_check(name: str, small: int, big: int, repeats: int) -> dict:
    """The donated Atari add at two capacities, both buffers alive, calls interleaved."""
    buffers = {c: filled(ATARI, name, c) for c in (small, big)}

    def call(c):
        def run(r):
            f = buffers[c]
            f.cell["state"] = f.add(f.cell["state"], f.batches[r % len(f.batches)])
            return f.cell["state"].position
        return run

    times = interleave({c: call(c) for c in buffers}, repeats)
    return dict(buffer=name, small=small, big=big, t_small=statistics.median(times[small]),
                t_big=statistics.median(times[big]), ratio=statistics.median(
                    b / s for b, s in zip(times[big], times[small])))


def needed_bytes(kind: Kind, name: str, capacity: int) -> int:
    buffer = make_buffer(name, capacity, kind)
    example = jax.tree.map(lambda x: x[0], kind.make(np.random.default_rng(0), 1))
    return 2 * nbytes(jax.eval_shape(buffer.init, example)) + MEMORY_MARGIN


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f}"


def rate(seconds: float) -> str:
    return f"{BATCH / seconds:,.0f}"


def table(rows: list[dict]) -> str:
    lines = ["| items | buffer | capacity | add (µs) | add (items/s) | speed vs scatter | add, not donated (ms) "
             "| frame/obs buffer copies in the compiled add (donated / not) | sample (µs) | sample (items/s) "
             "| speed vs gather | update_priorities (µs) | update (items/s) | compile add / sample / update (s) |",
             "|---" * 14 + "|"]
    for r in rows:
        update = (us(r["update"]), rate(r["update"])) if "update" in r else ("—", "—")
        compiles = " / ".join(f"{r[k]:.1f}" for k in ("compile_add", "compile_sample", "compile_update") if k in r)
        lines.append(
            f"| {r['items']} | {r['buffer']} | {r['capacity']:,} | {us(r['add'])} | {rate(r['add'])} "
            f"| {r['add_speed']:.2f}× | {r['add_undonated'] * 1e3:,.1f} | {r['copies_donated']} / "
            f"{r['copies_undonated']} | {us(r['sample'])} | {rate(r['sample'])} | {r['sample_speed']:.2f}× "
            f"| {update[0]} | {update[1]} | {compiles} |")
    return "\n".join(lines)


def memory_table(rows: list[dict]) -> str:
    lines = ["| items | item bytes | capacity | state (MB) | capacity × item bytes (MB) | ratio |", "|---" * 6 + "|"]
    seen = {}
    for r in rows:
        key = (r["items"], r["capacity"])
        if key in seen:  # every buffer kind holds the same state arrays
            assert seen[key] == r["state_bytes"], (key, seen[key], r["state_bytes"])
            continue
        seen[key] = r["state_bytes"]
        ideal = r["capacity"] * r["item_bytes"]
        lines.append(f"| {r['items']} | {r['item_bytes']:,} | {r['capacity']:,} | {r['state_bytes'] / 1e6:,.1f} "
                     f"| {ideal / 1e6:,.1f} | {r['state_bytes'] / ideal:.3f} |")
    return "\n".join(lines)


def verdicts(rows: list[dict], checks: list[dict]) -> list[str]:
    lines = []
    by = {(r["items"], r["buffer"], r["capacity"]): r for r in rows}
    for c in checks:
        small, big = by[ATARI.name, c["buffer"], c["small"]], by[ATARI.name, c["buffer"], c["big"]]
        lines.append(
            f"- Copy check, {c['buffer']}: donated add of {BATCH} Atari items at {c['big']:,} / at {c['small']:,} "
            f"= {c['ratio']:.2f} ({us(c['t_big'])} / {us(c['t_small'])} µs, interleaved, both buffers alive; "
            f"goal ≤ 2: {'met' if c['ratio'] <= 2 else 'NOT met'}). Without donation the same add takes "
            f"{big['add_undonated'] * 1e3:,.1f} / {small['add_undonated'] * 1e3:,.1f} ms = "
            f"{big['add_undonated'] / small['add_undonated']:.1f}× (a whole-buffer copy per add, "
            f"{big['add_undonated'] / big['add']:,.0f}× the donated add at {c['big']:,}); the compiled donated add "
            f"holds {big['copies_donated']} copies of the frame buffer, the non-donated one {big['copies_undonated']}.")
    for r in rows:
        if r["items"] == ATARI.name and r["buffer"] == "uniform":
            ratio = r["state_bytes"] / (r["capacity"] * r["item_bytes"])
            lines.append(f"- Memory, Atari frames at {r['capacity']:,}: state / (capacity × item bytes) = {ratio:.4f} "
                         f"(goal ≤ 1.10: {'met' if ratio <= 1.10 else 'NOT met'}).")
    return lines


NOTES = """Reading the tables (side experiments on this machine, same load, quoted where they explain a figure):
- Add: the donated add's time does not follow the capacity (copy check) and its optimized HLO holds
  no copy of the frame buffer; without donation XLA copies the whole buffer on every add, seconds
  per add at 100,000 frames. What grows a little with capacity is the sum tree: 3 more levels from
  10,000 to 100,000, each a small gather and scatter kernel on XLA:CPU (a plain frame scatter stays
  level). Most of a CartPole add is that tree write (one `_tree_set` of 128 slots ≈ 150 µs at
  100,000 before the new and the completed slots were merged into one write), so the add is a few
  times a plain scatter for CartPole items and ≈ 2× for frames, whose 3.6 MB write weighs more.
- Sample: level with a plain gather at 10,000; at larger capacities the tree descent (one dependent
  gather per level over a 0.5–8 MB tree) costs more. Importance weights are computed as
  (P_i / min_batch P)^−β, with no pass over the buffer (N cancels). Atari sampling gathers each
  needed frame stack once (row 0 and row n of the window), not the whole [n + 1, 128] window.
- Memory: frames are stored once (the next observation is read from the successor slot), so an
  Atari buffer is capacity × item bytes plus ≈ 20 bytes a slot (sum tree of 2 × the next power of
  two float32, priorities, flags): ratio 1.0005. The same 20 bytes are 50–70% more on a 27-byte
  CartPole step; CartPole transitions carrying their next observation take 44 bytes an item.
- 1,000,000 Atari items are 28.2 GB of frames, more than this 23 GB machine holds: not run.
- Noise: other jobs shared the 2 cores. Uniform and prioritized buffers run the same add, yet their
  absolute times differ by up to 2× between rows; the interleaved ratios ("speed vs", the copy
  check) are the figures to trust."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=201, help="timed calls per operation (median)")
    parser.add_argument("--quick", action="store_true", help="smoke run: small capacities, prioritized only")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args(argv)
    # A donation XLA cannot honour makes every add copy the buffer: that must fail the run.
    warnings.filterwarnings("error", message="Some donated buffers were not usable")
    repeats = 11 if args.quick else args.repeats
    names = ("prioritized",) if args.quick else tuple(BUILDERS)
    load_start = os.getloadavg()[0]

    jobs = [(kind, name, c) for kind in KINDS for c in (kind.quick_capacities if args.quick else kind.capacities)
            for name in names]
    rows, skipped = [], []
    for kind, name, capacity in tqdm(jobs, desc="replay bench", file=sys.stderr):
        need, free = needed_bytes(kind, name, capacity), available_bytes()
        if need > free:
            skipped.append((kind.name, name, capacity, need, free))
            print(f"skipping {kind.name} {name} {capacity:,}: needs {gb(need)}, {gb(free)} available",
                  file=sys.stderr)
            continue
        rows.append(measure(kind, name, capacity, repeats))

    atari = sorted({r["capacity"] for r in rows if r["items"] == ATARI.name})
    checks = []
    if len(atari) >= 2:
        for name in tqdm(names, desc="copy check", file=sys.stderr):
            checks.append(capacity_check(name, atari[-2], atari[-1], repeats))
    load_end = os.getloadavg()[0]

    skip_lines = [f"- {k} ({n}) at {c:,}: skipped — the state alone is {gb((need - MEMORY_MARGIN) / 2)} and the "
                  f"run needs twice that plus 1 GB; {gb(free)} of memory available." for k, n, c, need, free in skipped]
    body = (f"Per-call times are medians of up to {repeats} calls (at most {TIME_BUDGET_S:.0f} s per measurement, "
            f"at least {MIN_CALLS} calls) on buffers filled to capacity with random items, batches of {BATCH}; "
            "\"speed vs X\" = X's time / fnrl's time, the median of interleaved per-call ratios (> 1: fnrl "
            "faster). scatter = `x.at[slots].set(batch)` of every item leaf into a donated array of the buffer's "
            "shape; gather = a uniform `x[slots]` of the rows a batch reads (with each slot's successor for "
            "steps). steps=True buffers (`Step` items, n_step=1) assemble `Transition`s in `sample`. "
            f"1-minute load average {load_start:.1f} at the start, {load_end:.1f} at the end (2 cores, shared).\n\n"
            + table(rows) + "\n\nMemory (bytes of the state's leaves; the same for both buffers):\n\n"
            + memory_table(rows) + "\n\n" + "\n".join(verdicts(rows, checks) + skip_lines)
            + ("" if args.quick else f"\n\n{NOTES}"))  # the notes read the full run
    print(body)
    if args.write:
        command = "python -m benchmarks.replay_bench --write" + (" --quick" if args.quick else f" --repeats {repeats}")
        update_section("replay_bench", "Replay buffers (`benchmarks/replay_bench.py`)", command, body)
        print("updated BENCHMARKS.md")


if __name__ == "__main__":
    main()
