"""The declaration tables: every run option and every optimizer is declared once, complete, and
everything else (parsing, validation, --help, the planner, training) follows from that entry."""

import math
import os
import re

import pytest
from conftest import run_cli

from sweepbench import SweepbenchError, spec
from sweepbench.plan.planner import plan
from sweepbench.spec import KINDS, OPTIONS, Option, parse_value, resolve
from sweepbench.train import acceleration, optimizers

# Options whose bounds depend on another option (checked in spec._check_relations) or that have none.
BOUNDED_ELSEWHERE = {"target": "range depends on target_metric (accuracy in [0, 1], loss >= 0)"}


@pytest.mark.parametrize("name", list(OPTIONS))
def test_every_option_is_complete(name):
    o = OPTIONS[name]
    assert o.name == name and o.kind in KINDS and o.help.strip()
    if o.kind == "choice":
        assert len(o.choices) >= 1
    if o.kind in ("int", "float", "ints") and name not in BOUNDED_ELSEWHERE:
        assert o.low is not None or o.high is not None, f"{name} has no bounds"
    if name != "workload":                    # the one option without a default value: it is required
        o.check(o.default)                    # the default passes its own check
    assert o.allowed()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(optimizers.OPTIMIZERS))
def test_every_optimizer_is_complete(name):
    import torch

    kind = optimizers.OPTIMIZERS[name]
    assert kind.name == name and callable(kind.update)
    cls = getattr(torch.optim, kind.torch_class)
    options = kind.torch_options(spec.defaults())
    cls([torch.nn.Parameter(torch.zeros(2))], lr=0.1, **options)      # torch accepts the keyword arguments
    assert kind.fused_on <= {"cuda", "cpu"}


def test_a_new_run_option_is_one_entry(monkeypatch):
    """Adding an Option makes it a default, parsable from --set, bounded in validation, listed in
    --help and accepted by the planner."""
    monkeypatch.setitem(OPTIONS, "label_smoothing", Option("label_smoothing", 0.0, "float", "smoothing of the "
                                                           "targets", low=0, high=1, high_open=True))
    assert spec.defaults()["label_smoothing"] == 0.0
    assert parse_value("label_smoothing", "0.1") == 0.1
    assert resolve({"workload": "linreg", "label_smoothing": 0.1})["label_smoothing"] == 0.1
    with pytest.raises(SweepbenchError, match=r"bad label_smoothing 1.5; allowed: a finite number >= 0 and < 1"):
        resolve({"workload": "linreg", "label_smoothing": 1.5})
    assert "  label_smoothing = 0.0  smoothing of the targets; allowed: a finite number >= 0 and < 1" in \
        spec.help_text()
    p = plan({"studies": {"s": {"workload": "linreg", "grid": {"label_smoothing": [0.0, 0.2]}}}})
    assert sorted(c["runs"][0]["spec"]["label_smoothing"] for c in p["cells"].values()) == [0.0, 0.2]


def test_a_new_optimizer_is_one_entry(monkeypatch, tmp_path):
    """Adding an OptimizerKind makes it a valid choice, trains with the foreach rule and with
    torch.optim, and `auto` picks its kernels from the entry."""
    def signed_sgd(opt, params, grads, lr):
        optimizers.torch._foreach_add_(params, [g.sign() for g in grads], alpha=-lr)

    monkeypatch.setitem(optimizers.OPTIMIZERS, "signsgd", optimizers.OptimizerKind(
        "signsgd", signed_sgd, "SGD", lambda s: {"weight_decay": s["weight_decay"]}))
    from sweepbench.train import engine

    for impl in ("foreach", "for-loop"):
        user = {"workload": "digits_softmax", "optimizer": "signsgd", "lr": 0.001, "epochs": 1,
                "optimizer_impl": impl, "device": "cpu"}
        rec = engine.train(resolve(user), str(tmp_path / impl), quiet=True)
        assert rec["spec"]["optimizer"] == "signsgd" and rec["speed"]["optimizer_impl"] == impl
        assert math.isfinite(rec["final"]["train_loss"])
    import torch

    assert acceleration.optimizer_impl(resolve({"workload": "linreg", "optimizer": "signsgd"}),
                                       torch.device("cpu")) == "foreach"
    assert "signsgd" not in acceleration.fused_optimizers("cpu")


