"""The workflow's steps that do not train never import torch: each is a process of its own,
and importing torch costs one to two seconds of every such step (issue 17)."""

import subprocess
import sys

NOT_TRAINING = ("cli", "plan", "stacking", "pack", "tables", "check", "report", "figures", "status", "analysis",
                "regression", "reproduction", "record", "batch_range")


def test_steps_that_do_not_train_never_import_torch():
    code = ("import sys, importlib; "
            + "; ".join(f"importlib.import_module('sweepbench.{m}')" for m in NOT_TRAINING)
            + "; print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
