"""`fnrl train` survives a hard kill: SIGKILL mid-run, `--resume`, same result bit for bit.

tests/test_cli.py simulates a crash inside one Python process; this file kills a real
`python -m agents.cli train` process with SIGKILL, so nothing (no `except`, no `finally`, no
buffered write) runs after the signal, exactly like a pre-empted machine or the OOM killer.
The resumed run must continue from the last checkpoint and, on the pure-JAX backend, end with
the same parameters, optimizer state and rng keys as an uninterrupted run (DESIGN.md: chunking
does not change the numbers).
"""

from __future__ import annotations

import csv
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from fnrl import checkpoint

REPO = pathlib.Path(__file__).resolve().parents[1]
UPDATES = 200  # long enough after compilation that the kill lands mid-run
STEPS_PER_UPDATE = 4 * 16  # num_envs * num_steps below
TIMEOUT_S = 240  # compilation on a loaded 2-core machine can be slow
TRAIN = ["train", "ppo", "--env", "CartPole-v1", "--steps", str(UPDATES * STEPS_PER_UPDATE),
         "--chunk", "2", "--checkpoint-every", "4", "--set", "num_envs=4", "--set", "num_steps=16"]


def _start(args: list[str], log: pathlib.Path, cache: pathlib.Path) -> subprocess.Popen:
    """Launches the CLI as its own process; output goes to a file so a full pipe never blocks it.

    All processes of one test share a persistent XLA compilation cache: the killed run compiles,
    the other two load its executables (the same binary a fresh compile would give), which saves
    about a quarter of the test's CPU time on a small machine.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               XLA_PYTHON_CLIENT_PREALLOCATE="false", TQDM_DISABLE="1",
               JAX_COMPILATION_CACHE_DIR=str(cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    with log.open("w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "agents.cli", *args], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def _finish(proc: subprocess.Popen, log: pathlib.Path) -> str:
    """Waits for a run that must succeed; returns its output."""
    try:
        code = proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    output = log.read_text()
    assert code == 0, f"{proc.args} exited with {code}:\n{output[-3000:]}"
    return output


def _kill_after_first_checkpoint(proc: subprocess.Popen, out: pathlib.Path, log: pathlib.Path) -> None:
    """Polls for a checkpoint, then SIGKILLs the run; fails loudly if the run ended first."""
    deadline = time.monotonic() + TIMEOUT_S
    while proc.poll() is None and checkpoint.latest(out / "checkpoint") is None:
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no checkpoint within {TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    code = proc.wait(timeout=TIMEOUT_S)
    if code != -signal.SIGKILL or (out / "summary.json").exists():
        pytest.fail(f"the run ended (exit code {code}) before SIGKILL reached it, so nothing was "
                    f"interrupted; make UPDATES larger:\n{log.read_text()[-3000:]}")


def _leaves(run_dir: pathlib.Path) -> dict[str, np.ndarray]:
    """Every leaf of the run's latest checkpoint by key path, typed keys as their raw bits; not
    the seconds spent, which no two runs share."""
    saved = checkpoint.restore(checkpoint.latest(run_dir / "checkpoint"))
    del saved["seconds"]
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(saved)[0]:
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        out[jax.tree_util.keystr(path)] = np.asarray(leaf)
    return out


def _metrics(run_dir: pathlib.Path) -> list[dict]:
    with (run_dir / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("seeds", [2])  # one vmapped program of two seeds; one seed is the same path
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, seeds):
    args = TRAIN + ["--seeds", str(seeds)]
    killed, whole, cache = tmp_path / "killed", tmp_path / "whole", tmp_path / "xla-cache"
    logs = {name: tmp_path / f"{name}.log" for name in ("killed", "resume", "whole")}
    _kill_after_first_checkpoint(_start(args + ["--out", str(killed)], logs["killed"], cache),
                                 killed, logs["killed"])
    # A bare `--resume DIR`, as a user would type it: everything else comes from run.json, and
    # the default chunk length differs from the killed run's, so it is compiled afresh.
    resume = _start(["train", "--resume", str(killed)], logs["resume"], cache)
    reference = _start(args + ["--out", str(whole)], logs["whole"], cache)
    resumed = _finish(resume, logs["resume"])
    _finish(reference, logs["whole"])

    match = re.search(r"resuming \S+ at update (\d+)/(\d+)", resumed)
    assert match, f"the resumed run did not say where it resumed:\n{resumed[-3000:]}"
    at, total = int(match.group(1)), int(match.group(2))
    assert total == UPDATES and 0 < at < total
    assert (killed / "summary.json").exists() and (whole / "summary.json").exists()

    rows = _metrics(killed)
    keys = [(int(r["update"]), int(r["seed"])) for r in rows]
    assert sorted(keys) == [(u, s) for u in range(UPDATES) for s in range(seeds)], "lost or repeated rows"
    assert rows == _metrics(whole)  # every logged number, before and after the kill, bit for bit

    got, want = _leaves(killed), _leaves(whole)
    assert got.keys() == want.keys()
    assert int(got["['updates_done']"]) == UPDATES
    differ = [k for k in want if not np.array_equal(got[k], want[k])]
    assert not differ, f"resumed state differs from the uninterrupted run at {differ}"