CONFIG_CASES = [  # (option, bad value, message) through the planner, as a config would give them
    ("dropout", "abc", "bad dropout 'abc' (text, not a number); allowed: a finite number >= 0 and < 1"),
    ("dropout", 1.5, "bad dropout 1.5; allowed: a finite number >= 0 and < 1"),
    ("reg_lambda", -1, "bad reg_lambda -1; allowed: a finite number >= 0"),
    ("hidden", [0], "bad hidden [0]; allowed: a non-empty list of integers with >= 1 and <= 100000"),
    ("hidden", [], "bad hidden []; allowed: a non-empty list of integers with >= 1 and <= 100000"),
    ("hidden", "20,20", "bad hidden '20,20'; allowed: a non-empty list of integers"),
    ("step_milestones", ["a"], "bad step_milestones ['a']; allowed: a list of integers each >= 1"),
    ("entropy_alpha", -0.5, "bad entropy_alpha -0.5; allowed: a finite number >= 0"),
    ("momentum", "high", "bad momentum 'high' (text, not a number); allowed: a finite number >= 0 and < 1"),
    ("diverge_factor", "ten", "bad diverge_factor 'ten' (text, not a number)"),
    ("diverge_factor", float("nan"), "bad diverge_factor nan (not finite); allowed: a finite number > 1"),
    ("converge_tol", float("nan"), "bad converge_tol nan (not finite)"),
    ("target", float("nan"), "bad target nan (not finite)"),
    ("lr", True, "bad lr True (a boolean, not a number); allowed: a finite number > 0"),
    ("lr", "1e-3", "bad lr '1e-3' (text, not a number: YAML reads an exponent number without a dot or without its "
                   "exponent's sign, e.g. 1e-3 or 1.0e9, as text; write 1.0e-3 or 0.001)"),
    ("timing_budget_s", "1.0e9", "bad timing_budget_s '1.0e9' (text, not a number: YAML reads an exponent number "
                                 "without a dot or without its exponent's sign, e.g. 1e-3 or 1.0e9, as text; write "
                                 "1.0e+9 or 1000000000.0)"),
    ("lr", "1E9", "write 1.0e+9 or 1000000000.0)"),
    ("epochs", 2.5, "bad epochs 2.5; allowed: an integer >= 1"),
    ("batch_size", True, "bad batch_size True (a boolean, not a number); allowed: an integer >= 1 or 'full'"),
    ("data_seed", 2**32, "bad data_seed 4294967296; allowed: an integer >= 0 and < 4294967296"),
    ("target", 1.5, "bad target 1.5 for val_accuracy; allowed: a number in [0, 1]"),
    ("gns_ema", 1.0, "bad gns_ema 1.0; allowed: a finite number >= 0 and < 1"),
]


@pytest.mark.parametrize("key, value, message", CONFIG_CASES)
def test_bad_values_are_refused_by_the_planner_naming_study_value_and_range(key, value, message):
    config = {"studies": {"s": {"workload": "digits_mlp", "fixed": {key: value}}}}
    with pytest.raises(SweepbenchError) as err:
        plan(config)
    assert "study 's'" in str(err.value) and message in str(err.value)


def test_loss_target_below_zero_is_refused():
    with pytest.raises(SweepbenchError, match=r"bad target -1.0 for train_loss; allowed: a number >= 0"):
        resolve({"workload": "linreg", "target_metric": "train_loss", "target": -1.0})


@pytest.mark.parametrize("args, message", [
    (["--seed", "-1"], "bad seed -1; allowed: an integer >= 0 and < 4294967296"),
    (["--seed", str(2**32)], "bad seed 4294967296; allowed: an integer >= 0 and < 4294967296"),
    (["--set", "dropout=abc"], "bad value 'abc' for dropout; expected a finite number >= 0 and < 1"),
    (["--set", "hidden=0"], "bad hidden [0]; allowed: a non-empty list of integers with >= 1 and <= 100000"),
    (["--set", "diverge_factor=nan"], "bad diverge_factor nan (not finite)"),
])
def test_bad_values_on_the_command_line_are_one_line_exit_2(tmp_path, args, message):
    proc = run_cli("train", "--workload", "digits_mlp", *args, "--out", str(tmp_path / "r"))
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("workload, option, value, users", [
    ("digits_softmax", "hidden", [10], "digits_mlp"),
    ("mnist_mlp", "dropout", 0.5, "fmnist_wrn16_10"),
    ("linreg", "entropy_alpha", 0.1, "digits_mlp"),
    ("digits_mlp", "augment", True, "fmnist_lenet5"),
])
def test_an_option_the_workload_ignores_is_refused_naming_who_uses_it(workload, option, value, users):
    """`hidden` on a softmax or `dropout` on the MLP was accepted and recorded: a sweep over it gave
    identical cells under different labels."""
    message = (rf"bad {option} .* for workload {workload} \(model .*\), which ignores it; allowed: leave {option} "
               rf"unset, or a workload or model that uses it: .*{users}")
    with pytest.raises(SweepbenchError, match=message):
        spec.resolve({"workload": workload, option: value})
    spec.resolve({"workload": workload, option: None})                    # unset (or off) is fine


