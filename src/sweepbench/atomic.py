"""Atomic writes: a file or a folder appears complete, or not at all.

`write_file` writes to a temporary sibling and renames it into place. `TempFolder` reserves
a temporary sibling folder, is filled, and is renamed into place by `commit`. A failure
(read-only folder, full disk) is a one-line SweepbenchError naming the path, and leaves no
temporary file behind. `refuse_foreign` guards every output that replaces a folder: it replaces
only files it recognises as its own, and refuses a folder holding anything else, untouched.
`write_own` guards every output that writes named files into a folder it shares with others
(the report's index.html, the tables, check.csv): it records what it wrote, with each file's
sha256, in the folder's WRITTEN list, and replaces only a file listed there with its content.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile

from sweepbench import SweepbenchError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()  # tempfile makes private files (0600) and folders (0700); results get the usual modes


def _usual_mode(chmod) -> None:
    """Give a new file or folder the umask's mode; a filesystem that refuses chmod keeps its own."""
    try:
        chmod()
    except OSError:
        pass


def cannot_write(path: str, err: OSError) -> SweepbenchError:
    """The one-line error of a failed write; names the file that stands where a folder is needed
    (the OS says "File exists" or "Not a directory" then)."""
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent) and os.path.dirname(parent) != parent:
        parent = os.path.dirname(parent)
    if os.path.exists(parent) and not os.path.isdir(parent):
        return SweepbenchError(f"cannot write {path}: {parent} is a file, not a folder; allowed: a path in a "
                               "folder (or a new one)")
    return SweepbenchError(f"cannot write {path}: {err.strerror or err}; allowed: a path in a writable folder "
                           "with free space")


