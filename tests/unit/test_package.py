"""What a built wheel holds: every file `sweepbench run` needs to run the workflow from any folder
(the Snakefile, rules, scripts, schema, conda env, Snakemake report captions, workflow profile)
and the data files the stages read (config schema, report templates)."""

import os
import zipfile

from sweepbench import provenance


def source_files(folder: str) -> set[str]:
    """The files under a folder of the package, as the wheel names them (sweepbench/<path>)."""
    return {"sweepbench/" + f.replace(os.sep, "/") for f in provenance.package_files(folder)}


def test_the_wheel_holds_the_workflow_and_the_stages_data_files(built_wheel):
    with zipfile.ZipFile(built_wheel) as wheel:
        names = set(wheel.namelist())
        entry_points = next(wheel.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    workflow = source_files("workflow")  # every file, so a new one must be declared in pyproject's package-data
    assert {f"sweepbench/workflow/{f}" for f in (
        "Snakefile", "rules/common.smk", "rules/data.smk", "rules/train.smk", "rules/aggregate.smk", "rules/report.smk",
        "rules/check.smk", "scripts/write_plan.py", "schemas/config.schema.yaml", "envs/sweepbench.yaml",
        "report/workflow.rst", "report/figure.rst", "profiles/default/config.yaml")} <= workflow
    assert workflow <= names, sorted(workflow - names)
    data = source_files("report/templates") | source_files("plan/schemas")
    assert "sweepbench/report/templates/report.html.j2" in data and data <= names, sorted(data - names)
    assert {"sweepbench/__main__.py", "sweepbench/cli.py"} <= names
    assert "sweepbench = sweepbench.cli:main" in entry_points
    assert not any("__pycache__" in n or n.startswith(("tests/", "workflow/", "config/")) for n in names)
