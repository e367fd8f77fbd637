"""requirements.lock: the environment the tests run in is exactly the lock (CI runs them in the venv
`make setup` made from it), the lock is pyproject.toml's `.[test]` install and nothing else, the
workflow's conda env file says the same, and the lock's reading and comparing."""

import os

import pytest
from packaging.requirements import Requirement

from sweepbench import SweepbenchError, envlock

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOCK = os.path.join(ROOT, envlock.LOCK_NAME)
CONDA_ENV = os.path.join(ROOT, "src", "sweepbench", "workflow", "envs", "sweepbench.yaml")


def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def test_this_environment_has_exactly_the_locked_versions():
    assert envlock.lock_path() == LOCK, "the tests must run the clone's own sweepbench (PYTHONPATH=src or make setup)"
    digest, pins = envlock.read_lock()
    diff = envlock.differences(pins, envlock.installed())
    assert not diff, (f"this environment is not {envlock.LOCK_NAME} ({digest}): " + "; ".join(diff)
                      + " (make setup installs the lock; make lock re-makes it from pyproject.toml)")
    assert envlock.state() == {"file": envlock.LOCK_NAME, "sha256": digest, "matches": True, "differs": []}


def pyproject_requirements() -> list[Requirement]:
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]


def wanted(req: Requirement, extras: set[str]) -> bool:
    return req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras | {""})


def closure(roots: list[Requirement]) -> set[str]:
    """Every package the requirements pull in, at any depth, by the installed packages' metadata."""
    from importlib import metadata

    found, todo = set(), [(r, set()) for r in roots]
    while todo:
        req, _ = todo.pop()
        name = envlock.normalize(req.name)
        if (name, frozenset(req.extras)) in found:
            continue
        found.add((name, frozenset(req.extras)))
        for sub in map(Requirement, metadata.requires(req.name) or []):
            if wanted(sub, set(req.extras)):
                todo.append((sub, set()))
    return {name for name, _ in found}


def test_the_lock_satisfies_pyprojects_ranges_and_holds_their_closure_only():
    _, pins = envlock.read_lock(LOCK)
    roots = pyproject_requirements()
    for req in roots:
        assert envlock.normalize(req.name) in pins, f"{req.name} (pyproject.toml) is not in the lock: make lock"
        version = pins[envlock.normalize(req.name)][1]
        assert req.specifier.contains(version, prereleases=True), \
            f"lock has {req.name} {version}, pyproject.toml wants {req.specifier}: make lock"
    needed = closure(roots) - set(envlock.UNPINNED)
    assert needed == set(pins), (f"in the closure, not the lock: {sorted(needed - set(pins))}; "
                                 f"in the lock, not needed: {sorted(set(pins) - needed)} (make lock)")


def test_the_workflow_conda_env_is_the_lock():
    text = read(LOCK)
    python = envlock.lock_python(text)
    assert python is not None and read(CONDA_ENV) == envlock.conda_env_text(text, python), \
        f"{CONDA_ENV} is not generated from {envlock.LOCK_NAME}: make lock (or python -m sweepbench.envlock write)"


def test_the_setup_stamp_is_keyed_on_the_lock():
    makefile = read(os.path.join(ROOT, "Makefile"))
    assert "$(shell cat pyproject.toml $(LOCK) | cksum" in makefile
    assert "$(STAMP): pyproject.toml $(LOCK)" in makefile
    assert "pip install --quiet -r $(LOCK)" in makefile and "--no-deps -e ." in makefile


def test_parse_reads_pins_and_refuses_a_bad_line_or_a_package_twice():
    assert envlock.parse("# header\nPyYAML==6.0.4\n\ntyping_extensions==4.16.0\n") == {
        "pyyaml": ("PyYAML", "6.0.4"), "typing-extensions": ("typing_extensions", "4.16.0")}
    with pytest.raises(SweepbenchError, match=r"x.lock:2: bad line 'torch>=2.4'; allowed: name==version"):
        envlock.parse("numpy==2.4.6\ntorch>=2.4\n", "x.lock")
    with pytest.raises(SweepbenchError, match=r"x.lock:2: torch is pinned twice"):
        envlock.parse("Torch==2.14.1\ntorch==2.15.0\n", "x.lock")


