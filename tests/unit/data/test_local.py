"""Local data sources (sweepbench.data.local) through datasets.load/describe/data_source, on real files
written here: npz, pt, CSV and PNG folders."""

import gzip
import hashlib
import os

import numpy as np
import pytest
import torch
from PIL import Image

from sweepbench import SweepbenchError, provenance
from sweepbench.data import datasets, local
from sweepbench.spec import resolve


@pytest.fixture
def spec(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths are relative to the current directory
    return resolve({"workload": "digits_mlp", "data_dir": str(tmp_path / "resources")})


def write_npz(path, n_train=40, n_test=10, shape=(4,), classes=3, **extra):
    rng = np.random.RandomState(0)
    arrays = {"x_train": rng.rand(n_train, *shape), "y_train": np.arange(n_train) % classes,
              "x_test": rng.rand(n_test, *shape).astype(np.float32), "y_test": np.arange(n_test) % classes, **extra}
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return arrays


def write_csv(path, rows=50, label="label", names=False):
    rng = np.random.RandomState(1)
    lines = [f"id,a,b,{label}"]
    for i in range(rows):
        target = ("setosa", "virginica", "versicolor")[i % 3] if names else i % 3
        lines.append(f"{i},{rng.rand():.4f},{rng.rand():.4f},{target}")
    text = "\n".join(lines) + "\n"
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        open(path, "w").write(text)


def write_images(root, classes=("cat", "dog", "fox"), per_class=4, size=(24, 20), mode="RGB", splits=("train", "test")):
    """PNG images of `size` (width, height) under root/<split>/<class>/ (splits=() : root/<class>/)."""
    rng = np.random.RandomState(2)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    for split in splits or ("",):
        for c in classes:
            folder = os.path.join(root, split, c)
            os.makedirs(folder, exist_ok=True)
            for i in range(per_class):
                pixels = rng.randint(0, 256, (size[1], size[0], channels)).astype(np.uint8)
                Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode).save(os.path.join(folder, f"{i}.png"))


def test_npz_loads_with_float64_made_float32_and_classes_from_the_labels(spec):
    arrays = write_npz("d.npz", classes=5)
    s = datasets.load("d.npz", dict(spec, val_size=5))
    assert s.x_train.dtype == torch.float32 and s.y_train.dtype == torch.int64 and s.scale == 1.0
    assert s.counts == {"n_train": 35, "n_val": 5, "n_test": 10} and s.n_classes == 5 and s.sample_shape == (4,)
    assert torch.equal(s.x_val, torch.from_numpy(arrays["x_train"][-5:]).float())
    assert torch.equal(datasets.load(os.path.abspath("d.npz"), spec).x_test, s.x_test)   # absolute, or a Path
    from pathlib import Path
    assert datasets.describe(Path("d.npz"), spec).n_train == 40


def test_npz_with_its_own_validation_split_ignores_val_size(spec):
    write_npz("d.npz", x_val=np.zeros((6, 4)), y_val=np.zeros(6, np.int64))
    s = datasets.load("d.npz", dict(spec, val_size=5))
    assert s.counts == {"n_train": 40, "n_val": 6, "n_test": 10}
    assert datasets.describe("d.npz", dict(spec, val_size=5)).train_samples(dict(spec, val_size=5)) == 40


def test_pt_dict_of_uint8_images(spec):
    g = torch.Generator().manual_seed(0)
    torch.save({"x_train": torch.randint(0, 256, (30, 3, 20, 24), dtype=torch.uint8, generator=g),
                "y_train": torch.arange(30) % 4,
                "x_test": torch.randint(0, 256, (8, 3, 20, 24), dtype=torch.uint8, generator=g),
                "y_test": torch.arange(8) % 4, "classes": ["a", "b", "c", "d"]}, "d.pt")
    s = datasets.load("d.pt", spec)
    assert s.x_train.dtype == torch.uint8 and s.scale == pytest.approx(1 / 255) and s.val_is_test
    assert s.sample_shape == (3, 20, 24) and s.n_classes == 4 and s.counts["n_train"] == 30


