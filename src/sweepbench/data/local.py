"""Local data: a user's own dataset from files, named by the `data` option, with no code to write.

The forms of a local source (`ALLOWED` says the same in one line); a relative path is relative to
the current working directory:

- `file.npz`: arrays x_train, y_train, x_test, y_test, optionally x_val, y_val.
- `file.pt`: a dict of tensors with the same keys (read with torch.load(weights_only=True)).
- `file.csv` or `file.csv.gz`, optionally `file.csv:column`: one sample per row, a header row; the
  label column (default `label`) holds the targets (numbers, or class names for multiclass and
  binary: sorted names are classes 0, 1, ...), every other column is a numeric feature.
- an image folder: `root/train/<class>/*` and `root/test/<class>/*` (optionally `root/val/<class>/*`),
  or `root/<class>/*`. PNG, JPEG or BMP files; grayscale images have 1 channel, RGB 3, RGBA 4 (a
  palette image becomes RGB, or RGBA when it has transparency); every image of the folder has the
  same size and mode. Classes are the sorted class folder names. Images are stored as uint8
  (N, C, H, W) and scaled by 1/255. Decoded once, they are cached in
  `<data_dir>/local/<folder name>-<fingerprint>.pt` (`cache_path`).

A CSV file and a folder without train/ and test/ hold no test split: `test_fraction` of their
samples is the test set (`split_by_fraction`, drawn with data_seed). Without a validation split,
`val_size` samples are held out of training as for the built-in datasets (0 or unset: validate on
test). The training samples of an image folder and of a split CSV come in an order drawn with
data_seed (so `train_size` keeps a random subset, and the held-out validation samples are random);
npz and pt files keep their order.

Before loading, the memory a source needs is estimated from headers and sizes (`estimate_mb`) and
a source larger than the available memory is refused (`check_memory`).

Importing this module is cheap (no torch, no numpy): the planner and the workflow call `is_source`,
`fingerprint` and `describe`; torch is loaded only to read a .pt file or the image cache.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from sweepbench import SweepbenchError, atomic, provenance
from sweepbench.atomic import sha256_cached
from sweepbench.data import registry

SUFFIXES = {".csv.gz": "csv", ".npz": "npz", ".pt": "pt", ".csv": "csv"}  # longest first
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
IMAGE_MODES = {"L": 1, "RGB": 3, "RGBA": 4}  # mode -> channels
DEFAULT_LABEL = "label"
ALLOWED = ("a .npz or .pt file with x_train, y_train, x_test, y_test (optionally x_val, y_val), a .csv or .csv.gz "
           "file (file.csv:column names the label column, default 'label'), or an image folder (root/train/<class>/ "
           "and root/test/<class>/, or root/<class>/)")


@dataclass(frozen=True)
class Source:
    """A parsed local source: what the user wrote, the absolute path, the format, the label column."""

    text: str
    path: str
    format: str                 # npz | pt | csv | image_folder
    label: str = DEFAULT_LABEL  # csv only
    who: str | None = None      # who named it, for messages ("workload my.py:small_cnn")

    def error(self, problem: str) -> SweepbenchError:
        """A one-line error about this source: `[who: ]bad data 'text': problem`."""
        return bad(self.text, self.who, problem)

    @property
    def holds(self) -> str:
        """The prefix of sweepbench.data.validate's messages about what the file holds."""
        return f"{self.who + ': ' if self.who else ''}bad data {self.text!r}: it holds"


def bad(text: str, who: str | None, problem: str) -> SweepbenchError:
    return SweepbenchError(f"{who + ': ' if who else ''}bad data {text!r}: {problem}")


def split_label(text: str) -> tuple[str, str | None]:
    """`file.csv:column` -> (file.csv, column); anything else -> (text, None)."""
    head, sep, tail = text.rpartition(":")
    if sep and head.lower().endswith((".csv", ".csv.gz")):
        return head, tail
    return text, None


def _suffix(path: str) -> str | None:
    low = path.lower()
    return next((s for s in SUFFIXES if low.endswith(s)), None)


def check_known(text: str, who: str | None = None) -> None:
    """Refuse text that is neither a registry name nor a local source (is_source), naming both forms."""
    if text not in registry.DATASETS and not is_source(text):
        raise SweepbenchError(f"{who + ': ' if who else ''}unknown data {text!r}; allowed: a dataset name "
                              f"({', '.join(registry.DATASETS)}), or a path: {ALLOWED}")


