"""README's "On a SLURM cluster" on a real SLURM: Debian's SLURM 22.05 with accounting (slurmdbd,
MariaDB, munge), one node (this machine), started by tests/integration/slurm_cluster.sh, through the
real snakemake-executor-plugin-slurm 2.8. Each job is checked in `sacct`, and each fault ends with
a complete, correct result after the documented recovery, no finished run trained again and no run
counted twice.

Where each check runs:
- here, on the real cluster: what each job really got (account, partition, CPUs, memory, time limit,
  a whole node for an exclusive study), that only training is submitted, `sweepbench status` while
  and after; scancel of a running job, a job over its time limit, a drained node, a node failing
  under a running job with --slurm-requeue, and Snakemake killed with kill -9.
- on the fake SLURM only (tests/integration/test_slurm.py), which a one-node, CPU-only cluster cannot
  show: the GPU partition and GPU requests (--gpus, --gpus-per-task), several partitions of
  different nodes, the exact sbatch lines README shows, array jobs refused, multi-task (srun -n 2)
  jobs, an out-of-memory kill.

The cluster: 2 CPUs here, so every study asks for 1 CPU and little memory (a job asking for more
than the node has waits forever). The fault tests train a tiny workload (realslurm/gated.py) whose
first training step waits while a gate file exists: the test holds a job running exactly as long as
its fault needs, without burning the shared CPUs. Without a cluster (not root, no apt-get) these
tests skip saying why; with SWEEPBENCH_SLURM_TESTS=require (CI, .ci/run) they fail instead.
"""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

pytestmark = pytest.mark.slow  # runs the real Snakefile on a real cluster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "tests", "integration", "slurm_cluster.sh")
GATED = os.path.join(ROOT, "tests", "integration", "realslurm", "gated.py")
CLUSTER = "sweepbench"                       # slurm_cluster.sh's ClusterName, accounts and partition
ACCOUNT, PARTITION = "otheracct", "cpu"      # not root's default account, not the default partition
PYTHON_BIN = os.path.dirname(sys.executable)
# Test speed-ups beyond the README's command: first status poll after 1 s instead of 40 s (the plugin
# still adds 10 s to the interval after each poll that finds no job finished).
POLL_FAST = ["--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1"]
FAULTS = "snakemake results/tables/runs.csv --profile profiles/slurm --configfile config/faults.yaml"


def cluster_problem() -> str | None:
    """Why the test cluster cannot be used on this machine, or None (then it runs: started here if needed)."""
    if shutil.which("sinfo") and subprocess.run([SCRIPT, "status"], capture_output=True).returncode == 0:
        config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
        name = re.search(r"^ClusterName\s*=\s*(\S+)", config, re.M)
        if name and name.group(1) != CLUSTER:
            return (f"the SLURM cluster here is {name.group(1)!r}, not slurm_cluster.sh's {CLUSTER!r}: these tests "
                    "drain its node and use its accounts, so they never run on a cluster they did not set up")
        return None
    if os.geteuid() != 0:
        return "no test SLURM cluster runs and slurm_cluster.sh needs root to install and start one"
    if not shutil.which("apt-get"):
        return "no test SLURM cluster runs and slurm_cluster.sh needs apt-get to install one"
    start = subprocess.run([SCRIPT, "start"], capture_output=True, text=True, timeout=900)
    return None if start.returncode == 0 else f"slurm_cluster.sh start failed: {start.stderr.strip()[-500:]}"


@pytest.fixture(scope="module")
def real_cluster():
    problem = cluster_problem()
    if problem:
        if os.environ.get("SWEEPBENCH_SLURM_TESTS") == "require":
            pytest.fail(f"SWEEPBENCH_SLURM_TESTS=require, but {problem}")
        pytest.skip(problem)
    node = subprocess.run(["sinfo", "-h", "-p", PARTITION, "-o", "%N %c"], capture_output=True, text=True)
    name, cpus = node.stdout.split()
    yield {"node": name, "cpus": int(cpus)}
    set_node(name, "resume")                 # in service again whatever a test did


def set_node(node, state, reason=""):
    subprocess.run(["scontrol", "update", f"nodename={node}", f"state={state}"] + ([f"reason={reason}"] if reason
                                                                                   else []), capture_output=True)


