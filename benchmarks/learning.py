"""Learning benchmark: each agent trained through the `fnrl` CLI with 5 seeds (pure-JAX: one
vmapped program; envpool: one pool of 5 × num_envs envs in the host loop), final return = mean
return of the last 10% of finished episodes (summary.json).

    python -m benchmarks.learning                 # all runs, writes benchmarks/learning.md
    python -m benchmarks.learning --only ppo-cartpole-envpool

Results are kept per run in `benchmarks/learning_results.json`, so `--only` refreshes some rows
and keeps the others.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import time

from agents import cli
from benchmarks._report import machine

_PPO_CARTPOLE = ["normalize_observations=true", "normalize_rewards=true"]
# name: (agent, env, backend, steps per seed, config overrides, target final return)
RUNS = {
    "ppo-cartpole": ("ppo", "CartPole-v1", "jax", 500_000, _PPO_CARTPOLE, 475),
    "a2c-cartpole": ("a2c", "CartPole-v1", "jax", 500_000, [], 475),
    "vpg-cartpole": ("vpg", "CartPole-v1", "jax", 500_000, [], None),
    "trpo-cartpole": ("trpo", "CartPole-v1", "jax", 1_000_000, [], 475),
    "es-cartpole": ("es", "CartPole-v1", "jax", 10_000_000, [], 475),
    "ppo-pendulum": ("ppo", "Pendulum-v1", "jax", 1_000_000,
                     ["num_envs=8", "num_steps=256", "normalize_observations=true", "normalize_rewards=true",
                      "learning_rate=0.0003", "bounded_actions=clipped_gaussian"], -250),
    "ppo-cartpole-envpool": ("ppo", "CartPole-v1", "envpool", 500_000, _PPO_CARTPOLE, 475),
    "a2c-cartpole-envpool": ("a2c", "CartPole-v1", "envpool", 500_000, [], 475),
}
SEEDS = 5
OUT = pathlib.Path("runs/learning")
REPORT = pathlib.Path(__file__).resolve().parent / "learning.md"
RESULTS = pathlib.Path(__file__).resolve().parent / "learning_results.json"


def run(name: str) -> dict:
    agent, env, backend, steps, sets, target = RUNS[name]
    out = OUT / name
    shutil.rmtree(out, ignore_errors=True)
    args = ["train", agent, "--env", env, "--backend", backend, "--steps", str(steps), "--seeds", str(SEEDS),
            "--out", str(out)]
    for item in sets:
        args += ["--set", item]
    cli.main(args)
    summary = json.loads((out / "summary.json").read_text())
    summary.update(name=name, target=target, overrides=sets)
    return summary


def report(rows: list[dict]) -> str:
    lines = ["| run | agent | env | backend | steps/seed | final return (mean of 5 seeds) | per seed | target | "
             "wall (s) | compile (s) |", "|---" * 10 + "|"]
    for r in rows:
        per_seed = ", ".join(f"{x:.0f}" for x in r["final_return_per_seed"])
        target = "—" if r["target"] is None else (
            f"≥ {r['target']} {'✓' if r['final_return'] >= r['target'] else '✗'}")
        lines.append(f"| {r['name']} | {r['agent']} | {r['env']} | {r['backend']} | {r['steps']:,} | "
                     f"{r['final_return']:.1f} | "
                     f"{per_seed} | {target} | {r['wall_seconds']:.0f} | {r['compile_seconds']:.1f} |")
    overrides = "\n".join(f"- {r['name']}: `{' '.join('--set ' + s for s in r['overrides']) or 'defaults'}`"
                          for r in rows)
    return (f"# Learning results (`benchmarks/learning.py`)\n\nCommand: `python -m benchmarks.learning` — "
            f"machine: {machine()}; each row's date is in `learning_results.json`. {SEEDS} seeds per run "
            f"trained together (`fnrl train ... --seeds {SEEDS}`: pure-JAX backend one vmapped program, "
            f"envpool backend one pool of {SEEDS} × num_envs envs in the host loop); final return = mean "
            f"return of the last 10% of finished episodes per seed (summary.json), averaged over seeds. "
            f"Wall time includes compilation.\n\n"
            + "\n".join(lines) + f"\n\nConfig overrides:\n{overrides}\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=sorted(RUNS), help="run only these")
    args = parser.parse_args(argv)
    names = args.only or list(RUNS)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for name in names:
        results[name] = {**run(name), "date": time.strftime("%Y-%m-%d")}
        RESULTS.write_text(json.dumps(results, indent=2))
    rows = [results[name] for name in RUNS if name in results]
    REPORT.write_text(report(rows))
    print(REPORT.read_text())


if __name__ == "__main__":
    main()
