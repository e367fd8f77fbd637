"""The workflow's steps that do not train never import torch: each is a process of its own,
and importing torch costs one to two seconds of every such step (issue 17)."""

import subprocess
import sys

NOT_TRAINING = ("cli", "plan.planner", "plan.stacks", "train.job", "aggregate.tables", "check.compare",
                "report.document", "report.figures", "status", "aggregate.statistics", "check.regression",
                "aggregate.reproduction", "record", "plan.batch_cycle")


def test_steps_that_do_not_train_never_import_torch():
    code = ("import sys, importlib; "
            + "; ".join(f"importlib.import_module('sweepbench.{m}')" for m in NOT_TRAINING)
            + "; print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
