"""Learning benchmark: each agent trained through the `fnrl` CLI with 5 seeds in one vmapped
program, final return = mean return of the last 10% of finished episodes (summary.json).

    python -m benchmarks.learning                 # all runs, writes benchmarks/learning.md
    python -m benchmarks.learning --only ppo-cartpole
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import time

from agents import cli
from benchmarks._report import machine

# name: (agent, env, steps per seed, config overrides, target final return)
RUNS = {
    "ppo-cartpole": ("ppo", "CartPole-v1", 500_000, ["normalize_observations=true", "normalize_rewards=true"], 475),
    "a2c-cartpole": ("a2c", "CartPole-v1", 500_000, [], 475),
    "vpg-cartpole": ("vpg", "CartPole-v1", 500_000, [], None),
    "trpo-cartpole": ("trpo", "CartPole-v1", 1_000_000, [], 475),
    "es-cartpole": ("es", "CartPole-v1", 10_000_000, [], 475),
    "ppo-pendulum": ("ppo", "Pendulum-v1", 1_000_000,
                     ["num_envs=8", "num_steps=256", "normalize_observations=true", "normalize_rewards=true",
                      "learning_rate=0.0003", "bounded_actions=clipped_gaussian"], -250),
}
SEEDS = 5
OUT = pathlib.Path("runs/learning")
REPORT = pathlib.Path(__file__).resolve().parent / "learning.md"


def run(name: str) -> dict:
    agent, env, steps, sets, target = RUNS[name]
    out = OUT / name
    shutil.rmtree(out, ignore_errors=True)
    args = ["train", agent, "--env", env, "--steps", str(steps), "--seeds", str(SEEDS), "--out", str(out)]
    for item in sets:
        args += ["--set", item]
    cli.main(args)
    summary = json.loads((out / "summary.json").read_text())
    summary.update(name=name, target=target, overrides=sets)
    return summary


def report(rows: list[dict]) -> str:
    lines = ["| run | agent | env | steps/seed | final return (mean of 5 seeds) | per seed | target | "
             "wall (s) | compile (s) |", "|---" * 9 + "|"]
    for r in rows:
        per_seed = ", ".join(f"{x:.0f}" for x in r["final_return_per_seed"])
        target = "—" if r["target"] is None else (
            f"≥ {r['target']} {'✓' if r['final_return'] >= r['target'] else '✗'}")
        lines.append(f"| {r['name']} | {r['agent']} | {r['env']} | {r['steps']:,} | {r['final_return']:.1f} | "
                     f"{per_seed} | {target} | {r['wall_seconds']:.0f} | {r['compile_seconds']:.1f} |")
    overrides = "\n".join(f"- {r['name']}: `{' '.join('--set ' + s for s in r['overrides']) or 'defaults'}`"
                          for r in rows)
    return (f"# Learning results (`benchmarks/learning.py`)\n\nCommand: `python -m benchmarks.learning` — "
            f"machine: {machine()}; {time.strftime('%Y-%m-%d')}. Pure-JAX backend, {SEEDS} seeds per run "
            f"trained together (`fnrl train ... --seeds {SEEDS}`); final return = mean return of the last "
            f"10% of finished episodes per seed (summary.json), averaged over seeds.\n\n"
            + "\n".join(lines) + f"\n\nConfig overrides:\n{overrides}\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=sorted(RUNS), help="run only these")
    args = parser.parse_args(argv)
    names = args.only or list(RUNS)
    rows = [run(name) for name in names]
    REPORT.write_text(report(rows))
    print(REPORT.read_text())


if __name__ == "__main__":
    main()