@pytest.fixture(autouse=True)
def no_leftovers():
    """A failed test leaves no Snakemake and no job behind (they would hold the node's 2 CPUs)."""
    yield
    for sweep in Sweep.started:
        if sweep.proc.poll() is None:
            os.killpg(sweep.proc.pid, signal.SIGKILL)
            sweep.proc.wait()
        if sweep.submitted():
            subprocess.run(["scancel", *sweep.submitted()], capture_output=True)
    Sweep.started.clear()


@pytest.fixture
def workdir(tmp_path, real_cluster):
    """A scratch copy of the workflow with the README's account edit, the gated workload and the
    environment of the submitting Snakemake (the jobs get it too: the plugin submits with --export=ALL)."""
    wd = tmp_path / "wd"
    wd.mkdir()
    for name in ("Snakefile", "profiles", "config"):
        src = os.path.join(ROOT, name)
        (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, wd / name)
    shutil.copy(GATED, wd / "gated.py")
    profile = wd / "profiles" / "slurm" / "config.yaml"
    text = profile.read_text()
    assert "# slurm_account: my_account" in text
    profile.write_text(text.replace("# slurm_account: my_account", f"slurm_account: {ACCOUNT}"))
    env = {**os.environ, "PATH": os.pathsep.join([PYTHON_BIN, os.environ.get("PATH", "")]),
           "SWEEPBENCH_TEST_GATE": str(wd / "gate-{batch_size}")}
    return wd, env


class Sweep:
    """`snakemake ...` (a README command, with POLL_FAST) in the background, its output in a file."""

    started: list = []    # every Sweep of the current test (no_leftovers ends them and their jobs)

    def __init__(self, wd, env, command: str, *extra):
        Sweep.started.append(self)
        argv = shlex.split(command)
        assert argv[0] == "snakemake"
        self.out_path = wd / f"snakemake-{time.monotonic_ns()}.out"
        self.out = open(self.out_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "snakemake", *argv[1:], *POLL_FAST, *extra], cwd=wd,
                                     env=env, stdout=self.out, stderr=subprocess.STDOUT, start_new_session=True)

    def text(self) -> str:
        return self.out_path.read_text()

    def wait(self, timeout=300) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.out.close()
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)

    def submitted(self) -> dict:
        """{SLURM job id: the job's SLURM log} from the plugin's lines."""
        return dict(re.findall(r"submitted with SLURM jobid (\d+) \(log: (.+?)\)", self.text()))


def run(wd, env, command: str, *extra, timeout=300):
    sweep = Sweep(wd, env, command, *extra)
    rc = sweep.wait(timeout)
    return rc, sweep


