"""Data-parallel runs: the launch of N processes (ranks) and their process group.

A run with world_size N >= 1 trains with DistributedDataParallel over N processes on one machine,
started here by the training job itself (spawned, so no rank inherits another's threads):

    check        the machine can hold N ranks: N CPU cores (one thread per rank at least), or N GPUs
    rendezvous   a file store in a private temporary folder (no port, so no port collision); only
                 when MASTER_PORT is set (a torchrun or SLURM habit) a TCP store on that port,
                 checked free first
    launch       N spawned ranks; when one fails or dies, the others are stopped at once and the
                 run fails with one line naming the rank (no hang, no record)
    group        gloo on CPUs, nccl on GPUs, torch threads per rank, a timeout (dist_timeout_s) on
                 every collective so a rank that hangs fails the run too; always destroyed
    rank         sweepbench.train.engine trains the run with the data-parallel model
                 (sweepbench.train.parallel_model); rank 0 alone writes the one record

The parent returns rank 0's run.json content.

On a SLURM cluster a job with `tasks: N` (study resources) starts its ranks with srun instead: each of
the N tasks runs the job's `sweepbench train-pack --slurm-tasks N` and joins every run's process group
as rank SLURM_PROCID of SLURM_NTASKS (slurm_task, train_task), through a file store in the job's
folder on the shared results folder (one file per run, in a folder of the job step's own). Rank 0
writes the records and the manifest; the others exit 0 after training. A failing task exits non-zero
and srun (--kill-on-bad-exit) stops the others.
"""

from __future__ import annotations

import errno
import glob
import json
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from multiprocessing import connection

from sweepbench import SweepbenchError, provenance

BACKENDS = {"cpu": "gloo", "cuda": "nccl"}
GRACE_S = 3.0    # after one rank fails: how long the others get to fail on their own before being stopped


@dataclass(frozen=True)
class World:
    """The ranks of one data-parallel run and how they meet."""

    size: int
    device: str                 # cpu | cuda
    backend: str                # gloo | nccl
    init_method: str            # file://<path> or tcp://<addr>:<port>
    timeout_s: float
    threads: int                # torch threads of each rank


