"""The run record both ways: written atomically without touching anything that is not a record,
and loaded only when complete and of this schema."""

import json
import os

import pytest
from conftest import run_cli

from sweepbench import SweepbenchError, record
from sweepbench.spec import resolve
from sweepbench.train import engine

TINY = ["--workload", "linreg", "--epochs", "2", "--quiet"]


@pytest.fixture(scope="module")
def a_record(tmp_path_factory):
    out = tmp_path_factory.mktemp("rec") / "run"
    engine.train(resolve({"workload": "digits_softmax", "epochs": 1, "device": "cpu"}), str(out), quiet=True)
    return out


def test_load_record_gives_a_typed_record(a_record):
    rec = record.load_record(str(a_record))
    assert rec.status in record.STATUSES and rec.spec["workload"] == "digits_softmax"
    assert rec.final["step"] > 0 and set(record.METRICS) <= set(rec.best)
    assert rec.speed["batched_runs"] == 1 and rec.path == str(a_record)
    import pandas as pd

    assert rec.final["epoch_loss"] == pd.read_csv(rec.metrics_path())["epoch_loss"].iloc[-1]   # the last epoch's mean


@pytest.mark.parametrize("edit, message", [
    (lambda d: {**d, "schema_version": 1}, "run.json schema_version 1, this sweepbench reads 3"),
    (lambda d: {k: v for k, v in d.items() if k != "to_target"}, "run.json lacks to_target.metric"),
    (lambda d: {**d, "final": {k: v for k, v in d["final"].items() if k != "val_loss"}},
     "run.json lacks final.val_loss"),
    (lambda d: {**d, "status": "finished"}, "run.json status 'finished'; allowed: completed"),
    (lambda d: {**d, "final": {**d["final"], "val_accuracy": 2.5}},
     r"run.json final.val_accuracy 2.5: allowed: an accuracy in \[0, 1\], or null"),
    (lambda d: {**d, "final": {**d["final"], "train_loss": "n/a"}},
     "run.json final.train_loss 'n/a': allowed: a number"),
    (lambda d: {**d, "timing": {**d["timing"], "train_s": -1}},
     "run.json timing.train_s -1: allowed: a finite number >= 0"),
    (lambda d: {**d, "timing": {**d["timing"], "train_s": float("inf")}},                 # Infinity in run.json
     "run.json timing.train_s inf: allowed: a finite number >= 0"),
    (lambda d: {**d, "workload": {**d["workload"], "n_train": 0}},                         # crashed aggregate
     "run.json workload.n_train 0: allowed: an integer >= 1"),
    (lambda d: {**d, "final": {**d["final"], "val_loss": -0.5}},
     "run.json final.val_loss -0.5: allowed: a number >= 0"),
    (lambda d: {**d, "best": {**d["best"], "train_loss": "inf"}},
     r"run.json best.train_loss 'inf': allowed: a finite loss >= 0, or null \(a run that did not diverge\)"),
    (lambda d: {**d, "divergence": {**d["divergence"], "diverged": True}},
     "run.json divergence.diverged True with status 'completed': allowed: true exactly when the status is diverged"),
    (lambda d: {**d, "divergence": {**d["divergence"], "diverged": "no"}},
     "run.json divergence.diverged 'no': allowed: true or false"),
    (lambda d: {**d, "final": {**d["final"], "val_accuracy": None}},                     # B13
     r"run.json final.val_accuracy None: allowed: an accuracy in \[0, 1\] \(a multiclass run that did not diverge "
     r"has one\)"),
    (lambda d: {**d, "best": {**d["best"], "test_accuracy": float("nan")}},
     r"run.json best.test_accuracy nan: allowed: an accuracy in \[0, 1\]"),
])
def test_a_record_of_another_schema_or_missing_a_key_is_refused_naming_the_folder(a_record, tmp_path, edit, message):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(a_record, bad)
    data = json.loads((bad / "run.json").read_text())
    (bad / "run.json").write_text(json.dumps(edit(data)))
    with pytest.raises(record.BrokenRecord, match=f"broken run record {bad}: {message}"):
        record.load_record(str(bad))


