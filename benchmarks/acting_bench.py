"""Acting throughput on envpool: the host loop's rollout with PPO's policy in the loop (no
learning) against raw envpool with random actions (issue 4: ≥ 80% of raw).

- raw: envpool's own sync `step` with NumPy random actions drawn in the loop, no fnrl — the same
  definition as `benchmarks.env_bench`'s "raw envpool" row.
- ceiling: the raw loop plus one trivial jitted call per step that takes the observation and
  returns a 4-byte result to the host (the actions stay NumPy's). That is what any JAX policy in a
  host loop pays at least — one dispatch, the observation to the device, a result back — so its
  ratio bounds every fnrl mode's from above.
- sync: `agents.host.host_run(ppo trainer, envpool_env(...), 1).rollout` — exactly the acting
  part of a training update (`fnrl.rollout.collect`: one jitted policy tick and one env call per
  tick, the policy's outputs stacked once after the rollout), `num_steps` ticks per call.
- async: the same on `envpool_async(..., batch_size=num_envs / 2)` (`fnrl.rollout.collect_async`:
  two lanes, the policy acts for one while the other steps).

The policy is PPO's default for the env (`agents.ppo.make_trainer`): separate 64-64 tanh MLP
actor and critic on the flattened observation — for Pong the 4×84×84 uint8 frame stack flattened
to 28,224 features (a `network` spec with conv2d layers would give a CNN instead), a categorical
for CartPole/Pong, a beta policy for HalfCheetah's bounded actions. One process; per env count
the four modes run interleaved, `--repeats` rounds after a warm-up (compilation excluded);
steps/s (num_envs × ticks) is the median over rounds, a ratio the median of the rounds' ratios.

    python -m benchmarks.acting_bench            # prints the table
    python -m benchmarks.acting_bench --quick    # fewer env counts and repeats
    python -m benchmarks.acting_bench --write    # also updates BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from agents import host, ppo
from benchmarks._report import update_section
from benchmarks.env_bench import raw_runner
from fnrl import envs

NUM_ENVS = {"CartPole-v1": (16, 64, 256), "Pong-v5": (8, 16, 32), "HalfCheetah-v5": (16, 64, 256)}
QUICK_NUM_ENVS = {"CartPole-v1": (16, 256), "Pong-v5": (16,), "HalfCheetah-v5": (16, 256)}
MODES = ("raw", "ceiling", "sync", "async")
NOTE = """Where a tick's time goes. A host tick is one jitted policy call, one env call and bookkeeping.
The ceiling column is raw's loop plus the least a JAX policy can cost: one trivial jitted call on
the observation, its 4-byte result copied to the host. Alone that call takes ≈ 20–35 µs, yet on
this 2-core machine it slows CartPole's loop by more (the caller, XLA's dispatch thread and
envpool's worker threads hand over to one another on 2 cores each tick), so where the ceiling is
below 80% no policy in a host loop reaches 80% here. Ad-hoc timers in one process (2026-12-03):
PPO's 16-env CartPole tick took ≈ 90–130 µs in the loop (≈ 87 µs alone, `benchmarks/tick_bench.py`:
the unrolled threefry) and the adapter's step ≈ 55 µs over raw (action check, `valid` flags,
episode statistics). On Pong the policy's arithmetic is itself the cost: PPO's default policy (two
64-64 MLPs on the 28,224 features of a frame stack, PPO's default torso) took ≈ 4.2 ms per
16-env tick alone against ≈ 4.8 ms for a raw 16-env Pong step, which bounds the ratio near 53%
before any overhead; stacking a rollout's 58 MB of frames adds ≈ 0.9 ms per tick on this machine,
where fresh memory is slow to fault in (one 58 MB `np.stack` took 0.37–0.5 s into new memory,
8–16 ms into reused memory). Envs whose steps cost more than the policy come close to or pass
80% (HalfCheetah at 256 envs). The async lanes hide policy time only where a core idles while envs
step: envpool's threads already use both cores here and the policy runs twice per tick (once per
lane), so async is at best level with sync on this machine; with more cores than env threads it
overlaps the two. Between runs a ratio moves by up to ~15 points on this shared machine."""


def ceiling_runner(env_id: str, num_envs: int, ticks: int) -> Callable[[], float]:
    """`raw_runner`'s loop with one trivial jitted call on each step's observation, its result
    copied to the host; returns seconds."""
    import envpool

    pool = envpool.make_gymnasium(env_id, num_envs=num_envs)
    space, rng = pool.action_space, np.random.default_rng(0)
    touch = jax.jit(lambda obs: jnp.ravel(obs)[0])
    cell = {"obs": pool.reset()[0]}

    def run() -> float:
        start = time.perf_counter()
        for _ in range(ticks):
            np.asarray(touch(cell["obs"]))
            if hasattr(space, "n"):
                action = rng.integers(0, space.n, size=num_envs).astype(np.int32)
            else:
                action = rng.uniform(space.low, space.high, size=(num_envs,) + space.shape).astype(np.float32)
            cell["obs"] = pool.step(action)[0]
        return time.perf_counter() - start

    run()  # compiles `touch`
    return run


def fnrl_runner(env_id: str, num_envs: int, ticks: int, num_steps: int, pipelined: bool) -> Callable[[], float]:
    """A timed run of `ticks // num_steps` host-loop rollouts with PPO's policy; returns seconds."""
    pool = envs.envpool_async(env_id, num_envs, num_envs // 2) if pipelined else \
        envs.make(env_id, backend="envpool", num_envs=num_envs)
    view = envs.make(env_id, backend="envpool", num_envs=num_envs)  # only its specs build the trainer
    config = ppo.PPOConfig(num_envs=num_envs, num_steps=num_steps, total_steps=num_envs * num_steps,
                           num_minibatches=1)
    run = host.host_run(ppo.make_trainer(config, view), pool, 1)
    states, env_state = run.init(jax.random.PRNGKey(0))
    cell = {"env_state": env_state, "key": jax.random.PRNGKey(1)}

    def rollouts() -> float:
        start = time.perf_counter()
        for _ in range(max(1, ticks // num_steps)):
            cell["key"], key = jax.random.split(cell["key"])
            _, _, cell["env_state"] = run.rollout(states, cell["env_state"], key)
        return time.perf_counter() - start

    rollouts()  # compiles the acting tick and the extras pass
    return rollouts


def measure(env_id: str, num_envs: int, ticks: int, num_steps: int, repeats: int) -> dict[str, float]:
    """Steps/s per mode (median of `repeats` runs) and each fnrl mode's ratio to raw. The modes run
    interleaved, in an order rotated every round, and a ratio is the median of the per-round
    ratios: on a machine shared with other work, load drifts between rounds more than within one."""
    runners = {"raw": raw_runner(env_id, num_envs, ticks),
               "ceiling": ceiling_runner(env_id, num_envs, ticks),
               "sync": fnrl_runner(env_id, num_envs, ticks, num_steps, pipelined=False),
               "async": fnrl_runner(env_id, num_envs, ticks, num_steps, pipelined=True)}
    runners["raw"]()  # warm-up
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for r in range(repeats):
        for mode in MODES[r % len(MODES):] + MODES[: r % len(MODES)]:
            times[mode].append(runners[mode]())
    steps = num_envs * max(1, ticks // num_steps) * num_steps
    result = {mode: steps / statistics.median(times[mode]) for mode in MODES}
    for mode in MODES[1:]:
        result[f"{mode}_ratio"] = statistics.median(raw / t for raw, t in zip(times["raw"], times[mode]))
    return result


def table(results: dict[tuple[str, int], dict[str, float]]) -> str:
    rows = ["| env | envs | raw envpool (steps/s) | raw + one jitted call | ratio | fnrl sync | ratio | fnrl async "
            "| ratio |", "|---" * 9 + "|"]
    for (env_id, n), r in results.items():
        rows.append(f"| {env_id} | {n} | {r['raw']:,.0f} | "
                    + " | ".join(f"{r[mode]:,.0f} | {r[mode + '_ratio']:.0%}" for mode in MODES[1:]) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-steps", type=int, default=128, help="ticks per rollout (PPO's num_steps)")
    parser.add_argument("--rollouts", type=int, default=4, help="rollouts per timed run (CartPole; others 1)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="fewer env counts, 3 repeats")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else args.repeats
    counts = QUICK_NUM_ENVS if args.quick else NUM_ENVS

    results = {}
    for env_id, num_envs in tqdm([(e, n) for e, ns in counts.items() for n in ns], desc="acting"):
        rollouts = args.rollouts if env_id == "CartPole-v1" else 1
        results[env_id, num_envs] = measure(env_id, num_envs, rollouts * args.num_steps, args.num_steps, repeats)
    body = (f"Env steps per second, median of {repeats} interleaved runs (compilation excluded) of "
            f"{args.num_steps}-tick rollouts ({args.rollouts} per run for CartPole, 1 otherwise), policy in the "
            "loop, no learning; ratio = the mode / raw envpool with random actions, the median of the per-round "
            "ratios; the ceiling column (raw plus one trivial jitted call per step) bounds what any JAX policy in "
            "a host loop can reach.\n\n" + table(results) + "\n\n" + NOTE)
    print(body)
    if args.write:
        command = "python -m benchmarks.acting_bench --write" + (" --quick" if args.quick else "")
        update_section("acting_bench", "Acting throughput on envpool (`benchmarks/acting_bench.py`)", command, body)
        print("updated BENCHMARKS.md")


if __name__ == "__main__":
    main()