def test_every_scoped_option_names_real_models_and_tasks():
    from sweepbench.workloads import WORKLOADS

    models, tasks = {w.model for w in WORKLOADS.values()}, {w.task for w in WORKLOADS.values()}
    for option in spec.OPTIONS.values():
        assert set(option.models) <= models and set(option.tasks) <= tasks, option.name


@pytest.mark.parametrize("key, value, message", [
    ("lr", 1e300, "bad lr 1e+300; allowed: a finite number > 0 and <= 10000"),
    ("hidden", [10**9], "bad hidden [1000000000]; allowed: a non-empty list of integers with >= 1 and <= 100000"),
    ("gns_batches", 10**9, "bad gns_batches 1000000000; allowed: an integer >= 2 and <= 1024"),
    ("threads", 100000, "bad threads 100000; allowed: an integer >= 0 and <= 1024"),
])
def test_options_are_bounded_before_anything_is_allocated(key, value, message):
    """hidden [10^9] allocated until it crashed, gns_batches 10^9 grew to 13 GB, lr 1e300 overflowed."""
    workload = "digits_mlp"
    with pytest.raises(SweepbenchError, match=re.escape(message)):
        spec.resolve({"workload": workload, key: value})


def test_threads_beyond_the_cores_are_capped_and_said(capsys):
    from sweepbench.train.engine import usable_threads

    cores = len(os.sched_getaffinity(0))
    assert usable_threads(1) == 1 and usable_threads(cores + 5) == cores
    assert f"threads {cores + 5} capped at the {cores} cores" in capsys.readouterr().err


def test_the_exponent_hint_writes_a_form_yaml_reads_as_a_number():
    """The hint said "write 1.0e-3" for every exponent number, but 1.0e9 is text too (YAML 1.1 wants the sign)."""
    import re

    import yaml

    for text, number in (("1e-3", 0.001), ("1.0e9", 1e9), ("5E2", 500.0)):
        assert isinstance(yaml.safe_load(f"x: {text}")["x"], str)                     # text, as reported
        hint = re.search(r"write (\S+?)[ )]", plan_error({"lr": text}))[1]
        assert yaml.safe_load(f"x: {hint}")["x"] == number


def plan_error(fixed: dict) -> str:
    with pytest.raises(SweepbenchError) as err:
        plan({"studies": {"s": {"workload": "linreg", "fixed": fixed}}})
    return str(err.value)


# Every option that acts only with other options' values (Option.acts): a value, a spec where it does
# nothing (refused) and one where it acts (accepted). A new `acts` entry without a row here fails below.
ACTS_CASES = {
    "momentum": (0.5, {"optimizer": "adam"}, {"optimizer": "momentum"}),
    "step_milestones": ([2], {}, {"schedule": "step"}),
    "step_gamma": (0.5, {}, {"schedule": "step"}),
    "cosine_min_factor": (0.1, {}, {"schedule": "cosine"}),
    "clr_max_lr": (0.5, {}, {"schedule": "triangular"}),
    "clr_step_size": (10, {"schedule": "cosine"}, {"schedule": "exp_range", "clr_max_lr": 1.0}),
    "clr_gamma": (0.5, {"schedule": "triangular", "clr_max_lr": 1.0}, {"schedule": "exp_range", "clr_max_lr": 1.0}),
    "batch_cycle": ([8, 16], {}, {"batch_schedule": "cyclic"}),
    "target": (0.5, {"target_metric": None}, {"target_metric": "val_loss"}),
    "patience": (3, {}, {"stop_at_target": True, "target_metric": "val_accuracy", "target": 0.9}),
    "gns_batches": (4, {}, {"gns": True}),
    "gns_ema": (0.5, {}, {"gns": True}),
    "timing_budget_s": (2.0, {}, {"timing_ci": 0.05}),
    "dist_timeout_s": (30.0, {}, {"world_size": 1}),
    "test_fraction": (0.3, {}, None),  # acts on local CSV files and image folders only (tests/unit/data)
}


def test_every_conditional_option_has_a_case():
    assert sorted(ACTS_CASES) == sorted(name for name, o in OPTIONS.items() if o.acts)


@pytest.mark.parametrize("name", sorted(ACTS_CASES))
def test_a_conditional_option_is_refused_where_it_does_nothing_and_accepted_where_it_acts(name):
    value, idle, acting = ACTS_CASES[name]
    base = {"workload": "linreg" if name == "target" else "digits_mlp", name: value}
    words = OPTIONS[name].acts[1]
    with pytest.raises(SweepbenchError, match=rf"^bad {name} .* which ignores it; allowed: leave {name} unset "
                                              rf"\(.*\), or {re.escape(words)}$"):
        resolve({**base, **idle})
    if acting is not None:
        assert resolve({**base, **acting})[name] == value