@pytest.mark.parametrize("name", ["d.csv", "d.csv.gz"])
def test_csv_splits_its_rows_by_test_fraction_reproducibly_and_disjointly(spec, name):
    write_csv(name)
    a = datasets.load(name, spec)
    b = datasets.load(name, spec)
    c = datasets.load(name, dict(spec, data_seed=1))
    assert a.counts["n_train"] == 40 and a.counts["n_test"] == 10 and a.sample_shape == (3,) and a.n_classes == 3
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.x_test, b.x_test)
    train, test = set(a.x_train[:, 0].tolist()), set(a.x_test[:, 0].tolist())    # column id: the row
    assert not train & test and train | test == set(range(50))
    assert set(c.x_test[:, 0].tolist()) != test
    quarter = datasets.load(name, dict(spec, test_fraction=0.25))
    assert quarter.counts["n_test"] == 12                                           # round(50 * 0.25)


def test_csv_label_column_by_name_with_class_names(spec):
    write_csv("iris.csv", label="species", names=True)
    s = datasets.load("iris.csv:species", spec)
    assert s.n_classes == 3 and s.y_train.dtype == torch.int64 and s.sample_shape == (3,)
    write_csv("d.csv")
    regression = datasets.load("d.csv:a", spec, task="regression")                 # any column may be the target
    assert regression.y_train.dtype == torch.float32 and regression.n_classes == 0
    assert regression.sample_shape == (3,)                                         # id, b, label


def test_image_folder_with_train_and_test_three_classes_of_rgb_24x20(spec):
    write_images("pets")
    s = datasets.load("pets", dict(spec, val_size=2))
    assert s.x_train.dtype == torch.uint8 and s.sample_shape == (3, 20, 24) and s.n_classes == 3
    assert s.counts == {"n_train": 10, "n_val": 2, "n_test": 12} and s.scale == pytest.approx(1 / 255)
    first = np.array(Image.open("pets/test/cat/0.png")).transpose(2, 0, 1)
    assert torch.equal(s.x_test[0], torch.from_numpy(first)) and int(s.y_test[-1]) == 2
    assert sorted(s.y_train.tolist() + s.y_val.tolist()) != s.y_train.tolist() + s.y_val.tolist()  # drawn order


@pytest.mark.parametrize("mode, channels", [("L", 1), ("RGBA", 4)])
def test_grayscale_and_rgba_images(spec, mode, channels):
    write_images("imgs", classes=("a", "b"), mode=mode, size=(9, 7))
    s = datasets.load("imgs", spec)
    assert s.sample_shape == (channels, 7, 9) and s.n_classes == 2


def test_image_folder_without_test_split_is_split_by_test_fraction(spec):
    write_images("flat", per_class=10, splits=())
    a, b = datasets.load("flat", spec), datasets.load("flat", spec)
    c = datasets.load("flat", dict(spec, data_seed=3))
    assert a.counts["n_train"] == 24 and a.counts["n_test"] == 6 and a.n_classes == 3
    assert torch.equal(a.x_test, b.x_test) and not torch.equal(a.x_test, c.x_test)
    rows = lambda x: {bytes(r.numpy()) for r in x}  # noqa: E731
    assert not rows(a.x_train) & rows(a.x_test) and len(rows(a.x_train) | rows(a.x_test)) == 30


def test_the_decoded_images_are_cached_once_and_reused(spec, monkeypatch):
    write_images("pets")
    datasets.load("pets", spec)
    cached = os.listdir(os.path.join(spec["data_dir"], "local"))
    assert len(cached) == 1 and cached[0].startswith(f"pets-{local.fingerprint('pets')}-")
    stamp = os.stat(os.path.join(spec["data_dir"], "local", cached[0])).st_mtime_ns

    def no_decoding(*args):
        raise AssertionError("decoded again")

    monkeypatch.setattr(local, "decode_images", no_decoding)
    again = datasets.load("pets", spec)
    assert again.counts["n_test"] == 12
    assert os.stat(os.path.join(spec["data_dir"], "local", cached[0])).st_mtime_ns == stamp
    monkeypatch.undo()
    os.chdir(os.path.dirname(spec["data_dir"]))
    write_images("pets", classes=("cat",), per_class=5)                             # the data change
    datasets.load("pets", spec)
    assert len(os.listdir(os.path.join(spec["data_dir"], "local"))) == 2