def threads_per_rank(spec: dict) -> int:
    """Torch threads of each rank: the job's threads (or the cores this process may use) shared out
    among the ranks, at least one each."""
    return max(1, (spec["threads"] or provenance.usable_cores()) // max(1, spec["world_size"]))


def device_type(spec: dict) -> str:
    if spec["device"] == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return spec["device"]


def check_machine(world_size: int, device: str) -> None:
    """Refuse a world size the machine cannot hold: more ranks than CPU cores (each rank needs one),
    or than GPUs."""
    if device == "cuda":
        import torch

        have, what = torch.cuda.device_count(), "GPUs"
    else:
        have, what = provenance.usable_cores(), "CPU cores this process may use"
    if world_size > have:
        raise SweepbenchError(f"bad world_size {world_size}: this machine has {have} {what}, one per rank; "
                              f"allowed: 1..{have} (or 0: one process without DDP)")


def rendezvous(folder: str) -> str:
    """Where the ranks meet: a file store in `folder`, or the TCP port in MASTER_PORT when set
    (MASTER_ADDR, default 127.0.0.1), which must be free."""
    port = os.environ.get("MASTER_PORT")
    if not port:
        return f"file://{os.path.join(folder, 'store')}"
    addr = os.environ.get("MASTER_ADDR", "127.0.0.1")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise SweepbenchError(f"bad MASTER_PORT {port!r}; allowed: a port number 1..65535, or unset MASTER_PORT "
                              "(the ranks then meet through a file store, no port)")
    check_port_free(addr, int(port))
    return f"tcp://{addr}:{port}"


def check_port_free(addr: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((addr, port))
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise SweepbenchError(f"bad MASTER_ADDR {addr!r} / MASTER_PORT {port}: {err.strerror}; allowed: an "
                                      "address of this machine and a free port") from None
            raise port_in_use(addr, port) from None


def port_in_use(addr: str, port) -> SweepbenchError:
    return SweepbenchError(f"bad MASTER_PORT {port}: the port is already in use on {addr}; allowed: a free port, or "
                           "unset MASTER_PORT (the ranks then meet through a file store, no port)")


def plan_world(spec: dict, folder: str) -> World:
    device = device_type(spec)
    check_machine(spec["world_size"], device)
    return World(spec["world_size"], device, BACKENDS[device], rendezvous(folder), spec["dist_timeout_s"],
                 threads_per_rank(spec))


@dataclass(frozen=True)
class Task:
    """This process as one SLURM task of its job step (srun): rank SLURM_PROCID of SLURM_NTASKS."""

    rank: int
    size: int
    local: int                  # SLURM_LOCALID, its index on its node: its GPU where all the node's GPUs are visible
    store: str                  # the folder of its runs' file stores, on the shared results folder


def slurm_task(tasks: int, out: str, env=None) -> Task:
    """This process's SLURM task, checked to be one of `tasks` (the study's resources.tasks); its
    runs' process groups meet in <out>/.ddp-store-<job id>.<step id>."""
    env = os.environ if env is None else env
    rank, size = env.get("SLURM_PROCID"), env.get("SLURM_NTASKS")
    if not (rank or "").isdigit() or not (size or "").isdigit():
        raise SweepbenchError(f"bad --slurm-tasks {tasks}: this process is no SLURM task (SLURM_PROCID / SLURM_NTASKS "
                              f"unset); allowed: train-pack under `srun -n {tasks}` in a SLURM job, or without "
                              "--slurm-tasks (the job spawns its ranks itself)")
    if int(size) != tasks:
        raise SweepbenchError(f"bad --slurm-tasks {tasks}: srun started {size} tasks (SLURM_NTASKS); allowed: "
                              f"`srun -n {tasks}`, one task per rank")
    local = env.get("SLURM_LOCALID", rank)
    step = f"{env.get('SLURM_JOB_ID', 'nojob')}.{env.get('SLURM_STEP_ID', '0')}"
    return Task(int(rank), tasks, int(local) if local.isdigit() else int(rank),
                os.path.join(out, f".ddp-store-{step}"))


def train_task(spec: dict, job, task: Task, index: int) -> dict | None:
    """Train one data-parallel run as this SLURM task's rank, its process group meeting in the file
    <task.store>/run<index>. Rank 0 writes the record to job.out_dirs[0] and returns its run.json
    content; the other ranks return None. Raises SweepbenchError when the run's world_size is not
    the number of tasks."""
    from sweepbench.record import check_replaceable

    if spec["world_size"] != task.size:
        raise SweepbenchError(f"bad world_size {spec['world_size']} for {task.size} SLURM tasks; allowed: "
                              f"{task.size}, one rank per task (the study's resources.tasks)")
    (out_dir,) = job.out_dirs
    if task.rank == 0:
        check_replaceable(out_dir)
    os.makedirs(task.store, exist_ok=True)
    device = device_type(spec)
    store = os.path.join(os.path.abspath(task.store), f"run{index}")
    world = World(task.size, device, BACKENDS[device], f"file://{store}", spec["dist_timeout_s"],
                  threads_per_rank(spec))
    before = set(_temp_records(out_dir))
    try:
        with process_group(task.rank, world, local=task.local):
            _train_rank(task.rank, spec, job)
    except BaseException:
        if task.rank == 0:
            for leftover in set(_temp_records(out_dir)) - before:
                shutil.rmtree(leftover, ignore_errors=True)
        raise
    if task.rank:
        return None
    with open(os.path.join(out_dir, "run.json")) as f:
        return json.load(f)


def train(spec: dict, job) -> dict:
    """Train one data-parallel run (spec["world_size"] ranks) and return its run.json content; rank 0
    writes the record to job.out_dirs[0]. Raises SweepbenchError, with no record written, when the
    machine cannot hold the ranks, the port is taken, or a rank fails, dies or hangs."""
    from sweepbench.record import check_replaceable

    (out_dir,) = job.out_dirs
    check_replaceable(out_dir)
    folder = tempfile.mkdtemp(prefix="sweepbench-ddp-")
    before = set(_temp_records(out_dir))
    try:
        world = plan_world(spec, folder)
        launch(world, folder, _train_rank, (spec, job))
    except BaseException:
        for leftover in set(_temp_records(out_dir)) - before:  # a rank 0 stopped mid-write
            shutil.rmtree(leftover, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    with open(os.path.join(out_dir, "run.json")) as f:
        return json.load(f)


def _temp_records(out_dir: str) -> list[str]:
    path = os.path.abspath(out_dir)
    return glob.glob(os.path.join(os.path.dirname(path), f".{glob.escape(os.path.basename(path))}.tmp-*"))


def _train_rank(rank: int, spec: dict, job) -> None:
    from sweepbench.train import engine, parallel_model

    engine.train_runs([spec], replace(job, rank=rank, quiet=job.quiet or rank > 0), parallel_model.DataParallelModel)


# ---------------------------------------------------------------- launch


def launch(world: World, folder: str, target, args: tuple) -> None:
    """Run target(rank, *args) in world.size spawned processes inside the process group. Returns when
    every rank finished; when one fails or dies, stops the others and raises SweepbenchError."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=rank_entry, args=(rank, world, folder, target, args), daemon=False)
             for rank in range(world.size)]
    try:
        for p in procs:
            p.start()
        pending = {p.sentinel: p for p in procs}
        while pending:
            for sentinel in connection.wait(list(pending)):
                p = pending.pop(sentinel)
                p.join()
                if p.exitcode != 0:
                    connection.wait(list(pending), timeout=GRACE_S)  # the others may fail on their own
                    raise SweepbenchError(failure(world, folder, procs))
    finally:
        stop(procs)


def stop(procs) -> None:
    """Stop every rank still running: SIGTERM, then SIGKILL after a moment."""
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=GRACE_S)
        if p.is_alive():
            p.kill()
            p.join()


def failure(world: World, folder: str, procs) -> str:
    """The one line a failed run says: the first cause found among the ranks that ended, a rank
    killed by a signal before one that only lost its peer."""
    ended = [(rank, p.exitcode) for rank, p in enumerate(procs) if p.exitcode not in (None, 0)]
    killed = [(rank, code) for rank, code in ended if code < 0]
    if killed:
        rank, code = killed[0]
        return (f"data-parallel run failed: rank {rank} of {world.size} died ({signal.Signals(-code).name}); the "
                "other ranks were stopped and no record was written")
    for rank, code in ended:
        path = os.path.join(folder, f"rank{rank}.error")
        if code == 2 and os.path.exists(path):
            return open(path).read().strip()   # bad input (SweepbenchError): its own one-line message
    rank, code = ended[0]
    path = os.path.join(folder, f"rank{rank}.error")
    what = open(path).read().strip() if os.path.exists(path) else f"exit code {code}"
    return (f"data-parallel run failed: rank {rank} of {world.size}: {what}; the other ranks were stopped and no "
            "record was written")


def rank_entry(rank: int, world: World, folder: str, target, args: tuple) -> None:
    """A spawned rank: the process group around target(rank, *args). Bad input exits 2, any other
    failure 1, each with its one-line reason in <folder>/rank<N>.error for the parent."""
    try:
        with process_group(rank, world):
            target(rank, *args)
    except SweepbenchError as err:
        _note(folder, rank, str(err))
        sys.exit(2)
    except BaseException as err:  # noqa: BLE001 (the parent reports it; the traceback goes to the log)
        _note(folder, rank, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": "))
        traceback.print_exc()
        sys.exit(1)


def _note(folder: str, rank: int, text: str) -> None:
    with open(os.path.join(folder, f"rank{rank}.error"), "w") as f:
        f.write(text + "\n")


# ---------------------------------------------------------------- process group


@contextmanager
def process_group(rank: int, world: World, local: int | None = None):
    """Join the process group as `rank` (torch threads and, on GPUs, the rank's device set first:
    GPU `rank` of this machine, or for a SLURM task its node-local index `local` among the GPUs it
    sees, the only one where SLURM gives each task its own); every collective fails after
    world.timeout_s. The group is destroyed on the way out."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(world.threads)
    if world.device == "cuda":
        torch.cuda.set_device(rank if local is None else local % max(1, torch.cuda.device_count()))
    try:
        dist.init_process_group(world.backend, init_method=world.init_method, rank=rank, world_size=world.size,
                                timeout=timedelta(seconds=world.timeout_s))
    except (RuntimeError, ValueError) as err:
        if "address already in use" in str(err).lower():
            raise port_in_use(*world.init_method.removeprefix("tcp://").rsplit(":", 1)) from None
        raise
    try:
        yield
    finally:
        dist.destroy_process_group()
