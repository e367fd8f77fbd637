"""A test workload for the real-SLURM fault tests (tests/integration/test_slurm_real.py): the bundled
digits and a small MLP whose first training step, inside a SLURM job, waits while a gate file
exists. The test opens the gate (deletes the file) when the fault it injects is done, so a job
runs exactly as long as the test needs, sleeping, not burning the shared CPUs. The gate's path is
$SWEEPBENCH_TEST_GATE with {batch_size} filled in from the run's spec (one gate per job here)."""

import os
import time

from sweepbench import Workload


def gated_digits():
    return Workload(
        dataset="digits",
        model=make_model,
        task="multiclass",
        defaults={"lr": 0.1, "batch_size": 32, "epochs": 2, "target_metric": "val_accuracy", "target": 0.9},
        description="digits, an MLP 64-32-10 that waits for the test's gate in its first SLURM training step.",
    )


def make_model(spec):
    from torch import nn

    class Gated(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
            self.waited = False

        def forward(self, x):
            gate = os.environ.get("SWEEPBENCH_TEST_GATE", "").format(batch_size=spec["batch_size"])
            if self.training and not self.waited and os.environ.get("SLURM_JOB_ID") and gate:
                self.waited = True
                while os.path.exists(gate):
                    time.sleep(0.2)
            return self.net(x.flatten(1))

    return Gated()
