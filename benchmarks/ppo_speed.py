"""Speed of `fnrl train ppo` on CartPole against a plain single-file JAX PPO, in one run.

Three programs, each started as a fresh subprocess so every one pays a cold compilation, run
interleaved (order reversed on every other repeat so machine drift hits all alike):

- plain: `benchmarks/plain_ppo.py`, one jitted `lax.scan` over updates, the same algorithm and
  hyperparameters as `agents.ppo.PPOConfig`'s defaults on the same pure-JAX env;
- fnrl: `fnrl train ppo --env CartPole-v1 --backend jax --steps N --out DIR` (the CLI: jitted
  chunks of updates, metrics.csv, checkpoints; its summary.json gives the figures);
- fnrl ×8: the same with `--seeds 8` (one program: the seeds vmapped and split over the CPU
  cores, one JAX device per core, by `fnrl.vmap_over_devices`).

Figures are medians over repeats. compile = lowering + XLA compilation of the training program
(for the CLI its `compile_seconds`: `init` and the chunk of updates, compiled side by side); run =
wall − compile;
wall = what the program itself reports (Python start-up and imports excluded); process = the
subprocess's wall clock measured around it; CPU = the subprocess's user + system CPU seconds
(all threads), which other jobs on a shared machine barely change. Throughput = env steps (over
all seeds) / run time.

    python -m benchmarks.ppo_speed --repeats 3 --write   # full size, updates BENCHMARKS.md
    python -m benchmarks.ppo_speed --quick               # smoke size, one repeat, prints only
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks._report import update_section

REPO = pathlib.Path(__file__).resolve().parent.parent
STEPS, QUICK_STEPS = 500_000, 20_480
STEPS_PER_UPDATE = 4 * 128  # PPOConfig defaults: num_envs × num_steps
WALL_GOAL, THROUGHPUT_GOAL = 0.8, 1.5
PROGRAMS = ("plain", "fnrl", "fnrl x8", "plain warm", "fnrl warm")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _subprocess(cmd: list[str], extra_env: dict | None = None) -> tuple[str, float, float]:
    """stdout of `cmd` run from the repository root (its own code first on the path), the wall
    seconds it took, start-up included, and its CPU seconds (user + system, all threads): the
    CPU time barely moves when other jobs share the machine, so it cross-checks the walls.
    Compilation caches are off unless `extra_env` turns one on (a cold compile, as for plain)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "FNRL_COMPILATION_CACHE": "off", **(extra_env or {})}
    start, cpu = time.perf_counter(), _cpu_seconds()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout, seconds, cpu


def run_plain(steps: int, extra_env: dict | None = None) -> dict:
    out, process, cpu = _subprocess([sys.executable, "-m", "benchmarks.plain_ppo", "--steps", str(steps)], extra_env)
    result = json.loads(out.strip().splitlines()[-1])
    env_steps = steps // STEPS_PER_UPDATE * STEPS_PER_UPDATE
    return dict(compile=result["compile_seconds"], run=result["run_seconds"], wall=result["wall_seconds"],
                process=process, cpu=cpu, final_return=result["final_return"],
                steps_per_second=env_steps / result["run_seconds"])


def run_fnrl(steps: int, seeds: int, scratch: pathlib.Path, extra_env: dict | None = None) -> dict:
    """One `fnrl train ppo` run (the console script next to this interpreter) in a fresh dir."""
    out = pathlib.Path(tempfile.mkdtemp(dir=scratch))
    cmd = [str(pathlib.Path(sys.executable).parent / "fnrl"), "train", "ppo", "--env", "CartPole-v1",
           "--backend", "jax", "--steps", str(steps), "--out", str(out / "run")]
    if seeds > 1:
        cmd += ["--seeds", str(seeds)]
    _, process, cpu = _subprocess(cmd, extra_env)
    summary = json.loads((out / "run" / "summary.json").read_text())
    run = summary["wall_seconds"] - summary["compile_seconds"]
    return dict(compile=summary["compile_seconds"], run=run, wall=summary["wall_seconds"], process=process, cpu=cpu,
                final_return=summary["final_return"], steps_per_second=summary["steps"] * seeds / run)


def _warm(call, variable: str, scratch: pathlib.Path) -> dict:
    """`call` timed on its second run, with a persistent compilation cache (`variable` names its
    directory, fresh per repeat) that the first, untimed run filled."""
    env = {variable: tempfile.mkdtemp(dir=scratch)}
    call(env)
    return call(env)


def measure(steps: int, repeats: int, progress: bool = True) -> dict[str, list[dict]]:
    """Every program `repeats` times, interleaved, order reversed on odd repeats."""
    calls = {"plain": lambda d: run_plain(steps), "fnrl": lambda d: run_fnrl(steps, 1, d),
             "fnrl x8": lambda d: run_fnrl(steps, 8, d),
             "plain warm": lambda d: _warm(lambda env: run_plain(steps, env), "JAX_COMPILATION_CACHE_DIR", d),
             "fnrl warm": lambda d: _warm(lambda env: run_fnrl(steps, 1, d, env), "FNRL_COMPILATION_CACHE", d)}
    results: dict[str, list[dict]] = {name: [] for name in PROGRAMS}
    with tempfile.TemporaryDirectory(prefix="ppo_speed_") as scratch:
        for rep in range(repeats):
            for name in PROGRAMS if rep % 2 == 0 else reversed(PROGRAMS):
                results[name].append(calls[name](pathlib.Path(scratch)))
                if progress:
                    r = results[name][-1]
                    print(f"[{rep + 1}/{repeats}] {name:8s} compile {r['compile']:.2f}s run {r['run']:.2f}s "
                          f"wall {r['wall']:.2f}s process {r['process']:.2f}s return {r['final_return']:.1f}",
                          file=sys.stderr, flush=True)
    return results


