"""sweepbench.slurm without a cluster: the sacct shim over a stand-in `sacct` that prints what SLURM
22.05's sacct printed on the real test cluster (tests/integration/test_slurm_real.py runs it for real),
and the hints printed after a failed SLURM job, from the SLURM plugin 2.8's own log lines."""

import os
import subprocess

from sweepbench import slurm

# Seen on the real cluster: the plugin's status poll after `scancel`, and its node query
# (sacct -j <id> -n -X -o nodelist%-256) for a job that SLURM requeued after a node failure.
REAL_POLL = "7|COMPLETED\n8|CANCELLED by 0\n9|RUNNING\n"
REAL_NODELIST = "None assigned                                                                   \n"


def stand_in_sacct(folder, out: str, rc: int = 0):
    """A `sacct` that records its arguments and prints `out`."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "sacct")
    with open(path, "w") as f:
        f.write(f"#!/bin/sh\necho \"$@\" > {folder}/args\nprintf '%s' '{out}'\nexit {rc}\n")
    os.chmod(path, 0o755)


def shim_run(tmp_path, monkeypatch, out, *args, rc=0):
    stand_in_sacct(str(tmp_path / "real"), out, rc)
    monkeypatch.setenv("PATH", f"{tmp_path / 'real'}{os.pathsep}/usr/bin{os.pathsep}/bin")
    shim = slurm.put_sacct_shim_on_path(str(tmp_path / "wd" / slurm.SHIM_FOLDER))
    assert os.environ["PATH"].split(os.pathsep)[0] == os.path.dirname(shim)
    return subprocess.run(["sacct", *args], capture_output=True, text=True, env=os.environ.copy())


def test_the_shim_reads_cancelled_by_uid_as_cancelled_and_keeps_the_rest(tmp_path, monkeypatch):
    proc = shim_run(tmp_path, monkeypatch, REAL_POLL, "-X", "--parsable2", "--name", "a b")
    assert proc.stdout == "7|COMPLETED\n8|CANCELLED\n9|RUNNING\n" and proc.returncode == 0
    assert (tmp_path / "real" / "args").read_text() == "-X --parsable2 --name a b\n"   # the same arguments


def test_the_shim_keeps_the_exit_code_and_answers_no_node_for_a_requeued_job(tmp_path, monkeypatch):
    assert shim_run(tmp_path, monkeypatch, REAL_NODELIST, "-j", "16", rc=1).returncode == 1
    assert shim_run(tmp_path, monkeypatch, REAL_NODELIST, "-j", "16").stdout.strip() == ""
    assert shim_run(tmp_path, monkeypatch, "vm\n", "-j", "16").stdout == "vm\n"


def test_no_shim_without_a_real_sacct(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert slurm.put_sacct_shim_on_path(str(tmp_path / "bin")) is None
    assert not (tmp_path / "bin").exists() and os.environ["PATH"] == str(tmp_path / "empty")


LOG = """\
Job 4 has been submitted with SLURM jobid 12 (log: /w/.snakemake/slurm_logs/rule_train/s_bs~16/12.log).
Job 2 has been submitted with SLURM jobid 13 (log: /w/.snakemake/slurm_logs/rule_train/s_bs~128/13.log).
Error in rule train:
    message: SLURM-job '12' failed, SLURM status is: 'TIMEOUT'. Reason: Unknown.For further error details see
Error in rule train:
    message: SLURM-job '12' failed, SLURM status is: 'TIMEOUT'. Reason: Unknown.
Error in rule train:
    message: SLURM-job '13' failed, SLURM status is: 'FAILED'. Reason: Unknown.
"""


def test_hints_name_each_failed_job_once_with_its_log_and_remedy():
    hints = slurm.failure_hints(LOG)
    assert len(hints) == 2
    assert hints[0].startswith("sweepbench: SLURM job 12 (log: /w/.snakemake/slurm_logs/rule_train/s_bs~16/12.log) "
                               "TIMEOUT: it ran past its time limit: raise `runtime` (minutes)")
    assert "SLURM job 13 (log: " in hints[1] and "FAILED: it failed: its SLURM log" in hints[1]
    assert all(h.endswith("(complete runs are kept)") for h in hints)
    assert slurm.failure_hints("Error in rule train:\n    message: None\n") == []


def test_hints_read_every_log_file_given(tmp_path, capsys):
    (tmp_path / "a.log").write_text(LOG)
    slurm.print_failure_hints([str(tmp_path / "missing.log"), str(tmp_path / "a.log")])
    assert capsys.readouterr().err.count("sweepbench: SLURM job") == 2
    slurm.print_failure_hints(str(tmp_path / "a.log"))
    assert capsys.readouterr().err.count("TIMEOUT") == 1
