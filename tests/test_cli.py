"""The `fnrl` command line: run directory contents, seeds, resume after a crash, eval."""

from __future__ import annotations

import csv
import json

import jax
import numpy as np
import pytest

from agents import cli
from fnrl import checkpoint


@pytest.fixture(autouse=True)
def dummy_agent(monkeypatch):
    monkeypatch.setitem(cli.AGENTS, "dummy", ("tests.dummy_agent", "DummyConfig"))


def final_params(run_dir):
    saved = checkpoint.restore(checkpoint.latest(run_dir / "checkpoint"))
    return np.asarray(saved["state"]["params"]), int(saved["updates_done"])


def test_train_writes_the_run_directory(tmp_path):
    out = tmp_path / "run"
    code = cli.main(["train", "dummy", "--env", "CartPole-v1", "--steps", "320", "--seeds", "3",
                     "--set", "learning_rate=0.05", "--out", str(out), "--chunk", "4"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in ("agent", "env", "backend", "steps", "seeds", "final_return", "final_return_per_seed",
                "wall_seconds", "compile_seconds", "steps_per_second"):
        assert key in summary
    assert summary["seeds"] == 3 and summary["steps"] == 320 and len(summary["final_return_per_seed"]) == 3
    assert summary["config"]["learning_rate"] == 0.05
    assert 0 < summary["compile_seconds"] < summary["wall_seconds"]
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == 20 * 3  # 320 steps / 16 per update, one row per update and seed
    assert [int(r["update"]) for r in rows[::3]] == list(range(20))
    assert (out / "curve.png").stat().st_size > 1000
    params, done = final_params(out)
    assert done == 20 and params.shape[0] == 3
    assert not np.allclose(params[0], params[1])  # seeds differ


def test_resume_after_a_crash_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    args = ["train", "dummy", "--env", "CartPole-v1", "--steps", "320", "--seeds", "2", "--chunk", "2",
            "--checkpoint-every", "4"]
    assert cli.main(args + ["--out", str(tmp_path / "whole")]) == 0

    real_save, saves = checkpoint.save, []

    def dying_save(*a, **k):
        path = real_save(*a, **k)
        saves.append(path)
        if len(saves) == 2:
            raise SystemExit("simulated kill right after a checkpoint")
        return path

    monkeypatch.setattr(cli.checkpoint, "save", dying_save)
    with pytest.raises(SystemExit):
        cli.main(args + ["--out", str(tmp_path / "broken")])
    monkeypatch.setattr(cli.checkpoint, "save", real_save)
    assert final_params(tmp_path / "broken")[1] == 8
    saved = checkpoint.restore(checkpoint.latest(tmp_path / "broken" / "checkpoint"))
    spent = {k: float(v) for k, v in saved["seconds"].items()}  # the time the kept updates took
    assert spent["wall"] > spent["compile"] > 0
    assert cli.main(["train", "--resume", str(tmp_path / "broken")]) == 0
    summary = json.loads((tmp_path / "broken" / "summary.json").read_text())
    assert summary["wall_seconds"] > spent["wall"] and summary["compile_seconds"] > spent["compile"]  # whole run
    run = json.loads((tmp_path / "broken" / "run.json").read_text())
    assert (run["chunk"], run["checkpoint_every"]) == (2, 4)  # kept from the first command
    kept = sorted(int(path.stem.split("-")[-1]) for path in (tmp_path / "broken" / "checkpoint").glob("ckpt-*.npz"))
    assert kept == [16, 20]  # saved every 4 updates after the resume too (the default would be every 2)

    whole, done_whole = final_params(tmp_path / "whole")
    resumed, done_resumed = final_params(tmp_path / "broken")
    assert done_whole == done_resumed == 20
    np.testing.assert_array_equal(whole, resumed)  # bit for bit
    rows = list(csv.DictReader((tmp_path / "broken" / "metrics.csv").open()))
    assert [int(r["update"]) for r in rows[::2]] == list(range(20))


def _tree_equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_envpool_resume_plays_the_new_pools_episodes():
    """A host-loop resume restores the learner but plays fresh episodes: its first tick must act
    on the new pool's reset observation, as an episode start, not on the checkpoint's carry."""
    config = {"num_envs": 2, "num_steps": 8, "num_minibatches": 1, "total_steps": 64, "memory": "gru"}
    _, trainer, host_run = cli.make_run("ppo", "CartPole-v1", "envpool", 1, config)
    first = cli._Backend(trainer, host_run, 0, 1)
    saved, _ = first.advance(first.init(1), 0, 3)
    again = cli._Backend(trainer, host_run, 0, 1)
    fresh = again.init(1)
    resumed = again.resumed(fresh, saved)
    assert _tree_equal(resumed.params, saved.params) and resumed.update_count.tolist() == [3]
    np.testing.assert_array_equal(resumed.rollout.key, saved.rollout.key)
    assert _tree_equal(resumed.rollout.timestep, fresh.rollout.timestep)
    assert _tree_equal(resumed.rollout.memory, fresh.rollout.memory) and np.all(resumed.rollout.first)
    assert not _tree_equal(saved.rollout.timestep.observation, fresh.rollout.timestep.observation)
    first.env_state.close()
    again.env_state.close()


def test_resume_on_another_device_count_warns(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "dummy", "--env", "CartPole-v1", "--steps", "64", "--seeds", "2", "--out", str(out)]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["devices"] == jax.local_device_count()
    (out / "run.json").write_text(json.dumps({**run, "devices": run["devices"] + 1}))
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(out)]) == 0
    assert f"trained on {run['devices'] + 1} JAX devices" in capsys.readouterr().err