@pytest.mark.parametrize("source", ["d.npz", "d.pt", "d.csv", "pets", "flat"])
def test_describe_gives_the_training_count_a_run_sees_and_synthetic_has_the_real_layout(spec, source):
    write_npz("d.npz", classes=4)
    torch.save({k: torch.from_numpy(v) for k, v in np.load("d.npz").items()}, "d.pt")
    write_csv("d.csv")
    write_images("pets")
    write_images("flat", per_class=10, splits=())
    for options in ({}, {"val_size": 3}, {"val_size": 3, "train_size": 5}):
        run = dict(spec, **options)
        entry = datasets.describe(source, run)
        real = datasets.load(source, run)
        assert entry.train_samples(run) == len(real.y_train), options
        assert entry.shape == real.sample_shape and entry.n_classes == real.n_classes
        assert entry.n_test == len(real.y_test)
        fake = datasets.load(source, dict(run, synthetic=True))
        assert fake.counts == real.counts and fake.sample_shape == real.sample_shape
        assert fake.x_train.dtype == real.x_train.dtype and fake.n_classes == real.n_classes
        assert int(fake.y_train.max()) < real.n_classes


def test_data_source_names_the_format_path_and_sha256(spec, tmp_path):
    write_npz("d.npz")
    write_csv("d.csv")
    write_images("pets")
    npz = datasets.data_source("d.npz", spec)
    assert npz["kind"] == "local" and npz["format"] == "npz" and npz["path"] == str(tmp_path / "d.npz")
    assert npz["sha256"] == hashlib.sha256(open("d.npz", "rb").read()).hexdigest()
    csv = datasets.data_source("d.csv:a", spec)
    assert csv["format"] == "csv" and csv["label_column"] == "a" and csv["test_fraction"] == 0.2
    folder = datasets.data_source("pets", spec)
    files = sorted(f"{s}/{c}/{i}.png" for s in ("train", "test") for c in ("cat", "dog", "fox") for i in range(4))
    listing = "".join(f"{f}\t{hashlib.sha256(open('pets/' + f, 'rb').read()).hexdigest()}\n" for f in files)
    assert folder["format"] == "image_folder" and folder["sha256"] == hashlib.sha256(listing.encode()).hexdigest()
    assert datasets.data_source("pets", dict(spec, synthetic=True))["kind"] == "synthetic"


def test_is_source_and_fingerprint(spec):
    write_csv("d.csv")
    os.makedirs("folder")
    assert local.is_source("d.csv:label") and local.is_source("x/y.npz") and local.is_source("./any")
    assert local.is_source("folder") and local.is_source("missing.pt")
    assert not local.is_source("mnist") and not local.is_source("nonsense") and not local.is_source(None)
    before = local.fingerprint("d.csv")
    assert local.fingerprint("d.csv") == before and local.fingerprint("d.csv:a") != before
    write_csv("d.csv", rows=60)
    assert local.fingerprint("d.csv") != before


def test_a_source_larger_than_the_available_memory_is_refused(spec, monkeypatch):
    write_npz("d.npz", n_train=2000, shape=(64, 64))                                 # 62.5 MB of float64
    write_images("pets")
    monkeypatch.setattr(provenance, "available_mb", lambda: 50.0)
    with pytest.raises(SweepbenchError, match=r"^bad data 'd.npz': loading it needs about 63 MB, 50 MB is "
                                              r"available; allowed: data that fit in the available memory"):
        datasets.load("d.npz", spec)
    monkeypatch.setattr(provenance, "available_mb", lambda: 0.01)
    with pytest.raises(SweepbenchError, match=r"^bad data 'pets': loading it needs about 0.033 MB, 0.01 MB"):
        datasets.load("pets", spec)                                                 # 24 images of 24x20x3 bytes
    write_csv("d.csv.gz", rows=5000)                                                 # 4 columns, 8 bytes a value
    with pytest.raises(SweepbenchError, match=r"^bad data 'd.csv.gz': loading it needs about 0.1\d MB, 0.01 MB"):
        datasets.load("d.csv.gz", spec)
    torch.save({"x_train": torch.zeros(10000)}, "d.pt")
    with pytest.raises(SweepbenchError, match=r"^bad data 'd.pt': loading it needs about 0.0[34]\d MB, 0.01 MB"):
        datasets.load("d.pt", spec)
    monkeypatch.setattr(provenance, "available_mb", lambda: None)                    # unknown: allowed
    datasets.load("pets", spec)


