"""What a plain `pip install` of sweepbench (no extras) brings must cover what the documented commands
import: `snakemake --report` (README) imports pygments, which snakemake declares only in its `reports`
extra, so a plain install without it fails with "Python package pygments must be installed to create
reports" (it came only through pytest, in our `test` extra). Checked from the installed distributions'
metadata: the closure of pyproject's main dependencies (extras followed only where a requirement
names them) against the third-party modules that Snakemake's report code imports."""

import ast
import importlib.metadata as md
import os
import sys

import tomllib
from packaging.requirements import Requirement

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main_requirements() -> list[Requirement]:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return [Requirement(r) for r in tomllib.load(f)["project"]["dependencies"]]


def closure(requirements: list[Requirement]) -> set[str]:
    """Canonical names of every distribution that installing `requirements` installs (from the
    installed distributions' own Requires-Dist, markers evaluated with the extras asked for)."""
    seen, todo = set(), [(r, frozenset(r.extras)) for r in requirements]
    while todo:
        req, extras = todo.pop()
        name = canonical(req.name)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for line in md.requires(req.name) or []:
            sub = Requirement(line)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras or {""}):
                todo.append((sub, frozenset(sub.extras)))
    return {name for name, _ in seen}


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def report_imports() -> set[str]:
    """Top-level third-party modules that snakemake.report's source imports (snakemake's own left out)."""
    import snakemake.report

    modules = set()
    for folder, _, files in os.walk(os.path.dirname(snakemake.report.__file__)):
        for name in (f for f in files if f.endswith(".py")):
            with open(os.path.join(folder, name)) as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names and not m.startswith("snakemake")}


def test_a_plain_install_brings_what_snakemakes_report_imports():
    installed = closure(main_requirements())
    assert "snakemake" in installed and "jinja2" in installed
    providers = md.packages_distributions()
    imports = report_imports()
    assert {"pygments", "jinja2"} <= imports          # the two the report says "must be installed"
    missing = {m: providers.get(m) for m in imports if not {canonical(d) for d in providers.get(m, [])} & installed}
    assert missing == {}, f"snakemake --report imports these, which a plain `pip install sweepbench` lacks: {missing}"


def test_the_closure_follows_only_the_extras_asked_for():
    """The check above can fail: without the `reports` extra, snakemake's closure has no pygments."""
    assert "pygments" not in closure([Requirement("snakemake>=9.0")])
    assert "pygments" in closure([Requirement("snakemake[reports]>=9.0")])
