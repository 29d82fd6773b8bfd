"""Where a cold `fnrl train ppo` on CartPole goes, phase by phase, next to the plain JAX PPO's.

`benchmarks/ppo_speed.py` times whole programs; this splits them. Each repeat is a fresh
subprocess (nothing compiled yet, compilation caches off) that times, in this order:

- plain (`benchmarks/plain_ppo.py`): tracing + lowering, XLA compilation, the run;
- fnrl, the calls `agents.cli` makes for one seed on the pure-JAX backend: building the trainer,
  the start (`_Backend.init`: `init` compiled for compile speed on a helper thread
  while the chunk of updates, `agents.cli.chunk_length`, is traced, lowered inside
  `fnrl.unrolled_threefry()` and compiled; then `init` runs), and the run: every chunk through
  `_Backend.chunks` with its metrics fetched to the host (the CLI's loop without metrics.csv,
  progress bar and checkpoints);
- with `--split`, after those, the start's pieces one after another in the same process:
  `init` traced + lowered, compiled, run; the chunk traced + lowered, compiled; and the same
  chunk lowered with JAX's default (rolled) threefry lowering on CPU, compiled and run; then
  plain's run, fnrl's and the rolled one again, alternating, to compare their speed per update
  (and CPU seconds per wall second) within one process.

Figures are medians over repeats; plain and fnrl alternate first from one repeat to the next.

    python -m benchmarks.ppo_phases --repeats 5 --split --write
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time

from benchmarks._report import update_section

STEPS = 500_000
RERUNS = 3
FNRL_BEFORE_RUN = ("build", "start")
PLAIN_BEFORE_RUN = ("lower", "compile")


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def _timed_with_cpu(fn) -> tuple[float, float]:
    """Wall seconds of `fn()` and this process's CPU seconds (all threads) meanwhile."""
    cpu = time.process_time()
    _, wall = _timed(fn)
    return wall, time.process_time() - cpu


def _plain_phases(steps: int) -> tuple[dict, dict]:
    import jax

    from benchmarks import plain_ppo

    key = jax.random.PRNGKey(0)
    lowered, lower = _timed(jax.jit(plain_ppo.make_train(plain_ppo.Config(total_steps=steps))).lower, key)
    compiled, compile_ = _timed(lowered.compile)
    rerun = lambda: jax.block_until_ready(compiled(key))  # noqa: E731
    _, run = _timed(rerun)
    return {"lower": lower, "compile": compile_, "run": run}, {"plain": rerun}


def _fnrl_phases(steps: int, split: bool) -> tuple[dict, dict]:
    import jax

    from agents import cli

    (_, trainer, _), build = _timed(cli.make_run, "ppo", "CartPole-v1", "jax", 1, {"total_steps": steps})
    length = cli.chunk_length(trainer.num_updates)
    backend = cli._Backend(trainer, None, seed=0, seeds=1)
    states, start = _timed(lambda: jax.block_until_ready(backend.init(length)))

    def run_chunks(backend, states):
        for _, states, _ in backend.chunks(states, 0, trainer.num_updates, length):
            pass
        return jax.block_until_ready(states)

    reruns = {"fnrl": functools.partial(run_chunks, backend, states)}
    _, run = _timed(reruns["fnrl"])
    out = {"build": build, "start": start, "run": run, "chunk": length}
    if split:
        key = jax.random.PRNGKey(0)
        init_lowered, out["init_lower"] = _timed(cli._lower_init, trainer, 1, key)
        init, out["init_compile"] = _timed(cli._compile_init, init_lowered)
        states, out["init_run"] = _timed(lambda: jax.block_until_ready(init(key)))
        lowered, out["lower"] = _timed(cli._lower_chunk, trainer, length, 1, states)
        _, out["compile"] = _timed(lowered.compile)
        rolled, out["lower_rolled"] = _timed(cli._chunk_fn(trainer, length, 1).lower, states)
        rolled_backend = cli._Backend(trainer, None, seed=0, seeds=1)
        rolled_backend._chunks[length], out["compile_rolled"] = _timed(rolled.compile)
        reruns["fnrl rolled"] = functools.partial(run_chunks, rolled_backend, states)
        _, out["run_rolled"] = _timed(reruns["fnrl rolled"])
    return out, reruns


