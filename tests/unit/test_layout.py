"""The package's layout by pipeline stage (CONTRIBUTING.md, "Code map"): which package may import
which, where torch may be imported, and which code each workflow step's hash covers."""

import os
import subprocess
import sys

import pytest

from sweepbench import provenance

STAGES = ("data", "plan", "train", "aggregate", "check", "report")
VOCABULARY = ("__init__", "__main__", "atomic", "cli", "envlock", "provenance", "record", "rules", "slurm", "spec",
              "status", "workloads")
# What each package may import: "top" is the shared vocabulary at the top of src/sweepbench/.
ALLOWED = {
    "top": {"top"},
    "data": {"top", "data"},
    "plan": {"top", "data", "plan"},
    "train": {"top", "data", "plan", "train"},
    "aggregate": {"top", "plan", "aggregate"},
    "check": {"top", "plan", "aggregate", "check"},  # the check reads runs.csv through its declared column kinds
    "report": {"top", "data", "plan", "aggregate", "check", "report"},
}
# The vocabulary's edges into the stages, each for a reason.
VOCABULARY_EDGES = {
    "cli.py": {f"sweepbench.{s}" for s in STAGES},  # the command: each subcommand imports its stage, lazily
    "spec.py": {"sweepbench.train.optimizers",  # the `optimizer` choices are the optimizer table (no torch at import)
                "sweepbench.data.registry"},  # test_fraction acts on no built-in dataset (no torch at import)
    "status.py": {"sweepbench.plan.planner",  # `sweepbench status` reads plan.json through its owner
                  "sweepbench.plan.batch_cycle",  # and knows which spec keys a job derives when it trains
                  "sweepbench.plan.user_inputs",  # and which user inputs a run has now
                  "sweepbench.train.job"},  # and asks the job's rule whether it would train a record again
}
TORCH_PACKAGES = ("data", "train")


def package_of(rel_path: str) -> str:
    head = rel_path.split(os.sep)[0]
    return head if head in STAGES else "top"


# Data of the package, not modules: the Snakemake workflow (its scripts run inside Snakemake's jobs).
DATA_FOLDERS = ("workflow",)


def modules() -> list[str]:
    """Every .py module of the package, relative to src/sweepbench (not the data folders' scripts)."""
    return [f for f in provenance.package_files("") if f.endswith(".py") and f.split(os.sep)[0] not in DATA_FOLDERS]


def test_the_workflow_is_package_data_and_its_scripts_only_call_the_stages():
    """workflow/ ships in the package beside the modules but is no module (no __init__.py anywhere in
    it); a workflow script is a thin adapter that imports stage code, as the CLI does, and is hashed
    into no step's code (a rule's params carry the hashes of the code it runs)."""
    files = provenance.package_files("workflow")
    assert "workflow/Snakefile" in files and not any(f.endswith("__init__.py") for f in files)
    scripts = [f for f in files if f.endswith(".py")]
    assert scripts, "no workflow scripts found"
    for path in scripts:
        assert all(m.split(".")[1] in STAGES for m in provenance.imports_of(path) if m != "sweepbench"), path
    assert not any(f.startswith("workflow/") for g in provenance.STEP_PACKAGES for f in provenance.code_group(g))


def test_every_module_is_in_a_stage_package_or_the_vocabulary():
    top = {f[:-3] for f in modules() if os.sep not in f}
    assert top == set(VOCABULARY), "a new top-level module: put it in a stage package, or declare it vocabulary"
    assert {f.split(os.sep)[0] for f in modules() if os.sep in f} == set(STAGES)


def test_stage_packages_are_empty_so_importing_one_imports_nothing():
    for stage in STAGES:
        assert open(os.path.join(provenance.PACKAGE_DIR, stage, "__init__.py")).read() == ""


@pytest.mark.parametrize("path", modules())
def test_imports_go_only_in_the_allowed_directions(path):
    package = package_of(path)
    for module in provenance.imports_of(path):
        parts = module.split(".")
        target = parts[1] if len(parts) > 1 and parts[1] in STAGES else "top"
        if target in ALLOWED[package]:
            continue
        allowed = VOCABULARY_EDGES.get(path, set())
        assert any(module == e or module.startswith(e + ".") or e.startswith(module + ".") for e in allowed), \
            f"{path} ({package}) imports {module} ({target}); allowed: {sorted(ALLOWED[package])}"


@pytest.mark.parametrize("path", modules())
def test_torch_is_imported_only_in_data_and_train(path):
    import ast

    tree = ast.parse(open(os.path.join(provenance.PACKAGE_DIR, path)).read())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    uses_torch = any(n.split(".")[0] in ("torch", "torchvision") for n in names)
    assert not uses_torch or package_of(path) in TORCH_PACKAGES, f"{path} imports torch"


@pytest.mark.slow
def test_importing_every_module_outside_data_and_train_loads_no_torch():
    """Each workflow step that does not train is a process of its own; torch costs it 1-2 s. (The
    report test also renders a report in a fresh process and checks torch stayed out.)"""
    names = [f[:-3].replace(os.sep, ".").removesuffix(".__init__") for f in modules()
             if package_of(f) not in TORCH_PACKAGES]
    code = ("import sys, importlib; "
            + "; ".join(f"importlib.import_module('sweepbench{'.' + n if n != '__init__' else ''}')" for n in names)
            + "; print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_each_steps_code_hash_covers_its_packages_and_what_they_import():
    training, tables = provenance.code_group("training"), provenance.code_group("tables")
    report = provenance.code_group("report")
    assert {"train/engine.py", "data/datasets.py", "record.py", "rules.py", "spec.py"} <= set(training)
    assert {"aggregate/tables.py", "record.py", "rules.py"} <= set(tables)
    assert {"report/document.py", "report/templates/report.html.j2", "aggregate/statistics.py"} <= set(report)
    assert not any(f.startswith(("aggregate/", "check/", "report/")) or f == "cli.py" for f in training)
    assert "train/engine.py" not in tables and not any(f.startswith("report/") for f in tables)
    for group in provenance.STEP_PACKAGES:  # every file exists, and the hash is a stable 16-digit hex
        assert all(os.path.isfile(os.path.join(provenance.PACKAGE_DIR, f)) for f in provenance.code_group(group))
        assert len(provenance.code_version(group)) == 16
    assert len({provenance.code_version(g) for g in provenance.STEP_PACKAGES}) == 4
