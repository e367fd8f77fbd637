"""The pinned environment: requirements.lock at the clone's root, its hash, and how the running
environment differs from it. Standard library only (no torch), so provenance, the check and the
tests can all use it cheaply.

requirements.lock holds one `name==version` line per package of the `.[test]` install (sweepbench
itself and pip/setuptools/wheel excluded), sorted, after `#` header lines. `make setup` installs
exactly it (`pip install -r requirements.lock`, then sweepbench with `--no-deps`); `make lock`
re-makes it from pyproject.toml's ranges in a throw-away venv (`python -m sweepbench.envlock write`,
run by that venv's python). Its hash is the sha256 of the file (first 12 hex digits). Outside a
clone (an installed wheel) there is no lock: every function here says so with None.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pathlib
import re
import sys

from sweepbench import SweepbenchError

LOCK_NAME = "requirements.lock"
HASH_LENGTH = 12
NOT_LOCKED = "not locked"
# pip freeze leaves these out (the installer's own tools); so do the lock and the comparison
UNPINNED = ("pip", "setuptools", "wheel", "distribute", "sweepbench")
_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)$")


def normalize(name: str) -> str:
    """A package's canonical name (PEP 503): 'PyYAML' -> 'pyyaml', 'typing_extensions' -> 'typing-extensions'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def repo_root() -> str | None:
    """The clone's root when the package runs from one (src/sweepbench/ with pyproject.toml two levels
    up), else None (an installed package)."""
    src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    root = os.path.dirname(src)
    if os.path.basename(src) == "src" and os.path.isfile(os.path.join(root, "pyproject.toml")):
        return root
    return None


def lock_path() -> str | None:
    """The clone's requirements.lock, or None (no clone, or a clone without one). Anything at that
    path counts (a folder is then named as unreadable, not taken for an installed package's lack)."""
    root = repo_root()
    path = os.path.join(root, LOCK_NAME) if root else None
    return path if path and os.path.lexists(path) else None


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]


def parse(text: str, path: str = LOCK_NAME) -> dict[str, tuple[str, str]]:
    """canonical name -> (name as written, version) of a lock's lines; a line that is not `name==version`
    (or a name twice) is a one-line error naming it."""
    pins: dict[str, tuple[str, str]] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            raise SweepbenchError(f"{path}:{number}: bad line {line!r}; allowed: name==version (re-make it: make lock)")
        key = normalize(match[1])
        if key in pins:
            raise SweepbenchError(f"{path}:{number}: {match[1]} is pinned twice; allowed: one line per package")
        pins[key] = (match[1], match[2])
    return pins


@functools.lru_cache(maxsize=4)
def _read(path: str, mtime_ns: int) -> tuple[str, dict]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as err:
        raise SweepbenchError(f"{path}: not UTF-8 text (byte {err.start}); allowed: name==version lines (re-make "
                              "it: make lock)") from None
    except OSError as err:
        raise SweepbenchError(f"{path}: cannot be read ({err.strerror}); allowed: a readable file") from None
    return text_hash(text), parse(text, path)


def read_lock(path: str | None = None) -> tuple[str, dict] | None:
    """(hash, pins) of a lock file (default: the clone's), or None when there is none."""
    path = path or lock_path()
    if not path or not os.path.lexists(path):
        return None
    return _read(path, os.stat(path).st_mtime_ns)


def installed() -> dict[str, tuple[str, str]]:
    """canonical name -> (name, version) of the distributions the running python sees (the first on
    sys.path wins, as for imports), less UNPINNED. Read from the metadata folders' names
    (name-version.dist-info), under a millisecond; a folder whose name lacks the version is read."""
    found: dict[str, tuple[str, str]] = {}
    for folder in sys.path:
        try:
            entries = sorted(os.listdir(folder or "."))
        except OSError:
            continue
        for entry in entries:
            if entry.endswith((".dist-info", ".egg-info")) and normalize(entry.split("-")[0].rsplit(".", 1)[0]) \
                    not in UNPINNED:
                name, version = _name_version(os.path.join(folder or ".", entry))
                if name and normalize(name) not in UNPINNED:
                    found.setdefault(normalize(name), (name, version))
    return found


