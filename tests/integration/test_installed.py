"""The workflow from an installed wheel, without the repository: `python -m sweepbench run` in an
empty folder outside the checkout, with only a config.yaml there, trains, tabulates and reports;
`sweepbench status` reads the results there. The wheel is installed with `pip install --target`
into a folder put first on PYTHONPATH, so its copy shadows the editable install of the checkout."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow  # installs the wheel, runs the real workflow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# the shape of tiny_config.yaml, one built-in workload: seconds on a CPU
CONFIG = {"studies": {"tiny": {"workload": "linreg", "fixed": {"lr": 0.001, "epochs": 5},
                               "grid": {"batch_size": ["full", 16]}}}}


@pytest.fixture(scope="module")
def installed(built_wheel, tmp_path_factory):
    """The wheel installed outside the repository; the environment that imports it first (the
    interpreter's bin folder on PATH, as in an activated venv)."""
    site = tmp_path_factory.mktemp("installed") / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site),
                           built_wheel], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(site),
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    where = subprocess.run([sys.executable, "-c", "import sweepbench; print(sweepbench.__file__)"], env=env,
                           capture_output=True, text=True, timeout=60, cwd=str(site.parent))
    assert where.stdout.strip() == str(site / "sweepbench" / "__init__.py"), where.stdout + where.stderr
    return site, env


def sweepbench(folder, env, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", "sweepbench", *args], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_run_in_an_empty_folder_from_the_installed_wheel(installed, tmp_path):
    site, env = installed
    folder = tmp_path / "study"
    folder.mkdir()
    assert not str(folder).startswith(ROOT + os.sep)
    (folder / "config.yaml").write_text(yaml.safe_dump(CONFIG))

    proc = sweepbench(folder, env, "run", "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the installed workflow ran (its default profile, beside its Snakefile) ...
    assert f"Using workflow specific profile {site / 'sweepbench' / 'workflow' / 'profiles' / 'default'}" in proc.stderr
    runs = pd.read_csv(folder / "results" / "tables" / "runs.csv")
    assert sorted(runs["cell"]) == ["tiny/bs~16", "tiny/bs~full"]
    assert runs["status"].isin(["completed", "converged"]).all()
    record = json.load(open(folder / "results" / "runs" / "tiny" / "bs~16" / "seed~0" / "run.json"))
    assert record["provenance"]["git_commit"] is None  # ... and its rules trained with the installed code, no checkout
    assert (folder / "results" / "tables" / "cells.csv").exists()
    assert 'id="study-tiny"' in (folder / "report" / "index.html").read_text()
    assert (folder / "report" / "report.pdf").stat().st_size > 10000

    status = sweepbench(folder, env, "status")
    assert status.returncode == 0, status.stderr
    line = next(row.split() for row in status.stdout.splitlines() if row.startswith("tiny "))
    assert line[1:3] == ["2", "2"]                       # planned, done
    again = sweepbench(folder, env, "run", "--cores", "2", "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_run_without_a_config_yaml_says_so_in_one_line_and_exits_2(installed, tmp_path):
    _, env = installed
    proc = sweepbench(tmp_path, env, "run", "--cores", "2")
    assert proc.returncode == 2
    assert proc.stderr == (f"sweepbench: no config.yaml here ({tmp_path}); allowed: sweepbench init to write one, "
                           "or --configfile FILE\n")
    assert proc.stdout == "" and os.listdir(tmp_path) == []
