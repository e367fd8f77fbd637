import pytest
import torch

from sweepbench import SweepbenchError
from sweepbench.train import models


def test_lenet5_has_the_seeds_parameter_counts():
    counts = models.count_parameters(models.build("lenet5", {}, models.ModelInput((1, 28, 28))))
    assert counts == {"n_params": 546542, "n_trainable": 546044}


def test_lenet5_and_wrn_output_shapes():
    x = torch.randn(2, 1, 28, 28)
    assert models.build("lenet5", {}, models.ModelInput((1, 28, 28)))(x).shape == (2, 10)
    wrn = models.build("wrn16_10", {"dropout": 0.01}, models.ModelInput((1, 28, 28)))
    assert wrn(x).shape == (2, 10)
    assert models.count_parameters(wrn)["n_trainable"] > 17_000_000


def test_mlp_widths_and_two_parameter_models_start_where_the_seeds_start():
    mlp = models.build("mlp", {"hidden": [20, 40, 20]}, models.ModelInput((1, 28, 28)))
    assert [m.out_features for m in mlp if isinstance(m, torch.nn.Linear)] == [20, 40, 20, 10]
    assert models.build("linear_neuron", {}, models.ModelInput(())).trajectory() == {"w": 0.0, "b": 0.0}
    assert models.build("logreg2d", {}, models.ModelInput((2,))).W.tolist() == [-1.0, 1.0]


def test_lenet5_trains_on_a_batch_of_one_like_keras():
    model = models.build("lenet5", {}, models.ModelInput((1, 28, 28)))
    x = torch.randn(1, 1, 28, 28)
    out = model(x)
    out.sum().backward()
    assert torch.all(model[-4].weight.grad == 0)  # Linear(5880, 84): nothing flows back through BN
    bn = model[-2]
    assert out.shape == (1, 10) and bn.num_batches_tracked.item() == 1
    assert torch.all(bn.weight.grad == 0)     # zero variance: the output is beta alone


# ---------------------------------------------------------------- models sized to the user's data

RGB3 = models.ModelInput((3, 20, 24), n_classes=3)


def test_torchvision_models_take_the_datas_channels_and_classes_with_random_weights():
    for inputs in (RGB3, models.ModelInput((1, 28, 28), n_classes=7), models.ModelInput((4, 32, 32), n_classes=2)):
        net = models.build("torchvision.resnet18", {}, inputs)
        assert net.conv1.in_channels == inputs.sample_shape[0] and net.fc.out_features == inputs.n_classes
        models.check_output(net, torch.randn(2, *inputs.sample_shape), torch.tensor([0, 1]), inputs, "resnet18")
    a, b = (models.build("torchvision.resnet18", {}, RGB3) for _ in range(2))
    assert not torch.equal(a.fc.weight, b.fc.weight)                       # drawn, not loaded
    small = models.build("torchvision.mobilenet_v3_small", {}, models.ModelInput((1, 16, 16), n_classes=5))
    assert small(torch.randn(2, 1, 16, 16)).shape == (2, 5)


def test_built_in_models_are_sized_to_the_data_or_refused():
    mlp = models.build("mlp", {"hidden": [8]}, models.ModelInput((6,), n_classes=4))
    assert mlp(torch.randn(5, 6)).shape == (5, 4)
    reg = models.build("mlp", {"hidden": [8]}, models.ModelInput((6,), task="regression"))
    assert reg(torch.randn(5, 6)).shape == (5,)                             # like its targets: one number each
    wrn = models.build("wrn16_10", {}, RGB3)
    assert wrn(torch.randn(2, 3, 20, 24)).shape == (2, 3)
    with pytest.raises(SweepbenchError, match=r"^bad model lenet5 for samples of shape \(3, 20, 24\) in 3 classes; "
                                              r"allowed: 1x28x28 images in 10 classes"):
        models.build("lenet5", {}, RGB3)
    with pytest.raises(SweepbenchError, match=r"^unknown model torchvision.resnet_18; allowed: a torchvision "
                                              r"classification model, e.g. torchvision.resnet18"):
        models.build("torchvision.resnet_18", {}, RGB3)
    with pytest.raises(SweepbenchError, match=r"^bad model torchvision.resnet18 for multiclass samples of "
                                              r"shape \(6,\)"):
        models.build("torchvision.resnet18", {}, models.ModelInput((6,), n_classes=4))


def test_a_model_that_does_not_fit_its_data_is_one_line_before_training():
    y = torch.tensor([0, 2])
    wrong_classes = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 20 * 24, 10))
    with pytest.raises(SweepbenchError, match=r"^bad model my.py:net: its output for a batch of shape \(2, 3, 20, 24\) "
                                              r"has shape \(2, 10\); allowed: \(2, 3\) \(3 class logits per sample\)$"):
        models.check_output(wrong_classes, torch.randn(2, 3, 20, 24), y, RGB3, "my.py:net")
    wrong_input = torch.nn.Linear(5, 3)
    with pytest.raises(SweepbenchError, match=r"^bad model my.py:net: a batch of shape \(2, 3, 20, 24\) fails in it: "
                                              r"RuntimeError: mat1 and mat2 shapes cannot be multiplied"):
        models.check_output(wrong_input, torch.randn(2, 3, 20, 24), y, RGB3, "my.py:net")
    with pytest.raises(SweepbenchError, match=r"^bad model .*: it returned tuple; allowed: one tensor of "
                                              r"shape \(2, 3\)"):
        models.check_output(TwoOutputs(), torch.randn(2, 3, 20, 24), y, RGB3, "my.py:net")
    with pytest.raises(SweepbenchError, match=r"^bad model .*: it returned list; allowed: a torch.nn.Module$"):
        models.build(lambda spec: [], {}, RGB3)


def test_the_output_check_leaves_the_model_and_the_random_stream_as_they_were():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 20 * 24, 3), torch.nn.BatchNorm1d(3),
                              torch.nn.Dropout(0.5))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    torch.manual_seed(1)
    models.check_output(net, torch.randn(2, 3, 20, 24), torch.tensor([0, 1]), RGB3, "net")
    after_check = torch.rand(3)
    torch.manual_seed(1)
    torch.randn(2, 3, 20, 24)
    assert torch.equal(after_check, torch.rand(3))
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())   # running stats untouched


class TwoOutputs(torch.nn.Module):
    def forward(self, x):
        return x, x


def test_a_column_of_outputs_for_scalar_targets_is_refused_with_the_fix():
    inputs = models.ModelInput((6,), task="binary")
    with pytest.raises(SweepbenchError, match=r"has shape \(2, 1\); allowed: \(2,\), one number per sample like its "
                                              r"targets \(end the model with torch.nn.Flatten\(0\)"):
        models.check_output(torch.nn.Linear(6, 1), torch.randn(2, 6), torch.tensor([0.0, 1.0]), inputs, "m")
