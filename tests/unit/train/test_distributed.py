"""Data-parallel runs (sweepbench.train.distributed, sweepbench.train.parallel_model), in the pattern of
PyTorch's own DDP tests: N processes over gloo on the CPU, meeting through a file store (no port to
collide), one thread per rank, the process group always destroyed, a timeout on every collective."""

import json
import os
import signal
import socket
import time

import pandas as pd
import pytest
import torch

from sweepbench import SweepbenchError, record
from sweepbench.atomic import WRITTEN
from sweepbench.spec import resolve
from sweepbench.train import distributed, engine, parallel_model

# 97 samples at a global batch of 2 x 16: three full batches, then one of a single sample, whose
# share is empty on rank 0 (it joins the all-reduce at weight 0)
SPEC = {"workload": "digits_mlp", "train_size": 97, "epochs": 2, "eval_max_samples": 64, "threads": 2, "lr": 0.1,
        "optimizer": "momentum"}


def world(tmp_path, size=2, timeout_s=60.0) -> distributed.World:
    return distributed.World(size, "cpu", "gloo", f"file://{tmp_path}/store", timeout_s, 1)


def _train_and_save(rank: int, spec: dict, out: str) -> None:
    """A rank's part of the equivalence test: train the run, save this rank's parameters."""
    run = engine.set_up([spec], [], parallel_model.DataParallelModel, quiet=True)
    engine.train_loop(run)
    torch.save({k: v.detach().clone() for k, v in run.model.module.state_dict().items()}, f"{out}/rank{rank}.pt")


def test_ddp_over_two_processes_at_b_equals_one_process_at_2b_and_every_rank_holds_the_same_weights(tmp_path):
    ddp = resolve({**SPEC, "batch_size": 16, "world_size": 2})
    distributed.launch(world(tmp_path), str(tmp_path), _train_and_save, (ddp, str(tmp_path)))
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]

    one = engine.set_up([resolve({**SPEC, "batch_size": 32})], [], engine.SingleModel, quiet=True)
    engine.train_loop(one)
    assert one.step == 8  # 2 epochs of 4 updates (the last of one sample), as the data-parallel run took
    reference = one.model.module.state_dict()
    start = engine.set_up([resolve({**SPEC, "batch_size": 32})], [], engine.SingleModel, quiet=True)
    for name, value in reference.items():
        assert torch.equal(ranks[0][name], ranks[1][name]), name                      # ranks identical, bit for bit
        torch.testing.assert_close(ranks[0][name], value, rtol=1e-5, atol=1e-6)       # = one process at 2b
        assert not torch.allclose(value, start.model.module.state_dict()[name])       # and training moved them


@pytest.mark.slow
def test_a_data_parallel_run_writes_one_record_with_both_batches_and_the_losses_of_one_process(tmp_path):
    ddp = resolve({**SPEC, "batch_size": 16, "world_size": 2})
    result = engine.train(ddp, str(tmp_path / "ddp"), quiet=True)
    engine.train(resolve({**SPEC, "batch_size": 32}), str(tmp_path / "one"), quiet=True)
    assert sorted(os.listdir(tmp_path)) == ["ddp", "one"]                 # no temporary folder left
    assert sorted(os.listdir(tmp_path / "ddp")) == sorted([*record.RECORD_FILES, WRITTEN])
    par = result["distributed"]
    assert (par["world_size"], par["backend"], par["per_worker_batch"], par["global_batch"]) == (2, "gloo", 16, 32)
    assert par["threads_per_rank"] == 1 and len(par["rank_step_time_median_s"]) == 2
    assert json.load(open(tmp_path / "one" / "run.json"))["distributed"]["global_batch"] == 32
    m_ddp, m_one = (pd.read_csv(tmp_path / d / "metrics.csv") for d in ("ddp", "one"))
    assert list(m_ddp["samples"]) == list(m_one["samples"]) == [0, 97, 194]
    assert list(m_ddp["batch_size"].fillna(0)) == list(m_one["batch_size"].fillna(0))
    for col in ("train_loss", "val_accuracy", "epoch_loss"):
        pd.testing.assert_series_equal(m_ddp[col], m_one[col], rtol=1e-4, check_exact=False)
    s_ddp, s_one = (pd.read_csv(tmp_path / d / "steps.csv") for d in ("ddp", "one"))
    pd.testing.assert_series_equal(s_ddp["loss"], s_one["loss"], rtol=1e-4, check_exact=False)
    assert list(s_ddp["batch_size"]) == [32, 32, 32, 1] * 2
    assert record.load_record(str(tmp_path / "ddp")).distributed["world_size"] == 2


