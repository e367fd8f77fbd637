"""sweepbench status: counts per study from the records on disk, without touching Snakemake's state."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from conftest import minimal_record, run_cli, write_record_files

from sweepbench import SweepbenchError, record
from sweepbench.plan.planner import plan, write_plan
from sweepbench.provenance import code_version
from sweepbench.status import dry_run, format_status, status
from sweepbench.train.job import run_progress

CONFIG = {"studies": {"a": {"workload": "linreg", "grid": {"lr": [0.1, 0.2, 0.3]}, "seeds": [0, 1]},
                      "b": {"workload": "linreg", "grid": {"lr": [0.1]}, "seeds": [0, 1]}}}  # b reuses a's cell


PLAN = plan(CONFIG)
SPECS = {run["id"]: run["spec"] for cell in PLAN["cells"].values() for run in cell["runs"]}


def write_record(run_dir, status_="completed", code=None, **spec_changes):
    """A record of the run planned at run_dir, trained by this code (code: by another), with
    spec_changes: a record of another spec."""
    run_id = "/".join(run_dir.parts[-3:])
    rec = minimal_record(status=status_, spec={**SPECS[run_id], **spec_changes})
    rec["provenance"].update(code_version=code or code_version(), user_inputs=None)
    write_record_files(run_dir, rec)


@pytest.fixture
def results(tmp_path):
    res = tmp_path / "results"
    os.makedirs(res)
    write_plan(plan(CONFIG), str(res / "plan.json"))
    runs = res / "runs" / "a"
    write_record(runs / "lr~0.1" / "seed~0")
    write_record(runs / "lr~0.1" / "seed~1", "diverged")
    write_record(runs / "lr~0.2" / "seed~0")
    (runs / "lr~0.2" / "seed~0" / "steps.csv").unlink()                # broken: a file is gone
    os.makedirs(runs / "lr~0.2" / "seed~1")
    (runs / "lr~0.2" / "seed~1" / "run.json").write_text("{")           # broken: not JSON
    record.RecordWriter(str(runs / "lr~0.3" / "seed~0"))                # being written (a temporary folder)
    logs = res / "logs" / "train" / "a"
    os.makedirs(logs)
    (logs / "lr~0.3.log").write_text("run 1/2 started: x\n[linreg] step 0: train_loss 1\n")
    return tmp_path


@contextlib.contextmanager
def fake_process(folder, name, *args):
    """A real process whose command line is `python <folder>/bin/<name> ARGS`, working in folder (what
    status reads from /proc), until the block ends."""
    fake = folder / "bin" / name
    os.makedirs(fake.parent, exist_ok=True)
    fake.write_text("import pathlib, time\npathlib.Path('bin/ready').touch()\ntime.sleep(60)\n")
    (folder / "bin" / "ready").unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, str(fake), *args], cwd=str(folder))
    try:
        for _ in range(200):  # until it runs as itself (right after the fork, /proc shows pytest's command line)
            if (folder / "bin" / "ready").exists():
                break
            time.sleep(0.05)
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def snakemake_process(results):
    with fake_process(results, "snakemake") as proc:
        yield proc


def test_counts_per_study_while_snakemake_runs(results, snakemake_process):
    os.makedirs(results / ".snakemake" / "locks")
    (results / ".snakemake" / "locks" / "0.input.lock").write_text("")
    out = status(str(results / "results"), str(results))
    assert out["studies"]["a"] == {"planned": 6, "done": 1, "running": 1, "missing": 1, "diverged": 1, "broken": 2,
                                   "outdated": 0, "workload": "linreg"}
    assert out["studies"]["b"] == {"planned": 2, "done": 1, "running": 0, "missing": 0, "diverged": 1, "broken": 0,
                                   "outdated": 0, "workload": "linreg"}
    assert out["total"]["planned"] == 6 and out["total"]["done"] == 1          # b's runs are a's runs
    assert out["jobs"] == ["a/lr~0.3: run 1/2 started: x"]
    assert [r for r, _ in out["broken"]] == ["a/lr~0.2/seed~0", "a/lr~0.2/seed~1"]
    assert "steps.csv missing" in out["broken"][0][1] and "metrics.csv, steps.csv missing" in out["broken"][1][1]
    table = format_status(out)
    assert table.splitlines()[1].split() == ["a", "6", "1", "1", "1", "1", "2", "0", "linreg"]
    assert "snakemake: running" in table and "in progress: a/lr~0.3: run 1/2" in table


def test_a_half_written_run_without_a_running_snakemake_is_missing(results):
    out = status(str(results / "results"), str(results))
    assert out["studies"]["a"]["running"] == 0 and out["studies"]["a"]["missing"] == 2
    assert not (results / ".snakemake").exists()                          # Snakemake's state is never touched


def test_a_record_of_other_training_code_is_outdated_not_done(results):
    """After an edit of the training code the workflow trains every run again (the code version is a
    param of each job, and the job's resume asks train.job.outdated): status says so, not "done"."""
    run = results / "results" / "runs" / "a" / "lr~0.1" / "seed~0"
    write_record(run, code="an older code version")
    out = status(str(results / "results"), str(results))
    assert out["studies"]["a"]["done"] == 0 and out["studies"]["a"]["outdated"] == 1
    assert out["outdated"] == [("a/lr~0.1/seed~0", "trained by other training code (provenance.code_version)")]
    assert "outdated: 1 complete runs trained by other training code" in format_status(out)
    from sweepbench.train.job import is_done

    assert not is_done(str(run), SPECS["a/lr~0.1/seed~0"])  # the same rule as the job's resume
    write_record(run)
    assert is_done(str(run), SPECS["a/lr~0.1/seed~0"])
    assert status(str(results / "results"), str(results))["studies"]["a"]["done"] == 1


def test_cli_status_and_its_errors(results):
    proc = run_cli("status", "--results-dir", str(results / "results"), "--json", cwd=str(results))
    assert proc.returncode == 0 and json.loads(proc.stdout)["total"]["broken"] == 2
    proc = run_cli("status", "--results-dir", str(results / "nowhere"), cwd=str(results))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no plan at" in proc.stderr
    with pytest.raises(SweepbenchError, match="not valid JSON"):
        (results / "results" / "plan.json").write_text("{")
        status(str(results / "results"))


def test_progress_labels():
    assert run_progress(37, 37, 120) == "run 37/120"
    assert run_progress(4, 6, 96) == "runs 4-6/96"


def test_a_record_of_another_spec_is_never_counted_done(results):
    """A record trained under an older config (epochs changed since), or copied from another cell:
    the workflow would re-train it, so status calls it broken and says why, instead of done."""
    runs = results / "results" / "runs" / "a"
    shutil.rmtree(runs / "lr~0.1" / "seed~0")
    write_record(runs / "lr~0.1" / "seed~0", epochs=3)
    shutil.copytree(runs / "lr~0.1" / "seed~1", runs / "lr~0.3" / "seed~1")  # lr 0.1's record in lr 0.3's place
    out = status(str(results / "results"), str(results))
    assert out["studies"]["a"]["done"] == 0 and out["studies"]["a"]["broken"] == 4
    why = dict(out["broken"])
    assert why["a/lr~0.1/seed~0"] == "not the planned run: epochs 3 in the record, 1000 planned"
    assert why["a/lr~0.3/seed~1"] == "not the planned run: lr 0.1 in the record, 0.3 planned"


def test_a_lock_left_by_a_killed_snakemake_is_told_from_a_running_one(results, snakemake_process):
    """After kill -9 Snakemake leaves its lock: status said "running (its lock is held)" with nothing
    running; it now says no Snakemake runs here and how to clear the lock if none runs anywhere."""
    os.makedirs(results / ".snakemake" / "locks")
    (results / ".snakemake" / "locks" / "0.input.lock").write_text("")
    assert status(str(results / "results"), str(results))["workflow"] == "running"
    snakemake_process.kill()
    snakemake_process.wait()
    out = status(str(results / "results"), str(results))
    assert out["workflow"] == "lock, none here" and out["studies"]["a"]["running"] == 1  # maybe on another host
    assert "no Snakemake runs in this folder on this machine; if none runs anywhere (a killed run), clear it: " \
           "snakemake --unlock" in format_status(out)


def test_training_jobs_a_killed_snakemake_left_running_are_named_and_their_runs_count_as_running(results):
    """kill -9 of a local Snakemake leaves its train-pack jobs running (and the lock): an --unlock and the
    same command would then train their runs a second time. Status names them, also after an --unlock."""
    with fake_process(results, "sweepbench", "train-pack", "--out", "/elsewhere/runs"):   # another folder's job
        assert status(str(results / "results"), str(results))["orphan_jobs"] == []
    with fake_process(results, "sweepbench", "train-pack", "--runs-file", "x.json", "--out", "results/runs/a") as proc:
        out = status(str(results / "results"), str(results))                   # no lock: it was --unlock-ed
        assert out["workflow"] == "not running" and out["orphan_jobs"] == [proc.pid]
        assert out["studies"]["a"]["running"] == 1                            # its half-written run
        assert f"training jobs still run in this folder without a Snakemake (pids {proc.pid}): " \
               "a killed Snakemake leaves them running; let them finish or kill them before snakemake --unlock" \
            in format_status(out)
    out = status(str(results / "results"), str(results))
    assert out["orphan_jobs"] == [] and out["studies"]["a"]["running"] == 0
    assert "training jobs" not in format_status(out)


def test_a_snakemake_inside_a_cluster_job_is_not_the_workflow(results):
    """The SLURM plugin's job step runs `python -m snakemake ... --nolock` in the workflow's folder; on a
    one-node cluster (the login node is the compute node) status took it for the workflow after the
    workflow itself was killed: "running" instead of a lock left by a killed run."""
    os.makedirs(results / ".snakemake" / "locks")
    (results / ".snakemake" / "locks" / "0.input.lock").write_text("")
    with fake_process(results, "snakemake", "--target-jobs", "train:job=a", "--nolock"):
        assert status(str(results / "results"), str(results))["workflow"] == "lock, none here"


@pytest.mark.parametrize("args, dry", [(["-n", "--cores", "1"], True), (["-np"], True), (["--dry-run"], True),
                                       (["-j", "2", "-n"], True), (["--cores", "2", "--config", "smoke=true"], False),
                                       (["--forceall"], False), (["--no-such-option"], False)])
def test_the_workflow_tells_a_dry_run_from_its_command_line(args, dry):
    """The workflow removes stale manifests only in a real run (common.smk): `-n` in any spelling is a dry run."""
    assert dry_run(args) is dry
