"""One policy tick of a host loop, lowered with JAX's rolled threefry loop (the CPU default)
against inside `fnrl.unrolled_threefry()` (what `fnrl.rollout.collect` does).

A tick here is what a host loop pays per env step for the policy: one jitted call of PPO's
`policy_step` (`agents.ppo`, default config: separate 64-64 tanh actor and critic, categorical
policy) on a batch of CartPole observations, with the learner state as an argument (as the host
loop passes it), and the sampled action copied to the host. Both programs are the same function,
jitted twice; they draw the same bits (checked once here). One process; the two variants run
interleaved, `--repeats` rounds of `--ticks` ticks after a warm-up (compilation excluded);
figures are medians over rounds, the speed-up the median of the per-round ratios.

    python -m benchmarks.tick_bench            # prints the table
    python -m benchmarks.tick_bench --write    # also updates BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np

import fnrl
from agents import ppo
from benchmarks._report import update_section

NUM_ENVS = (1, 16, 256)


def tick_runners(num_envs: int, ticks: int) -> dict:
    """{"rolled", "unrolled"}: timed runs of `ticks` ticks of PPO's policy for `num_envs` envs."""
    env = fnrl.envs.make("CartPole-v1", backend="jax", num_envs=num_envs)
    config = ppo.PPOConfig(num_envs=num_envs, num_steps=128, total_steps=num_envs * 128, num_minibatches=1)
    trainer = ppo.make_trainer(config, env)
    state = jax.jit(trainer.init)(jax.random.PRNGKey(0))
    recipe, key = trainer.on_policy, jax.random.PRNGKey(1)
    observation, memory = np.asarray(state.rollout.timestep.observation), state.rollout.memory

    def tick_fn():
        return jax.jit(lambda state, key, observation, memory: recipe.policy_step(state, key, observation, memory))

    rolled, unrolled = tick_fn(), tick_fn()
    with fnrl.unrolled_threefry():  # lowered (on this first call) with the unrolled rule
        first = unrolled(state, key, observation, memory)
    if not np.array_equal(np.asarray(first.action), np.asarray(rolled(state, key, observation, memory).action)):
        raise AssertionError("tick_bench: rolled and unrolled ticks sampled different actions")

    def runner(tick):
        def run() -> float:
            start = time.perf_counter()
            for _ in range(ticks):
                np.asarray(tick(state, key, observation, memory).action)
            return time.perf_counter() - start
        run()  # warm-up
        return run

    return {"rolled": runner(rolled), "unrolled": runner(unrolled)}


def measure(num_envs: int, ticks: int, repeats: int) -> dict[str, float]:
    runs = tick_runners(num_envs, ticks)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(repeats):
        for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            times[name].append(runs[name]())
    result = {name: statistics.median(t) / ticks * 1e6 for name, t in times.items()}
    result["speedup"] = statistics.median(a / b for a, b in zip(times["rolled"], times["unrolled"]))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ticks", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args(argv)
    rows = ["| envs | rolled threefry (µs / tick) | unrolled (µs / tick) | rolled / unrolled |", "|---|---|---|---|"]
    for num_envs in NUM_ENVS:
        r = measure(num_envs, args.ticks, args.repeats)
        rows.append(f"| {num_envs} | {r['rolled']:.1f} | {r['unrolled']:.1f} | {r['speedup']:.2f} |")
    body = (f"PPO's policy tick (CartPole, default config) with the sampled action copied to the host, "
            f"{args.repeats} interleaved rounds of {args.ticks} ticks, medians.\n\n" + "\n".join(rows))
    print(body)
    if args.write:
        update_section("tick_bench", "A host loop's policy tick: rolled against unrolled threefry "
                       "(`benchmarks/tick_bench.py`)", "python -m benchmarks.tick_bench --write", body)
        print("updated BENCHMARKS.md")


if __name__ == "__main__":
    main()