def _die_on_rank_1(rank: int) -> None:
    import torch.distributed as dist

    if rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    dist.barrier()   # rank 0 waits for a peer that is gone


def _hang_on_rank_1(rank: int) -> None:
    import torch.distributed as dist

    if rank == 1:
        time.sleep(120)
    dist.barrier()


@pytest.mark.slow
def test_a_rank_that_dies_fails_the_run_at_once_and_stops_the_others(tmp_path):
    t = time.perf_counter()
    with pytest.raises(SweepbenchError, match=r"^data-parallel run failed: rank 1 of 2 died \(SIGKILL\); the other "
                                              r"ranks were stopped and no record was written$"):
        distributed.launch(world(tmp_path), str(tmp_path), _die_on_rank_1, ())
    assert time.perf_counter() - t < 40     # not the 60 s timeout


@pytest.mark.slow
def test_a_rank_that_hangs_fails_the_run_at_the_process_group_timeout(tmp_path):
    t = time.perf_counter()
    with pytest.raises(SweepbenchError, match=r"^data-parallel run failed: rank 0 of 2: .*; the other ranks were "
                                              r"stopped and no record was written$") as err:
        distributed.launch(world(tmp_path, timeout_s=3), str(tmp_path), _hang_on_rank_1, ())
    assert "\n" not in str(err.value)
    assert time.perf_counter() - t < 60     # the 3 s timeout (plus start-up), not rank 1's 120 s sleep


