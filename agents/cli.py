"""The `fnrl` command line (DESIGN.md):

    fnrl list
    fnrl train AGENT --env ID [--backend jax|envpool] [--steps N] [--seeds K] [--num-envs E]
               [--config FILE.json] [--set key=value ...] [--out DIR] [--resume DIR]
    fnrl eval DIR [--episodes N]

A run directory holds `run.json` (what was run, to resume or evaluate it), `summary.json`,
`metrics.csv` (one row per update and seed), `curve.png` and `checkpoint/`. Training runs the
agent's jitted `update` in chunks, vmapped over seeds; between chunks it shows progress, appends
metrics and checkpoints (a checkpoint also keeps the wall and compile seconds spent, so a resumed
run's summary covers the whole run). Chunking does not change the numbers, so a resumed run ends
with the same parameters as an uninterrupted one. `--resume DIR` takes the run's definition from
DIR/run.json, which is written once training has started; Ctrl-C or SIGTERM checkpoints the
finished updates before exiting.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import dataclasses
import importlib
import json
import os
import pathlib
import signal
import sys
import threading
import time
from typing import Any

import jax
import numpy as np

import fnrl
from agents import host
from agents.common import Trainer
from fnrl import checkpoint

AGENTS: dict[str, tuple[str, str]] = {  # name -> (module, config class)
    "a2c": ("agents.a2c", "A2CConfig"),
    "constant": ("agents.baselines", "ConstantConfig"),
    "es": ("agents.es", "ESConfig"),
    "ppo": ("agents.ppo", "PPOConfig"),
    "random": ("agents.baselines", "RandomConfig"),
    "trpo": ("agents.trpo", "TRPOConfig"),
    "vpg": ("agents.vpg", "VPGConfig"),
}
METRIC_COLUMNS = ("update", "seed", "env_steps", "episode_return_sum", "episode_count")


# ------------------------------------------------------------------------------------ configs
def agent_module(name: str):
    if name not in AGENTS:
        raise SystemExit(f"fnrl: unknown agent {name!r}; available: {', '.join(sorted(AGENTS))}")
    module_name, config_name = AGENTS[name]
    module = importlib.import_module(module_name)
    return module, getattr(module, config_name)


def _coerce(field: dataclasses.Field, raw: Any) -> Any:
    """Casts a JSON value (or a --set string) to the type of the field's default."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            pass
    default = field.default
    if raw is None:  # JSON null switches an optional feature off (e.g. baseline_mode)
        return None
    if isinstance(raw, (dict, list)) and not isinstance(default, tuple):
        return raw  # a spec (optimizer, network layers): the config class checks it
    if isinstance(default, bool):
        if not isinstance(raw, bool):
            raise SystemExit(f"fnrl: config field {field.name!r} takes true/false, got {raw!r}")
        return raw
    if isinstance(default, tuple):
        return tuple(raw) if isinstance(raw, (list, tuple)) else (raw,)
    if isinstance(default, (int, float)):
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise SystemExit(f"fnrl: config field {field.name!r} takes a number, got {raw!r}")
        if isinstance(default, int) and raw != int(raw):
            raise SystemExit(f"fnrl: config field {field.name!r} takes a whole number, got {raw!r}")
        return type(default)(raw)
    return str(raw) if isinstance(default, str) else raw


def build_config(config_cls, values: dict[str, Any]):
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise SystemExit(f"fnrl: unknown config field(s) {unknown} for {config_cls.__name__}; "
                         f"fields: {', '.join(sorted(fields))}")
    try:
        return config_cls(**{k: _coerce(fields[k], v) for k, v in values.items()})
    except ValueError as error:
        raise SystemExit(f"fnrl: {error}") from None


