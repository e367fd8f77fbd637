"""A user's own workload, named `file.py:function` or `module:function`: found, imported, checked,
and every way it can be wrong refused in one line naming the file and the function (exit code 2)."""

import os
import textwrap

import pytest

from sweepbench import SweepbenchError, Workload, cli, workloads
from sweepbench.plan import user_inputs
from sweepbench.spec import resolve

GOOD = '''
from sweepbench import Workload


def small(**_):
    return Workload(dataset="data/shapes", model=make_model, task="multiclass",
                    defaults={"lr": 0.05, "epochs": 2, "target_metric": "test_accuracy", "target": 0.9})


def make_model(spec):
    raise RuntimeError("not called while planning")
'''


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(folder, name, text):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_a_workload_file_is_imported_and_its_declaration_used(here):
    write(here, "mine.py", GOOD)
    w = workloads.get("mine.py:small")
    assert isinstance(w, Workload) and w.name == "mine.py:small" and w.file == str(here / "mine.py")
    assert w.dataset == "data/shapes" and workloads.label(w.model) == "mine.py:make_model"
    spec = resolve({"workload": "mine.py:small", "batch_size": 8})
    assert (spec["lr"], spec["epochs"], spec["target"], spec["batch_size"]) == (0.05, 2, 0.9, 8)  # its, then ours
    assert workloads.effective(dict(spec, model="torchvision.resnet18")).model == "torchvision.resnet18"


def test_a_module_workload_is_imported_from_the_working_directory(here):
    write(here, "mypkg/__init__.py", "")
    write(here, "mypkg/wl.py", GOOD)
    w = workloads.get("mypkg.wl:small")
    assert w.file == str(here / "mypkg" / "wl.py") and w.task == "multiclass"


BAD = [
    (None, "nope.py:f", r"^bad workload 'nope.py:f': no file nope.py \(in .*\); allowed: a built-in workload"),
    ("def f(:\n", "mine.py:f", r"^bad workload 'mine.py:f': importing .*mine.py failed: SyntaxError: .*\(line 1\)$"),
    ("import numpy\nimport not_installed_here\n", "mine.py:f",
     r"importing .*mine.py failed: ModuleNotFoundError: No module named 'not_installed_here' \(line 2\)$"),
    ("def g():\n    pass\n", "mine.py:f", r"^bad workload 'mine.py:f': .*mine.py has no function f; allowed: g$"),
    ("def f():\n    return 1 / 0\n", "mine.py:f",
     r"^bad workload 'mine.py:f': f\(\) in .*mine.py failed: ZeroDivisionError: division by zero "
     r"\(line 2\)$"),
    ("def f():\n    return {'model': 'mlp'}\n", "mine.py:f",
     r"^bad workload 'mine.py:f': it returned dict; allowed: a sweepbench.Workload$"),
    ("from sweepbench import Workload\ndef f():\n"
     "    return Workload(dataset='x.npz', model='mlp', task='classify')\n",
     "mine.py:f", r"^bad workload 'mine.py:f': its task is 'classify'; allowed: one of multiclass, binary, "
                  r"regression$"),
    ("from sweepbench import Workload\ndef f():\n    return Workload(dataset='x.npz', model=3)\n",
     "mine.py:f", r"^bad workload 'mine.py:f': its model is 3; allowed: a model name, torchvision.<name>, or a"),
    (None, "no_such_module_here:f", r"^bad workload 'no_such_module_here:f': no module no_such_module_here can be"),
]


@pytest.mark.parametrize("text,name,message", BAD)
def test_a_broken_workload_is_one_line_naming_the_file_and_function(here, text, name, message):
    if text is not None:
        write(here, "mine.py", text)
    with pytest.raises(SweepbenchError, match=message) as err:
        workloads.get(name)
    assert "\n" not in str(err.value)


def test_defaults_that_are_not_run_options_are_refused_naming_the_workload(here):
    write(here, "mine.py", "from sweepbench import Workload\ndef f():\n"
                           "    return Workload(dataset='x.npz', model='mlp', defaults={'learning_rate': 0.1})\n")
    with pytest.raises(SweepbenchError, match=r"^bad workload 'mine.py:f': its defaults set 'learning_rate', not a "
                                              r"run option; allowed: model, data, "):
        resolve({"workload": "mine.py:f"})


