"""`sweepbench run [snakemake options...]`: Snakemake on the packaged workflow in the current folder
(tests/integration/test_installed.py runs it end to end from an installed wheel)."""

import os
import sys

import pytest

from sweepbench import SweepbenchError
from sweepbench.cli import SNAKEFILE, main, snakemake_argv

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", SNAKEFILE]
NO_CONFIG = "no config.yaml here ({}); allowed: sweepbench init to write one, or --configfile FILE"


def test_the_packaged_snakefile_is_there():
    assert os.path.isfile(SNAKEFILE) and os.path.basename(os.path.dirname(SNAKEFILE)) == "workflow"


def test_the_folders_config_yaml_is_the_config_and_every_argument_goes_to_snakemake(tmp_path):
    (tmp_path / "config.yaml").write_text("studies: {}\n")
    args = ["--cores", "2", "-n", "--config", "smoke=true", "results/tables/runs.csv"]
    assert snakemake_argv(args, str(tmp_path)) == SNAKEMAKE + [
        "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml"), *args]


@pytest.mark.parametrize("given", [["--configfile", "other.yaml"], ["--configfile=other.yaml"],
                                   ["--configfiles", "a.yaml", "b.yaml", "-n"]])
def test_a_given_configfile_replaces_config_yaml_which_then_need_not_exist(tmp_path, given):
    assert snakemake_argv(given, str(tmp_path)) == SNAKEMAKE + ["--directory", str(tmp_path), *given]


@pytest.mark.parametrize("given", [["--directory", "sub"], ["-d", "sub"], ["--directory=sub"], ["-dsub"]])
def test_a_given_directory_is_the_folder_whose_config_yaml_is_read(tmp_path, given):
    (tmp_path / "sub").mkdir()
    with pytest.raises(SweepbenchError) as err:
        snakemake_argv(given, str(tmp_path))
    assert str(err.value) == NO_CONFIG.format(tmp_path / "sub")
    (tmp_path / "sub" / "config.yaml").write_text("studies: {}\n")
    assert snakemake_argv(given, str(tmp_path)) == SNAKEMAKE + ["--configfile", str(tmp_path / "sub" / "config.yaml"),
                                                                *given]


def test_without_a_config_run_says_so_in_one_line_exits_2_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--cores", "2"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"sweepbench: {NO_CONFIG.format(tmp_path)}\n"
    assert os.listdir(tmp_path) == []


def test_run_help_is_sweepbenchs_and_names_the_config(capsys):
    with pytest.raises(SystemExit) as done:
        main(["run", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "config.yaml" in out and "snakemake --help" in out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "run the workflow in this folder" in capsys.readouterr().out


def test_a_config_that_is_not_utf8_is_one_line_before_snakemake_starts(tmp_path, monkeypatch, capsys):
    """`sweepbench run -n --configfile latin1.yaml` printed Snakemake's 50-line UnicodeDecodeError."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "execve", lambda *a: pytest.fail("Snakemake started"))
    (tmp_path / "latin1.yaml").write_bytes("title: caf\u00e9\nstudies: {}\n".encode("latin-1"))
    assert main(["run", "-n", "--configfile", "latin1.yaml"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == ("sweepbench: config 'latin1.yaml' is not UTF-8 text (byte 10); allowed: a UTF-8 "
                                 "YAML file\n")
    (tmp_path / "config.yaml").write_text("studies: [\n")                 # the folder's own: not YAML
    assert main(["run", "-n"]) == 2
    assert capsys.readouterr().err.startswith(f"sweepbench: config '{tmp_path}/config.yaml' is not valid YAML")
