import torch

from sweepbench.train import models


def test_lenet5_has_the_seeds_parameter_counts():
    counts = models.count_parameters(models.build("lenet5", {}, 784))
    assert counts == {"n_params": 546542, "n_trainable": 546044}


def test_lenet5_and_wrn_output_shapes():
    x = torch.randn(2, 1, 28, 28)
    assert models.build("lenet5", {}, 784)(x).shape == (2, 10)
    wrn = models.build("wrn16_10", {"dropout": 0.01}, 784)
    assert wrn(x).shape == (2, 10)
    assert models.count_parameters(wrn)["n_trainable"] > 17_000_000


def test_mlp_widths_and_two_parameter_models_start_where_the_seeds_start():
    mlp = models.build("mlp", {"hidden": [20, 40, 20]}, 784)
    assert [m.out_features for m in mlp if isinstance(m, torch.nn.Linear)] == [20, 40, 20, 10]
    assert models.build("linear_neuron", {}, 1).trajectory() == {"w": 0.0, "b": 0.0}
    assert models.build("logreg2d", {}, 2).W.tolist() == [-1.0, 1.0]


def test_lenet5_trains_on_a_batch_of_one_like_keras():
    model = models.build("lenet5", {}, 784)
    x = torch.randn(1, 1, 28, 28)
    out = model(x)
    out.sum().backward()
    assert torch.all(model[-4].weight.grad == 0)  # Linear(5880, 84): nothing flows back through BN
    bn = model[-2]
    assert out.shape == (1, 10) and bn.num_batches_tracked.item() == 1
    assert torch.all(bn.weight.grad == 0)     # zero variance: the output is beta alone