def child(steps: int, plain_first: bool, split: bool) -> dict:
    """One repeat, in this (fresh) process; with `split` also `RERUNS` alternating reruns of the
    compiled runs (the same process, so the same machine state for each): `[wall, CPU]` seconds
    under "reruns"."""
    import jax

    jax.config.update("jax_enable_compilation_cache", False)
    order = ("plain", "fnrl") if plain_first else ("fnrl", "plain")
    runs = {"plain": lambda: _plain_phases(steps), "fnrl": lambda: _fnrl_phases(steps, split)}
    results, reruns = {}, {}
    for name in order:
        results[name], more = runs[name]()
        reruns.update(more)
    if split:
        results["reruns"] = {name: [] for name in reruns}
        for _ in range(RERUNS):
            for name, rerun in reruns.items():
                results["reruns"][name].append(_timed_with_cpu(rerun))
    return results


def measure(steps: int, repeats: int, split: bool) -> list[dict]:
    results = []
    for rep in range(repeats):
        cmd = [sys.executable, "-m", "benchmarks.ppo_phases", "--child", "--steps", str(steps)]
        cmd += ["--plain-first"] if rep % 2 == 0 else []
        cmd += ["--split"] if split else []
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"ppo_phases child failed ({done.returncode}):\n{done.stderr[-3000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"[{rep + 1}/{repeats}] {results[-1]}", file=sys.stderr, flush=True)
    return results


def _total(phases: dict, before_run: tuple[str, ...]) -> float:
    return sum(phases[k] for k in before_run + ("run",))


def to_markdown(results: list[dict], split: bool) -> str:
    m = lambda side, key: statistics.median(r[side][key] for r in results)  # noqa: E731
    fnrl_before = sum(m("fnrl", k) for k in FNRL_BEFORE_RUN)
    plain_before = sum(m("plain", k) for k in PLAIN_BEFORE_RUN)
    rows = [
        "| phase | plain (s) | fnrl (s) |", "|---|---|---|",
        f"| build the trainer (config, env, networks) | — | {m('fnrl', 'build'):.2f} |",
        f"| training program: trace + lower | {m('plain', 'lower'):.2f} | (in the start) |",
        f"| training program: XLA compile | {m('plain', 'compile'):.2f} | (in the start) |",
        f"| start: `init` compiled and run, the chunk traced, lowered and compiled | — | {m('fnrl', 'start'):.2f} |",
        f"| **everything before the first update** | **{plain_before:.2f}** | **{fnrl_before:.2f}** |",
        f"| run ({results[0]['fnrl']['chunk']}-update chunks for fnrl, one program for plain) | "
        f"{m('plain', 'run'):.2f} | {m('fnrl', 'run'):.2f} |",
        f"| **total** | **{plain_before + m('plain', 'run'):.2f}** | **{fnrl_before + m('fnrl', 'run'):.2f}** |",
    ]
    ratio = statistics.median(_total(r["fnrl"], FNRL_BEFORE_RUN) / _total(r["plain"], PLAIN_BEFORE_RUN)
                              for r in results)
    lines = ["\n".join(rows), f"\nfnrl / plain total, median of the per-repeat ratios: {ratio:.2f}."]
    if split:
        sequential = sum(m("fnrl", k) for k in ("init_lower", "init_compile", "init_run", "lower", "compile"))
        lines.append(
            f"The start's pieces one after another (`--split`, same processes, after the run): `init` trace + lower "
            f"{m('fnrl', 'init_lower'):.2f} s, compile {m('fnrl', 'init_compile'):.2f} s, run "
            f"{m('fnrl', 'init_run'):.3f} s; the chunk trace + lower {m('fnrl', 'lower'):.2f} s, compile "
            f"{m('fnrl', 'compile'):.2f} s; {sequential:.2f} s in all against the overlapped start's "
            f"{m('fnrl', 'start'):.2f} s. The same chunk lowered with JAX's rolled threefry loop (the CPU default): "
            f"trace + lower {m('fnrl', 'lower_rolled'):.2f} s, compile {m('fnrl', 'compile_rolled'):.2f} s, "
            f"run {m('fnrl', 'run_rolled'):.2f} s.")
        lines.append(_reruns_markdown(results))
    return "\n".join(lines)


