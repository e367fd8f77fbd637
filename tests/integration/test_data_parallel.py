"""The ready data-parallel study (config/studies/ddp_workers.yaml: N = 0 (no DDP), 1, 2 CPU workers
over gloo) end to end through the real Snakefile: one record per run written by rank 0, the
data_parallel table and the report's section."""

import json
import os
import shutil

import pandas as pd
import pytest
from test_workflow import ROOT, snakemake, workdir

from sweepbench.atomic import WRITTEN

pytestmark = pytest.mark.slow  # runs the real Snakefile


def test_the_ready_data_parallel_study_runs_end_to_end_with_its_table_and_report_section(tmp_path):
    wd = workdir(tmp_path)
    shutil.copytree(os.path.join(ROOT, "config", "studies"), wd / "config" / "studies")
    proc = snakemake(wd, "--configfile", "config/studies/ddp_workers.yaml", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dp = pd.read_csv(wd / "results" / "tables" / "data_parallel.csv")
    assert list(dp["world_size"]) == [0, 1, 2] and list(dp["global_batch"]) == [32, 32, 64]
    assert list(dp["n_runs"]) == [3, 3, 3] and list(dp["steps_seeds"]) == [6, 6, 3]
    assert dp["time_to_target_s"].notna().all() and dp["time_to_target_s"].gt(0).all()
    assert (dp["time_to_target_ci_lo"] <= dp["time_to_target_s"]).all()
    assert dp["knee"].sum() == 1 and dp.loc[dp["world_size"] == 1, "ddp_overhead"].notna().all()
    assert dp.loc[dp["world_size"] == 2, "scaling_efficiency"].gt(0).all()
    runs_dir = wd / "results" / "runs" / "ddp_workers"
    for run in pd.read_csv(wd / "results" / "tables" / "runs.csv")["run"]:
        folder = wd / "results" / "runs" / run
        assert sorted(os.listdir(folder)) == [WRITTEN, "metrics.csv", "run.json", "steps.csv"]   # rank 0's only
    assert not [p for p in runs_dir.rglob(".*tmp-*")]                      # no rank left a temporary folder
    record = json.loads((runs_dir / "all" / "ws~2" / "seed~0" / "run.json").read_text())
    par = record["distributed"]
    assert (par["world_size"], par["backend"], par["per_worker_batch"], par["global_batch"]) == (2, "gloo", 32, 64)
    assert record["to_target"]["reached"] and record["status"] == "target_reached"
    page = (wd / "report" / "index.html").read_text()
    assert "Data-parallel workers" in page and "more workers stop paying at N = " in page
    assert "Time to target with N data-parallel workers" in page and "time-to-target(N) = steps-to-target" in page
