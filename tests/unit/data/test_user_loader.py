"""A user-written data loader `loader(spec, generator)` through datasets.load: what it may return, how
it is converted, and the one-line refusals (sweepbench.data.validate)."""

import numpy as np
import pytest
import torch

from sweepbench import SweepbenchError
from sweepbench.data import datasets
from sweepbench.spec import resolve

WHO = "workload my.py:small_cnn"


@pytest.fixture
def spec(tmp_path):
    return resolve({"workload": "digits_mlp", "data_dir": str(tmp_path / "resources")})


def parts(n_train=40, n_test=10, shape=(3, 8, 6), classes=5, seed=0, **changes) -> dict:
    g = torch.Generator().manual_seed(seed)
    out = {"x_train": torch.randint(0, 256, (n_train, *shape), dtype=torch.uint8, generator=g),
           "y_train": torch.randint(0, classes, (n_train,), generator=g),
           "x_test": torch.randint(0, 256, (n_test, *shape), dtype=torch.uint8, generator=g),
           "y_test": torch.randint(0, classes, (n_test,), generator=g)}
    out.update(changes)
    return {k: v for k, v in out.items() if v is not None}


def returning(value):
    def loader(spec, generator):
        return value
    return loader


def test_a_dict_of_uint8_images_keeps_them_uint8_scaled_and_counts_classes(spec):
    p = parts(classes=3)
    p["y_train"][0] = 6                                      # the largest label over all splits decides
    s = datasets.load(returning(p), dict(spec, val_size=8))
    assert s.x_train.dtype == torch.uint8 and s.scale == pytest.approx(1 / 255)
    assert s.sample_shape == (3, 8, 6) and s.n_classes == 7 and s.n_inputs == 144
    assert s.counts == {"n_train": 32, "n_val": 8, "n_test": 10} and not s.val_is_test
    assert torch.equal(s.x_val, p["x_train"][-8:])           # held out as _split_val does: the last val_size
    assert s.as_float().n_classes == 7 and s.to("cpu").n_classes == 7


def test_a_tuple_of_six_numpy_arrays_with_its_own_validation_split(spec):
    rng = np.random.RandomState(0)
    value = (rng.rand(30, 4), rng.randint(0, 2, 30), rng.rand(6, 4), rng.randint(0, 2, 6),
             rng.rand(5, 4), rng.randint(0, 2, 5))
    s = datasets.load(returning(value), dict(spec, val_size=3), task="binary")
    assert s.x_train.dtype == torch.float32 and s.y_train.dtype == torch.float32 and s.scale == 1.0
    assert s.counts == {"n_train": 30, "n_val": 5, "n_test": 6} and s.n_classes == 2 and s.sample_shape == (4,)
    assert torch.equal(s.x_val, torch.from_numpy(value[4]).float())


def test_without_val_size_it_validates_on_test_and_train_size_caps_training(spec):
    s = datasets.load(returning(parts()), dict(spec, val_size=None, train_size=25))
    assert s.val_is_test and len(s.y_train) == 25 and torch.equal(s.x_val, s.x_test)


def test_regression_targets_become_float32(spec):
    value = (np.ones((12, 2)), np.linspace(0, 1, 12), np.ones((3, 2)), np.zeros(3))
    s = datasets.load(returning(value), spec, task="regression")
    assert s.y_train.dtype == torch.float32 and s.n_classes == 0


def test_the_generator_is_seeded_with_data_seed(spec):
    def loader(spec, generator):
        x = torch.rand(20, 3, generator=generator)
        return x, torch.arange(20) % 2, x[:4], torch.arange(4) % 2

    a, b = datasets.load(loader, spec), datasets.load(loader, spec)
    c = datasets.load(loader, dict(spec, data_seed=1))
    assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, c.x_train)


def test_synthetic_runs_get_random_tensors_of_the_loaders_shapes(spec):
    real = datasets.load(returning(parts()), spec)
    fake = datasets.load(returning(parts()), dict(spec, synthetic=True))
    assert fake.counts == real.counts and fake.sample_shape == real.sample_shape
    assert fake.x_train.dtype == torch.uint8 and fake.n_classes == real.n_classes
    assert not torch.equal(fake.x_train, real.x_train)


def test_data_source_and_describe_of_a_loader(spec):
    def my_loader(spec, generator):
        return parts()

    source = datasets.data_source(my_loader, spec)
    assert source["kind"] == "user_loader" and source["loader"].endswith(":my_loader") and \
        "test_user_loader" in source["loader"]
    assert datasets.describe(my_loader, spec) is None


