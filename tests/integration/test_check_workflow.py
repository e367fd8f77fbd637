"""The regression check on real runs of the tiny config through the real Snakefile: a baseline
made with other seeds passes (the A/A stand-in for another CPU), planted regressions in the
run's tables fail it, and smoke results are never compared."""

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from test_workflow import ENV, snakemake, workdir

pytestmark = pytest.mark.slow  # runs the real Snakefile

CLI = [sys.executable, "-m", "sweepbench.cli"]


def cli(wd, *args):
    return subprocess.run(CLI + list(args), cwd=wd, capture_output=True, text=True, env=ENV)


def test_baseline_from_other_seeds_passes_and_planted_regressions_fail(tmp_path):
    wd = workdir(tmp_path)
    made = snakemake(wd, "results-baseline/tables/runs.csv", "--config", "results_dir=results-baseline", "seeds=10-21")
    assert made.returncode == 0, made.stderr[-3000:]
    saved = cli(wd, "baseline", "save", "tiny", "--tables", "results-baseline/tables")
    assert saved.returncode == 0, saved.stderr
    meta = json.load(open(wd / "baselines" / "tiny" / "meta.json"))
    assert meta["seeds"]["digits_opt_lr"] == list(range(10, 22)) and meta["smoke"] is False

    config = yaml.safe_load((wd / "config" / "config.yaml").read_text())
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump({**config, "baseline": "tiny"}))
    assert snakemake(wd).returncode == 0                       # seeds 0-1: none shared with the baseline
    checked = cli(wd, "check", "--baseline", "tiny")
    assert checked.returncode == 0 and checked.stdout.startswith("PASS"), checked.stdout + checked.stderr
    table = pd.read_csv(wd / "results" / "check" / "check.csv")
    assert "regression" not in set(table["verdict"]) and table["mde"].notna().any()
    assert "Regression check: PASS" in (wd / "report" / "index.html").read_text()
    history = pd.read_csv(wd / "results" / "history.csv")      # the workflow's check, then the same tables again
    assert set(history["entry"]) == {1} and set(history["baseline"]) == {"tiny"}
    assert "history: entry 1 of" in checked.stdout

    runs = pd.read_csv(wd / "results" / "tables" / "runs.csv")
    lowered, diverging = "digits_opt_lr/opt~adam/lr~0.01", "digits_opt_lr/opt~sgd/lr~0.1"
    runs.loc[runs["cell"] == lowered, ["final_val_accuracy", "best_val_accuracy"]] -= 0.2
    rows = runs["cell"] == diverging
    runs.loc[rows, ["status", "diverged", "target_reached"]] = ["diverged", True, False]
    runs.loc[rows, ["final_val_accuracy", "best_val_accuracy", "final_val_loss", "best_val_loss"]] = float("nan")
    shutil.copytree(wd / "results" / "tables", wd / "planted")
    runs.to_csv(wd / "planted" / "runs.csv", index=False)
    failed = cli(wd, "check", "--baseline", "tiny", "--tables", "planted", "--out", "planted-check")
    assert failed.returncode == 1 and failed.stdout.startswith("REGRESSION"), failed.stdout + failed.stderr
    table = pd.read_csv(wd / "planted-check" / "check.csv")
    flagged = set(zip(table[table["verdict"] == "regression"]["cell"],
                      table[table["verdict"] == "regression"]["metric"]))
    assert (lowered, "final_val_accuracy") in flagged and (diverging, "diverged") in flagged
    assert {cell for cell, _ in flagged} == {lowered, diverging}


def test_smoke_run_skips_the_check_and_the_command_refuses_it(tmp_path):
    wd = workdir(tmp_path)
    made = snakemake(wd, "results-baseline/tables/runs.csv", "--config", "results_dir=results-baseline", "seeds=10-12")
    assert made.returncode == 0, made.stderr[-3000:]
    assert cli(wd, "baseline", "save", "tiny", "--tables", "results-baseline/tables").returncode == 0
    config = yaml.safe_load((wd / "config" / "config.yaml").read_text())
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump({**config, "baseline": "tiny"}))
    smoke = snakemake(wd, "--config", "smoke=true")
    assert smoke.returncode == 0, smoke.stderr[-3000:]
    assert not (wd / "results" / "check").exists()
    assert "Regression check" not in (wd / "report" / "index.html").read_text()
    assert pd.read_csv(wd / "results" / "tables" / "runs.csv")["smoke"].all()
    refused = cli(wd, "check", "--baseline", "tiny")
    assert refused.returncode == 2 and "refusing to compare smoke results" in refused.stderr
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
