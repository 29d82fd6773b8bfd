"""Where a cold `fnrl train ppo` on CartPole goes, phase by phase, next to the plain JAX PPO's.

`benchmarks/ppo_speed.py` times whole programs; this splits them. Each repeat is a fresh
subprocess (nothing compiled yet, compilation caches off) that times, in this order:

- plain (`benchmarks/plain_ppo.py`): tracing + lowering, XLA compilation, the run;
- fnrl, the calls `agents.cli` makes for one seed on the pure-JAX backend: building the trainer,
  tracing + lowering `init`, compiling it (XLA optimization level 0, as the CLI does), running it,
  lowering the chunk of updates (`agents.cli.chunk_length`) inside `fnrl.unrolled_threefry()`,
  compiling it, and the run: every chunk with its metrics fetched to the host (the CLI's loop
  without metrics.csv, progress bar and checkpoints, which cost ≈ 0.1 s in all);
- with `--rolled`, the same chunk lowered again with JAX's default (rolled) threefry lowering on
  CPU, compiled and run: what the CLI did before it lowered chunks unrolled.

Figures are medians over repeats; plain and fnrl alternate first from one repeat to the next.

    python -m benchmarks.ppo_phases --repeats 5 --rolled --write
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from benchmarks._report import update_section

STEPS = 500_000
FNRL_BEFORE_RUN = ("build", "init_lower", "init_compile", "init_run", "lower", "compile")
PLAIN_BEFORE_RUN = ("lower", "compile")


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def _plain_phases(steps: int) -> dict:
    import jax

    from benchmarks import plain_ppo

    key = jax.random.PRNGKey(0)
    lowered, lower = _timed(jax.jit(plain_ppo.make_train(plain_ppo.Config(total_steps=steps))).lower, key)
    compiled, compile_ = _timed(lowered.compile)
    _, run = _timed(lambda: jax.block_until_ready(compiled(key)))
    return {"lower": lower, "compile": compile_, "run": run}


def _run_chunks(chunk, states, num_chunks: int):
    import jax

    for _ in range(num_chunks):
        states, metrics = chunk(states)
        jax.device_get(metrics)
    return states


def _fnrl_phases(steps: int, rolled: bool) -> dict:
    import jax

    from agents import cli

    (_, trainer, _), build = _timed(cli.make_run, "ppo", "CartPole-v1", "jax", 1, {"total_steps": steps})
    keys = jax.random.split(jax.random.PRNGKey(0), 1)
    init_lowered, init_lower = _timed(jax.jit(cli._over_seeds(trainer.init, 1)).lower, keys)
    init, init_compile = _timed(init_lowered.compile, {"xla_backend_optimization_level": 0})
    states, init_run = _timed(lambda: jax.block_until_ready(init(keys)))
    length = cli.chunk_length(trainer.num_updates)
    lowered, lower = _timed(cli._lower_chunk, trainer, length, 1, states)
    chunk, compile_ = _timed(lowered.compile)
    num_chunks = trainer.num_updates // length
    _, run = _timed(lambda: jax.block_until_ready(_run_chunks(chunk, states, num_chunks)))
    out = {"build": build, "init_lower": init_lower, "init_compile": init_compile, "init_run": init_run,
           "lower": lower, "compile": compile_, "run": run, "chunk": length}
    if rolled:
        other, out["lower_rolled"] = _timed(cli._chunk_fn(trainer, length, 1).lower, states)
        other, out["compile_rolled"] = _timed(other.compile)
        _, out["run_rolled"] = _timed(lambda: jax.block_until_ready(_run_chunks(other, states, num_chunks)))
    return out


def child(steps: int, plain_first: bool, rolled: bool) -> dict:
    """One repeat, in this (fresh) process."""
    import jax

    jax.config.update("jax_enable_compilation_cache", False)
    order = ("plain", "fnrl") if plain_first else ("fnrl", "plain")
    runs = {"plain": lambda: _plain_phases(steps), "fnrl": lambda: _fnrl_phases(steps, rolled)}
    return {name: runs[name]() for name in order}


def measure(steps: int, repeats: int, rolled: bool) -> list[dict]:
    results = []
    for rep in range(repeats):
        cmd = [sys.executable, "-m", "benchmarks.ppo_phases", "--child", "--steps", str(steps)]
        cmd += ["--plain-first"] if rep % 2 == 0 else []
        cmd += ["--rolled"] if rolled else []
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"ppo_phases child failed ({done.returncode}):\n{done.stderr[-3000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"[{rep + 1}/{repeats}] {results[-1]}", file=sys.stderr, flush=True)
    return results


def _median(results: list[dict], side: str, key: str) -> float:
    return statistics.median(r[side][key] for r in results)


def to_markdown(results: list[dict], rolled: bool) -> str:
    m = lambda side, key: _median(results, side, key)  # noqa: E731
    fnrl_compile = sum(m("fnrl", k) for k in FNRL_BEFORE_RUN)
    plain_compile = sum(m("plain", k) for k in PLAIN_BEFORE_RUN)
    rows = [
        "| phase | plain (s) | fnrl (s) |", "|---|---|---|",
        f"| build the trainer (config, env, networks) | — | {m('fnrl', 'build'):.2f} |",
        f"| `init`: trace + lower / compile (O0) / run | (inside the program) | {m('fnrl', 'init_lower'):.2f} / "
        f"{m('fnrl', 'init_compile'):.2f} / {m('fnrl', 'init_run'):.3f} |",
        f"| training program: trace + lower | {m('plain', 'lower'):.2f} | {m('fnrl', 'lower'):.2f} |",
        f"| training program: XLA compile | {m('plain', 'compile'):.2f} | {m('fnrl', 'compile'):.2f} |",
        f"| **everything before the first update** | **{plain_compile:.2f}** | **{fnrl_compile:.2f}** |",
        f"| run ({results[0]['fnrl']['chunk']}-update chunks for fnrl, one program for plain) | "
        f"{m('plain', 'run'):.2f} | {m('fnrl', 'run'):.2f} |",
        f"| **total** | **{plain_compile + m('plain', 'run'):.2f}** | **{fnrl_compile + m('fnrl', 'run'):.2f}** |",
    ]
    ratio = statistics.median(
        sum(r["fnrl"][k] for k in FNRL_BEFORE_RUN + ("run",)) / sum(r["plain"][k] for k in PLAIN_BEFORE_RUN + ("run",))
        for r in results)
    lines = ["\n".join(rows), f"\nfnrl / plain total, median of the per-repeat ratios: {ratio:.2f}."]
    if rolled:
        lines.append(f"The same fnrl chunk lowered with JAX's rolled threefry loop (the CPU default): "
                     f"trace + lower {m('fnrl', 'lower_rolled'):.2f} s, compile {m('fnrl', 'compile_rolled'):.2f} s, "
                     f"run {m('fnrl', 'run_rolled'):.2f} s; unrolled (the CLI): {m('fnrl', 'lower'):.2f} / "
                     f"{m('fnrl', 'compile'):.2f} / {m('fnrl', 'run'):.2f} s.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--rolled", action="store_true", help="also lower fnrl's chunk with the rolled threefry loop")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--plain-first", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.steps, args.plain_first, args.rolled)))
        return
    load = os.getloadavg()[0]
    results = measure(args.steps, args.repeats, args.rolled)
    report = to_markdown(results, args.rolled)
    print(report)
    if args.write:
        body = (f"{args.steps:,} env steps of CartPole-v1 (pure-JAX backend), PPOConfig defaults, {args.repeats} "
                f"fresh processes (plain and fnrl alternate first), medians; 1-minute load average "
                f"{load:.1f} at the start.\n\n{report}\n\n{NOTES}")
        command = f"python -m benchmarks.ppo_phases --repeats {args.repeats}"
        command += " --rolled" if args.rolled else ""
        update_section("ppo_phases", "Cold-start phases of PPO: fnrl against plain JAX (`benchmarks/ppo_phases.py`)",
                       f"{command} --write", body)
        print("updated BENCHMARKS.md")


NOTES = """Reading the split: before the first update both sides compile about the same XLA work (the
plain program compiles its `init` inside the training program at full optimization; fnrl compiles
`init` on its own at level 0, then a chunk of updates) and then run the same arithmetic — the
learning phase alone is 16 minibatch steps of forward and backward passes of two 64-64 MLPs on 128
samples per update, ≈ 1e11 FLOP of matrix products over the run (from the shapes). Where the two
columns differ is where fnrl costs or saves time against a program that does the same work.

XLA:CPU spends most of a compile generating one kernel per fusion (≈ 10–20 ms each; a profile
of the chunk's compile counted ≈ 200 fusion kernels with JAX's rolled threefry loops, 11 of them
in the chunk, and ≈ 160 unrolled), so fnrl lowers its chunks inside `fnrl.unrolled_threefry()`;
the plain program keeps JAX's default. Levers measured on 2026-12-03 that saved nothing: XLA
backend optimization levels 1 and 2 for the chunk (compile 3.04 / 3.02 s against 2.97 s at the
default), `xla_llvm_disable_expensive_passes`, `xla_cpu_parallel_codegen_split_count`, and an
unrolled threefry for `init` (compiled at level 0, it compiled ≈ 0.4 s slower)."""


if __name__ == "__main__":
    main()
