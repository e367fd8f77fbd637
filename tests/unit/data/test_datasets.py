import numpy as np
import pytest

from sweepbench import SweepbenchError
from sweepbench.data import datasets
from sweepbench.spec import resolve


def test_digits_file_reader_equals_sklearn_load_digits():
    from sklearn.datasets import load_digits

    data, target = datasets.digits_arrays()
    bunch = load_digits()
    np.testing.assert_array_equal(data, bunch.data)
    np.testing.assert_array_equal(target, bunch.target)


def test_digits_split_is_fixed_by_data_seed_and_disjoint():
    a = datasets.load("digits", resolve({"workload": "digits_mlp"}))
    b = datasets.load("digits", resolve({"workload": "digits_mlp", "seed": 5}))
    c = datasets.load("digits", resolve({"workload": "digits_mlp", "data_seed": 1}))
    assert a.counts == {"n_train": 1079, "n_val": 359, "n_test": 359}
    assert (a.x_train == b.x_train).all() and not (a.x_train == c.x_train).all()


def test_linreg_matches_the_seeds_generator():
    s = datasets.load("linreg", resolve({"workload": "linreg"}))
    x, y = s.x_train.numpy(), s.y_train.numpy()
    assert len(x) == 100 and 0 <= x.min() and x.max() <= 10
    slope, intercept = np.polyfit(x, y, 1)
    assert slope == pytest.approx(10, abs=1.0) and intercept == pytest.approx(2, abs=6)



@pytest.mark.parametrize("workload, dataset", [("linreg", "linreg"), ("logreg2d", "logreg2d")])
def test_the_reports_torch_free_training_set_is_what_training_loads(workload, dataset):
    from sweepbench.data import generated

    spec = resolve({"workload": workload, "data_seed": 3, "train_size": 50})
    s = datasets.load(dataset, spec)
    x, y = generated.training_set(dataset, spec)
    assert len(y) == 50 and np.array_equal(x, s.x_train.numpy()) and np.array_equal(y, s.y_train.numpy())

def test_val_size_larger_than_training_set_is_rejected(tiny_image_data):
    with pytest.raises(SweepbenchError, match="bad val_size 64"):
        datasets.load("mnist", resolve({"workload": "mnist_mlp", "val_size": 64, **tiny_image_data}))


def test_as_float_holds_exactly_what_inputs_would_give_per_batch():
    import torch

    from sweepbench.data import datasets

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (10, 1, 4, 4), dtype=torch.uint8, generator=g)
    y = torch.arange(10)
    s = datasets.Splits(x, y, x[:3], y[:3], x[3:], y[3:], scale=1 / 255, mean=0.2, std=0.3)
    f = s.as_float()
    assert f.x_train.dtype == torch.float32 and (f.scale, f.mean, f.std) == (1.0, 0.0, 1.0)
    assert torch.equal(f.inputs(f.x_train[2:5]), s.inputs(s.x_train[2:5]))
    assert torch.equal(f.x_test, s.inputs(s.x_test))
    assert s.as_float(limit_bytes=100) is s          # too big: stays uint8, converted batch by batch