def is_source(text) -> bool:
    """Whether a `data` value names a local source rather than a registry dataset: it is not a
    registry name, and it has a data file suffix (.npz, .pt, .csv, .csv.gz, optionally with
    :column), contains a path separator, starts with '.' or '~', or names an existing path. A
    registry name wins over a folder of the same name. Cheap: at most one stat, no torch."""
    if not isinstance(text, str) or not text or text in registry.DATASETS:
        return False
    path, _ = split_label(text)
    return (_suffix(path) is not None or "/" in path or os.sep in path or path.startswith((".", "~"))
            or os.path.exists(path))


def parse(text: str, who: str | None = None) -> Source:
    """The source `text` names; a missing path, an unknown suffix or an empty label column is a
    one-line error naming the path and the allowed forms."""
    path, label = split_label(text)
    full = os.path.abspath(os.path.expanduser(path))
    if label == "":
        raise bad(text, who, f"no label column after ':'; allowed: {ALLOWED}")
    if os.path.isdir(full):
        return Source(text, full, "image_folder", who=who)
    if not os.path.exists(full):
        raise bad(text, who, f"no such file or folder ({full}); allowed: {ALLOWED}")
    suffix = _suffix(full)
    if suffix is None:
        raise bad(text, who, f"not a data file this reads; allowed: {ALLOWED}")
    return Source(text, full, SUFFIXES[suffix], label or DEFAULT_LABEL, who=who)


def _files(root: str) -> list[tuple[str, str]]:
    """Every file under a folder that is not hidden, as (relative path, absolute path), sorted."""
    found = []
    for parent, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                full = os.path.join(parent, name)
                found.append((os.path.relpath(full, root).replace(os.sep, "/"), full))
    return found