def _name_version(path: str) -> tuple[str | None, str | None]:
    parts = os.path.basename(path).rsplit(".", 1)[0].split("-")
    if len(parts) >= 2:
        return parts[0], parts[1]
    from importlib import metadata

    dist = metadata.PathDistribution(pathlib.Path(path))
    return dist.metadata["Name"], dist.version


def display_names() -> dict[str, str]:
    """canonical name -> the name as the package spells it (its metadata's Name: 'PyYAML'), for the lock."""
    from importlib import metadata

    return {normalize(d.metadata["Name"]): d.metadata["Name"] for d in metadata.distributions() if d.metadata["Name"]}


def same_version(a: str, b: str) -> bool:
    """Equal versions, also when spelled apart ('1.0-rc1' and '1.0rc1': PEP 440's normal form, where
    packaging is installed)."""
    if a == b:
        return True
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:
        return False
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return False


def differences(pins: dict, have: dict) -> list[str]:
    """Each package whose installed version is not the lock's, in words: other versions first, then
    missing packages, then unlisted ones, each by name: 'torch 2.15.0 installed, lock 2.14.1',
    'numpy not installed, lock 2.4.6', 'rich 14.0 installed, not in the lock'."""
    out = []
    for key in sorted(set(pins) | set(have)):
        if key not in have:
            out.append((1, f"{pins[key][0]} not installed, lock {pins[key][1]}"))
        elif key not in pins:
            out.append((2, f"{have[key][0]} {have[key][1]} installed, not in the lock"))
        elif not same_version(have[key][1], pins[key][1]):
            out.append((0, f"{pins[key][0]} {have[key][1]} installed, lock {pins[key][1]}"))
    return [words for _, words in sorted(out, key=lambda kw: kw[0])]


@functools.lru_cache(maxsize=1)
def state() -> dict | None:
    """run.json provenance `env_lock`: {"sha256": the lock's hash, "matches": whether this python's packages
    are exactly the lock's, "differs": the first 5 differences, and '+N more'}; None outside a clone or
    without a lock."""
    lock = read_lock()
    if lock is None:
        return None
    digest, pins = lock
    diff = differences(pins, installed())
    shown = diff[:5] + ([f"+{len(diff) - 5} more"] if len(diff) > 5 else [])
    return {"file": LOCK_NAME, "sha256": digest, "matches": not diff, "differs": shown}


def is_hash(text: str) -> bool:
    """A lock's hash alone (12 hex digits), not 'not locked' nor '<hash> (with changes)'."""
    return bool(re.fullmatch(f"[0-9a-f]{{{HASH_LENGTH}}}", text))


def label(lock: dict | None) -> str:
    """One environment's lock in a few words: 'a1b2c3d4e5f6', 'a1b2c3d4e5f6 (with changes)', 'not locked'."""
    if not isinstance(lock, dict) or not lock.get("sha256"):
        return NOT_LOCKED
    return lock["sha256"] + ("" if lock.get("matches") else " (with changes)")


# ---------------------------------------------------------------- writing the lock (make lock)

HEADER = """# The exact versions `make setup` installs: sweepbench's `.[test]` install (pyproject.toml's ranges),
# resolved by `make lock` in a throw-away venv ({python}, {platform}). Generated: do not edit; re-make it
# with `make lock` (CONTRIBUTING.md). The loose ranges stay in pyproject.toml for other environments.
"""


def _by_name(name_version: tuple[str, str]) -> str:
    return name_version[0].lower()  # pip freeze's order


def lock_text(have: dict, python: str, platform: str) -> str:
    lines = [f"{name}=={version}" for name, version in sorted(have.values(), key=_by_name)]
    return HEADER.format(python=python, platform=platform) + "\n".join(lines) + "\n"


CONDA_HEADER = """# The environment every sweepbench rule runs in (`snakemake --sdm conda`): the pinned versions of
# requirements.lock, which this file is generated from (`make lock`; do not edit: tests/unit/test_envlock.py
# fails when the two disagree). It installs the package from the clone this file is in (../../../.. from
# src/sweepbench/workflow/envs/ is the repository root), so `sweepbench ...` commands resolve inside the
# env. Only from a clone: an installed package has no source tree here to install.
channels:
  - conda-forge
  - nodefaults
dependencies:
  - python={python}
  - pip
  - pip:
"""


