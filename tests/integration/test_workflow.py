"""The real Snakefile on a tiny config, end to end, in a scratch copy of the repository layout."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow  # runs the real Snakefile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(ROOT, "tests", "integration", "tiny_config.yaml")
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# the rules call `sweepbench`: the interpreter's bin folder must be on PATH
ENV = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}


def workdir(tmp_path, config=None):
    """A scratch folder with a clone's root Snakefile (it includes the package's workflow), profiles, its
    results/.gitkeep (a clone's results folder before any run) and a config (default: the tiny one)."""
    os.makedirs(tmp_path / "results")
    shutil.copy(os.path.join(ROOT, "results", ".gitkeep"), tmp_path / "results" / ".gitkeep")
    for name in ("Snakefile", "profiles"):
        src = os.path.join(ROOT, name)
        if os.path.isdir(src):
            shutil.copytree(src, tmp_path / name)
        else:
            shutil.copy(src, tmp_path / name)
    os.makedirs(tmp_path / "config")
    if config is None:
        shutil.copy(TINY, tmp_path / "config" / "config.yaml")
    else:
        (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def snakemake(wd, *args, timeout=600):
    return subprocess.run(SNAKEMAKE + ["--cores", "2", *args], cwd=wd, capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def test_tiny_config_end_to_end_then_rerun_does_nothing(tmp_path):
    wd = workdir(tmp_path)
    proc = snakemake(wd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = pd.read_csv(wd / "results" / "tables" / "runs.csv")
    assert len(runs) == 3 + 8 + 2                     # the reused cell appears in both studies
    assert set(runs["study"]) == {"linreg_gd_sgd", "digits_opt_lr", "digits_reuse"}
    assert runs["status"].isin(["completed", "converged", "target_reached", "diverged"]).all()
    reuse = runs[runs["study"] == "digits_reuse"]
    assert reuse["cell"].str.startswith("digits_opt_lr/").all()      # trained once, not twice
    assert (wd / "results" / "runs" / "digits_opt_lr" / "opt~adam" / "lr~0.1" / "seed~1" / "run.json").exists()
    placement = lambda path: json.load(open(wd / "results" / "runs" / path / "run.json"))["placement"]
    assert placement("linreg_gd_sgd/bs~1/seed~0") == {"scheduler": "train-pack", "exclusive": True,
                                                         "gpu_slots": 0, "threads": 2}   # all cores: alone
    assert placement("digits_opt_lr/opt~sgd/lr~0.1/seed~0")["exclusive"] is False
    speed = json.load(open(wd / "results" / "runs" / "digits_opt_lr/opt~sgd/lr~0.1/seed~1" / "run.json"))["speed"]
    assert (speed["batched_runs"], speed["stack"]) == (4, "digits_opt_lr/opt~sgd#0")   # stack: auto (grid)
    bench = pd.read_csv(wd / "results" / "benchmarks" / "train" / "digits_opt_lr" / "opt~sgd.tsv", sep="\t")
    assert bench["s"].iloc[0] > 0                                   # each job's wall time, for bench_pipeline
    for name in ("cells", "lr_sensitivity", "best_lr", "scaling", "throughput", "bmin_bmax", "optimizers"):
        assert (wd / "results" / "tables" / f"{name}.csv").exists()
    page = (wd / "report" / "index.html").read_text()
    assert 'id="study-digits_opt_lr"' in page and (wd / "report" / "report.pdf").stat().st_size > 10000

    again = snakemake(wd, "--dry-run")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr

    native = snakemake(wd, "--report", "report.zip")      # Snakemake's own report, with sweepbench's results
    assert native.returncode == 0, native.stderr[-2000:]
    with zipfile.ZipFile(wd / "report.zip") as archive:
        names = archive.namelist()
        front = archive.read("report/report.html").decode()
    assert {os.path.basename(n) for n in names} >= {"index.html", "report.pdf", "runs.csv", "cells.csv"}
    assert any(n.endswith("/linreg_gd_sgd/04-linear-neuron-w-b-paths-over-the-mse-surface.svg") for n in names)
    assert "sweepbench report (HTML)" in front and "A table written by" in front and "A figure of sweepbench" in front


def trained_by(wd):
    dry = snakemake(wd, "--dry-run")
    assert dry.returncode == 0, dry.stderr[-2000:]
    return sorted(line.split()[-1] for line in dry.stdout.splitlines()
                  if line.startswith("    output: results/manifests/"))


def test_config_change_retrains_only_the_affected_cells(tmp_path):
    config = {"studies": {"a": {"workload": "linreg", "fixed": {"epochs": 2}, "grid": {"lr": [0.001, 0.002]}},
                          "b": {"workload": "logreg2d", "fixed": {"epochs": 1}}}}
    wd = workdir(tmp_path, config)
    assert snakemake(wd).returncode == 0
    assert trained_by(wd) == []
    config["studies"]["a"]["grid"]["lr"] = [0.001, 0.003]          # a new cell
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    assert trained_by(wd) == ["results/manifests/a/lr~0.003.json"]
    config["studies"]["b"]["fixed"]["epochs"] = 2                    # same id, changed spec
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    assert trained_by(wd) == ["results/manifests/a/lr~0.003.json", "results/manifests/b/all.json"]


@pytest.mark.parametrize("study, message", [
    ({"workload": "linreg", "grid": {"optimizer": ["sgdd"]}}, "study 'bad', cell opt~sgdd: unknown optimizer 'sgdd'"),
    ({"workload": "linreg", "grid": {"lr": [-0.1]}}, "study 'bad', cell lr~-0.1: bad lr -0.1"),
    ({"workload": "linreg", "grid": {}}, "study 'bad', key grid"),
    ({"workload": "linreg", "grid": {"batch_size": [500]}}, "study 'bad', key batch_size: 500 is larger"),
    ({"workload": "linreg", "fixed": {"learning_rate": 0.1}}, "study 'bad', key fixed.learning_rate: unknown"),
    ({"workload": "linreg", "colour": "red"}, "study 'bad', key (study): Additional properties"),
])
def test_config_errors_stop_before_any_job(tmp_path, study, message):
    wd = workdir(tmp_path, {"studies": {"bad": study}})
    proc = snakemake(wd)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr[-2000:]
    assert os.listdir(wd / "results") == [".gitkeep"]                  # nothing written: the clone's folder as it was


def kill_when_logged(wd, log, text: str, timeout: float, after: float = 0.0) -> None:
    """Start the workflow on one core, wait until `log` shows `text` (or `timeout` seconds pass),
    wait `after` seconds more, then kill Snakemake and its jobs with SIGKILL."""
    proc = subprocess.Popen(SNAKEMAKE + ["--cores", "1"], cwd=wd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, env=ENV)
    deadline = time.time() + timeout
    while time.time() < deadline and not (log.exists() and text in log.read_text()):
        time.sleep(0.2)
    time.sleep(after)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_killed_run_leaves_no_complete_looking_record_and_is_redone(tmp_path):
    config = {"studies": {"slow": {"workload": "linreg", "fixed": {"epochs": 400, "lr": 0.001},
                                   "grid": {"batch_size": [1]}}}}
    wd = workdir(tmp_path, config)
    log = wd / "results" / "logs" / "train" / "slow" / "bs~1.log"
    kill_when_logged(wd, log, "step 0", timeout=120, after=1.0)   # no chance to clean up
    assert log.exists(), "the training job never started"
    run_dir = wd / "results" / "runs" / "slow" / "bs~1" / "seed~0"
    assert not (run_dir / "run.json").exists()

    assert snakemake(wd, "--unlock").returncode == 0     # a hard kill leaves Snakemake's lock behind
    resumed = snakemake(wd)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (run_dir / "run.json").exists()
    assert len(pd.read_csv(run_dir / "metrics.csv")) == 401


def test_snakemake_lint_passes(tmp_path):
    wd = workdir(tmp_path)
    proc = snakemake(wd, "--lint")
    assert proc.returncode == 0 and "good condition" in proc.stdout + proc.stderr, proc.stdout[-3000:]


STUDY_FILES = sorted(os.listdir(os.path.join(ROOT, "config", "studies")))


@pytest.mark.parametrize("study_file", STUDY_FILES)
def test_every_seed_study_runs_end_to_end_in_smoke_mode(tmp_path, study_file):
    """Each study of config/studies/ on tiny generated IDX data (smoke=true): tables and a report
    section per study, through the real Snakefile and the real torchvision loading code."""
    wd = workdir(tmp_path)
    shutil.copytree(os.path.join(ROOT, "config", "studies"), wd / "config" / "studies")
    proc = snakemake(wd, "--configfile", f"config/studies/{study_file}", "--config", "smoke=true", timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = yaml.safe_load(open(os.path.join(ROOT, "config", "studies", study_file)))
    runs = pd.read_csv(wd / "results" / "tables" / "runs.csv")
    assert set(runs["study"]) == set(config["studies"])              # only this file's studies ran
    page = (wd / "report" / "index.html").read_text()
    for name in config["studies"]:
        assert f'id="study-{name}"' in page
    assert (wd / "report" / "report.pdf").exists()


def test_one_study_of_the_default_config_from_the_command_line(tmp_path):
    wd = workdir(tmp_path, yaml.safe_load(open(os.path.join(ROOT, "config", "config.yaml"))))
    dry = snakemake(wd, "--dry-run", "--config", "run=linreg_batch,throughput")
    assert dry.returncode == 0, dry.stderr[-2000:]
    jobs = {line.split()[-1] for line in dry.stdout.splitlines() if line.startswith("    output: results/manifests/")}
    assert jobs == {"results/manifests/linreg_batch/all.json", "results/manifests/throughput/all.json"}


def test_resume_after_a_kill_trains_only_the_missing_runs(tmp_path):
    """Issue 'done means done': a study is one job; a kill part-way keeps the finished records,
    the job has no manifest (not done), and the re-run trains only the missing runs."""
    config = {"studies": {"many": {"workload": "linreg", "fixed": {"epochs": 100, "lr": 0.001}, "pack_by": [],
                                   "grid": {"batch_size": [1, 2, 3, 4, 5, 6]}}}}
    wd = workdir(tmp_path, config)
    log = wd / "results" / "logs" / "train" / "many" / "all.log"
    kill_when_logged(wd, log, "run 3/6 started", timeout=300)   # runs 1 and 2 have their records
    assert "run 3/6 started" in log.read_text(), "the job never finished two runs"
    runs = wd / "results" / "runs" / "many" / "all"
    finished = {p.parent.parent.name: p.stat().st_mtime_ns for p in runs.glob("*/seed~0/run.json")}
    assert 2 <= len(finished) < 6
    assert not (wd / "results" / "manifests" / "many" / "all.json").exists()

    assert snakemake(wd, "--unlock").returncode == 0
    resumed = snakemake(wd)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert {p.parent.parent.name: p.stat().st_mtime_ns for p in runs.glob("*/seed~0/run.json")
            if p.parent.parent.name in finished} == finished          # kept, not re-trained
    assert len(list(runs.glob("*/seed~0/run.json"))) == 6
    assert f"{len(finished)} of 6 runs already have a complete record" in log.read_text()
    assert len(pd.read_csv(wd / "results" / "tables" / "runs.csv")) == 6


def test_a_repeated_study_name_stops_the_workflow(tmp_path):
    wd = workdir(tmp_path)
    (wd / "config" / "config.yaml").write_text("studies:\n  a: {workload: linreg}\n  a: {workload: logreg2d}\n")
    proc = snakemake(wd, "--dry-run")
    assert proc.returncode != 0 and "duplicate key 'a' (line 3)" in proc.stderr


def test_the_workflow_never_replaces_what_sweepbench_did_not_write(tmp_path):
    """Checked when Snakemake starts, before any job: a smoke run into a real sweep's results, and a
    report_dir whose figures/ holds a user's file (Snakemake clears that folder for the report job)."""
    from sweepbench.plan.planner import load_config, plan, write_plan

    wd = workdir(tmp_path)
    write_plan(plan(load_config(TINY)), str(wd / "results" / "plan.json"))
    os.makedirs(wd / "results" / "runs" / "linreg_gd_sgd")
    smoke = snakemake(wd, "-n", "--config", "smoke=true")
    assert smoke.returncode == 1 and "holds a real sweep's records" in smoke.stderr, smoke.stderr[-2000:]
    shutil.rmtree(wd / "results")
    mine = wd / "report" / "figures" / "notes.txt"
    os.makedirs(mine.parent)
    mine.write_text("mine")
    real = snakemake(wd, "-n")
    assert real.returncode == 1 and "bad report_dir's figures folder" in real.stderr and "notes.txt" in real.stderr
    assert mine.read_text() == "mine"
    os.remove(mine)
    # a user's own runs.csv, index.html or plan.json where the workflow writes: Snakemake would delete each
    # before its job ran; refused when it starts, untouched
    for path, where in ((wd / "results" / "tables" / "runs.csv", "results_dir's folder 'results/tables'"),
                        (wd / "report" / "index.html", "report_dir 'report'"),
                        (wd / "results" / "plan.json", "results_dir's folder 'results'")):
        os.makedirs(path.parent, exist_ok=True)
        path.write_text("mine")
        proc = snakemake(wd, "-n")
        assert proc.returncode == 1 and f"bad {where}: it holds {path.name}, which sweepbench did not write" \
            in proc.stderr, proc.stderr[-2000:]
        assert path.read_text() == "mine"
        os.remove(path)
    mine = wd / "results" / "thesis.tex"                                # a results_dir no workflow wrote
    mine.write_text("mine")
    proc = snakemake(wd, "-n")
    assert proc.returncode == 1 and "holds thesis.tex and no plan.json" in proc.stderr, proc.stderr[-2000:]
    assert mine.read_text() == "mine"
    os.remove(mine)
    assert snakemake(wd, "-n").returncode == 0


def test_the_plan_is_written_before_any_training_job_so_status_works_from_the_first_run(tmp_path):
    """Snakemake may start training jobs before the write_plan job (nothing orders them): the workflow
    writes plan.json when it starts, so `sweepbench status` reads the sweep during its first run (and
    names a killed Snakemake's jobs). `--until train` runs the training jobs and not write_plan."""
    config = {"studies": {"few": {"workload": "linreg", "fixed": {"epochs": 3, "lr": 0.001}, "pack_by": [],
                                  "grid": {"batch_size": [1, 2]}}}}
    wd = workdir(tmp_path, config)
    proc = snakemake(wd, "--until", "train")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "write_plan" not in proc.stderr and (wd / "results" / "plan.json").exists()
    status = subprocess.run([sys.executable, "-m", "sweepbench", "status", "--json"], cwd=wd, capture_output=True,
                            text=True, env=ENV)
    assert status.returncode == 0 and json.loads(status.stdout)["total"]["done"] == 2, status.stderr


def test_a_dry_run_removes_no_stale_manifest(tmp_path):
    """A manifest whose run folder is gone is removed by a real run (the job trains again), never by
    `snakemake -n`: a dry run deletes nothing, it says what a real run would do."""
    from sweepbench.atomic import write_own

    config = {"studies": {"few": {"workload": "linreg", "fixed": {"epochs": 20, "lr": 0.001}, "pack_by": [],
                                  "grid": {"batch_size": [1]}}}}
    wd = workdir(tmp_path, config)
    manifest = wd / "results" / "manifests" / "few" / "all.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("{}")                                           # says done; its run folder is missing
    write_own(str(wd / "results" / "tables"), {"runs.csv": "study\n"}, "results_dir's folder")
    proc = snakemake(wd, "-n")
    assert proc.returncode == 0 and "1 of its runs have no record any more" in proc.stderr, proc.stderr[-3000:]
    assert "a dry run removes nothing" in proc.stderr
    assert manifest.read_text() == "{}" and (wd / "results" / "tables" / "runs.csv").read_text() == "study\n"


def test_a_deleted_run_is_retrained_by_the_next_run_and_a_damaged_one_by_forcerun(tmp_path):
    """A finished job's manifest says its runs are done: a run folder deleted by hand is trained
    again by the next `snakemake` (the workflow removes that job's manifest at start); a record
    damaged by hand makes the tables refuse, naming the command that re-trains it. Either way the
    job keeps its other complete records."""
    config = {"studies": {"few": {"workload": "linreg", "fixed": {"epochs": 20, "lr": 0.001}, "pack_by": [],
                                  "grid": {"batch_size": [1, 2, 4]}}}}
    wd = workdir(tmp_path, config)
    assert snakemake(wd).returncode == 0
    runs = wd / "results" / "runs" / "few" / "all"
    kept = {p.parent.parent.name: p.stat().st_mtime_ns for p in runs.glob("*/seed~0/run.json")}
    shutil.rmtree(runs / "bs~2")
    again = snakemake(wd)
    assert again.returncode == 0 and "1 of its runs have no record any more" in again.stderr, again.stderr[-3000:]
    log = (wd / "results" / "logs" / "train" / "few" / "all.log").read_text()
    assert "2 of 3 runs already have a complete record" in log
    now = {p.parent.parent.name: p.stat().st_mtime_ns for p in runs.glob("*/seed~0/run.json")}
    assert {n: t for n, t in kept.items() if n != "bs~2"} == {n: t for n, t in now.items() if n != "bs~2"}
    assert len(pd.read_csv(wd / "results" / "tables" / "runs.csv")) == 3

    metrics = runs / "bs~4" / "seed~0" / "metrics.csv"
    metrics.write_text(metrics.read_text()[:-40])                      # damaged by hand: cut mid-row
    (wd / "results" / "tables" / "runs.csv").unlink()                 # so that aggregate runs again
    refused = snakemake(wd)
    log = (wd / "results" / "logs" / "aggregate.log").read_text()
    assert refused.returncode != 0 and "1 broken or missing run record(s)" in log
    assert "snakemake --forcerun train" in log
    fixed = snakemake(wd, "--forcerun", "train")
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert len(pd.read_csv(wd / "results" / "tables" / "runs.csv")) == 3