def fingerprint(text: str) -> str:
    """A cheap digest of a local source's data (16 hex digits) that changes when the data change:
    sha256 over the label column and each file's relative path, size and modification time (every
    file of a folder that is not hidden). No file is read; a missing path has a digest too."""
    path, label = split_label(text)
    full = os.path.abspath(os.path.expanduser(path))
    digest = hashlib.sha256(f"{label or ''}\n".encode())
    entries = _files(full) if os.path.isdir(full) else [(os.path.basename(full), full)]
    for rel, file in entries:
        try:
            st = os.stat(file)
        except OSError:
            continue
        digest.update(f"{rel}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def n_test_of(n: int, fraction: float) -> int:
    """Test samples of a source without a test split: round(n * test_fraction), at least 1 and at
    most n - 1 (training keeps at least one sample)."""
    return max(1, min(n - 1, round(n * fraction)))


def split_by_fraction(n: int, spec: dict, src: Source):
    """The (train, test) row indices of a source without a test split: a permutation of the n rows
    drawn with numpy's RandomState(data_seed); its first n_test_of(n, test_fraction) rows test, the
    other rows train in the permuted order. Disjoint, and the same for the same data_seed."""
    import numpy as np

    if n < 2:
        raise src.error(f"it holds {n} sample{'s' if n != 1 else ''}; expected at least 2 (it is split into "
                        "train and test by test_fraction)")
    order = np.random.RandomState(spec["data_seed"]).permutation(n)
    n_test = n_test_of(n, spec["test_fraction"])
    return order[n_test:], order[:n_test]


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _shown(names: list, most: int = 8) -> str:
    return ", ".join(map(str, names[:most])) + (f", ... ({len(names)} in all)" if len(names) > most else "")


# ---- image folders ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImageFolder:
    """An image folder's files, listed without reading them."""

    classes: tuple
    parts: dict          # "train", "val", "test", or "all" (no test split) -> ((relative path, class), ...)

    @property
    def first(self) -> str:
        return next(iter(self.parts.values()))[0][0]


def _subfolders(folder: str) -> list[str]:
    return sorted(d for d in os.listdir(folder) if not d.startswith(".") and os.path.isdir(os.path.join(folder, d)))


def scan_images(src: Source) -> ImageFolder:
    """The layout of an image folder: with both train/ and test/ (and optionally val/), the class
    folders of train/ are the classes, and test/ and val/ may hold only those; otherwise every
    sub-folder is a class and the folder has no test split. Hidden entries and files beside the
    class folders are ignored; a class folder holds only image files (.png, .jpg, .jpeg, .bmp)."""
    top = _subfolders(src.path)
    if "train" in top and "test" in top:
        classes = _subfolders(os.path.join(src.path, "train"))
        if not classes:
            raise src.error(f"its train/ holds no class folders; allowed: {ALLOWED}")
        parts = {p: _class_files(src, p, classes) for p in ("train", "val", "test") if p in top}
    elif "train" in top or "test" in top:
        has, lacks = ("train", "test") if "train" in top else ("test", "train")
        raise src.error(f"it has {has}/ but no {lacks}/; allowed: {ALLOWED}")
    elif not top:
        raise src.error(f"it holds no class folders; allowed: {ALLOWED}")
    else:
        classes = top
        parts = {"all": _class_files(src, "", classes)}
    return ImageFolder(tuple(classes), parts)


def _class_files(src: Source, part: str, classes: list) -> tuple:
    """((relative path, class index), ...) of one part's class folders, sorted by class and name."""
    base = os.path.join(src.path, part)
    extra = [c for c in _subfolders(base) if c not in classes]
    if extra:
        raise src.error(f"{part}/{extra[0]}/ is a class folder that train/ lacks; expected only the classes of "
                        f"train/ ({_shown(classes)})")
    files = []
    for index, name in enumerate(classes):
        folder = os.path.join(base, name)
        if part not in ("", "train") and not os.path.isdir(folder):
            continue  # a test or validation split may lack a class
        entries = sorted(e for e in os.listdir(folder) if not e.startswith("."))
        for entry in entries:
            rel = "/".join(p for p in (part, name, entry) if p)
            if os.path.isdir(os.path.join(folder, entry)):
                raise src.error(f"{rel}/ is a folder inside a class folder; expected only image files there")
            if not entry.lower().endswith(IMAGE_SUFFIXES):
                raise src.error(f"{rel} is not an image file; expected only PNG, JPEG or BMP files "
                                f"({', '.join(IMAGE_SUFFIXES)}) in class folders")
            files.append((rel, index))
        if not entries:
            raise src.error(f"its class folder {'/'.join(p for p in (part, name) if p)}/ holds no images; "
                            "expected at least one image in each class folder")
    return tuple(files)


def _mode(image, rel: str, src: Source) -> str:
    """The mode an image is stored in: L (1 channel), RGB (3) or RGBA (4); a 1-bit image becomes L, a
    palette image RGB, or RGBA when it has transparency. Other modes (16-bit, CMYK, LA) are refused."""
    if image.mode in IMAGE_MODES:
        return image.mode
    if image.mode == "1":
        return "L"
    if image.mode == "P":
        return "RGBA" if "transparency" in image.info else "RGB"
    raise src.error(f"{rel} has image mode {image.mode}; allowed: grayscale (L), RGB or RGBA images")


def image_header(src: Source, rel: str) -> tuple[tuple, str]:
    """((width, height), mode) of one image, from its header (no pixels decoded)."""
    from PIL import Image

    try:
        with Image.open(os.path.join(src.path, rel)) as image:
            return image.size, _mode(image, rel, src)
    except OSError as err:
        raise src.error(f"cannot read {rel} as an image ({_first_line(err)})") from None


def decode_images(src: Source, folder: ImageFolder) -> dict:
    """x_<part> as uint8 (N, C, H, W) and y_<part> as int64 class indices, for each part. Every
    image has the first image's size and mode, or the first that differs is named."""
    import numpy as np
    from PIL import Image

    (width, height), mode = image_header(src, folder.first)
    out = {}
    for part, files in folder.parts.items():
        x = np.empty((len(files), IMAGE_MODES[mode], height, width), np.uint8)
        for i, (rel, _) in enumerate(files):
            try:
                with Image.open(os.path.join(src.path, rel)) as image:
                    got = _mode(image, rel, src)
                    if (image.size, got) != ((width, height), mode):
                        raise src.error(f"{rel} is a {image.size[0]}x{image.size[1]} {got} image; expected "
                                        f"{width}x{height} {mode} like {folder.first} (all images of a folder "
                                        "share size and mode)")
                    pixels = np.asarray(image if image.mode == mode else image.convert(mode))
            except OSError as err:
                raise src.error(f"cannot read {rel} as an image ({_first_line(err)})") from None
            x[i] = pixels.reshape(height, width, -1).transpose(2, 0, 1)
        out[f"x_{part}"], out[f"y_{part}"] = x, np.array([c for _, c in files], np.int64)
    return out


def cache_path(src: Source, spec: dict) -> str:
    """Where an image folder's decoded tensors are cached: <data_dir>/local/<folder name>-<fingerprint>-<digest
    of its absolute path>.pt (two folders with the same files, sizes and times have two caches).
    A changed folder has another fingerprint, so a stale cache is never read (nor removed)."""
    where = hashlib.sha256(os.path.abspath(src.path).encode()).hexdigest()[:8]  # two folders alike, two caches
    return os.path.join(spec["data_dir"], "local", f"{os.path.basename(src.path)}-{fingerprint(src.text)}-{where}.pt")


def read_image_folder(src: Source, spec: dict) -> tuple[dict, tuple]:
    """An image folder's decoded parts (numpy) and classes: from the cache when it exists, else
    decoded (decode_images) and cached, written atomically. A cache torch cannot read is decoded
    and written again."""
    import torch

    path = cache_path(src, spec)
    if os.path.exists(path):
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
            return {k: v.numpy() for k, v in data.items() if k != "classes"}, tuple(data["classes"])
        except Exception:  # a damaged cache (any of torch.load's many errors) is rebuilt below
            pass
    folder = scan_images(src)
    parts = decode_images(src, folder)
    data = {**{k: torch.from_numpy(v) for k, v in parts.items()}, "classes": list(folder.classes)}
    atomic.save_with(path, lambda tmp: torch.save(data, tmp))
    return parts, folder.classes


def _image_parts(parts: dict, spec: dict, src: Source) -> dict:
    """Split a folder without a test split by test_fraction, else put its training images in an
    order drawn with data_seed (the files come sorted by class, and train_size and val_size take
    the first and last training samples)."""
    import numpy as np

    if "x_all" in parts:
        x, y = parts.pop("x_all"), parts.pop("y_all")
        train, test = split_by_fraction(len(y), spec, src)
        return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}
    order = np.random.RandomState(spec["data_seed"]).permutation(len(parts["y_train"]))
    return {**parts, "x_train": parts["x_train"][order], "y_train": parts["y_train"][order]}


