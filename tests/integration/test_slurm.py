"""README's "On a SLURM cluster" commands through the real snakemake-executor-plugin-slurm against a
fake SLURM (tests/integration/fakeslurm/: runs the jobs on this machine, answers in SLURM's
formats, rejects what a cluster rejects, logs every sbatch line): exact sbatch resources per
study, a failed job redone alone, a re-run that submits nothing.

Checked here, on the fake only, because the real one-node CPU cluster of test_slurm_real.py cannot
show them: the GPU partition and GPU requests (--gpus, --gpus-per-task), studies on two
partitions of different nodes, the exact sbatch lines README shows, array jobs refused, jobs of
two SLURM tasks (srun -n 2), an out-of-memory kill. Everything a one-node cluster can show (what
each job got in sacct, scancel, timeout, drain, requeue, kill -9) runs on the real cluster there."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # runs the real Snakefile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAKE = os.path.join(ROOT, "tests", "integration", "fakeslurm")
PYTHON_BIN = os.path.dirname(sys.executable)
# Only test speed-ups beyond the README's command: poll every second instead of the plugin's 40 s.
POLL_FAST = ["--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1"]


def test_the_slurm_plugin_is_installed():
    """`make test` installs it (pyproject's test extra); without it the test below cannot run, so fail, never skip."""
    import snakemake_executor_plugin_slurm  # noqa: F401
    import snakemake_executor_plugin_slurm_jobstep  # noqa: F401


def readme_commands() -> list[str]:
    """The shell block right under README's '### On a SLURM cluster'."""
    text = open(os.path.join(ROOT, "README.md")).read()
    section = text[text.index("### On a SLURM cluster"):]
    block = section[section.index("```sh\n") + 6:section.index("\n```", section.index("```sh\n"))]
    return [line.split("   #")[0].strip() for line in block.splitlines() if line.strip()]


def readme_sbatch_lines() -> dict:
    """The sbatch lines README shows for config/cluster.yaml, by job comment, as options()."""
    text = open(os.path.join(ROOT, "README.md")).read()
    section = text[text.index("### On a SLURM cluster"):]
    lines = [shlex.split(line) for line in section.splitlines() if line.startswith("sbatch --parsable")]
    return {comment(a): options(a) for a in lines}


def sbatch_lines(state: str) -> list[list[str]]:
    path = os.path.join(state, "sbatch.log")
    if not os.path.exists(path):
        return []
    return [shlex.split(line.split(" argv: ", 1)[1]) for line in open(path) if " argv: sbatch " in line]


def options(argv: list[str]) -> list[str]:
    """An sbatch line without what changes from run to run (uuid, paths, the wrapped command)."""
    out, skip = [], False
    for i, arg in enumerate(argv[1:]):
        if skip:
            skip = False
            continue
        if arg in ("--job-name", "--output", "-D"):
            skip = True
        elif not arg.startswith("--wrap"):
            out.append(arg)
    return out


def comment(argv):
    return argv[argv.index("--comment") + 1]


@pytest.fixture
def cluster(tmp_path):
    """A scratch copy of the workflow with the README's account edit, and the fake's state folder."""
    wd = tmp_path / "wd"
    wd.mkdir()
    for name in ("Snakefile", "profiles", "config"):  # the root Snakefile includes the package's workflow
        src = os.path.join(ROOT, name)
        (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, wd / name)
    profile = wd / "profiles" / "slurm" / "config.yaml"
    text = profile.read_text()
    assert "# slurm_account: my_account" in text
    profile.write_text(text.replace("# slurm_account: my_account", "slurm_account: otheracct"))
    state = tmp_path / "fakeslurm"
    env = {**os.environ, "PATH": os.pathsep.join([FAKE, PYTHON_BIN, os.environ.get("PATH", "")]),
           "FAKESLURM_DIR": str(state), "FAKESLURM_PENDING_S": "0.2"}
    yield wd, str(state), env
    for job in (state / "jobs").glob("*.json") if (state / "jobs").exists() else []:  # no job outlives the test
        if json.loads(job.read_text())["state"] in ("PENDING", "RUNNING"):
            subprocess.run([os.path.join(FAKE, "scancel"), job.stem], env=env, capture_output=True)


def run(wd, env, command: str, *extra, **kw):
    argv = shlex.split(command)
    assert argv[0] == "snakemake"
    return subprocess.run([sys.executable, "-m", "snakemake", *argv[1:], *POLL_FAST, *extra], cwd=wd, env=env,
                          capture_output=True, text=True, timeout=600, **kw)


CPU = ["-A", "otheracct", "-p", "cpu", "-t", "60", "--mem", "4000", "--ntasks=1", "--cpus-per-task=4"]
GPU = ["-A", "otheracct", "-p", "gpu", "-t", "60", "--mem", "16000", "--cpus-per-task=8", "--exclusive", "--gpus=1"]
EXPECTED = {"rule_train_wildcards_digits_lr_batch_bs~16": CPU, "rule_train_wildcards_digits_lr_batch_bs~128": CPU,
            "rule_train_wildcards_lenet5_gpu_throughput_all": GPU}


def test_readme_slurm_commands_on_a_fake_cluster(cluster):
    wd, state, env = cluster
    install, smoke, full = readme_commands()
    assert install.startswith("pip install 'snakemake-executor-plugin-slurm>=2.8,<2.9'")
    assert full + " --config smoke=true" == smoke                  # the full run differs only by the data

    # 0. job arrays would give the GPU job the CPU jobs' allocation (plugin 2.8): refused, nothing submitted
    arrays = run(wd, env, smoke, "--slurm-array-jobs=train")
    assert arrays.returncode != 0 and "the training jobs ask for 2 different resources" in arrays.stderr
    assert sbatch_lines(state) == []

    # 1. the GPU job is killed on its node (as an out-of-memory kill); the CPU jobs complete
    first = run(wd, {**env, "FAKESLURM_KILL_COMMENT": "lenet5_gpu_throughput", "FAKESLURM_KILL_AFTER": "1"}, smoke)
    assert first.returncode != 0
    assert "OUT_OF_MEMORY" in first.stdout + first.stderr
    lines = sbatch_lines(state)
    assert {comment(a): options(a) for a in lines} == {
        c: ["--parsable", "--export=ALL", "--comment", c] + opts for c, opts in EXPECTED.items()}
    assert len(lines) == 3                           # bookkeeping steps run locally: only training is submitted
    shown = readme_sbatch_lines()                    # README's lines are two of these
    assert len(shown) == 2 and all(options(a) == shown[comment(a)] for a in lines if comment(a) in shown)
    runs = wd / "results" / "runs"
    placement = json.loads((runs / "digits_lr_batch/bs~16/lr~0.1/seed~1/run.json").read_text())["placement"]
    assert placement == {"scheduler": "train-pack", "exclusive": False, "gpu_slots": 0, "threads": 4}
    assert not (runs / "lenet5_gpu_throughput").exists()

    # 2. the same command re-submits the failed job alone (here also without profiles/default:
    #    --workflow-profile none used to crash on exclusive jobs, which read the host's cores)
    second = run(wd, env, smoke, "--workflow-profile", "none")
    assert second.returncode == 0, second.stderr[-3000:]
    redone = sbatch_lines(state)[3:]
    assert [comment(a) for a in redone] == ["rule_train_wildcards_lenet5_gpu_throughput_all"]
    assert options(redone[0])[4:] == GPU
    record = json.loads((runs / "lenet5_gpu_throughput/all/bs~128/seed~0/run.json").read_text())
    assert record["placement"] == {"scheduler": "train-pack", "exclusive": True, "gpu_slots": 1, "threads": 8}
    assert (wd / "report" / "index.html").exists() and (wd / "results" / "tables" / "runs.csv").exists()

    # 3. a re-run submits nothing
    third = run(wd, env, smoke)
    assert third.returncode == 0 and "Nothing to be done" in third.stdout + third.stderr
    assert len(sbatch_lines(state)) == 4
    srun = open(os.path.join(state, "srun.log")).read()
    assert re.search(r"srun -n1 --cpu-bind=q --cpus-per-task=8 --gpus=1 ", srun)   # the job step gets them too


DDP_TASKS = """\
studies:
  ddp_tasks:
    workload: digits_mlp
    fixed: &ddp {world_size: 2, batch_size: 16, epochs: 1, train_size: 97, eval_max_samples: 64, lr: 0.1}
    seeds: [0]
    resources: {tasks: 2, threads: 2, mem_mb: 2000, runtime: 10, slurm_partition: cpu}
  ddp_tasks_gpu:
    workload: digits_mlp
    fixed: {<<: *ddp, lr: 0.2}
    seeds: [0]
    resources: {tasks: 2, threads: 2, gpu: 2, mem_mb: 2000, runtime: 10, slurm_partition: gpu}
"""


def test_data_parallel_jobs_of_two_slurm_tasks_on_a_fake_cluster(cluster):
    """Studies with `tasks: 2` through the real plugin: each sbatch line asks for 2 tasks of 1 CPU each
    (and a GPU each, not --gpus), the job runs the rule's srun line (the plugin's MPI job) and each task
    trains the run as one rank. Checked on the fake only: the fake srun runs both tasks on this host
    as local processes with SLURM_PROCID / SLURM_NTASKS (and CUDA_VISIBLE_DEVICES) set; it has no real
    GPU, so the GPU study's `device: auto` trains on the CPU here. A real cluster may place the tasks
    on two nodes, which meet through the file store on the shared results folder: not tested here."""
    wd, state, env = cluster
    (wd / "config" / "ddp_tasks.yaml").write_text(DDP_TASKS)
    targets = ["results/manifests/ddp_tasks/all.json", "results/manifests/ddp_tasks_gpu/all.json"]
    done = run(wd, env, "snakemake --profile profiles/slurm --configfile config/ddp_tasks.yaml --jobs 2", *targets)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = {comment(a): options(a)[4:] for a in sbatch_lines(state)}
    tasks = ["-t", "10", "--mem", "2000", "--ntasks=2", "--cpus-per-task=1"]
    assert lines == {"rule_train_wildcards_ddp_tasks_all": ["-A", "otheracct", "-p", "cpu", *tasks],
                     "rule_train_wildcards_ddp_tasks_gpu_all": ["-A", "otheracct", "-p", "gpu", *tasks,
                                                                "--gpus-per-task=1"]}
    srun = sorted(ln.split(" argv: ", 1)[1] for ln in open(os.path.join(state, "srun.log")))
    assert len(srun) == 2
    assert srun[0].startswith("srun -n 2 --cpus-per-task=1 --gpus-per-task=1 --kill-on-bad-exit=1 sweepbench "
                              "train-pack ")
    assert srun[1].startswith("srun -n 2 --cpus-per-task=1 --kill-on-bad-exit=1 sweepbench train-pack ")
    assert all(" --threads 2 --slurm-tasks 2 " in line for line in srun)    # each task: rank SLURM_PROCID of 2
    for study in ("ddp_tasks", "ddp_tasks_gpu"):
        runs = wd / "results" / "runs" / study / "all"
        assert sorted(os.listdir(runs)) == ["seed~0"]                       # one record, no store left
        record = json.loads((runs / "seed~0" / "run.json").read_text())
        assert record["distributed"]["world_size"] == 2 and record["distributed"]["threads_per_rank"] == 1
        assert len(record["distributed"]["rank_step_time_median_s"]) == 2
        log = (wd / "results" / "logs" / "train" / study / "all.log").read_text()
        assert log.count("run 1/1 started") == 1                            # rank 0 alone reports
        assert json.loads((wd / f"results/manifests/{study}/all.json").read_text())["trained"] == 1
