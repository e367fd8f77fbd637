"""`sweepbench export tensorboard`: what TensorBoard reads back is what the run records hold."""

import os
import sys

import pandas as pd
import pytest

from sweepbench import cli

pytest.importorskip("tensorboard")


def results(tmp_path):
    """runs.csv of two runs of one study (axes optimizer, lr) with their metrics.csv and steps.csv."""
    rows = []
    for i, (opt, lr) in enumerate((("sgd", 0.1), ("adam", 0.001))):
        run = f"grid/all/opt~{opt}/lr~{lr}/seed~0"
        os.makedirs(tmp_path / "runs" / run)
        pd.DataFrame({"step": [0, 10, 20], "epoch": [0, 1, 2], "samples": [0, 320, 640], "wall_s": [0.0, 0.5, 1.0],
                      "lr": [lr] * 3, "train_loss": [2.3, 1.0 + i, 0.5 + i], "val_accuracy": [0.1, 0.6, 0.8 - i / 10],
                      "test_loss": [float("nan")] * 3}).to_csv(tmp_path / "runs" / run / "metrics.csv", index=False)
        pd.DataFrame({"step": range(1, 21), "loss": [2.0 - s / 20 for s in range(20)], "lr": [lr] * 20,
                      "batch_size": [32] * 20}).to_csv(tmp_path / "runs" / run / "steps.csv", index=False)
        rows.append({"study": "grid", "cell": run.rsplit("/", 1)[0], "run": run, "seed": 0, "axis_optimizer": opt,
                     "axis_lr": lr, "final_train_loss": 0.5 + i, "final_val_accuracy": 0.8 - i / 10,
                     "steps_to_target": float("nan")})
    os.makedirs(tmp_path / "tables")
    pd.DataFrame(rows).to_csv(tmp_path / "tables" / "runs.csv", index=False)
    return str(tmp_path / "tables"), str(tmp_path / "runs")


def read_back(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(folder)
    acc.Reload()
    scalars = {tag: [(e.step, round(e.value, 6), e.wall_time) for e in acc.Scalars(tag)]
               for tag in acc.Tags()["scalars"]}
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hp = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    return scalars, {k: v.string_value or v.number_value for k, v in hp.items()}


def test_every_value_of_the_records_reads_back_in_tensorboard(tmp_path, capsys):
    tables, runs = results(tmp_path)
    out = str(tmp_path / "tb")
    assert cli.main(["export", "tensorboard", "--tables", tables, "--runs-dir", runs, "--out", out]) == 0
    # per run: 5 finite metrics.csv columns x 3 evaluations + 3 steps.csv columns x 20 steps
    assert capsys.readouterr().out.startswith(f"wrote 2 runs (150 values) to {out}/")
    scalars, hp = read_back(os.path.join(out, "grid/all/opt~adam/lr~0.001/seed~0"))
    assert scalars["eval/val_accuracy"] == [(0, 0.1, 0.0), (10, 0.6, 0.5), (20, 0.7, 1.0)]   # at its step, its time
    assert scalars["eval/train_loss"][-1][:2] == (20, 1.5) and "eval/test_loss" not in scalars   # NaN: not written
    assert [s for s, _, _ in scalars["step/loss"]] == list(range(1, 21)) and scalars["step/batch_size"][0][1] == 32
    assert scalars["final/final_val_accuracy"][0][:2] == (20, 0.7) and "final/steps_to_target" not in scalars
    assert hp == {"study": "grid", "seed": 0.0, "optimizer": "adam", "lr": 0.001}


def test_a_folder_of_someone_elses_files_is_refused_and_the_export_replaces_its_own(tmp_path, capsys):
    tables, runs = results(tmp_path)
    out = tmp_path / "tb"
    assert cli.main(["export", "tensorboard", "--tables", tables, "--runs-dir", runs, "--out", str(out)]) == 0
    assert cli.main(["export", "tensorboard", "--tables", tables, "--runs-dir", runs, "--out", str(out)]) == 0
    assert len(list(out.rglob("events.out.tfevents.*"))) == 2                     # replaced, not added to
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert cli.main(["export", "tensorboard", "--tables", tables, "--runs-dir", runs, "--out", str(out)]) == 2
    assert "bad tensorboard folder" in capsys.readouterr().err and (out / "notes.txt").read_text() == "mine"


def test_without_tensorboard_the_export_says_what_to_install(tmp_path, capsys, monkeypatch):
    tables, runs = results(tmp_path)
    monkeypatch.setitem(sys.modules, "tensorboard.compat.proto", None)        # as if not installed
    assert cli.main(["export", "tensorboard", "--tables", tables, "--runs-dir", runs, "--out",
                     str(tmp_path / "tb")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs the tensorboard package; allowed: install it" in err
    assert not (tmp_path / "tb").exists()


def test_a_users_own_event_files_are_not_taken_for_the_exports(tmp_path, capsys):
    """`export tensorboard --out my_tb` deleted my_tb/exp1/events.out.tfevents.1700000000.myhost: files
    were recognised by their name's prefix. Only the files the export's WRITTEN list names are its own."""
    tables, runs = results(tmp_path)
    out = tmp_path / "my_tb"
    os.makedirs(out / "exp1")
    (out / "exp1" / "events.out.tfevents.1700000000.myhost").write_bytes(b"my events")
    assert cli.main(["export", "tensorboard", "--tables", tables, "--runs-dir", runs, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bad tensorboard folder" in err and "exp1/events.out.tfevents.1700000000.myhost" in err
    assert (out / "exp1" / "events.out.tfevents.1700000000.myhost").read_bytes() == b"my events"
    mine = tmp_path / "tb"
    assert cli.main(["export", "tensorboard", "--tables", tables, "--runs-dir", runs, "--out", str(mine)]) == 0
    (next(mine.rglob("events.out.tfevents.*"))).write_bytes(b"edited")             # changed since: not its own
    assert cli.main(["export", "tensorboard", "--tables", tables, "--runs-dir", runs, "--out", str(mine)]) == 2