def test_keyboard_interrupt_checkpoints_the_last_finished_chunk(tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_rows, calls = cli._metric_rows, []

    def interrupting_rows(*a):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_rows(*a)

    monkeypatch.setattr(cli, "_metric_rows", interrupting_rows)
    code = cli.main(["train", "dummy", "--env", "CartPole-v1", "--steps", "320", "--chunk", "2",
                     "--checkpoint-every", "100", "--out", str(out)])
    assert code == 130
    assert final_params(out)[1] == 4  # two finished chunks of 2 updates were saved on Ctrl-C


def test_the_next_chunk_is_queued_before_a_chunk_is_handed_over(monkeypatch):
    """The device keeps training while the CLI writes a chunk's metrics: by the time a chunk is
    yielded the next one has been dispatched, and the states are those of plain advances."""
    _, trainer, _ = cli.make_run("dummy", "CartPole-v1", "jax", 1, {"total_steps": 96})
    backend = cli._Backend(trainer, None, 0, 1)
    start = backend.init(2)
    real_advance, calls = backend.advance, []
    monkeypatch.setattr(backend, "advance", lambda states, first, length: calls.append((first, length))
                        or real_advance(states, first, length))
    chunks = backend.chunks(start, 0, 5, 2)
    done, _, metrics = next(chunks)
    assert done == 2 and calls == [(0, 2), (2, 2)] and isinstance(jax.tree.leaves(metrics)[0], np.ndarray)
    rest = list(chunks)
    assert [c[0] for c in rest] == [4, 5] and calls == [(0, 2), (2, 2), (4, 1)]
    expected = start
    for first, length in calls:
        expected, _ = real_advance(expected, first, length)
    assert _tree_equal(rest[-1][1], expected)


def test_eval_plays_the_saved_policy(tmp_path, capsys):
    out = tmp_path / "run"
    cli.main(["train", "dummy", "--env", "CartPole-v1", "--steps", "160", "--out", str(out)])
    capsys.readouterr()
    assert cli.main(["eval", str(out), "--episodes", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["episodes"] == 4 and report["mean_return"] >= 1.0  # 2 envs x 2: every env's first episodes


def test_final_return_takes_the_last_tenth_of_episodes():
    sums = np.array([[10.0], [20.0], [300.0]])
    counts = np.array([[10.0], [10.0], [3.0]])
    # 23 episodes: the last 10% (>= 2.3) are the 3 of the last update.
    np.testing.assert_allclose(cli.final_returns(sums, counts), [100.0])


@pytest.mark.parametrize("num_updates, requested, expected", [
    (976, None, 16),  # 976 = 16 · 61: the largest divisor up to 976 // 50 = 19
    (100, None, 2), (97, None, 1), (10, 4, 2), (10, 5, 5), (10, 50, 10), (1, None, 1)])
def test_chunk_length_divides_the_run(num_updates, requested, expected):
    assert cli.chunk_length(num_updates, requested) == expected


def test_bad_arguments(tmp_path):
    with pytest.raises(SystemExit, match="unknown agent"):
        cli.main(["train", "nope", "--env", "CartPole-v1", "--out", str(tmp_path / "a")])
    with pytest.raises(SystemExit, match="unknown config field"):
        cli.main(["train", "dummy", "--env", "CartPole-v1", "--set", "bogus=1", "--out", str(tmp_path / "b")])
    with pytest.raises(SystemExit, match="takes a number"):
        cli.main(["train", "dummy", "--env", "CartPole-v1", "--set", "learning_rate=fast", "--out", str(tmp_path / "c")])
    for item, message in (("num_steps=8.7", "takes a whole number"), ("num_envs=true", "takes a number"),
                          ("learning_rate=true", "takes a number")):
        with pytest.raises(SystemExit, match=message):
            cli.main(["train", "dummy", "--env", "CartPole-v1", "--set", item, "--out", str(tmp_path / "d")])
    # User errors end in an `fnrl:` message, not a traceback, and leave no run directory behind.
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "broken.json").write_text("{")
    for extra, message in ((["--env", "Nope-v0"], "--env Nope-v0.*unknown env id"),
                           (["--env", "CartPole-v1", "--steps", "8"], "less than one update"),
                           (["--env", "CartPole-v1", "--config", str(tmp_path / "none.json")], "cannot read it"),
                           (["--env", "CartPole-v1", "--config", str(tmp_path / "broken.json")], "not valid JSON"),
                           (["--env", "CartPole-v1", "--config", str(tmp_path / "list.json")], "JSON object")):
        with pytest.raises(SystemExit, match=message):
            cli.main(["train", "dummy", *extra, "--out", str(tmp_path / "e")])
    assert not (tmp_path / "e" / "run.json").exists()
    with pytest.raises(SystemExit, match="cannot train on CartPole-v1"):  # the recipe's own check, as a message
        cli.main(["train", "vpg", "--env", "CartPole-v1", "--set", "baseline_network=cnn",
                  "--out", str(tmp_path / "e")])
    with pytest.raises(SystemExit, match="run file.*cannot read it"):
        cli.main(["eval", str(tmp_path / "e")])


def test_resume_refuses_flags_that_would_redefine_the_run(tmp_path):
    out = tmp_path / "run"
    assert cli.main(["train", "dummy", "--env", "CartPole-v1", "--steps", "64", "--out", str(out)]) == 0
    for extra in (["--steps", "128"], ["--seeds", "2"], ["--set", "learning_rate=0.5"], ["--env", "Acrobot-v1"],
                  ["--backend", "jax"], ["--seed", "3"]):
        with pytest.raises(SystemExit, match=f"drop {extra[0]}"):
            cli.main(["train", "--resume", str(out), *extra])
    assert cli.main(["train", "--resume", str(out), "--chunk", "2"]) == 0


def test_summary_of_a_run_without_finished_episodes_is_strict_json(tmp_path):
    out = tmp_path / "run"
    assert cli.main(["train", "random", "--env", "Pendulum-v1", "--steps", "1024", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert summary["final_return"] is None and summary["final_return_per_seed"] == [None]


def test_resume_without_a_checkpoint_redoes_the_run_without_duplicate_rows(tmp_path, monkeypatch):
    """A run killed before its first checkpoint restarts at update 0; its metrics rows so far go."""
    out = tmp_path / "run"
    args = ["train", "dummy", "--env", "CartPole-v1", "--steps", "320", "--chunk", "2", "--checkpoint-every", "100"]
    real_save = checkpoint.save

    def dying_save(*a, **k):
        raise SystemExit("killed before the first checkpoint was written")

    monkeypatch.setattr(cli.checkpoint, "save", dying_save)
    with pytest.raises(SystemExit):
        cli.main(args + ["--out", str(out)])
    monkeypatch.setattr(cli.checkpoint, "save", real_save)
    assert len(list(csv.DictReader((out / "metrics.csv").open()))) == 20  # every update ran, none saved
    assert cli.main(["train", "--resume", str(out)]) == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["update"]) for r in rows] == list(range(20))


def test_runs_started_in_the_same_second_get_a_directory_each(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli.time, "strftime", lambda fmt: "20261203-120000")
    for _ in range(2):
        assert cli.main(["train", "dummy", "--env", "CartPole-v1", "--steps", "50"]) == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["dummy-CartPole-v1-20261203-120000",
                                                                      "dummy-CartPole-v1-20261203-120000-2"]
    assert "training 48 env steps per seed, 3 whole updates of 16 (--steps 50" in capsys.readouterr().err


def test_default_run_directory_names_the_agent_of_a_tensorforce_spec(tmp_path, monkeypatch):
    spec = {"type": "vpg_agent", "batch_size": 16}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "--config", "spec.json", "--env", "MinimalTest-v0", "--steps", "32"]) == 0
    assert [p.name.split("-")[0] for p in (tmp_path / "runs").iterdir()] == ["vpg"]