def test_the_commands_say_it_in_one_line_with_exit_code_2(here, capsys):
    write(here, "mine.py", "def g():\n    pass\n")
    write(here, "config.yaml", "studies:\n  s:\n    workload: mine.py:f\n")
    assert cli.main(["plan", "--config", "config.yaml"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sweepbench plan: error: config error in study 's', key workload: bad workload "
                          "'mine.py:f': ") and err.endswith("has no function f; allowed: g") and "\n" not in err
    assert cli.main(["train", "--workload", "mine.py:f", "--out", "run"]) == 2
    assert "has no function f" in capsys.readouterr().err and not os.path.exists("run")


def test_generic_workloads_need_data_and_models_are_named_or_refused(here):
    with pytest.raises(SweepbenchError, match=r"^workload classifier needs the option data; allowed: a local"):
        resolve({"workload": "classifier"})
    assert resolve({"workload": "classifier", "data": "x.npz", "model": "torchvision.resnet18"})["model"] \
        == "torchvision.resnet18"
    with pytest.raises(SweepbenchError, match=r"^bad model 'torchvision.resnet18\(weights=\"DEFAULT\"\)': pretrained "
                                              r"weights are not supported .*; allowed: torchvision.<name> alone$"):
        resolve({"workload": "classifier", "data": "x.npz", "model": 'torchvision.resnet18(weights="DEFAULT")'})
    with pytest.raises(SweepbenchError, match=r"^bad model 'resnet18'; allowed: linear_neuron, .*torchvision.<name>"):
        resolve({"workload": "classifier", "data": "x.npz", "model": "resnet18"})


def test_the_user_file_is_a_training_input_and_only_its_runs_have_one(here):
    path = write(here, "mine.py", GOOD)
    spec = resolve({"workload": "mine.py:small", "data": "digits"})     # built-in data: only the file counts
    found = user_inputs.of(spec)
    assert found["workload_file"]["path"] == str(path) and len(found["workload_file"]["sha256"]) == 64
    assert found["data"] is None
    before = user_inputs.digest(spec)
    path.write_text(GOOD + "\n# an edit\n")
    assert user_inputs.digest(spec) != before                      # editing it re-trains its runs
    assert user_inputs.of(resolve({"workload": "digits_mlp"})) is None and user_inputs.digest(
        resolve({"workload": "digits_mlp"})) == ""
    assert user_inputs.needs_probe(spec) and not user_inputs.needs_probe(resolve({"workload": "digits_mlp"}))
    assert user_inputs.needs_probe(resolve({"workload": "digits_softmax", "model": "torchvision.resnet18"}))


BAD_LOADER = '''
from sweepbench import Workload


def f():
    return Workload(dataset=load, model="mlp", task="multiclass")


def load(spec, generator):
    import torch

    return torch.rand(8, 3), torch.rand(8), torch.rand(4, 3), torch.rand(4)   # labels that are not classes
'''


def test_the_probe_refuses_data_that_do_not_fit_the_task_in_one_line_with_exit_code_2(here, capsys):
    import json

    write(here, "mine.py", BAD_LOADER)
    spec = resolve({"workload": "mine.py:f"})
    write(here, "runs.json", json.dumps([{"dir": "seed~0", "seed": 0, "spec": spec}]))
    assert cli.main(["probe", "--runs-file", "runs.json", "--out", "probe.json"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sweepbench probe: error: workload mine.py:f: its data loader returned y_train of dtype ")
    assert "expected integer class labels" in err and "\n" not in err and not os.path.exists("probe.json")


def test_a_workload_without_a_model_is_refused_naming_the_field(here):
    write(here, "mine.py", "from sweepbench import Workload\ndef f():\n    return Workload(dataset='x.npz')\n")
    with pytest.raises(SweepbenchError, match=r"^bad workload 'mine.py:f': its model is None; allowed: a model name"):
        workloads.get("mine.py:f")


WITH_HELPER = '''
import helper
from sweepbench import Workload


def wl():
    print("planning", helper.EPOCHS)            # a user's print must not spoil a JSON plan on stdout
    return Workload(dataset="digits", model="mlp", defaults={"epochs": helper.EPOCHS})
'''


def test_each_workload_file_imports_its_own_helpers_and_they_are_its_code(here, capsys):
    for folder, epochs in (("a", 1), ("b", 2)):
        write(here, f"{folder}/wl.py", WITH_HELPER)
        write(here, f"{folder}/helper.py", f"EPOCHS = {epochs}\n")
    assert workloads.get("a/wl.py:wl").defaults["epochs"] == 1
    assert workloads.get("b/wl.py:wl").defaults["epochs"] == 2          # not a's helper, imported first
    assert capsys.readouterr().out == ""
    spec = resolve({"workload": "b/wl.py:wl"})
    found = user_inputs.of(spec)["workload_file"]
    assert [m["path"] for m in found["modules"]] == [str(here / "b" / "helper.py")]
    before = user_inputs.digest(spec)
    (here / "b" / "helper.py").write_text("EPOCHS = 2  # edited\n")
    assert user_inputs.digest(spec) != before                          # an edited helper re-trains too


@pytest.mark.parametrize("body,message", [
    ("import sys\ndef f():\n    sys.exit(3)\n",
     r"f\(\) in .*mine.py failed: it called sys.exit\(3\) \(line 3\); argparse"),
    ("import argparse\nargparse.ArgumentParser().parse_args(['--nope'])\ndef f():\n    pass\n",
     r"importing .*mine.py failed: it called sys.exit\(2\) \(line 2\)"),
    ("from torch import nn\nfrom sweepbench import Workload\ndef f():\n"
     "    return Workload(dataset='digits', model=nn.Linear(64, 10))\n",
     r"its model is a module instance \(Linear\); allowed: a function \(spec\) -> torch.nn.Module"),
    ("from sweepbench import Workload\ndef f():\n    return Workload(dataset=load, model='mlp')\ndef load(spec):\n"
     "    pass\n",
     r"its dataset mine.py:load cannot be called with 2 arguments; allowed: a function \(spec, generator\)"),
    ("from sweepbench import Workload\ndef f():\n    return Workload(dataset='digits', "
     "model='torchvision.resnet18(weights=\"DEFAULT\")')\n", r"its model: bad model .*pretrained weights are not"),
])
def test_more_ways_a_workload_file_goes_wrong_are_one_line(here, capsys, body, message):
    write(here, "mine.py", body)
    with pytest.raises(SweepbenchError, match=r"^bad workload 'mine.py:f': .*" + message) as err:
        workloads.get("mine.py:f")
    assert "\n" not in str(err.value)


def test_a_deleted_run_folder_makes_its_manifest_stale(tmp_path):
    from sweepbench.status import stale_manifests

    jobs = {"s/lr~0.1": {"runs": [{"dir": "seed~0"}, {"dir": "seed~1"}]}, "s/lr~1": {"runs": [{"dir": "seed~0"}]}}
    for job, run in (("s/lr~0.1", "seed~0"), ("s/lr~0.1", "seed~1"), ("s/lr~1", "seed~0")):
        write(tmp_path, f"runs/{job}/{run}/run.json", "{}")
        write(tmp_path, f"manifests/{job}.json", "{}")
    assert stale_manifests({"jobs": jobs}, str(tmp_path)) == []
    (tmp_path / "runs" / "s" / "lr~0.1" / "seed~1" / "run.json").unlink()
    assert stale_manifests({"jobs": jobs}, str(tmp_path)) == [(str(tmp_path / "manifests" / "s" / "lr~0.1.json"), 1)]


def test_a_data_path_on_an_axis_is_one_folder_name():
    from sweepbench.plan.planner import cell_slug

    assert cell_slug({"data": "./data/iris.csv:species", "lr": 0.1}) == "data~data+iris.csv+species/lr~0.1"