def medians(runs: list[dict]) -> dict:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def to_markdown(results: dict[str, list[dict]]) -> str:
    labels = {"plain": "plain single-file JAX PPO (`benchmarks/plain_ppo.py`)",
              "fnrl": "`fnrl train ppo` (1 seed)", "fnrl x8": "`fnrl train ppo --seeds 8`",
              "plain warm": "plain, warm JAX compilation cache", "fnrl warm": "`fnrl train ppo`, warm compilation cache"}
    lines = ["| program | compile (s) | run (s) | wall (s) | process wall (s) | process CPU (s) | final return "
             "| env steps/s (run) |", "|" + "---|" * 8]
    for name in PROGRAMS:
        m = medians(results[name])
        returns = ", ".join(f"{r['final_return']:.0f}" for r in results[name])
        lines.append(f"| {labels[name]} | {m['compile']:.2f} | {m['run']:.2f} | {m['wall']:.2f} | "
                     f"{m['process']:.2f} | {m['cpu']:.2f} | {m['final_return']:.1f} ({returns}) | "
                     f"{m['steps_per_second']:,.0f} |")
    return "\n".join(lines)


def verdict(results: dict[str, list[dict]]) -> str:
    """The two acceptance ratios, from the medians, with the paired per-repeat wall ratios."""
    plain, one, eight, plain_warm, one_warm = (medians(results[name]) for name in PROGRAMS)
    wall_ratio = one["wall"] / plain["wall"]
    paired = ", ".join(f"{f['wall'] / p['wall']:.2f}" for f, p in zip(results["fnrl"], results["plain"]))
    throughput = eight["steps_per_second"] / one["steps_per_second"]
    met = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    return (f"- wall fnrl / plain = {wall_ratio:.2f} (goal ≤ {WALL_GOAL}: {met(wall_ratio <= WALL_GOAL)}; "
            f"per repeat: {paired}); compile {one['compile'] / plain['compile']:.2f}×, "
            f"run {one['run'] / plain['run']:.2f}×, process wall {one['process'] / plain['process']:.2f}×, "
            f"process CPU {one['cpu'] / plain['cpu']:.2f}×.\n"
            f"- warm caches on both sides (second run of the same program): fnrl / plain wall = "
            f"{one_warm['wall'] / plain_warm['wall']:.2f}; fnrl warm / plain cold = {one_warm['wall'] / plain['wall']:.2f}.\n"
            f"- throughput 8 seeds / 1 seed (run time only) = {throughput:.2f}× "
            f"(goal ≥ {THROUGHPUT_GOAL}: {met(throughput >= THROUGHPUT_GOAL)}).")


NOTES = """Cold runs: both sides compile from scratch (fnrl's cache off) and then run the same arithmetic.
fnrl compiles `init` for compile speed on a helper thread while it traces the chunk of updates,
lowers the chunk with unrolled threefry, and runs its named optimizers on raveled parameters
(fewer, larger kernels); it queues each chunk before reading the previous one's metrics, so the
host's metrics.csv, progress bar and checkpoints overlap training. Phase by phase, and the run
time per update of the two compiled programs side by side in one process, see the `ppo_phases`
section below. The CLI's run also counts its backend start-up (plain creates its first key
before its timer) and the first chunk's extra cost. On this shared 2-core machine a single run's
wall moves by 10–25%, so read the per-repeat ratios next to the medians. Warm runs: `fnrl` keeps
compiled programs on disk by default (`FNRL_COMPILATION_CACHE`), so a rerun, a resume or an eval
skips compilation; the plain program gets JAX's cache too (`JAX_COMPILATION_CACHE_DIR`) for a
like-for-like warm comparison. 8 seeds: one program, the seeds vmapped and split over one JAX CPU
device per core (`fnrl.vmap_over_devices`), so both cores work."""


def write_benchmarks_md(report: str, steps: int, repeats: int, load: tuple[float, float]) -> None:
    body = (f"{steps:,} env steps of CartPole-v1 (pure-JAX backend), PPOConfig defaults (4 envs × 128 steps, "
            f"4 epochs × 4 minibatches, 64-64 tanh), each program a fresh process, {repeats} interleaved "
            f"repeats, medians (final returns of every repeat in brackets). compile = lowering + XLA "
            f"compilation of the training program; run = wall − compile; wall excludes Python start-up "
            f"and imports, process wall includes them; process CPU = user + system seconds of all threads. "
            f"The 2-core machine was shared with other jobs (1-minute load average {load[0]:.1f} at the "
            f"start, {load[1]:.1f} at the end), so walls are noisy; CPU seconds are steadier.\n\n{report}\n\n{NOTES}")
    update_section("ppo_speed", "PPO speed against a plain JAX PPO (`benchmarks/ppo_speed.py`)",
                   f"python -m benchmarks.ppo_speed --repeats {repeats} --write", body)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="runs of each program (medians)")
    parser.add_argument("--quick", action="store_true", help=f"smoke size: {QUICK_STEPS} steps, one repeat")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md (not with --quick)")
    parser.add_argument("--out", default="runs/ppo_speed", help="where results.json goes")
    args = parser.parse_args(argv)
    steps, repeats = (QUICK_STEPS, 1) if args.quick else (STEPS, args.repeats)
    load_before = os.getloadavg()[0]
    results = measure(steps, repeats)
    load = (load_before, os.getloadavg()[0])
    report = f"{to_markdown(results)}\n\n{verdict(results)}"
    print(report)
    out = REPO / args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"steps": steps, "load": load, "runs": results}, indent=2))
    if args.write and not args.quick:
        write_benchmarks_md(report, steps, repeats, load)
        print("updated BENCHMARKS.md")


if __name__ == "__main__":
    main()