def _read_json_object(path: pathlib.Path, what: str) -> dict:
    """A JSON object from `path`, or an `fnrl:` message naming `what` when it is missing or not one."""
    try:
        value = json.loads(path.read_text())
    except OSError as error:
        raise SystemExit(f"fnrl: {what} {path}: cannot read it ({error.strerror})") from None
    except json.JSONDecodeError as error:
        raise SystemExit(f"fnrl: {what} {path} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise SystemExit(f"fnrl: {what} {path} must hold a JSON object, got {type(value).__name__}")
    return value


def config_values(args) -> dict[str, Any]:
    """Config fields from --config (recipe fields, or a TensorForce agent spec with a "type",
    which also names the agent), then --set, --num-envs and --steps. Sets `args.agent` from a
    TensorForce spec."""
    values: dict[str, Any] = {}
    if args.config:
        values.update(_read_json_object(pathlib.Path(args.config), "--config"))
    if "type" in values:
        from agents.tensorforce import tensorforce_config

        try:
            agent, values = tensorforce_config(values)
        except ValueError as error:
            raise SystemExit(f"fnrl: --config {args.config}: {error}") from None
        if args.agent not in (None, agent):
            raise SystemExit(f"fnrl: --config {args.config} is a TensorForce {agent} spec, but the agent given is "
                             f"{args.agent!r}")
        args.agent = agent
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"fnrl: --set takes key=value, got {item!r}")
        values[key] = value
    if args.num_envs is not None:
        values["num_envs"] = args.num_envs
    if args.steps is not None:
        values["total_steps"] = args.steps
    return values


