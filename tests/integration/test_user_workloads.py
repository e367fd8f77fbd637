"""Your own model and data through the real workflow: the examples in examples/ (a workload file and a
study config each, on tiny generated data), the probe that stops a mismatch before any training job,
and re-training exactly the runs whose workload file or data changed."""

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow  # runs the real workflow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}


def run(folder, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", "sweepbench", *args], cwd=folder, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def example(tmp_path, name):
    """A copy of examples/<name> with its tiny data written by its make_data.py."""
    folder = tmp_path / name
    shutil.copytree(os.path.join(ROOT, "examples", name), folder)
    made = subprocess.run([sys.executable, "make_data.py"], cwd=folder, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    return folder


def test_the_small_cnn_example_on_an_image_folder_with_resnet18_beside_it(tmp_path):
    folder = example(tmp_path, "small_cnn_images")
    proc = run(folder, "run", "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = pd.read_csv(folder / "results" / "tables" / "runs.csv")
    assert len(runs) == 8 + 2 and set(runs["workload"]) == {"workloads.py:small_cnn"}
    assert runs["status"].isin(["completed", "target_reached"]).all()
    cnn = runs[runs["study"] == "cnn_lr_batch"]
    assert cnn["final_test_accuracy"].max() >= 0.9 and cnn["target_reached"].any()   # it learns the shapes
    record = json.load(open(folder / "results" / "runs" / "resnet18_same_images" / "lr~0.01" / "seed~0" / "run.json"))
    want = {"model": "torchvision.resnet18", "dataset": "data/shapes", "n_train": 180, "n_test": 60}
    assert {k: record["workload"][k] for k in want} == want
    assert record["provenance"]["data_source"]["kind"] == "local"
    assert record["provenance"]["data_source"]["format"] == "image_folder"
    assert record["provenance"]["user_inputs"]["data"]["source"] == "data/shapes"
    probes = sorted(p for p, _, files in os.walk(folder / "results" / "probes") for f in files)
    assert len(probes) == 2                                   # one per model on these data, before training
    assert 'id="study-resnet18_same_images"' in (folder / "report" / "index.html").read_text()


def test_the_mlp_example_on_a_csv_then_an_edit_re_trains_only_its_runs(tmp_path):
    folder = example(tmp_path, "mlp_csv")
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["studies"]["built_in_beside"] = {"workload": "linreg", "fixed": {"lr": 0.001, "epochs": 3}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    proc = run(folder, "run", "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = pd.read_csv(folder / "results" / "tables" / "runs.csv")
    mlp = runs[runs["study"] == "mlp_optimizers"]
    assert len(mlp) == 8 and set(mlp["workload"]) == {"workloads.py:blobs_mlp"}
    assert mlp["final_test_accuracy"].max() >= 0.9
    record = json.load(open(folder / "results" / "runs" / "mlp_optimizers" / "opt~adam" / "lr~0.01" / "seed~0" /
                            "run.json"))
    assert (record["workload"]["n_train"], record["workload"]["n_test"]) == (320, 80)   # test_fraction 0.2 of 400

    lost = folder / "results" / "runs" / "mlp_optimizers" / "opt~sgd" / "lr~0.1" / "seed~1"
    shutil.rmtree(lost)                                          # a run folder deleted by hand: trained again
    again = run(folder, "run", "--cores", "2")
    assert again.returncode == 0 and (lost / "run.json").exists(), again.stderr[-3000:]
    assert "results/manifests/mlp_optimizers/opt~sgd/lr~0.1.json: 1 of its runs have no record" in again.stderr
    kept = (folder / "results" / "logs" / "train" / "mlp_optimizers" / "opt~sgd" / "lr~0.1.log").read_text()
    assert "1 of 2 runs already have a complete record" in kept

    (folder / "workloads.py").write_text((folder / "workloads.py").read_text() + "\n# an edit\n")
    dry = run(folder, "run", "--cores", "2", "-n")
    jobs = [line.strip()[len("wildcards: job="):] for line in dry.stdout.splitlines()
            if line.strip().startswith("wildcards: job=")]
    assert dry.returncode == 0 and len(jobs) >= 4, dry.stdout[-3000:]
    assert all(j.startswith("mlp_optimizers/") for j in jobs)    # the built-in study is not re-trained
    studies = json.loads(run(folder, "status", "--json").stdout)["studies"]   # and status says the same
    assert (studies["mlp_optimizers"]["outdated"], studies["mlp_optimizers"]["done"]) == (8, 0)
    assert (studies["built_in_beside"]["outdated"], studies["built_in_beside"]["done"]) == (0, 1)
    edited = (folder / "workloads.py").read_text()
    (folder / "workloads.py").write_text(edited + "\ndef broken(:\n")          # cannot be loaded: not "done"
    status = json.loads(run(folder, "status", "--json").stdout)
    assert status["studies"]["mlp_optimizers"]["outdated"] == 8
    assert all("their workload file or data cannot be read now" in why for _, why in status["outdated"])
    (folder / "workloads.py").write_text(edited)
    os.utime(folder / "data" / "blobs.csv")                      # new data (a new mtime): its runs again
    assert "mlp_optimizers" in run(folder, "run", "--cores", "2", "-n").stdout


WRONG_CLASSES = '''
from sweepbench import Workload


def three():
    return Workload(dataset="data/blobs.csv:species", model=make, task="multiclass")


def make(spec):
    from torch import nn

    return nn.Linear(6, 3)      # the CSV has 4 classes
'''


def test_a_model_that_does_not_fit_its_data_stops_the_workflow_before_any_training(tmp_path):
    folder = example(tmp_path, "mlp_csv")
    (folder / "wrong.py").write_text(WRONG_CLASSES)
    (folder / "config.yaml").write_text(yaml.safe_dump({"studies": {"s": {"workload": "wrong.py:three",
                                                                          "grid": {"lr": [0.1, 0.01]}}}}))
    proc = run(folder, "run", "--cores", "2")
    assert proc.returncode != 0
    assert ("sweepbench probe: error: bad model wrong.py:make (workload wrong.py:three): its output for a batch of "
            "shape (2, 6) has shape (2, 3); allowed: (2, 4) (4 class logits per sample)") in proc.stderr
    assert not (folder / "results" / "runs").exists() and not (folder / "results" / "manifests").exists()