F32 = torch.zeros(40, dtype=torch.float32)
REFUSED = [
    ("missing key", parts(y_test=None), "multiclass", "returned no y_test; expected x_train, y_train, x_test, y_test"),
    ("half a val split", parts(x_val=torch.zeros(2, 3, 8, 6, dtype=torch.uint8)), "multiclass", "returned no y_val"),
    ("misspelt key", parts(x_valid=torch.zeros(2)), "multiclass", "returned an unknown part 'x_valid'"),
    ("wrong type", parts(x_train=[[0.0]] * 40), "multiclass",
     "returned x_train of type list; expected a torch tensor or numpy array"),
    ("x dtype", parts(x_test=torch.zeros(10, 3, 8, 6, dtype=torch.int32)), "multiclass",
     r"returned x_test of dtype torch.int32; expected float32, float64 or uint8 \(image\) inputs"),
    ("x bfloat16", parts(x_train=torch.zeros(40, 3, 8, 6, dtype=torch.bfloat16)), "multiclass",
     "returned x_train of dtype torch.bfloat16; expected float32"),
    ("mixed x dtypes", parts(x_test=torch.zeros(10, 3, 8, 6)), "multiclass",
     "returned x_test of dtype torch.float32; expected uint8 like x_train"),
    ("y float for multiclass", parts(y_train=F32), "multiclass",
     r"returned y_train of dtype torch.float32; expected integer class labels \(int64\) for task multiclass$"),
    ("y int for regression", parts(), "regression",
     r"returned y_train of dtype torch.int64; expected float targets \(float32\) for task regression"),
    ("binary values", parts(y_train=torch.full((40,), 2)), "binary",
     "returned y_train with values other than 0 and 1 \\(e.g. 2\\); expected 0/1 labels for task binary"),
    ("y shape", parts(y_train=torch.zeros(40, 1, dtype=torch.long)), "multiclass",
     r"returned y_train of shape \(40, 1\); expected one value per sample \(shape \(N,\)\)"),
    ("lengths", parts(y_test=torch.zeros(9, dtype=torch.long)), "multiclass",
     "returned x_test with 10 samples and y_test with 9; expected one label per sample"),
    ("sample shapes", parts(x_test=torch.zeros(10, 3, 6, 8, dtype=torch.uint8)), "multiclass",
     r"returned x_test with samples of shape \(3, 6, 8\); expected \(3, 8, 6\) like x_train"),
    ("empty split", parts(n_test=0), "multiclass", r"returned an empty x_test \(0 samples\); expected at least one"),
    ("non-finite", parts(x_train=torch.full((40, 3), float("nan")), x_test=torch.zeros(10, 3)), "multiclass",
     r"returned x_train with non-finite values \(NaN or infinity\); expected finite numbers"),
    ("non-finite targets", parts(x_train=torch.zeros(40, 3), x_test=torch.zeros(10, 3),
                                 y_train=torch.full((40,), float("inf")), y_test=torch.zeros(10)), "regression",
     "returned y_train with non-finite values"),
    ("negative labels", parts(y_test=torch.full((10,), -1)), "multiclass",
     r"returned y_test with negative labels \(smallest -1\); expected class labels 0..C-1"),
]


@pytest.mark.parametrize("case, value, task, message", REFUSED, ids=[c[0] for c in REFUSED])
def test_each_bad_part_is_refused_in_one_line_naming_who_the_part_and_what_was_expected(spec, case, value, task,
                                                                                           message):
    with pytest.raises(SweepbenchError, match=f"^{WHO}: its data loader {message}") as err:
        datasets.load(returning(value), spec, task=task, who=WHO)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("value, message", [
    ((1, 2, 3, 4, 5), r"a tuple of 5; expected 4 \(x_train, y_train, x_test, y_test\) or 6"),
    ("data.npz", "a str; expected a dict with x_train"),
])
def test_a_return_value_of_the_wrong_shape_is_refused(spec, value, message):
    with pytest.raises(SweepbenchError, match=f"^{WHO}: its data loader returned {message}"):
        datasets.load(returning(value), spec, who=WHO)


def test_without_who_the_message_names_the_loader(spec):
    def load_mine(spec, generator):
        return parts(y_train=F32)

    with pytest.raises(SweepbenchError, match=r"^data loader \S+:load_mine returned y_train of dtype torch.float32"):
        datasets.load(load_mine, spec)


def test_built_in_datasets_know_their_classes_and_sample_shape():
    s = datasets.load("digits", resolve({"workload": "digits_mlp"}))
    assert s.n_classes == 10 and s.sample_shape == (64,)
    assert datasets.load("linreg", resolve({"workload": "linreg"})).sample_shape == ()
    assert datasets.describe("digits", resolve({"workload": "digits_mlp"})).n_classes == 10


def test_text_that_is_neither_a_dataset_nor_a_path_is_refused_naming_both_forms(spec):
    with pytest.raises(SweepbenchError, match=r"^workload w: unknown data 'mnsit'; allowed: a dataset name "
                                              r"\(linreg, .*mnist.*\), or a path: a .npz or .pt file"):
        datasets.load("mnsit", spec, who="workload w")
    with pytest.raises(SweepbenchError, match="^unknown data 'mnsit'"):
        datasets.describe("mnsit", spec)
    with pytest.raises(SweepbenchError, match="^bad data 3; allowed: a dataset name, a path or a data loader"):
        datasets.load(3, spec)