def test_null_switches_an_optional_field_off(tmp_path):
    from agents.vpg import VPGConfig

    config = cli.build_config(VPGConfig, {"baseline_mode": "null"})
    assert config.baseline_mode is None


def test_config_takes_a_tensorforce_agent_spec(tmp_path):
    spec = {"type": "vpg_agent", "batch_size": 16, "discount": 0.9,
            "optimizer": {"type": "clipped_step", "optimizer": {"type": "adam", "learning_rate": 0.01},
                          "clipping_value": 0.1},
            "network": [{"type": "dense", "size": 16, "activation": "relu"}]}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    out = tmp_path / "run"
    assert cli.main(["train", "--config", str(tmp_path / "spec.json"), "--env", "MinimalTest-v0",
                     "--steps", "160", "--out", str(out)]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["agent"] == "vpg"
    config = run["config"]
    assert (config["num_envs"], config["num_steps"], config["gamma"]) == (1, 16, 0.9)
    assert (config["hidden_sizes"], config["activation"]) == ([16], "relu")
    assert config["optimizer"] == spec["optimizer"]
    assert cli.main(["train", "--resume", str(out)]) == 0  # the spec survives run.json
    bad = dict(spec, optimizer={"type": "adamm"})
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(SystemExit, match="adamm"):
        cli.main(["train", "--config", str(tmp_path / "bad.json"), "--env", "MinimalTest-v0", "--out",
                  str(tmp_path / "bad")])
    with pytest.raises(SystemExit, match="vpg spec"):
        cli.main(["train", "ppo", "--config", str(tmp_path / "spec.json"), "--env", "MinimalTest-v0"])