def _reruns_markdown(results: list[dict]) -> str:
    """The same-process reruns: each fnrl run's wall against plain's next to it, and CPU seconds
    per wall second (above 1: more than one thread at work)."""
    reruns = [r["reruns"] for r in results]
    parts = []
    for name in ("fnrl", "fnrl rolled"):
        ratios = [w / p[0] for r in reruns for (w, _), p in zip(r[name], r["plain"])]
        parts.append(f"{name} / plain wall {statistics.median(ratios):.3f} "
                     f"(range {min(ratios):.2f}–{max(ratios):.2f})")
    busy = {name: statistics.median(c / w for r in reruns for w, c in r[name]) for name in reruns[0]}
    return (f"Run time per update in one process (`--split`: after the pieces, {RERUNS} alternating reruns of "
            f"plain's program, fnrl's chunk loop and the rolled-threefry chunk loop per repeat, medians of "
            f"{len(results) * RERUNS}): {'; '.join(parts)}. CPU seconds per wall second of run: "
            + ", ".join(f"{name} {value:.2f}" for name, value in busy.items()) + ".")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--split", action="store_true",
                        help="also time the start's pieces one by one, and the chunk with rolled threefry")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--plain-first", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.steps, args.plain_first, args.split)))
        return
    load = os.getloadavg()[0]
    results = measure(args.steps, args.repeats, args.split)
    report = to_markdown(results, args.split)
    print(report)
    if args.write:
        body = (f"{args.steps:,} env steps of CartPole-v1 (pure-JAX backend), PPOConfig defaults, {args.repeats} "
                f"fresh processes (plain and fnrl alternate first), medians; 1-minute load average "
                f"{load:.1f} at the start.\n\n{report}\n\n{NOTES}")
        command = f"python -m benchmarks.ppo_phases --repeats {args.repeats}"
        command += " --split" if args.split else ""
        update_section("ppo_phases", "Cold-start phases of PPO: fnrl against plain JAX (`benchmarks/ppo_phases.py`)",
                       f"{command} --write", body)
        print("updated BENCHMARKS.md")


NOTES = """Reading the split: before the first update both sides compile about the same XLA work (the
plain program compiles its `init` inside the training program at full optimization; fnrl compiles
`init` on its own, for compile speed, on a helper thread while it traces the chunk of updates) and
then run the same arithmetic: from the same rollout, parameters and keys one fnrl update matches
the plain program's to float rounding. The learning phase is 16 minibatch steps of forward and
backward passes of two 64-64 MLPs on 128 samples per update, most of the run.

XLA:CPU spends most of a compile generating one kernel per fusion, and runs a program as one
thunk per kernel, so fnrl keeps kernels few: it lowers its chunks inside
`fnrl.unrolled_threefry()` (the split above compares the rolled lowering), its named optimizers
run on the raveled parameters (`optax.flatten`), and `init` compiles at LLVM level 0 with
XLA:CPU's older elementwise emitters. XLA already compiles on both cores, which is why running
`init`'s compile next to the chunk's saves less than its length. The CPU-per-wall figures of the
reruns show fnrl's chunk loop keeping a second XLA thread busy where the plain program runs on
one (XLA:CPU's thunk executor runs independent kernels of a loop body concurrently), with no gain
in wall time on kernels this small; when other jobs share the two cores, that thread competes
with them. Tried on 2026-12-03 without a gain in
compile or run: XLA backend optimization levels 0–2 for the chunk, the older emitters for the
chunk (they compile faster but run the learning phase's elementwise kernels ≈ 1.6× slower),
`xla_llvm_disable_expensive_passes`, `xla_cpu_parallel_codegen_split_count`,
`xla_cpu_multi_thread_eigen=false`, and splitting each minibatch over the two CPU devices (the
cross-device all-reduces made an update several times slower). The first compilation in a fresh
process also pays XLA's one-time set-up, hence plain and fnrl alternate first."""


if __name__ == "__main__":
    main()