def test_a_port_already_in_use_is_refused_before_any_rank_starts(tmp_path, monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("MASTER_PORT", str(port))
        with pytest.raises(SweepbenchError, match=rf"^bad MASTER_PORT {port}: the port is already in use on "
                                                  r"127.0.0.1; allowed: a free port, or unset MASTER_PORT \(the "
                                                  r"ranks then meet through a file store, no port\)$"):
            engine.train(resolve({**SPEC, "batch_size": 16, "world_size": 2}), str(tmp_path / "run"), quiet=True)
    assert not os.path.exists(tmp_path / "run")
    monkeypatch.delenv("MASTER_PORT")
    assert distributed.rendezvous(str(tmp_path)) == f"file://{tmp_path}/store"   # the default: no port at all


def test_a_world_size_above_the_machine_is_refused_before_any_rank_starts(tmp_path, monkeypatch):
    monkeypatch.setattr(distributed.provenance, "usable_cores", lambda: 2)
    with pytest.raises(SweepbenchError, match=r"^bad world_size 3: this machine has 2 CPU cores this process may use, "
                                              r"one per rank; allowed: 1..2 \(or 0: one process without DDP\)$"):
        engine.train(resolve({**SPEC, "batch_size": 16, "world_size": 3, "device": "cpu"}), str(tmp_path / "r"),
                     quiet=True)
    assert not os.path.exists(tmp_path / "r")


def test_what_a_data_parallel_run_cannot_do_is_refused_when_resolved():
    with pytest.raises(SweepbenchError, match=r"^bad gns True with world_size 2; allowed: gns=False"):
        resolve({**SPEC, "world_size": 2, "gns": True})
    with pytest.raises(SweepbenchError, match=r"^bad batch_size 'full' with world_size 2; allowed: an integer"):
        resolve({**SPEC, "world_size": 2, "batch_size": "full"})
    with pytest.raises(SweepbenchError, match=r"^bad batch_size 64 with world_size 2: the global batch 2 x 64 "
                                              r"exceeds the 97 training samples of digits_mlp; allowed: batch_size "
                                              r"1..48$"):
        engine.check_batch_sizes(resolve({**SPEC, "world_size": 2, "batch_size": 64}), 97, "digits_mlp")


def test_each_rank_takes_a_contiguous_share_and_the_shares_make_the_global_batch():
    for n in (32, 31, 1):
        shares = [parallel_model.shard(slice(64, 64 + n), r, 2) for r in range(2)]
        assert shares[0].start == 64 and shares[0].stop == shares[1].start and shares[1].stop == 64 + n
    assert [parallel_model.shard(slice(0, 32), r, 2) for r in range(2)] == [slice(0, 16), slice(16, 32)]
    assert parallel_model.shard(slice(96, 97), 0, 2) == slice(96, 96)   # empty: weight 0


def test_the_ranks_of_a_slurm_job_are_its_tasks_and_rank_0_alone_writes(tmp_path):
    """What `srun -n 2 sweepbench train-pack --slurm-tasks 2` runs in a SLURM job (here two local
    processes with the task variables srun sets): each task trains the run as rank SLURM_PROCID of
    SLURM_NTASKS through a file store in the job folder; rank 0 writes the record and the manifest,
    the other exits 0; the losses are one process's at the global batch."""
    import subprocess
    import sys

    spec = resolve({**SPEC, "batch_size": 16, "world_size": 2})
    (tmp_path / "runs.json").write_text(json.dumps([{"dir": "seed~0", "seed": 0, "spec": spec}]))
    out, manifest = tmp_path / "job", tmp_path / "manifest.json"
    argv = [sys.executable, "-m", "sweepbench.cli", "train-pack", "--runs-file", str(tmp_path / "runs.json"),
            "--out", str(out), "--manifest", str(manifest), "--threads", "2", "--slurm-tasks", "2"]
    env = {**os.environ, "SLURM_NTASKS": "2", "SLURM_JOB_ID": "77", "SLURM_STEP_ID": "0"}
    procs = [subprocess.Popen(argv, env={**env, "SLURM_PROCID": str(r), "SLURM_LOCALID": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert "run 1/1" in outs[0][0] and outs[1][0] == ""                      # rank 1 trains silently
    assert json.loads(manifest.read_text())["trained"] == 1
    assert sorted(os.listdir(out)) == ["seed~0"]                              # no store or temporary folder left
    result = json.loads((out / "seed~0" / "run.json").read_text())
    assert result["distributed"]["world_size"] == 2 and result["distributed"]["threads_per_rank"] == 1
    engine.train(resolve({**SPEC, "batch_size": 32}), str(tmp_path / "one"), quiet=True)
    m_ddp, m_one = (pd.read_csv(d / "metrics.csv") for d in (out / "seed~0", tmp_path / "one"))
    pd.testing.assert_series_equal(m_ddp["train_loss"], m_one["train_loss"], rtol=1e-4, check_exact=False)


def test_a_slurm_task_is_checked_against_the_study_tasks(tmp_path):
    task = distributed.slurm_task(2, "out", {"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_LOCALID": "0",
                                             "SLURM_JOB_ID": "5", "SLURM_STEP_ID": "3"})
    assert task == distributed.Task(1, 2, 0, os.path.join("out", ".ddp-store-5.3"))
    with pytest.raises(SweepbenchError, match=r"^bad --slurm-tasks 2: this process is no SLURM task .*allowed: "
                                              r"train-pack under `srun -n 2`"):
        distributed.slurm_task(2, "out", {})
    with pytest.raises(SweepbenchError, match=r"^bad --slurm-tasks 2: srun started 4 tasks"):
        distributed.slurm_task(2, "out", {"SLURM_PROCID": "0", "SLURM_NTASKS": "4"})
    job = engine.Job([str(tmp_path / "r")], quiet=True)
    with pytest.raises(SweepbenchError, match=r"^bad world_size 0 for 2 SLURM tasks; allowed: 2"):
        distributed.train_task(resolve(SPEC), job, task, 1)