# ------------------------------------------------------------------------------------ metrics
def final_returns(sums: np.ndarray, counts: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """Per seed: mean return of (about) the last `fraction` of finished episodes.

    `sums`, `counts`: `[updates, seeds]` per-update sums and counts of finished episodes' returns.
    Whole updates are taken from the end until they hold at least `fraction` of all episodes.
    """
    out = []
    for s, c in zip(sums.T, counts.T):
        need, total, got = max(1.0, fraction * c.sum()), 0.0, 0.0
        for i in range(len(c) - 1, -1, -1):
            total, got = total + s[i], got + c[i]
            if got >= need:
                break
        out.append(total / got if got > 0 else float("nan"))
    return np.asarray(out)


def write_metrics(path: pathlib.Path, rows: list[dict], keys: list[str]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        if new:
            writer.writeheader()
        writer.writerows(rows)


def read_metrics(path: pathlib.Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def plot_curve(rows: list[dict], out: pathlib.Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    seeds = sorted({int(r["seed"]) for r in rows})
    for seed in seeds:
        mine = [r for r in rows if int(r["seed"]) == seed and float(r["episode_count"]) > 0]
        steps = [float(r["env_steps"]) for r in mine]
        means = [float(r["episode_return_sum"]) / float(r["episode_count"]) for r in mine]
        ax.plot(steps, means, lw=1, alpha=0.8, label=f"seed {seed}")
    ax.set_xlabel("env steps")
    ax.set_ylabel("mean return of finished episodes")
    ax.set_title(title)
    if len(seeds) <= 10 and ax.lines:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------ training
def make_run(agent: str, env_id: str, backend: str, seeds: int, config_dict: dict):
    """The config, the trainer and, for envpool, the host run over one pool for all seeds."""
    module, config_cls = agent_module(agent)
    config = build_config(config_cls, config_dict)
    try:
        env = fnrl.envs.make(env_id, backend=backend, num_envs=config.num_envs * (1 if backend == "jax" else seeds))
    except ValueError as error:
        raise SystemExit(f"fnrl: --env {env_id}: {error}") from None
    try:
        if backend == "jax":
            return config, _checked_length(module.make_trainer(config, env)), None
        trainer: Trainer = module.make_trainer(config, host.seeds_view(env, seeds)[0])
    except ValueError as error:
        raise SystemExit(f"fnrl: {agent} cannot train on {env_id} ({backend} backend): {error}") from None
    if trainer.on_policy is None:
        raise SystemExit(f"fnrl: {agent} trains on the pure-JAX backend only; use --backend jax")
    return config, _checked_length(trainer), host.host_run(trainer, env, seeds)


def _checked_length(trainer: Trainer) -> Trainer:
    if trainer.num_updates < 1:
        raise SystemExit(f"fnrl: --steps (total_steps) is less than one update of {trainer.steps_per_update} "
                         "env steps; ask for at least that many")
    return trainer


def _over_seeds(fn, seeds: int):
    """`fn` vmapped over the leading seed axis, the seeds split across the local devices (each
    CPU core is a device, see `use_cpu_cores`); one seed runs unbatched inside the same leading
    axis (a smaller program to compile and run than a vmap of size 1)."""
    if seeds > 1:
        return fnrl.parallel.vmap_over_devices(fn, seeds)
    return lambda xs: jax.tree.map(lambda x: x[None], fn(jax.tree.map(lambda x: x[0], xs)))


def _chunk_fn(trainer: Trainer, length: int, seeds: int):
    """`length` updates as one jitted scan (`_lower_chunk` lowers it as the CLI runs it)."""
    def chunk(states):
        step = lambda s, _: trainer.update(s)  # noqa: E731
        return _over_seeds(lambda s: jax.lax.scan(step, s, None, length=length), seeds)(states)

    # No buffer donation: after a Ctrl-C mid-chunk the previous states must still be readable.
    return jax.jit(chunk)


def _lower_chunk(trainer: Trainer, length: int, seeds: int, states):
    """`_chunk_fn` lowered for `states` inside `fnrl.unrolled_threefry()`: it compiles ≈ 15–25%
    faster than with JAX's rolled threefry loop and runs as fast."""
    with fnrl.unrolled_threefry():
        return _chunk_fn(trainer, length, seeds).lower(states)


def chunk_length(num_updates: int, requested: int | None = None) -> int:
    """Updates per jitted chunk: the largest divisor of `num_updates` up to `requested`
    (default 1/50 of the run), so no shorter last chunk costs a second compilation."""
    target = max(1, min(requested or max(1, num_updates // 50), num_updates))
    return max(d for d in range(1, target + 1) if num_updates % d == 0)


# `init` runs once: compile it quickly rather than into fast code. At full optimization haiku's
# initializers cost as much compile time as the whole training program; at LLVM level 0 with
# XLA:CPU's older elementwise emitters PPO's CartPole `init` compiled in ≈ 0.4 s against ≈ 0.75 s
# with the default emitters (and the same bits) here.
_INIT_COMPILE_OPTIONS = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}


def _compile_init(lowered):
    """`lowered` (an `init`) compiled with `_INIT_COMPILE_OPTIONS`."""
    try:
        return lowered.compile(_INIT_COMPILE_OPTIONS)
    except jax.errors.JaxRuntimeError:  # an XLA that no longer has one of the options
        return lowered.compile()


def _lower_init(trainer: Trainer, seeds: int, key):
    """`trainer.init` for `seeds` seeds lowered for the base `key`. The seeds' keys are split
    inside the program: split on its own, it is one more compilation. It stays on one device:
    jaxlib's batched LAPACK kernels (the orthogonal initializers' QR) deadlock when two CPU
    devices run them at once."""
    batched = jax.vmap(trainer.init) if seeds > 1 else _over_seeds(trainer.init, 1)
    return jax.jit(lambda key: batched(jax.random.split(key, seeds))).lower(key)


class _Backend:
    """How a run starts and advances: jitted scans of `update` (jax), or the host loop (envpool).

    `init(chunk) -> states`; `advance(states, first_update, length) -> (states, metrics [seeds, length])`;
    `chunks` runs advances to the end of the run."""

    def __init__(self, trainer: Trainer, run: host.HostRun | None, seed: int, seeds: int):
        self.trainer, self.run, self.seeds = trainer, run, seeds
        self.key = jax.random.PRNGKey(seed)
        self.env_state = None
        self._chunks: dict[int, Any] = {}
        self._update_seconds: list[float] = []
        self.compile_seconds = 0.0

    def init(self, chunk: int):
        """The first states. On the jax backend this also compiles the chunk of `chunk` updates:
        `init` compiles on a helper thread (XLA releases the GIL) while this thread traces and
        lowers the chunk against `init`'s output shapes, then compiles it."""
        if self.run is not None:
            states, self.env_state = self.run.init(self.key)
            return states
        started = time.perf_counter()
        lowered = _lower_init(self.trainer, self.seeds, self.key)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            init = pool.submit(_compile_init, lowered)
            self._compile_chunk(chunk, self._placed(lowered.out_info))
            init = init.result()
        self.compile_seconds += time.perf_counter() - started
        return self.place(init(self.key))

    def place(self, states):
        """States laid out as the training chunks take them (seeds split over the devices)."""
        if self.run is None and self.seeds > 1:
            return jax.device_put(states, fnrl.batch_sharding(self.seeds))
        return states

    def resumed(self, fresh, saved):
        """The states a resume continues from: the checkpoint's. The host loop plays fresh
        episodes on a new pool, so there the rollout carry (observation, episode starts, memory)
        is the new pool's `fresh` one and only its key comes from the checkpoint."""
        if self.run is None:
            return self.place(saved)
        return saved._replace(rollout=fresh.rollout._replace(key=saved.rollout.key))

    def _placed(self, shapes):
        """`place` for shapes (`jax.ShapeDtypeStruct`s), to lower a chunk before states exist."""
        if self.seeds > 1:
            sharding = fnrl.batch_sharding(self.seeds)
            return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), shapes)
        return shapes

    def _compile_chunk(self, length: int, states) -> None:
        """The chunk of `length` updates for `states` (arrays or their shapes), compiled."""
        self._chunks[length] = _lower_chunk(self.trainer, length, self.seeds, states).compile()

    def advance(self, states, first_update: int, length: int):
        if self.run is None:
            if length not in self._chunks:  # another chunk length than `init`'s (a resume's last)
                started = time.perf_counter()
                self._compile_chunk(length, states)
                self.compile_seconds += time.perf_counter() - started
            return self._chunks[length](states)
        rows = []
        for update in range(first_update, first_update + length):
            started = time.perf_counter()
            states, self.env_state, metrics = self.run.update(states, self.env_state,
                                                              jax.random.fold_in(self.key, update))
            rows.append(jax.device_get(metrics))
            self._time_update(time.perf_counter() - started)
        return states, jax.tree.map(lambda *xs: np.stack(xs, axis=1), *rows)

    def chunks(self, states, done: int, total: int, length: int):
        """Yields `(updates done, states, metrics on the host)` after each chunk of up to `length`
        updates until `total`. On the jax backend the next chunk is queued before a chunk's metrics
        are read, so XLA keeps training while the caller writes metrics and checkpoints; a caller
        that stops early (Ctrl-C) keeps the last yielded states and drops the chunk in flight."""
        queued = None
        while done < total:
            states, metrics = queued or self.advance(states, done, min(length, total - done))
            done += min(length, total - done)
            pipelined = self.run is None and done < total
            queued = self.advance(states, done, min(length, total - done)) if pipelined else None
            yield done, states, jax.device_get(metrics)

    def _time_update(self, seconds: float) -> None:
        """Host loop: compilation happens inside the first update; count its excess over the second."""
        if len(self._update_seconds) < 2:
            self._update_seconds.append(seconds)
            if len(self._update_seconds) == 2:
                self.compile_seconds = max(0.0, self._update_seconds[0] - self._update_seconds[1])


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS reports one)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, cores or 1)


def use_cpu_cores() -> None:
    """One JAX CPU device per core, so `--seeds K` spreads its seeds over the cores (XLA:CPU runs
    one device's small ops on one thread). Kept as is when `XLA_FLAGS` already sets a host device
    count or JAX has already started its backends (an in-process caller's choice wins)."""
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return
    try:
        jax.config.update("jax_num_cpu_devices", cpu_cores())
    except RuntimeError:
        pass  # backends already initialized


def use_compilation_cache() -> None:
    """Keeps XLA's compiled programs on disk (`$FNRL_COMPILATION_CACHE`, default
    ~/.cache/fnrl/xla; "off" disables it), so a rerun, a resume, an eval or another seed of the same
    configuration skips compilation. Loading a cached program gives the same numbers."""
    path = os.environ.get("FNRL_COMPILATION_CACHE", str(pathlib.Path.home() / ".cache" / "fnrl" / "xla"))
    if path and path.lower() != "off":
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)  # init's O0 compile too


def _check_devices(run: dict, out: pathlib.Path, devices: int) -> None:
    """Warns when a resumed multi-seed run gets another device count than it trained on: its
    seeds split over the devices differently, so its numbers can differ from an uninterrupted
    run's in the last bits."""
    if run.get("devices", devices) != devices and run["seeds"] > 1 and run["backend"] == "jax":
        print(f"fnrl: warning: {out} trained on {run['devices']} JAX devices and resumes on {devices}; "
              "the final numbers can differ in the last bits from an uninterrupted run", file=sys.stderr)


# Flags that define a run: a resume takes them from the run's run.json.
_RUN_FLAGS = ("agent", "env", "backend", "steps", "seeds", "seed", "num_envs", "config", "set", "out")


def _load_run(out: pathlib.Path, args) -> dict:
    """The run.json of the run `--resume` continues; refuses flags that would redefine it."""
    given = [f"--{name.replace('_', '-')}" if name != "agent" else "AGENT"
             for name in _RUN_FLAGS if getattr(args, name) is not None]
    if given:
        raise SystemExit(f"fnrl: --resume continues {out} as its run.json defines it; drop {', '.join(given)} "
                         "(only --chunk and --checkpoint-every may change), or start a new run with --out")
    return _read_json_object(out / "run.json", "--resume: run file")


def _checkpoint_tree(states, done: int = 0, wall: float = 0.0, compile_seconds: float = 0.0) -> dict:
    """What a CLI checkpoint holds (with the defaults: the template to restore one): the states,
    the updates done, and the wall and compile seconds spent on them, so a resumed run's summary
    counts the whole run."""
    return {"state": states, "updates_done": done, "seconds": {"wall": wall, "compile": compile_seconds}}


def _new_run_directory(base: str) -> pathlib.Path:
    """`base`, or `base-2`, `base-3`, ... : the first that did not exist, created here (so two runs
    started in the same second get a directory each)."""
    for attempt in range(1, 10_000):
        path = pathlib.Path(base if attempt == 1 else f"{base}-{attempt}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise SystemExit(f"fnrl: could not create a new run directory next to {base}; pass --out")


def train(args) -> int:
    if args.resume:
        out = pathlib.Path(args.resume)
        run = _load_run(out, args)
    else:
        config = config_values(args)  # sets args.agent from a TensorForce spec
        out = None if args.out is None else pathlib.Path(args.out)
        if out is not None and (out / "run.json").exists():
            raise SystemExit(f"fnrl: {out} already holds a run; use --resume {out} or another --out")
        run = dict(agent=args.agent, env=args.env, backend=args.backend or "jax", seeds=args.seeds or 1,
                   seed=args.seed or 0, config=config)
    config, trainer, host_run = make_run(run["agent"], run["env"], run["backend"], run["seeds"], run["config"])
    total = trainer.num_updates
    if args.steps is not None and total * trainer.steps_per_update != args.steps:
        print(f"fnrl: note: training {total * trainer.steps_per_update} env steps per seed, {total} whole updates of "
              f"{trainer.steps_per_update} (--steps {args.steps} is not a multiple)", file=sys.stderr)
    # A resume keeps the run's chunk and checkpoint cadence unless the command sets them again.
    chunk_len = chunk_length(total, args.chunk or run.get("chunk"))
    every = max(1, args.checkpoint_every or run.get("checkpoint_every") or total // 10)
    devices = jax.local_device_count()
    _check_devices(run, out, devices)

    started = time.perf_counter()
    backend = _Backend(trainer, host_run, run["seed"], run["seeds"])
    states, done = backend.init(chunk_len), 0
    # run.json is written once the run has started, so a start that fails leaves no run behind.
    run.update(config=dataclasses.asdict(config), chunk=chunk_len, checkpoint_every=every, devices=devices)
    if out is None:
        out = _new_run_directory(f"runs/{run['agent']}-{run['env']}-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").write_text(json.dumps(run, indent=2))
    ckpt_dir = out / "checkpoint"
    before = {"wall": 0.0, "compile": 0.0}
    if args.resume:
        if checkpoint.latest(ckpt_dir):
            saved = checkpoint.restore(checkpoint.latest(ckpt_dir), like=_checkpoint_tree(states))
            states, done = backend.resumed(states, saved["state"]), int(saved["updates_done"])
            before = {k: float(v) for k, v in saved["seconds"].items()}
        # Rows of updates after the checkpoint (all rows, without one) are about to be redone.
        kept = [r for r in read_metrics(out / "metrics.csv") if int(r["update"]) < done]
        (out / "metrics.csv").unlink(missing_ok=True)
        if kept:
            write_metrics(out / "metrics.csv", kept, list(kept[0].keys()))
        print(f"resuming {out} at update {done}/{trainer.num_updates}")

    def elapsed() -> tuple[float, float]:
        return before["wall"] + time.perf_counter() - started, before["compile"] + backend.compile_seconds

    from tqdm import tqdm

    bar = tqdm(total=total * trainer.steps_per_update * run["seeds"], initial=done * trainer.steps_per_update * run["seeds"],
               unit="step", unit_scale=True, desc=f"{run['agent']} {run['env']}", dynamic_ncols=True)
    last_saved = done
    try:
        # Ctrl-C while a chunk runs keeps `states` and `done` of the last finished one.
        for chunk_done, chunk_states, metrics in backend.chunks(states, done, total, chunk_len):
            rows = _metric_rows(metrics, done, run["seeds"])
            write_metrics(out / "metrics.csv", rows, list(rows[0].keys()))
            bar.update((chunk_done - done) * trainer.steps_per_update * run["seeds"])
            states, done = chunk_states, chunk_done
            recent = _recent_return(metrics)
            if recent is not None:
                bar.set_postfix(ret=f"{recent:.1f}")
            if done - last_saved >= every or done == total:
                checkpoint.save(ckpt_dir, _checkpoint_tree(states, done, *elapsed()), step=done, keep=2)
                last_saved = done
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (see `main`)
        bar.close()
        if done > last_saved:
            checkpoint.save(ckpt_dir, _checkpoint_tree(states, done, *elapsed()), step=done, keep=2)
        print(f"\ninterrupted at update {done}/{total}; resume with: fnrl train --resume {out}")
        return 130
    bar.close()
    write_summary(out, run, trainer, *elapsed())
    return 0


def _metric_rows(metrics: dict, first_update: int, seeds: int) -> list[dict]:
    """Flattens `[seeds, updates]` metric arrays into CSV rows (one per update and seed)."""
    keys = [k for k in metrics if np.ndim(metrics[k]) == 2]
    rows = []
    updates = np.shape(metrics[keys[0]])[1]
    for u in range(updates):
        for s in range(seeds):
            row = {"update": first_update + u, "seed": s}
            row.update({k: float(metrics[k][s, u]) for k in keys})
            rows.append(row)
    return rows


def _recent_return(metrics: dict) -> float | None:
    count = float(np.sum(metrics["episode_count"]))
    return float(np.sum(metrics["episode_return_sum"])) / count if count else None


def write_summary(out: pathlib.Path, run: dict, trainer: Trainer, wall: float, compile_seconds: float) -> None:
    rows = read_metrics(out / "metrics.csv")
    seeds = run["seeds"]
    updates = len(rows) // seeds
    grid = lambda key: np.asarray([float(r[key]) for r in rows]).reshape(updates, seeds)  # noqa: E731
    per_seed = final_returns(grid("episode_return_sum"), grid("episode_count"))
    steps = trainer.num_updates * trainer.steps_per_update
    finished = per_seed[np.isfinite(per_seed)]
    summary = dict(
        agent=run["agent"], env=run["env"], backend=run["backend"], steps=steps, seeds=seeds,
        # null (JSON has no NaN) where no episode finished
        final_return=float(np.mean(finished)) if finished.size else None,
        final_return_per_seed=[float(x) if np.isfinite(x) else None for x in per_seed],
        wall_seconds=wall, compile_seconds=compile_seconds,
        steps_per_second=steps * seeds / max(wall - compile_seconds, 1e-9), config=run["config"],
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    plot_curve(rows, out / "curve.png", f"{run['agent']} on {run['env']} ({seeds} seed{'s' * (seeds > 1)})")
    print(f"final return {np.mean(finished) if finished.size else np.nan:.1f} (per seed: "
          f"{', '.join(f'{x:.1f}' for x in per_seed)}); {wall:.1f} s wall, {compile_seconds:.1f} s compile")
    print(f"wrote {out / 'summary.json'}, {out / 'metrics.csv'}, {out / 'curve.png'}, {out / 'checkpoint'}")


# ------------------------------------------------------------------------------------ eval
def evaluate(args) -> int:
    out = pathlib.Path(args.dir)
    run = _read_json_object(out / "run.json", "eval: run file")
    config, trainer, host_run = make_run(run["agent"], run["env"], run["backend"], run["seeds"], run["config"])
    path = checkpoint.latest(out / "checkpoint")
    if path is None:
        raise SystemExit(f"fnrl: no checkpoint in {out / 'checkpoint'}")
    keys = jax.random.split(jax.random.PRNGKey(run["seed"]), run["seeds"])
    if host_run is None:
        like_states = jax.eval_shape(jax.vmap(trainer.init), keys)
    else:
        like_states, pool_state = host_run.init(jax.random.PRNGKey(run["seed"]))
        pool_state.close()
    states = checkpoint.restore(path, like=_checkpoint_tree(like_states))["state"]
    env = fnrl.envs.make(run["env"], backend=run["backend"], num_envs=config.num_envs)
    returns, per_env = [], -(-args.episodes // env.num_envs)
    for seed in range(run["seeds"]):
        params = jax.tree.map(lambda x: x[seed], trainer.params(states))
        returns.append(greedy_returns(trainer, env, params, per_env, seed))
    print(json.dumps({"episodes": per_env * env.num_envs, "mean_return_per_seed": returns,
                      "mean_return": float(np.mean(returns))}, indent=2))
    return 0


def greedy_returns(trainer: Trainer, env, params, episodes_per_env: int, seed: int) -> float:
    """Mean return of every env's first `episodes_per_env` episodes with the greedy policy (the
    first episodes to finish over all envs would favour short ones)."""
    from fnrl.envs.wrappers import episode_stats

    state, timestep = env.reset(jax.random.PRNGKey(10_000 + seed))
    initial = trainer.on_policy.initial_memory if trainer.on_policy else ()
    memory = jax.tree.map(lambda m: np.broadcast_to(m, (env.num_envs,) + np.shape(m)), initial)
    if initial == ():
        act = jax.jit(lambda p, k, o, m, first: (trainer.act(p, k, o, True), m))
    else:  # recurrent: memory restarts where an episode starts (the reset tick is `valid=False`)
        act = jax.jit(lambda p, k, o, m, first: trainer.act_with_memory(
            p, k, o, fnrl.rollout.reset_memory(m, initial, first), True))
    step = jax.jit(env.step) if env.is_jax else env.step
    key, first = jax.random.PRNGKey(seed), np.ones(env.num_envs, bool)
    finished: list[list[float]] = [[] for _ in range(env.num_envs)]
    while min(len(f) for f in finished) < episodes_per_env:
        key, sub = jax.random.split(key)
        action, memory = act(params, sub, timestep.observation, memory, first)
        state, timestep = step(state, action)
        first = ~np.asarray(timestep.valid)
        stats = episode_stats(state)  # closes episodes at game over under Atari's episodic life
        ended = np.asarray(timestep.valid) & (np.asarray(stats.episode_length) == 0)
        for i in np.flatnonzero(ended):
            finished[i].append(float(np.asarray(stats.last_return)[i]))
    return float(np.mean([r for f in finished for r in f[:episodes_per_env]]))


# ------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fnrl", description="fnrl: functional deep RL in JAX")
    parser.add_argument("--version", action="version", version=f"fnrl {fnrl.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="agents and env ids per backend")
    tr = sub.add_parser("train", help="train an agent")
    tr.add_argument("agent", nargs="?", help=f"one of: {', '.join(sorted(AGENTS))}")
    tr.add_argument("--env", help="env id (see `fnrl list`)")
    tr.add_argument("--backend", choices=["jax", "envpool"], help="default: jax")
    tr.add_argument("--steps", type=int, help="total env steps per seed (config total_steps)")
    tr.add_argument("--seeds", type=int, help="seeds trained together in one vmapped program (default: 1)")
    tr.add_argument("--seed", type=int, help="base seed (default: 0)")
    tr.add_argument("--num-envs", type=int, dest="num_envs", help="envs per seed (config num_envs)")
    tr.add_argument("--config", help="JSON file of config fields, or a TensorForce agent spec "
                                     '(e.g. {"type": "vpg_agent", "batch_size": 8, "optimizer": {...}})')
    tr.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one config field")
    tr.add_argument("--out", help="run directory (default runs/AGENT-ENV-TIME)")
    tr.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint")
    tr.add_argument("--chunk", type=int, help="updates per jitted chunk (default: 1/50 of the run)")
    tr.add_argument("--checkpoint-every", type=int, dest="checkpoint_every",
                    help="updates between checkpoints (default: 1/10 of the run)")
    ev = sub.add_parser("eval", help="play a trained run's policy greedily")
    ev.add_argument("dir")
    ev.add_argument("--episodes", type=int, default=10,
                    help="at least this many: every env's first ceil(N / num_envs) episodes")
    args = parser.parse_args(argv)
    if args.command != "list":
        use_cpu_cores()
        use_compilation_cache()
    if args.command == "list":
        print("agents:", ", ".join(sorted(AGENTS)))
        print("jax envs:", ", ".join(fnrl.envs.list_envs("jax")))
        print(f"envpool envs: {len(fnrl.envs.list_envs('envpool'))} ids (any envpool.list_all_envs() id)")
        return 0
    if args.command == "train":
        if not args.resume and not ((args.agent or args.config) and args.env):
            parser.error("train needs AGENT (or a TensorForce agent spec in --config) and --env, or --resume DIR")
        if args.seeds is not None and args.seeds < 1:
            parser.error("--seeds must be >= 1")
        if threading.current_thread() is not threading.main_thread():
            return train(args)
        # SIGTERM (a scheduler stopping the job) ends training as Ctrl-C does: the updates done
        # since the last checkpoint are checkpointed before the process exits.
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            return train(args)
        finally:
            signal.signal(signal.SIGTERM, previous)
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")
    return evaluate(args)


if __name__ == "__main__":
    sys.exit(main())