def write_bad_folder(case):
    if case == "empty":
        os.makedirs("bad")
    elif case == "files only":
        os.makedirs("bad")
        open("bad/a.png", "wb").write(b"")
    elif case == "train without test":
        write_images("bad", splits=("train",))
    elif case == "other size":
        write_images("bad")
        Image.new("RGB", (5, 5)).save("bad/test/dog/1.png")
    elif case == "other mode":
        write_images("bad")
        Image.new("L", (24, 20)).save("bad/train/fox/2.png")
    elif case == "not an image":
        write_images("bad")
        open("bad/train/cat/notes.txt", "w").write("x")
    elif case == "empty class":
        write_images("bad", splits=())
        os.makedirs("bad/emu")


ALLOWED = r"allowed: a .npz or .pt file with x_train"
BAD_FOLDERS = [
    ("empty", rf"it holds no class folders; {ALLOWED}"),
    ("files only", rf"it holds no class folders; {ALLOWED}"),
    ("train without test", rf"it has train/ but no test/; {ALLOWED}"),
    ("other size", r"test/dog/1.png is a 5x5 RGB image; expected 24x20 RGB like train/cat/0.png"),
    ("other mode", r"train/fox/2.png is a 24x20 L image; expected 24x20 RGB like train/cat/0.png"),
    ("not an image", r"train/cat/notes.txt is not an image file; expected only PNG, JPEG or BMP"),
    ("empty class", r"its class folder emu/ holds no images"),
]


@pytest.mark.parametrize("case, message", BAD_FOLDERS, ids=[c[0] for c in BAD_FOLDERS])
def test_bad_image_folders_are_refused_in_one_line(spec, case, message):
    write_bad_folder(case)
    with pytest.raises(SweepbenchError, match=f"^workload w.py:cnn: bad data 'bad': {message}") as err:
        datasets.load("bad", spec, who="workload w.py:cnn")
    assert "\n" not in str(err.value)


def write_bad_file(name):
    if name == "notes.txt":
        open(name, "w").write("x")
    elif name == "nolabel.csv":
        open(name, "w").write("a,b,species\n1,2,x\n3,4,y\n")
    elif name == "text.csv":
        open(name, "w").write("a,colour,label\n1,red,0\n3,blue,1\n")
    elif name == "floats.csv":
        open(name, "w").write("a,label\n1,0.5\n3,1\n")
    elif name == "one.csv":
        open(name, "w").write("a,label\n1,0\n")
    elif name == "keys.npz":
        np.savez(name, x_train=np.zeros((3, 2)), y_train=np.zeros(3, np.int64), x_test=np.zeros((1, 2)))
    elif name == "labels.npz":
        write_npz(name, y_train=np.linspace(0, 1, 40))
    elif name == "broken.npz":
        open(name, "w").write("not a zip")
    elif name == "list.pt":
        torch.save([torch.zeros(2)], name)


BAD_FILES = [
    ("missing.npz", rf"no such file or folder \(.*missing.npz\); {ALLOWED}"),
    ("notes.txt", rf"not a data file this reads; {ALLOWED}"),
    ("nolabel.csv", r"no label column 'label' among its columns \(a, b, species\); allowed: nolabel.csv:<column>"),
    ("text.csv", r"non-numeric feature columns \(colour\); expected numbers in every column but the label column"),
    ("floats.csv", r"label column 'label' holds non-integer values \(e.g. 0.5\); expected integer class labels"),
    ("one.csv", r"it holds 1 sample; expected at least 2"),
    ("keys.npz", r"it holds no y_test; expected x_train, y_train, x_test, y_test \(optionally x_val, y_val\)"),
    ("labels.npz", r"it holds y_train of dtype numpy.float64; expected integer class labels \(int64\) for task "
                   "multiclass"),
    ("broken.npz", r"cannot read it as an npz file"),
    ("list.pt", r"it holds a list; expected a dict of tensors"),
]


@pytest.mark.parametrize("name, message", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_files_are_refused_in_one_line_naming_the_file(spec, name, message):
    write_bad_file(name)
    with pytest.raises(SweepbenchError, match=f"^bad data '{name}': {message}") as err:
        datasets.load(name, spec)
    assert "\n" not in str(err.value)