def conda_env_text(lock: str, python: str) -> str:
    """workflow/envs/sweepbench.yaml from the lock's text: the same pins, then sweepbench from the clone."""
    pins = [f"      - {name}=={version}\n" for name, version in sorted(parse(lock).values(), key=_by_name)]
    major_minor = ".".join(python.split(".")[:2])
    return CONDA_HEADER.format(python=major_minor) + "".join(pins) + "      - -e ../../../..\n"


def lock_python(lock: str) -> str | None:
    """The python version a lock was made with (its header's 'python X.Y.Z'), or None."""
    match = re.search(r"\(python (\d+\.\d+)[.\d]*,", lock)
    return match[1] if match else None


def refuse_foreign(path: str, header: str, what: str) -> None:
    """A one-line SweepbenchError, before anything is written, when `path` exists and is not a file
    `make lock` wrote: one whose first line is its generated `header`'s (a user's mynotes.txt or
    myenv.yaml named as --out/--conda). The committed lock has no WRITTEN list beside it, so the
    generated header is what tells it (as prepare's sidecar tells a tensor file)."""
    if not os.path.lexists(path):
        return
    first = b""
    if os.path.isfile(path) and not os.path.islink(path):
        try:
            with open(path, "rb") as f:
                first = f.readline()
        except OSError as err:
            raise SweepbenchError(f"bad {what} {path!r}: cannot be read ({err.strerror})") from None
    if first.rstrip(b"\n") != header.splitlines()[0].encode():
        raise SweepbenchError(f"bad {what} {path!r}: it exists and is not a file `make lock` wrote (its first line "
                              "is not the generated header), left untouched; allowed: a new path, or one make lock "
                              "wrote")


def write(lock_out: str, conda_out: str | None) -> str:
    """Write the running python's packages as the lock (and the conda env file from it), atomically;
    an existing file at either path is replaced only when make lock wrote it (refuse_foreign)."""
    import platform as _platform

    from sweepbench.atomic import write_file

    refuse_foreign(lock_out, HEADER, "--out")
    if conda_out:
        refuse_foreign(conda_out, CONDA_HEADER, "--conda")

    spelled = display_names()
    have = {key: (spelled.get(key, name), version) for key, (name, version) in installed().items()}
    if "torch" not in have:
        raise SweepbenchError("refusing to write a lock without torch: run it with the python of a venv that has "
                              "sweepbench's `.[test]` installed (make lock does)")
    text = lock_text(have, f"python {_platform.python_version()}", f"{sys.platform} {_platform.machine()}")
    parse(text)
    write_file(lock_out, text)
    if conda_out:
        write_file(conda_out, conda_env_text(text, _platform.python_version()))
    return text_hash(text)


def remove_unlocked(pins: dict) -> None:
    """pip uninstall what this python has that the lock does not list (left by an older lock)."""
    import subprocess

    extra = sorted(name for key, (name, _) in installed().items() if key not in pins)
    if extra:
        print(f"removing {len(extra)} package(s) the lock does not list: {', '.join(extra)}")
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "--yes", *extra], check=True)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m sweepbench.envlock", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write", help="write this python's packages as the lock (make lock runs it)")
    w.add_argument("--out", default=LOCK_NAME)
    w.add_argument("--conda", default=None, help="also write the workflow's conda env file from the lock")
    sub.add_parser("diff", help="how this python's packages differ from the clone's lock (exit 1 when they do)")
    sub.add_parser("sync", help="uninstall the packages the lock does not list, then diff (make setup runs it)")
    args = p.parse_args(argv)
    try:
        if args.cmd == "write":
            print(f"wrote {args.out} (sha256 {write(args.out, args.conda)})")
            return 0
        lock = read_lock()
        if lock is None:
            print(f"{NOT_LOCKED}: no {LOCK_NAME} beside this sweepbench's source (an installed package?)")
            return 1
        if args.cmd == "sync":
            remove_unlocked(lock[1])
        diff = differences(lock[1], installed())
        print("\n".join(diff) if diff else f"the environment matches {LOCK_NAME} ({lock[0]})")
        return 1 if diff else 0
    except SweepbenchError as err:
        print(f"sweepbench.envlock: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
