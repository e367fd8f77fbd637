"""Your own MLP on your own table: a CSV of numeric features and a label column.

The data need no code (a CSV path, `:species` naming its label column; 20% of the rows, drawn with
data_seed, are the test set: option test_fraction); the model is yours.
"""

from sweepbench import Workload


def blobs_mlp():
    return Workload(
        dataset="data/blobs.csv:species",
        model=make_mlp,
        task="multiclass",
        defaults={"lr": 0.05, "batch_size": 32, "epochs": 5, "target_metric": "test_accuracy", "target": 0.9},
        description="A 6-32-4 MLP on a CSV of 400 rows in 4 classes (examples/mlp_csv).",
    )


def make_mlp(spec):
    from torch import nn

    return nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 4))