def make_folder(path: str) -> None:
    """os.makedirs(path, exist_ok=True), failing as one line (cannot_write) instead of a traceback."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise cannot_write(path, err) from None


def write_file(path: str, data: str | bytes) -> None:
    """Write `data` to `path` atomically (temporary sibling + rename), creating its folder."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.tmp-", dir=folder)
        _usual_mode(lambda: os.fchmod(fd, 0o666 & ~UMASK))
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        raise cannot_write(path, err) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def save_with(path: str, save) -> None:
    """Atomic write through a writer function `save(tmp_path)` (e.g. torch.save, DataFrame.to_csv)."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        os.makedirs(folder, exist_ok=True)
        save(tmp)
        os.replace(tmp, path)
    except OSError as err:
        raise cannot_write(path, err) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class TempFolder:
    """A temporary sibling folder of `dest`, reserved up front (so an unwritable destination
    fails before any work), filled by the caller, then renamed to `dest` by `commit`."""

    def __init__(self, dest: str):
        self.dest = os.path.abspath(dest)
        parent = os.path.dirname(self.dest)
        try:
            os.makedirs(parent, exist_ok=True)
            self.path = tempfile.mkdtemp(prefix=f".{os.path.basename(self.dest)}.tmp-", dir=parent)
            _usual_mode(lambda: os.chmod(self.path, 0o777 & ~UMASK))
        except OSError as err:
            raise SweepbenchError(f"cannot write output folder {dest!r}: {err.strerror}; "
                                  "allowed: a path in a writable folder") from None

    def commit(self) -> None:
        """Put the filled folder at `dest`. An existing `dest` is moved aside first and removed
        after the rename (the caller decides beforehand whether it may be replaced)."""
        old = None
        try:
            if os.path.lexists(self.dest):
                old = f"{self.path}.old"
                os.replace(self.dest, old)
            os.replace(self.path, self.dest)
        except OSError as err:
            if old and not os.path.lexists(self.dest):
                os.replace(old, self.dest)  # put the previous folder back
            self.discard()
            raise cannot_write(self.dest, err) from None
        if old:
            shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def foreign_files(folder: str, owned, most: int = 4) -> list[str]:
    """Up to `most` entries under `folder` (paths relative to it, sorted) that `owned(relative path)`
    does not recognise as written by the output that replaces the folder: files it does not own,
    links, and folders that hold nothing it owns; [] when the folder is absent or empty."""
    if not os.path.isdir(folder):
        return []
    found = []
    for parent, dirs, files in os.walk(folder):
        rel = os.path.relpath(parent, folder)
        names = [os.path.normpath(os.path.join(rel, n)).replace(os.sep, "/") for n in files]
        found += [n for n, f in zip(names, files) if os.path.islink(os.path.join(parent, f)) or not owned(n)]
        links = [d for d in dirs if os.path.islink(os.path.join(parent, d))]
        found += [os.path.normpath(os.path.join(rel, d)).replace(os.sep, "/") + "/" for d in links]
        if parent != folder and not dirs and not files:
            found.append(rel.replace(os.sep, "/") + "/")  # an empty folder: nothing of the output's
        if len(found) >= most:
            break
    return sorted(found)[:most]


def refuse_foreign(folder: str, owned, what: str) -> None:
    """A one-line SweepbenchError, before anything is written or deleted, when `folder` is a file or
    holds files `owned` does not recognise (a user's notes beside a baseline, their own folder
    named as an output): an output replaces only what it wrote itself."""
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise SweepbenchError(f"bad {what} {folder!r}: it is an existing file; allowed: a folder")
    foreign = foreign_files(folder, owned)
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise SweepbenchError(f"bad {what} {folder!r}: it holds files sweepbench did not write ({shown}), left "
                              "untouched; allowed: a new folder, an empty one, or one that holds only what "
                              "sweepbench wrote there")


WRITTEN = ".sweepbench-written.json"  # in an output folder: {"kind": output, "files": {relative path: [sha256, ...]}}
SHARED = "files"  # the kind of write_own's lists: named files in a folder shared with others (tables, report)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str) -> str:
    """A file's sha256 (hex), read in 1 MiB blocks: every digest of a file sweepbench records."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_cached(path: str) -> str:
    """sha256_file, remembered per path, size and modification time (a file read by many runs)."""
    stat = os.stat(path)
    return _sha256_remembered(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _sha256_remembered(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def written_kind(folder: str) -> str | None:
    """The output that wrote `folder`'s WRITTEN list (its "kind": "run record", "baseline", SHARED, ...);
    None when the list names none (an older sweepbench's) or cannot be read."""
    try:
        with open(os.path.join(folder, WRITTEN)) as f:
            kind = json.load(f).get("kind")
    except (OSError, ValueError, AttributeError):
        return None
    return kind if isinstance(kind, str) else None


def written(folder: str) -> dict[str, list[str]]:
    """The files sweepbench recorded writing in `folder` (its WRITTEN list): {relative path: the
    sha256 sums it may hold}; {} when there is no list or it cannot be read (then nothing is
    recognised, so an output refuses the files rather than replace them)."""
    try:
        with open(os.path.join(folder, WRITTEN)) as f:
            files = json.load(f).get("files")
    except (OSError, ValueError, AttributeError):
        return {}
    if not isinstance(files, dict):
        return {}
    return {k: [d for d in v if isinstance(d, str)] for k, v in files.items() if isinstance(v, list)}


def wrote(folder: str, relative_path: str, listed: dict | None = None) -> bool:
    """Whether `folder/relative_path` is a plain file sweepbench wrote there and nobody changed since:
    listed in the folder's WRITTEN list (or `listed`) with this content's sha256."""
    listed = written(folder) if listed is None else listed
    path = os.path.join(folder, relative_path)
    if relative_path not in listed or os.path.islink(path) or not os.path.isfile(path):
        return False
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest() in listed[relative_path]


def list_written(folder: str, names, kind: str | None = None) -> None:
    """Write the WRITTEN list of a folder sweepbench just filled (a TempFolder before its commit):
    `names`, its files, each with its sha256, and `kind`, the output that wrote them (owned_in)."""
    _save_written(folder, {n: [sha256_file(os.path.join(folder, n))] for n in names}, kind)


def owned_in(folder: str, legacy=None, changed_ok: bool = False, kind: str | None = None):
    """The test of a file (path relative to `folder`) being sweepbench's, for refuse_foreign over a
    folder an output replaces as a whole (a run record, a baseline): its WRITTEN list names it with
    this content (with `changed_ok`, by name alone: a record damaged since is still the output's to
    replace), or it is the list. A folder without a list, from a sweepbench before it, is recognised
    only by the names `legacy(folder)` returns: those of that output's files, when the folder has
    its shape (none otherwise). A list is that output's only when it names the same `kind`: another
    output's folder (a baseline named as a run's --out, the tables as a baseline) is never replaced;
    a list naming no kind (an older sweepbench's) names that output's files only in its shape (legacy)."""
    if not os.path.lexists(os.path.join(folder, WRITTEN)):
        names = set(legacy(folder)) if legacy is not None and os.path.isdir(folder) else set()
        return lambda rel: rel in names
    listed, listed_kind = written(folder), written_kind(folder)
    if listed_kind != kind and listed_kind is not None:
        return lambda rel: False  # another output's folder
    mine = (lambda rel: rel in listed) if changed_ok else (lambda rel: wrote(folder, rel, listed))
    if listed_kind is None and kind is not None:  # an older list: its files, in that output's shape
        names = set(legacy(folder)) if legacy is not None else set()
        return lambda rel: rel == WRITTEN or (rel in names and mine(rel))
    return lambda rel: rel == WRITTEN or mine(rel)


def refuse_overwrite(folder: str, names, what: str) -> None:
    """A one-line SweepbenchError, before anything is written, when `folder` is a file or one of the
    files `names` to be written there exists and is not one sweepbench wrote (`wrote`): a user's own
    index.html or runs.csv, or an output edited by hand. Other files in the folder are left alone."""
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise SweepbenchError(f"bad {what} {folder!r}: it is an existing file; allowed: a folder")
    listed = written(folder)
    foreign = [n for n in names if os.path.lexists(os.path.join(folder, n)) and not wrote(folder, n, listed)]
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise SweepbenchError(f"bad {what} {folder!r}: it holds {shown}, which sweepbench did not write there (or "
                              f"which changed since), left untouched; allowed: a new folder, or one where "
                              f"sweepbench wrote these files (move yours away)")


def refuse_overwrites(paths, what: str) -> None:
    """refuse_overwrite for files in several folders (`paths`, each a file to be written): the
    workflow's check, when it starts, of every file its jobs write into folders a user may share
    (Snakemake deletes a job's outputs before the job runs, so the job's own check comes too late)."""
    by_folder: dict[str, list[str]] = {}
    for path in paths:
        by_folder.setdefault(os.path.dirname(path) or ".", []).append(os.path.basename(path))
    for folder, names in by_folder.items():
        refuse_overwrite(folder, names, what)


def _save_written(folder: str, files: dict[str, list[str]], kind: str | None = SHARED) -> None:
    kind_field = {} if kind is None else {"kind": kind}
    write_file(os.path.join(folder, WRITTEN), json.dumps({**kind_field, "files": dict(sorted(files.items()))},
                                                         indent=1) + "\n")


def write_own(folder: str, files: dict, what: str) -> list[str]:
    """Write `files` ({relative path: str or bytes}) into `folder`, each atomically, after
    refuse_overwrite, and record them in its WRITTEN list: the list accepts both the old and the
    new content while the files are written (a write cut short leaves nothing unrecognised), then
    only the new. Returns the paths written."""
    refuse_overwrite(folder, files, what)
    data = {n: d.encode() if isinstance(d, str) else d for n, d in files.items()}
    listed = written(folder)
    new = {n: _digest(d) for n, d in data.items()}
    _save_written(folder, {**listed, **{n: sorted(set(listed.get(n, [])) | {new[n]}) for n in new}})
    paths = []
    for name, content in data.items():
        paths.append(os.path.join(folder, name))
        write_file(paths[-1], content)
    _save_written(folder, {**listed, **{n: [new[n]] for n in new}})
    return paths


def remove_own(folder: str, names, what: str) -> list[str]:
    """Remove those of `names` in `folder` that sweepbench wrote there (after refuse_overwrite: one it
    did not write is refused, untouched) and drop them from its WRITTEN list: an output that no
    longer makes a file (report --no-pdf) leaves no stale one of its own beside the new ones.
    Returns the paths removed."""
    refuse_overwrite(folder, names, what)
    listed = written(folder)
    gone = [n for n in names if os.path.lexists(os.path.join(folder, n))]
    for name in gone:
        try:
            os.remove(os.path.join(folder, name))
        except OSError as err:
            raise cannot_write(os.path.join(folder, name), err) from None
    if any(n in listed for n in names):
        _save_written(folder, {n: d for n, d in listed.items() if n not in names})
    return [os.path.join(folder, n) for n in gone]