# ---- files --------------------------------------------------------------------------------------

def _read_npz(src: Source) -> dict:
    """The x_* and y_* arrays of an npz file (other arrays are not read)."""
    import zipfile

    import numpy as np

    try:
        with np.load(src.path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files if k.startswith(("x_", "y_"))}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise src.error(f"cannot read it as an npz file ({_first_line(err)}); expected numpy.savez arrays "
                        "x_train, y_train, x_test, y_test") from None


def _npz_headers(src: Source) -> dict:
    """{name: (shape, dtype)} of an npz file's x_* and y_* arrays, from their .npy headers only."""
    import zipfile

    import numpy as np

    headers = {}
    try:
        with zipfile.ZipFile(src.path) as z:
            for info in z.infolist():
                name = info.filename.removesuffix(".npy")
                if info.filename.endswith(".npy") and name.startswith(("x_", "y_")):
                    with z.open(info) as f:
                        version = np.lib.format.read_magic(f)
                        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                            np.lib.format.read_array_header_2_0
                        shape, _, dtype = read(f)
                    headers[name] = (tuple(shape), dtype)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise src.error(f"cannot read it as an npz file ({_first_line(err)}); expected numpy.savez arrays "
                        "x_train, y_train, x_test, y_test") from None
    return headers


def _read_pt(src: Source, mmap: bool = False) -> dict:
    """A .pt file's dict, read with torch.load(weights_only=True); mmap=True maps the tensors
    instead of reading them (for their shapes), falling back to a plain read for old-format files."""
    import torch

    try:
        try:
            data = torch.load(src.path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError:
            if not mmap:
                raise
            data = torch.load(src.path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises pickle, zip, OS and runtime errors: all mean "cannot read it"
        raise src.error(f"cannot read it with torch.load(weights_only=True) ({_first_line(err)}); expected a "
                        "dict of tensors x_train, y_train, x_test, y_test") from None
    if not isinstance(data, dict):
        raise src.error(f"it holds a {type(data).__name__}; expected a dict of tensors x_train, y_train, x_test, "
                        "y_test (optionally x_val, y_val)")
    return data


def _read_csv_table(src: Source, **options):
    import pandas as pd

    try:
        return pd.read_csv(src.path, **options)
    except (OSError, ValueError, EOFError, UnicodeDecodeError) as err:  # pandas' parser errors are ValueErrors
        raise src.error(f"cannot read it as a CSV file with a header row ({_first_line(err)})") from None


def csv_columns(src: Source) -> list[str]:
    """A CSV file's column names, from its header row; the label column must be one of them."""
    columns = [str(c) for c in _read_csv_table(src, nrows=0).columns]
    if src.label not in columns:
        path = split_label(src.text)[0]
        raise src.error(f"no label column {src.label!r} among its columns ({_shown(columns)}); allowed: "
                        f"{path}:<column> naming the label column")
    return columns


def csv_labels(values, src: Source, task: str | None):
    """The label column as labels. Numbers stay numbers (multiclass: integer values only, int64);
    text is class names, numbered 0, 1, ... in sorted order (multiclass; binary: exactly two
    names). Every row needs a label. Returns (labels, class names or None)."""
    import numpy as np
    import pandas as pd

    column = f"label column {src.label!r}"
    if values.isna().any():
        raise src.error(f"{column} is empty in data row {int(np.flatnonzero(values.isna())[0]) + 1}; expected a "
                        "label in every row")
    if pd.api.types.is_bool_dtype(values):
        return values.to_numpy(np.int64), None
    if pd.api.types.is_numeric_dtype(values):
        y = values.to_numpy()
        if task == "multiclass" and y.dtype.kind == "f":
            odd = y[~np.isfinite(y) | (y != np.round(y))]
            if len(odd):
                raise src.error(f"{column} holds non-integer values (e.g. {odd[0]}); expected integer class labels "
                                "or class names for task multiclass")
            y = y.astype(np.int64)
        return (y.astype(np.float64) if task == "regression" else y), None
    names = sorted(set(values.astype(str)))
    if task == "regression" or (task == "binary" and len(names) != 2):
        wanted = "numbers for task regression" if task == "regression" else "0/1 or exactly two names for task binary"
        raise src.error(f"{column} holds {len(names)} names ({_shown(names, 4)}); expected {wanted}")
    return np.searchsorted(np.array(names), values.astype(str).to_numpy()).astype(np.int64), names


def _read_csv(src: Source, spec: dict, task: str) -> dict:
    """A CSV file's features (float64) and labels, split into train and test by test_fraction."""
    import numpy as np
    import pandas as pd

    csv_columns(src)
    table = _read_csv_table(src)
    features = [c for c in table.columns if str(c) != src.label]
    if not features:
        raise src.error(f"no feature columns besides the label column {src.label!r}; expected at least one "
                        "numeric feature column")
    text = [str(c) for c in features if not pd.api.types.is_numeric_dtype(table[c])]
    if text:
        raise src.error(f"non-numeric feature columns ({_shown(text)}); expected numbers in every column but the "
                        f"label column {src.label!r}")
    x = table[features].to_numpy(np.float64)
    missing = [str(c) for c, ok in zip(features, np.isfinite(x).all(axis=0)) if not ok]
    if missing:
        raise src.error(f"empty or non-finite cells in feature columns ({_shown(missing)}); expected a number in "
                        "every cell")
    y, _ = csv_labels(table[src.label], src, task)
    train, test = split_by_fraction(len(y), spec, src)
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}


def read(src: Source, spec: dict, task: str) -> tuple[dict, int | None]:
    """A local source's parts (numpy arrays or torch tensors, unchecked), split by test_fraction
    where it has no test split, and an image folder's class count (None for files)."""
    if src.format == "npz":
        return _read_npz(src), None
    if src.format == "pt":
        return _read_pt(src), None
    if src.format == "csv":
        return _read_csv(src, spec, task), None
    parts, classes = read_image_folder(src, spec)
    return _image_parts(parts, spec, src), len(classes)


# ---- size, layout and provenance, without loading -----------------------------------------------

def _csv_bytes(src: Source) -> int:
    """The float64 table a CSV file parses into: rows x columns x 8 bytes, rows estimated from the
    text size (a .gz file's size from its trailer) over the mean length of the first rows."""
    import gzip

    try:
        size = os.path.getsize(src.path)
        opener = open
        if src.path.lower().endswith(".gz"):
            with open(src.path, "rb") as f:
                f.seek(-4, os.SEEK_END)
                size = int.from_bytes(f.read(4), "little")  # uncompressed size mod 4 GiB (gzip's ISIZE)
            opener = gzip.open
        with opener(src.path, "rb") as f:
            lines = f.read(1 << 16).splitlines()
    except (OSError, EOFError) as err:
        raise src.error(f"cannot read it ({_first_line(err)})") from None
    rows = lines[1:-1] or lines[1:]  # the last line read may be cut short
    if not rows:
        return 0
    per_row = sum(len(line) + 1 for line in rows) / len(rows)
    return int((size - len(lines[0]) - 1) / per_row * len(lines[0].split(b",")) * 8)


def estimate_mb(src: Source) -> float:
    """Memory the source's data take once loaded, in MB (2**20 bytes), estimated without loading:
    npz from its arrays' headers, pt from the file size, CSV from the file size and columns
    (`_csv_bytes`), an image folder as image count x the first image's bytes (uint8)."""
    if src.format == "npz":
        import numpy as np

        size = sum(int(np.prod(shape)) * dtype.itemsize for shape, dtype in _npz_headers(src).values())
    elif src.format == "pt":
        size = os.path.getsize(src.path)
    elif src.format == "csv":
        size = _csv_bytes(src)
    else:
        folder = scan_images(src)
        (width, height), mode = image_header(src, folder.first)
        size = sum(len(files) for files in folder.parts.values()) * width * height * IMAGE_MODES[mode]
    return size / 2**20


def check_memory(src: Source) -> None:
    """Refuse a source whose estimated size (estimate_mb) exceeds the memory this process can still
    have (sweepbench.provenance.available_mb); where that is unknown, allow it."""
    have = provenance.available_mb()
    if have is None:
        return
    need = estimate_mb(src)
    if need > have:
        raise src.error(f"loading it needs about {_mb(need)} MB, {_mb(have)} MB is available; allowed: data that "
                        "fit in the available memory (a subset, or a machine or job with more memory)")


def _mb(value: float) -> str:
    """MB in words: whole MB from 10 on, two significant digits below (0.0015, 2.5)."""
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


@dataclass(frozen=True)
class Layout:
    """What a local source holds, known without loading all of it (`layout`)."""

    n_train: int        # training samples before val_size and train_size
    n_val: int          # samples of the source's own validation split, 0 = none
    n_test: int
    shape: tuple        # one sample's shape
    x_dtype: str        # as stored: uint8, float32 or float64
    n_classes: int      # multiclass: classes; binary: 2; regression (or unknown): 0


def _n_classes(task: str | None, ys: list) -> int:
    """binary 2; regression 0; multiclass, or an unknown task with integer labels: largest label + 1
    (0 for float labels, which loading refuses for multiclass)."""
    if task in ("binary", "regression"):
        return 2 if task == "binary" else 0
    ys = [y for y in ys if len(y)]
    if not ys or any(y.dtype.kind not in "iub" for y in ys):
        return 0
    return max(0, max(int(y.max()) for y in ys) + 1)


def _count(shape: tuple) -> int:
    return shape[0] if shape else 0


def _array_layout(src: Source, shapes: dict, ys: list, task: str | None) -> Layout:
    """The layout of a file with splits: {name: (shape, dtype name)} of its arrays, and its labels."""
    from sweepbench.data import validate

    validate.present_keys(shapes, src.holds)
    shape, dtype = shapes["x_train"]
    return Layout(_count(shape), _count(shapes["x_val"][0]) if "x_val" in shapes else 0,
                  _count(shapes["x_test"][0]), tuple(shape[1:]), dtype, _n_classes(task, ys))


def _npz_layout(src: Source, task: str | None) -> Layout:
    import zipfile

    import numpy as np

    shapes = {k: (shape, dtype.name) for k, (shape, dtype) in _npz_headers(src).items()}
    ys = []
    if task in (None, "multiclass"):
        try:
            with np.load(src.path, allow_pickle=False) as z:
                ys = [z[k] for k in shapes if k.startswith("y_")]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise src.error(f"cannot read it as an npz file ({_first_line(err)})") from None
    return _array_layout(src, shapes, ys, task)


def _pt_layout(src: Source, task: str | None) -> Layout:
    from sweepbench.data import validate

    data = _read_pt(src, mmap=True)
    arrays = {k: validate.as_array(v, k, task or "multiclass", src.holds) for k, v in data.items()
              if isinstance(k, str) and k.startswith(("x_", "y_"))}
    shapes = {k: (tuple(a.shape), a.dtype.name) for k, a in arrays.items()}
    return _array_layout(src, shapes, [a for k, a in arrays.items() if k.startswith("y_")], task)


def _csv_layout(src: Source, spec: dict, task: str | None) -> Layout:
    columns = csv_columns(src)
    y, names = csv_labels(_read_csv_table(src, usecols=[src.label])[src.label], src, task)
    split_by_fraction(len(y), spec, src)  # refuses fewer than 2 rows
    n_test = n_test_of(len(y), spec["test_fraction"])
    n_classes = len(names) if names and task in (None, "multiclass") else _n_classes(task, [y])
    return Layout(len(y) - n_test, 0, n_test, (len(columns) - 1,), "float64", n_classes)


def _image_layout(src: Source, spec: dict, task: str | None) -> Layout:
    folder = scan_images(src)
    (width, height), mode = image_header(src, folder.first)
    counts = {part: len(files) for part, files in folder.parts.items()}
    if "all" in counts:
        split_by_fraction(counts["all"], spec, src)  # refuses fewer than 2 images
        counts["test"] = n_test_of(counts["all"], spec["test_fraction"])
        counts["train"] = counts["all"] - counts["test"]
    n_classes = {"binary": 2, "regression": 0}.get(task, len(folder.classes))
    return Layout(counts["train"], counts.get("val", 0), counts["test"], (IMAGE_MODES[mode], height, width),
                  "uint8", n_classes)


def layout(src: Source, spec: dict, task: str | None = None) -> Layout:
    """A local source's counts (after the test_fraction split), sample shape, stored x dtype and
    classes, read from headers, listings and the labels alone where the format allows (a .pt file
    is memory-mapped). task None: classes from integer labels or class names."""
    if src.format == "npz":
        return _npz_layout(src, task)
    if src.format == "pt":
        return _pt_layout(src, task)
    if src.format == "csv":
        return _csv_layout(src, spec, task)
    return _image_layout(src, spec, task)


def describe(text: str, spec: dict, task: str | None = None, who: str | None = None) -> registry.Dataset:
    """A local source as a registry entry, for the planner: counts, shape and classes from `layout`.
    Its train_samples(spec) is the training count a run sees: val_size is held out of training
    unless the source has its own validation split, then train_size caps it."""
    src = parse(text, who)
    lay = layout(src, spec, task)
    return registry.Dataset(text, f"local {src.format} {src.path}", lay.n_train, lay.n_test, lay.shape,
                            lay.n_classes, "local", val_from_train=lay.n_val == 0)


def content_sha256(src: Source) -> str:
    """A file's sha256; for an image folder, the sha256 of its image files' sorted
    '<relative path>\\t<sha256>\\n' lines."""
    if src.format != "image_folder":
        return sha256_cached(src.path)
    files = sorted(rel for part in scan_images(src).parts.values() for rel, _ in part)
    lines = "".join(f"{rel}\t{sha256_cached(os.path.join(src.path, rel))}\n" for rel in files)
    return hashlib.sha256(lines.encode()).hexdigest()


def data_source(text: str, spec: dict, who: str | None = None) -> dict:
    """Where a run's local data came from (run.json provenance `data_source`): kind `local`, the
    format, the absolute path, its sha256 (content_sha256), the `data` text and data_seed; a CSV's
    label column; test_fraction for a source without a test split. Synthetic runs: kind
    `synthetic` and the generator instead of the sha256."""
    src = parse(text, who)
    out = {"kind": "local", "format": src.format, "path": src.path, "data": text, "data_seed": spec["data_seed"]}
    if spec["synthetic"]:
        return {**out, "kind": "synthetic", "generator": "sweepbench.data.datasets.synthetic_local"}
    if src.format == "csv":
        out["label_column"] = src.label
    if src.format == "csv" or (src.format == "image_folder" and "all" in scan_images(src).parts):
        out["test_fraction"] = spec["test_fraction"]
    return {**out, "sha256": content_sha256(src)}