def test_differences_name_the_package_and_both_versions():
    pins = envlock.parse("numpy==2.4.6\ntorch==2.14.1\nscipy==1.17.1\n")
    have = {"torch": ("torch", "2.15.0"), "scipy": ("scipy", "1.17.1"), "rich": ("rich", "14.0")}
    assert envlock.differences(pins, have) == ["torch 2.15.0 installed, lock 2.14.1", "numpy not installed, lock 2.4.6",
                                               "rich 14.0 installed, not in the lock"]
    assert envlock.differences(pins, {k: v for k, v in pins.items()}) == []


def test_state_outside_a_clone_is_none_and_a_drifted_one_says_so(monkeypatch, tmp_path):
    monkeypatch.setattr(envlock, "lock_path", lambda: None)
    envlock.state.cache_clear()
    try:
        assert envlock.state() is None and envlock.label(envlock.state()) == "not locked"
        lock = tmp_path / "requirements.lock"
        lock.write_text("torch==0.0.1\n")
        monkeypatch.setattr(envlock, "lock_path", lambda: str(lock))
        envlock.state.cache_clear()
        got = envlock.state()
        assert got["sha256"] == envlock.text_hash("torch==0.0.1\n") and got["matches"] is False
        n_installed = len(envlock.installed())
        assert got["differs"][0].startswith("torch ") and got["differs"][0].endswith(" installed, lock 0.0.1")
        assert len(got["differs"]) == 6 and got["differs"][5] == f"+{n_installed - 5} more"
        assert envlock.label(got) == f"{got['sha256']} (with changes)"
    finally:
        envlock.state.cache_clear()


def test_write_makes_the_lock_and_conda_file_atomically_from_this_environment(tmp_path):
    out, conda = tmp_path / "requirements.lock", tmp_path / "env.yaml"
    digest = envlock.write(str(out), str(conda))
    text = out.read_text()
    versions = lambda pins: {key: version for key, (_, version) in pins.items()}  # noqa: E731
    assert digest == envlock.text_hash(text) and versions(envlock.parse(text)) == versions(envlock.installed())
    assert "PyYAML==" in text and "typing_extensions==" in text  # names as the packages spell them (pip freeze)
    assert conda.read_text() == envlock.conda_env_text(text, envlock.lock_python(text))
    assert text == read(LOCK)  # the committed lock is what this (locked) environment writes


def test_write_refuses_a_file_make_lock_did_not_write(tmp_path, capsys):
    """`python -m sweepbench.envlock write --out mynotes.txt` (or `--conda myenv.yaml`) overwrote the
    user's file: only a file whose first line is the generated header is replaced."""
    notes, env = tmp_path / "mynotes.txt", tmp_path / "myenv.yaml"
    notes.write_text("my notes\n")
    env.write_text("name: myenv\n")
    out, conda = tmp_path / "requirements.lock", tmp_path / "env.yaml"
    for args, what, path in ((["--out", str(notes)], "--out", notes),
                             (["--out", str(out), "--conda", str(env)], "--conda", env)):
        assert envlock.main(["write", *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"bad {what} '{path}': it exists and is not a file `make lock` wrote" in err
    assert notes.read_text() == "my notes\n" and env.read_text() == "name: myenv\n" and not out.exists()
    assert envlock.main(["write", "--out", str(out), "--conda", str(conda)]) == 0
    assert envlock.main(["write", "--out", str(out), "--conda", str(conda)]) == 0      # its own: replaced
    (tmp_path / "dir").mkdir()
    assert envlock.main(["write", "--out", str(tmp_path / "dir")]) == 2


def test_a_lock_that_is_a_folder_is_named_not_taken_for_no_lock(tmp_path, monkeypatch, capsys):
    """`envlock diff` with requirements.lock a folder said "no requirements.lock ... (an installed package?)"."""
    (tmp_path / "requirements.lock").mkdir()
    monkeypatch.setattr(envlock, "repo_root", lambda: str(tmp_path))
    envlock.state.cache_clear()
    try:
        assert envlock.main(["diff"]) == 2
    finally:
        envlock.state.cache_clear()
    out, err = capsys.readouterr()
    assert out == "" and err == (f"sweepbench.envlock: {tmp_path}/requirements.lock: cannot be read (Is a directory); "
                                 "allowed: a readable file\n")
