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
    assert record["provenance"]["env_lock"] is None  # no clone, so no requirements.lock: not locked, said as null
    assert set(runs["env_lock"]) == {"not locked"}
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


def plain_loop(folder, spec: dict) -> tuple[list[float], float]:
    """The user's model and data in a plain PyTorch loop, as they would write it: seed, draw the data
    from a generator seeded with data_seed, build the model, then per epoch a permutation of the
    training set from a generator seeded with the run's seed, SGD on each mini-batch (the last one
    partial). Returns each step's mini-batch loss and the final training-set loss."""
    import importlib.util

    import torch
    import torch.nn.functional as F

    loader = importlib.util.spec_from_file_location("users_workload_for_the_plain_loop", folder / "my_workload.py")
    mine = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(mine)
    torch.set_num_threads(1)
    torch.manual_seed(spec["seed"])
    x_train, y_train, _, _ = mine.load_data(spec, torch.Generator().manual_seed(spec["data_seed"]))
    model = mine.make_model(spec)
    optimizer = torch.optim.SGD(model.parameters(), lr=spec["lr"])
    order = torch.Generator().manual_seed(spec["seed"])
    losses = []
    for _ in range(spec["epochs"]):
        perm = torch.randperm(len(y_train), generator=order)
        for i in range(0, len(y_train), spec["batch_size"]):
            idx = perm[i:i + spec["batch_size"]]
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        return losses, F.cross_entropy(model(x_train), y_train).item()


def test_init_then_your_own_workload_from_the_installed_wheel_trains_as_a_plain_loop_would(installed, tmp_path):
    _, env = installed
    folder = tmp_path / "mine"
    init = sweepbench(tmp_path, env, "init", "mine")
    assert init.returncode == 0, init.stderr
    assert sorted(os.listdir(folder)) == ["config.yaml", "my_workload.py"]
    proc = sweepbench(folder, env, "run", "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(os.listdir(folder / "results" / "probes" / "my_lr_batch")) == 1   # one probe before the 4 jobs

    runs = pd.read_csv(folder / "results" / "tables" / "runs.csv")
    assert len(runs) == 8 and set(runs["workload"]) == {"my_workload.py:my_workload"}
    assert runs["status"].isin(["completed", "target_reached"]).all() and runs["final_test_accuracy"].min() > 0.5
    assert "my_workload.py:my_workload" in (folder / "report" / "index.html").read_text()
    status = sweepbench(folder, env, "status")
    line = next(r.split() for r in status.stdout.splitlines() if r.startswith("my_lr_batch "))
    assert line[1:3] == ["8", "8"] and line[-1] == "my_workload.py:my_workload"     # planned, done; the workload

    run = folder / "results" / "runs" / "my_lr_batch" / "lr~0.05" / "bs~16" / "seed~1"
    record = json.load(open(run / "run.json"))
    assert record["workload"]["name"] == "my_workload.py:my_workload"
    assert record["workload"]["model"] == "my_workload.py:make_model"
    mine = record["provenance"]["user_inputs"]["workload_file"]
    import hashlib
    assert mine == {"path": str(folder / "my_workload.py"),
                    "sha256": hashlib.sha256((folder / "my_workload.py").read_bytes()).hexdigest()}

    losses, final = plain_loop(folder, record["spec"])
    steps = pd.read_csv(run / "steps.csv")
    assert len(steps) == len(losses) == record["spec"]["epochs"] * 32          # 512 samples in batches of 16
    assert steps["loss"].tolist() == pytest.approx(losses, rel=1e-4, abs=1e-6)  # same seed, same data order
    last = pd.read_csv(run / "metrics.csv").iloc[-1]
    assert last["train_loss"] == pytest.approx(final, rel=1e-4)

    (folder / "my_workload.py").write_text((folder / "my_workload.py").read_text() + "\n# an edit\n")
    again = sweepbench(folder, env, "run", "--cores", "2", "-n")
    assert again.returncode == 0 and "Nothing to be done" not in again.stdout   # an edited workload re-trains