@pytest.mark.parametrize("column, value, message", [                                    # B14
    ("val_loss", "n/a", "val_loss 'n/a': allowed: a number >= 0, \"inf\" \\(diverged\\) or null"),
    ("train_loss", "-1", "train_loss '-1': allowed: a number >= 0, \"inf\" \\(diverged\\) or null"),
    ("train_accuracy", "2.5", r"train_accuracy '2.5': allowed: an accuracy in \[0, 1\], or null"),
    ("wall_s", "-3", "wall_s '-3': allowed: a finite number >= 0, or null"),
])
def test_a_metrics_csv_value_out_of_its_range_is_refused_naming_the_line(a_record, tmp_path, column, value, message):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(a_record, bad)
    lines = (bad / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[2].split(",")
    cells[header.index(column)] = value
    lines[2] = ",".join(cells)
    (bad / "metrics.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(record.BrokenRecord, match=f"^broken run record {bad}: metrics.csv line 3 {message}$"):
        record.load_record(str(bad))


def test_a_diverged_or_regression_record_may_have_no_accuracy(a_record, tmp_path):
    import shutil

    for name, edit in (("diverged", {"status": "diverged", "divergence": {"diverged": True}}),
                       ("regression", {"workload": {"task": "regression"}})):
        run = tmp_path / name
        shutil.copytree(a_record, run)
        data = json.loads((run / "run.json").read_text())
        data["workload"].update(edit.pop("workload", {}))
        data["divergence"].update(edit.pop("divergence", {}))
        data.update(edit, final={**data["final"], "val_accuracy": None})
        (run / "run.json").write_text(json.dumps(data))
        assert record.load_record(str(run)).final["val_accuracy"] is None
    planned = resolve({"workload": "digits_softmax", "epochs": 1, "device": "cpu"})        # its plan: multiclass
    with pytest.raises(record.BrokenRecord, match=r"val_accuracy None: allowed: an accuracy in \[0, 1\] \(a "
                                                  r"multiclass run that did not diverge has one\)"):
        record.load_planned_record(str(tmp_path / "regression"), planned)               # the task is the plan's
    data = json.loads((a_record / "run.json").read_text())
    shutil.copytree(a_record, tmp_path / "claims")
    data["workload"]["task"] = "binary"
    (tmp_path / "claims" / "run.json").write_text(json.dumps(data))
    with pytest.raises(record.BrokenRecord, match="not the planned run: workload.task 'binary' in the record, "
                                                  "'multiclass' planned"):
        record.load_planned_record(str(tmp_path / "claims"), planned)


@pytest.mark.slow
@pytest.mark.parametrize("out", [".", "..", "", "results"])
def test_train_never_replaces_a_folder_that_is_not_a_run_record(tmp_path, out):
    work = tmp_path / "work"
    (work / "results" / "runs").mkdir(parents=True)
    (work / "notes.txt").write_text("mine")
    (work / "results" / "keep.csv").write_text("a,b\n")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    proc = run_cli("train", *TINY, "--out", out, cwd=work)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "bad --out" in proc.stderr and "allowed: a new folder" in proc.stderr
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before           # nothing touched, nothing left


@pytest.mark.slow
def test_train_refuses_an_existing_file(tmp_path):
    (tmp_path / "somefile").write_text("precious")
    proc = run_cli("train", *TINY, "--out", "somefile", cwd=tmp_path)
    assert proc.returncode == 2 and "bad --out 'somefile': it is an existing file" in proc.stderr
    assert (tmp_path / "somefile").read_text() == "precious" and os.listdir(tmp_path) == ["somefile"]


@pytest.mark.slow
def test_train_replaces_an_earlier_record_of_its_own(tmp_path):
    assert run_cli("train", *TINY, "--out", "r", cwd=tmp_path).returncode == 0
    first = json.loads((tmp_path / "r" / "run.json").read_text())["provenance"]["started_utc"]
    proc = run_cli("train", *TINY, "--epochs", "3", "--out", "r", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rec = record.load_record(str(tmp_path / "r"))
    assert rec.spec["epochs"] == 3 and os.listdir(tmp_path) == ["r"]
    assert first  # the earlier record existed and was replaced by the new one


def test_a_failed_write_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(record, "csv_text", full_disk)
    with pytest.raises(SweepbenchError):
        engine.train(resolve({"workload": "linreg", "epochs": 1}), str(tmp_path / "r"), quiet=True)
    assert os.listdir(tmp_path) == []


def test_written_files_and_folders_get_the_usual_modes_not_private_ones(tmp_path, monkeypatch):
    """tempfile makes 0600 files and 0700 folders; a report or record must be readable as any
    file the user writes (umask), e.g. by a web server showing report/index.html."""
    from sweepbench import atomic

    old = os.umask(0o022)
    try:
        monkeypatch.setattr(atomic, "UMASK", 0o022)
        atomic.write_file(str(tmp_path / "index.html"), "x")
        folder = atomic.TempFolder(str(tmp_path / "run"))
        folder.commit()
    finally:
        os.umask(old)
    assert oct(os.stat(tmp_path / "index.html").st_mode & 0o777) == "0o644"
    assert oct(os.stat(tmp_path / "run").st_mode & 0o777) == "0o755"


def test_a_run_record_folder_is_recognised_by_its_written_list_not_by_file_names(tmp_path):
    """`train --out` replaced a user's folder holding a file named run.json: names were all it checked."""
    from sweepbench.atomic import WRITTEN, written

    spec = resolve({"workload": "linreg", "epochs": 1})
    run = tmp_path / "r"
    engine.train(spec, str(run), quiet=True)
    assert set(written(str(run))) == set(record.RECORD_FILES)
    (run / "metrics.csv").write_text("damaged\n")                       # its own, damaged: re-trained
    engine.train(spec, str(run), quiet=True)
    assert sorted(os.listdir(run)) == sorted([*record.RECORD_FILES, WRITTEN])
    mine = tmp_path / "mine"
    os.makedirs(mine)
    (mine / "run.json").write_text('{"my": "notes"}')
    for folder in (mine, run):
        if folder == run:
            (run / "notes.txt").write_text("mine")                       # beside a record: not listed
        with pytest.raises(SweepbenchError, match=r"bad --out '.*': it holds other files \((run.json|notes.txt)\)"):
            engine.train(spec, str(folder), quiet=True)
    assert (mine / "run.json").read_text() == '{"my": "notes"}' and (run / "notes.txt").read_text() == "mine"
    os.remove(run / "notes.txt")
    os.remove(run / WRITTEN)                                             # a record of an older sweepbench:
    engine.train(spec, str(run), quiet=True)                            # recognised by its shape
    for name in ("metrics.csv", "steps.csv"):                           # a lone run.json, no other file: no record
        os.remove(run / name)
    os.remove(run / WRITTEN)
    with pytest.raises(SweepbenchError, match=r"holds other files \(run.json\)"):
        engine.train(spec, str(run), quiet=True)


def test_spec_mismatch_names_the_first_differing_option_and_skips_what_a_job_sets_itself():
    planned = {"workload": "linreg", "lr": 0.1, "epochs": 5, "threads": 0, "batch_size": 8, "batch_cycle": [8]}
    assert record.spec_mismatch(dict(planned, threads=2), planned) is None            # train-pack's --threads
    assert record.spec_mismatch(dict(planned, epochs=3), planned) == "epochs 3 in the record, 5 planned"
    cycled = dict(planned, batch_size=16, batch_cycle=[16, 32])                          # batch_cycle_from
    assert record.spec_mismatch(cycled, planned) == "batch_cycle [16, 32] in the record, [8] planned"
    assert record.spec_mismatch(cycled, planned, derived=("batch_size", "batch_cycle")) is None
    older = {k: v for k, v in planned.items() if k != "epochs"}
    assert record.spec_mismatch(older, planned) == "epochs not in the record (made by an older sweepbench), 5 planned"
    assert record.spec_mismatch(planned, older) == "epochs 5 in the record is no option of this sweepbench"



@pytest.mark.parametrize("cut, message", [(lambda t: t[:-1], "does not end with a newline"),
                                          (lambda t: t.rstrip("\n").rsplit(",", 3)[0] + "\n", "last row has")])
def test_a_csv_cut_mid_row_is_refused(a_record, tmp_path, cut, message):
    """A metrics.csv cut mid-row (a full disk, a copy interrupted) is broken, not read as far as it goes."""
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(a_record, bad)
    (bad / "metrics.csv").write_text(cut((bad / "metrics.csv").read_text()))
    with pytest.raises(record.BrokenRecord, match=f"broken run record {bad}: metrics.csv.*{message}"):
        record.load_record(str(bad))


def test_an_output_folder_with_a_link_or_an_empty_folder_inside_is_foreign(tmp_path):
    from sweepbench.atomic import foreign_files

    folder = tmp_path / "out"
    os.makedirs(folder / "empty")
    (folder / "run.json").write_text("{}")
    os.symlink(tmp_path, folder / "home")
    owned = lambda rel: rel in record.RECORD_FILES  # noqa: E731
    assert foreign_files(str(folder), owned) == ["empty/", "home/"]
    assert foreign_files(str(tmp_path / "none"), owned) == []


def test_writing_under_a_file_says_which_file_stands_in_the_way(tmp_path):
    """`aggregate --out FILE/x`, `check --out FILE/x`: the OS said "File exists" or a traceback came out."""
    from sweepbench import SweepbenchError
    from sweepbench.atomic import make_folder, write_file

    (tmp_path / "afile").write_text("mine")
    with pytest.raises(SweepbenchError, match=rf"cannot write .*afile/t/runs.csv: {tmp_path}/afile is a file, not "
                                              r"a folder; allowed: a path in a folder"):
        write_file(str(tmp_path / "afile" / "t" / "runs.csv"), "a\n")
    with pytest.raises(SweepbenchError, match=rf"cannot write .*afile/c: {tmp_path}/afile is a file, not a folder"):
        make_folder(str(tmp_path / "afile" / "c"))
    assert (tmp_path / "afile").read_text() == "mine"


def test_a_metrics_csv_row_with_a_field_more_is_refused_not_shifted(a_record, tmp_path):
    """One extra field in metrics.csv's first data row shifted every column of that row (only the last
    row's field count was checked): every row must have the header's field count."""
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(a_record, bad)
    lines = (bad / "metrics.csv").read_text().splitlines()
    n = len(lines[0].split(","))
    lines[1] = "0," + lines[1]
    (bad / "metrics.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(record.BrokenRecord, match=f"^broken run record {bad}: metrics.csv line 2 has {n + 1} fields, "
                                                  f"the header {n}$"):
        record.load_record(str(bad))


def test_a_metrics_csv_that_is_not_utf8_is_a_broken_record_not_a_crash(a_record, tmp_path):
    """A non-UTF-8 byte in metrics.csv crashed aggregate and status (UnicodeDecodeError)."""
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(a_record, bad)
    data = (bad / "metrics.csv").read_bytes()
    at = data.index(b"\n") + 3
    (bad / "metrics.csv").write_bytes(data[:at] + b"\xff" + data[at + 1:])
    with pytest.raises(record.BrokenRecord, match=f"^broken run record {bad}: metrics.csv is not UTF-8 text "
                                                  f"\\(byte {at}\\)$"):
        record.load_record(str(bad))


@pytest.mark.parametrize("column, value, message", [
    ("lr", "n/a", "lr 'n/a': allowed: a finite number >= 0, or null"),
    ("loss", "-2", "loss '-2': allowed: a number >= 0, \"inf\" \\(diverged\\) or null"),
])
def test_a_steps_csv_value_out_of_its_range_is_refused_naming_the_line(a_record, tmp_path, column, value, message):
    """`n/a` in a steps.csv value column passed aggregate, then the report crashed ("Axis limits cannot be
    NaN or Inf"): steps.csv's values are checked as metrics.csv's are."""
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(a_record, bad)
    lines = (bad / "steps.csv").read_text().splitlines()
    header, cells = lines[0].split(","), lines[2].split(",")
    cells[header.index(column)] = value
    lines[2] = ",".join(cells)
    (bad / "steps.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(record.BrokenRecord, match=f"^broken run record {bad}: steps.csv line 3 {message}$"):
        record.load_record(str(bad))
    record.load_record(str(a_record))                                   # a record as written passes
