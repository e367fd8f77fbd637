"""sweepbench's foreach optimizers are torch.optim's update rules: compared step by step."""

import subprocess
import sys

import pytest
import torch

from sweepbench.train import engine
from sweepbench.train.optimizers import OPTIMIZERS as RULES
from sweepbench.train.optimizers import ForeachOptimizer


def _model(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_each_rule_matches_torch_optim_for_30_steps_with_a_changing_lr(rule, weight_decay):
    spec = {"optimizer": rule, "lr": 0.05, "weight_decay": weight_decay, "momentum": 0.9}
    ours_model, ref_model = _model(0), _model(0)
    ours = engine.make_optimizer(spec, ours_model.parameters(), "foreach")
    ref = engine.make_optimizer(spec, ref_model.parameters(), "for-loop")
    assert isinstance(ours, ForeachOptimizer) and isinstance(ref, torch.optim.Optimizer)
    gen = torch.Generator().manual_seed(1)
    for step in range(30):
        x, y = torch.randn(8, 5, generator=gen), torch.randint(0, 3, (8,), generator=gen)
        for model, opt in ((ours_model, ours), (ref_model, ref)):
            opt.param_groups[0]["lr"] = 0.05 / (1 + step)   # schedules set the lr between steps
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    for a, b in zip(ours_model.parameters(), ref_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.equal(next(ours_model.parameters()), next(_model(0).parameters()))  # it did train


def test_a_parameter_without_gradient_is_a_clear_error():
    model = _model(0)
    opt = ForeachOptimizer("sgd", model.parameters(), lr=0.1)
    model[0].weight.grad = torch.zeros_like(model[0].weight)
    with pytest.raises(RuntimeError, match="needs a gradient for every parameter"):
        opt.step()


@pytest.mark.slow
def test_a_cpu_run_never_imports_torch_dynamo(tmp_path):
    """The point of these optimizers: torch.optim's first optimizer imports torch._dynamo (~1 s)."""
    code = ("import sys; from sweepbench.train import engine; from sweepbench.spec import resolve; "
            f"engine.train(resolve({{'workload': 'digits_mlp', 'epochs': 1, 'optimizer': 'adam', 'device': 'cpu'}}), "
            f"{str(tmp_path / 'run')!r}, quiet=True); print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