def wait_for(condition, what: str, timeout=120, sweep: Sweep | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if sweep is not None and sweep.proc.poll() is not None:
            raise AssertionError(f"Snakemake ended while waiting for {what}: {sweep.text()[-3000:]}")
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def sacct(ids, fields: str, duplicates=False) -> list[dict]:
    """The real sacct (not the workflow's shim) on these jobs, one dict per line."""
    out = subprocess.run(["sacct", "-X", "-P", "-n", "-j", ",".join(ids), "-o", fields] + (["-D"] if duplicates
                                                                                           else []),
                         capture_output=True, text=True, check=True).stdout
    return [dict(zip(fields.split(","), line.split("|"))) for line in out.splitlines()]


def squeue_states(ids) -> dict:
    out = subprocess.run(["squeue", "-h", "-j", ",".join(ids), "-o", "%i|%T|%r"], capture_output=True, text=True)
    return {i: (state, reason) for i, state, reason in (line.split("|") for line in out.stdout.splitlines())}


def status(wd, env) -> dict:
    proc = subprocess.run([sys.executable, "-m", "sweepbench", "status", "--json"], cwd=wd, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def records(wd) -> dict:
    """{run folder: mtime of its run.json}: a run trained again gets a new one."""
    runs = wd / "results" / "runs"
    return {str(p.parent.relative_to(runs)): p.stat().st_mtime_ns for p in runs.glob("**/run.json")}


def runs_table(wd) -> list[str]:
    with open(wd / "results" / "tables" / "runs.csv") as f:
        header, *rows = f.read().splitlines()
    column = header.split(",").index("run")
    return [row.split(",")[column] for row in rows]


def job_of(log_path: str) -> str:
    """The training job a SLURM log belongs to: .../slurm_logs/rule_train/<study>_bs~16/<id>.log."""
    return log_path.split("/rule_train/")[1].split("/")[0]


def training_started(wd, job="faults/bs~16"):
    log = wd / "results" / "logs" / "train" / f"{job}.log"
    return lambda: log.exists() and "run 1/3 started" in log.read_text()


def fault_config(wd, runtime=5):
    """Two jobs of three runs each (batch size 16 and 128, seeds 0-2), on the gated workload."""
    study = {"workload": "gated.py:gated_digits", "fixed": {"optimizer": "momentum", "lr": 0.1, "epochs": 3},
             "grid": {"batch_size": [16, 128]}, "pack_by": ["batch_size"], "seeds": [0, 1, 2],
             "resources": {"threads": 1, "mem_mb": 500, "runtime": runtime, "slurm_partition": PARTITION}}
    (wd / "config" / "faults.yaml").write_text(yaml.safe_dump({"title": "faults", "studies": {"faults": study}}))


def assert_complete(wd, env, before: dict):
    """Every run done once: the 6 records, the ones `before` listed untouched, 6 rows in runs.csv."""
    after = records(wd)
    assert len(after) == 6 and all(after[run] == mtime for run, mtime in before.items()), (before, after)
    rows = runs_table(wd)
    assert len(rows) == 6 and len(set(rows)) == 6
    total = status(wd, env)["total"]
    assert total["done"] == 6 and total["missing"] == total["running"] == total["broken"] == 0


# ---------------------------------------------------------------------------------------------------


def fit_cluster_yaml(wd, cpus: int) -> dict:
    """config/cluster.yaml made to fit this 2-CPU, GPU-less node: both studies on partition `cpu` with
    1 CPU and little memory; the GPU throughput study keeps `exclusive` (its node alone) without the
    GPU. Returns what sacct must show per job, by the job's comment prefix."""
    path = wd / "config" / "cluster.yaml"
    cfg = yaml.safe_load(path.read_text())
    cpu, gpu = cfg["studies"]["digits_lr_batch"], cfg["studies"]["lenet5_gpu_throughput"]
    assert gpu["resources"]["exclusive"] and gpu["resources"]["gpu"] == 1
    cpu["resources"] = {"threads": 1, "mem_mb": 500, "runtime": 5}
    gpu["resources"] = {"threads": 1, "mem_mb": 1000, "runtime": 4, "exclusive": True, "slurm_partition": PARTITION}
    assert cfg["resources"] == {"slurm_partition": PARTITION}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    common = {"Account": ACCOUNT, "Partition": PARTITION, "State": "COMPLETED"}
    return {"rule_train_wildcards_digits_lr_batch_": {**common, "AllocCPUS": "1", "ReqMem": "500M",
                                                       "Timelimit": "00:05:00"},
            "rule_train_wildcards_lenet5_gpu_throughput_": {**common, "AllocCPUS": str(cpus), "ReqMem": "1000M",
                                                             "Timelimit": "00:04:00"}}


def readme_smoke_command() -> str:
    text = open(os.path.join(ROOT, "README.md")).read()
    section = text[text.index("### On a SLURM cluster"):]
    block = section[section.index("```sh\n") + 6:section.index("\n```", section.index("```sh\n"))]
    smoke = [line.split("   #")[0].strip() for line in block.splitlines() if "smoke=true" in line]
    assert len(smoke) == 1
    return smoke[0]


def test_readme_slurm_smoke_line_on_a_real_cluster(workdir, real_cluster):
    wd, env = workdir
    expected = fit_cluster_yaml(wd, real_cluster["cpus"])
    smoke = readme_smoke_command()
    sweep = Sweep(wd, env, smoke)
    seen = []                                            # `sweepbench status` while it runs
    while sweep.proc.poll() is None:
        if (wd / "results" / "plan.json").exists():
            seen.append(status(wd, env))
        time.sleep(2)
    assert sweep.wait() == 0, sweep.text()[-3000:]
    assert any(s["workflow"] == "running" and s["total"]["done"] < s["total"]["planned"] for s in seen), seen
    # only training is submitted: one job per planned training job, nothing else under this run's name
    plan = json.loads((wd / "results" / "plan.json").read_text())
    jobs = sweep.submitted()
    assert len(jobs) == len(plan["jobs"]) == 3
    run_id = re.search(r"SLURM run ID: (\S+)", sweep.text()).group(1)
    by_name = subprocess.run(["sacct", "-X", "-P", "-n", "-S", "now-1hours", "--name", run_id, "-o", "JobIDRaw"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert sorted(by_name) == sorted(jobs)
    fields = "JobIDRaw,Comment,Account,Partition,AllocCPUS,ReqMem,Timelimit,State,Start,End"
    got = sacct(list(jobs), fields)
    for job in got:
        want = next(v for k, v in expected.items() if job["Comment"].startswith(k))
        assert {k: job[k] for k in want} == want, job
    alone = [j for j in got if "lenet5" in j["Comment"]]
    others = [j for j in got if "lenet5" not in j["Comment"]]
    assert all(o["Start"] >= a["End"] or o["End"] <= a["Start"] for a in alone for o in others)  # node alone
    runs = wd / "results" / "runs"
    lenet = json.loads(next(runs.glob("lenet5_gpu_throughput/**/run.json")).read_text())["placement"]
    digits = json.loads(next(runs.glob("digits_lr_batch/**/run.json")).read_text())["placement"]
    assert lenet["exclusive"] is True and digits["exclusive"] is False and digits["threads"] == 1
    assert (wd / "report" / "index.html").exists() and (wd / "report" / "report.pdf").exists()
    after = status(wd, env)
    assert after["workflow"] == "not running" and after["total"]["done"] == after["total"]["planned"] > 0
    # the same command again submits nothing
    rc, again = run(wd, env, smoke)
    assert rc == 0 and "Nothing to be done" in again.text() and again.submitted() == {}


def test_scancel_of_a_running_job_is_reported_and_the_rerun_submits_only_it(workdir):
    """sacct says `CANCELLED by 0`, which the plugin 2.8 takes for a running job (Snakemake waited
    forever); the workflow's sacct shim (sweepbench.slurm) makes it a failure at the next poll."""
    wd, env = workdir
    fault_config(wd)
    (wd / "gate-16").touch()
    sweep = Sweep(wd, env, FAULTS)
    wait_for(training_started(wd), "the batch-16 job to start training", sweep=sweep)
    jobs = {job_of(log): i for i, log in sweep.submitted().items()}
    victim = jobs["faults_bs~16"]
    subprocess.run(["scancel", victim], check=True)
    cancelled = time.monotonic()
    line = f"SLURM-job '{victim}' failed, SLURM status is: 'CANCELLED'"
    wait_for(lambda: line in sweep.text(), "the plugin to report the cancelled job", timeout=90, sweep=sweep)
    reported = time.monotonic() - cancelled
    assert sweep.wait(timeout=120) != 0
    out = sweep.text()
    assert f"*** JOB {victim} ON " in out and " CANCELLED AT " in out          # its SLURM log, shown
    assert f"sweepbench: SLURM job {victim} (log: " in out and "was cancelled" in out
    assert sacct([victim], "State")[0]["State"] == "CANCELLED by 0"          # what the plugin alone cannot read
    print(f"scancel reported after {reported:.0f} s")
    kept = records(wd)
    assert sorted(kept) == [f"faults/bs~128/seed~{s}" for s in range(3)]     # the other job finished
    (wd / "gate-16").unlink()
    rc, again = run(wd, env, FAULTS)
    assert rc == 0, again.text()[-3000:]
    assert [job_of(log) for log in again.submitted().values()] == ["faults_bs~16"]
    assert_complete(wd, env, kept)


def test_a_job_over_its_time_limit_is_reported_as_a_timeout_and_kept_out_of_the_results(workdir):
    wd, env = workdir
    fault_config(wd, runtime=1)                  # 1 minute; the batch-16 job waits at its gate past it
    (wd / "gate-16").touch()
    rc, sweep = run(wd, env, FAULTS, timeout=360)
    assert rc != 0
    out = sweep.text()
    victim = next(i for i, log in sweep.submitted().items() if job_of(log) == "faults_bs~16")
    assert f"SLURM-job '{victim}' failed, SLURM status is: 'TIMEOUT'" in out
    assert f"*** JOB {victim} ON " in out and "DUE TO TIME LIMIT ***" in out
    assert f"sweepbench: SLURM job {victim} (log: " in out and "raise `runtime` (minutes) in its study's" in out
    # the half-written record of the killed run is not done; no manifest; the other job's runs are
    now = status(wd, env)["studies"]["faults"]
    assert now["done"] == 3 and now["running"] == 0 and now["missing"] == 3
    assert list((wd / "results" / "runs" / "faults" / "bs~16").glob(".seed~0.tmp-*"))
    assert not (wd / "results" / "manifests" / "faults" / "bs~16.json").exists()
    kept = records(wd)
    assert sorted(kept) == [f"faults/bs~128/seed~{s}" for s in range(3)]
    # the hint followed: a longer runtime, the same command
    fault_config(wd, runtime=5)
    (wd / "gate-16").unlink()
    rc, again = run(wd, env, FAULTS)
    assert rc == 0, again.text()[-3000:]
    (redone,) = again.submitted()
    assert sacct([redone], "Timelimit,State")[0] == {"Timelimit": "00:05:00", "State": "COMPLETED"}
    assert_complete(wd, env, kept)


def test_a_drained_node_holds_the_jobs_and_the_sweep_completes_after_resume(workdir, real_cluster):
    wd, env = workdir
    fault_config(wd)
    node = real_cluster["node"]
    set_node(node, "drain", "sweepbench-test")
    try:
        sweep = Sweep(wd, env, FAULTS)
        wait_for(lambda: len(sweep.submitted()) == 2, "both jobs to be submitted", sweep=sweep)
        ids = list(sweep.submitted())
        held = ("ReqNodeNotAvail", "DRAINED")        # the reason squeue gives for the drained node
        wait_for(lambda: all(s == "PENDING" and any(h in r for h in held) for s, r in squeue_states(ids).values()),
                 "both jobs to wait for the drained node", sweep=sweep)
        time.sleep(3)
        waiting = status(wd, env)
        assert waiting["workflow"] == "running" and waiting["total"]["done"] == 0
        assert all(s == "PENDING" for s, _ in squeue_states(ids).values()) and sweep.proc.poll() is None
    finally:
        set_node(node, "resume")
    assert sweep.wait() == 0, sweep.text()[-3000:]
    assert {j["State"] for j in sacct(ids, "State")} == {"COMPLETED"}
    assert_complete(wd, env, {})


def test_requeue_when_the_node_fails_under_a_running_job(workdir, real_cluster):
    """The node set DOWN under a running job (what slurmctld does when a node stops answering):
    with --slurm-requeue SLURM requeues the job, the same Snakemake keeps waiting for it, and the
    second run of the job completes the sweep. On one node the node cannot stay down (it is the
    only one, and its slurmd answers, so ReturnToService=2 brings it back at once), and SLURM holds
    a requeued job for 2 minutes (BeginTime): the test moves that begin time to now."""
    wd, env = workdir
    fault_config(wd)
    node = real_cluster["node"]
    (wd / "gate-16").touch()
    sweep = Sweep(wd, env, FAULTS, "--slurm-requeue")
    wait_for(lambda: len(sweep.submitted()) == 2, "both jobs to be submitted", sweep=sweep)
    jobs = {job_of(log): i for i, log in sweep.submitted().items()}
    victim, other = jobs["faults_bs~16"], jobs["faults_bs~128"]
    wait_for(lambda: [j["State"] for j in sacct([other], "State")] == ["COMPLETED"] and training_started(wd)(),
             "the batch-128 job to complete and the batch-16 one to train", sweep=sweep)
    set_node(node, "down", "sweepbench-test-node-failure")
    wait_for(lambda: "Restarts=1" in job_info(victim) and "JobState=PENDING" in job_info(victim),
             "SLURM to requeue the job")
    # the first run's job steps gone (restarting the job before raced with their cleanup: SLURM
    # then held it, launch_failed_requeued_held) and the node back
    wait_for(lambda: not job_steps_here(victim) and subprocess.run(
        ["sinfo", "-h", "-n", node, "-o", "%T"], capture_output=True, text=True).stdout.strip() == "idle",
        "the job's first run to be cleaned up and the node to come back idle")
    (wd / "gate-16").unlink()                             # the job's second run trains straight through
    subprocess.run(["scontrol", "update", f"jobid={victim}", "starttime=now"], check=True)
    assert sweep.wait() == 0, sweep.text()[-3000:]
    assert [j["State"] for j in sacct([victim], "State", duplicates=True)] == ["NODE_FAIL", "COMPLETED"]
    # when a poll saw NODE_FAIL, the plugin asked sacct for the node; the shim answers no node rather
    # than "None assigned" (a poll may also miss the NODE_FAIL: then the plugin asks nothing)
    assert "None assigned" not in sweep.text()
    assert_complete(wd, env, {})
    # The first run's Snakemake inside the job escapes the kill here (proctrack/linuxproc follows
    # processes by parent, and srun's child is re-parented when srun dies; a cluster with
    # proctrack/cgroup kills it): it is idle, holds no CPU and writes nothing, and is ended here.
    for pid in processes_of_job(victim):
        os.kill(pid, signal.SIGKILL)


def processes_of_job(job_id: str) -> list[int]:
    """Processes on this machine whose environment says they belong to this SLURM job."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if f"SLURM_JOB_ID={job_id}".encode() in f.read().split(b"\0"):
                    found.append(int(pid))
        except OSError:
            continue
    return found


def job_steps_here(job_id: str) -> list[str]:
    """The job's slurmstepd processes on this machine (their titles are `slurmstepd: [<job>.<step>]`)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if title.startswith(f"slurmstepd: [{job_id}."):
            found.append(title)
    return found


def job_info(job_id: str) -> str:
    return subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout


def test_snakemake_killed_with_kill_9_leaves_its_jobs_running_then_the_same_command(workdir):
    """The plugin cancels its jobs only on Ctrl-C (or SIGTERM); after kill -9 they run on. The lock
    stays, so the same command is refused; README's recovery: wait for the run's jobs (squeue) or
    scancel them, `snakemake --unlock`, the same command: it submits only what is still missing."""
    wd, env = workdir
    fault_config(wd)
    (wd / "gate-16").touch()
    sweep = Sweep(wd, env, FAULTS)
    wait_for(lambda: (wd / "results" / "manifests" / "faults" / "bs~128.json").exists() and training_started(wd)(),
             "one job to finish and the other to train", sweep=sweep)
    os.killpg(sweep.proc.pid, signal.SIGKILL)
    sweep.wait()
    (running,) = [i for i, log in sweep.submitted().items() if job_of(log) == "faults_bs~16"]
    time.sleep(2)
    assert squeue_states([running])[running][0] == "RUNNING"       # not cancelled, not lost
    after_kill = status(wd, env)
    assert after_kill["workflow"] == "lock, none here" and after_kill["total"]["done"] == 3
    rc, refused = run(wd, env, FAULTS)
    assert rc != 0 and "Directory cannot be locked" in refused.text() and refused.submitted() == {}
    kept = records(wd)
    (wd / "gate-16").unlink()                                      # the job finishes on its own
    wait_for(lambda: running not in squeue_states([running]), "the killed run's job to end")
    assert sacct([running], "State")[0]["State"] == "COMPLETED"
    unlock = subprocess.run([sys.executable, "-m", "snakemake", "--profile", "profiles/slurm", "--configfile",
                             "config/faults.yaml", "--unlock"], cwd=wd, env=env, capture_output=True, timeout=120)
    assert unlock.returncode == 0
    rc, again = run(wd, env, FAULTS)
    assert rc == 0 and again.submitted() == {}, again.text()[-3000:]     # nothing trained twice
    assert_complete(wd, env, kept)
