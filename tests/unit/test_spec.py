import pytest

from sweepbench import SweepbenchError
from sweepbench.spec import OPTIONS as DEFAULTS
from sweepbench.spec import parse_value, resolve


def test_workload_defaults_layer_under_user_settings():
    spec = resolve({"workload": "mnist_softmax", "lr": 0.1})
    assert spec["reg_lambda"] == 0.001 and spec["lr"] == 0.1 and spec["optimizer"] == "sgd"
    assert set(spec) == set(DEFAULTS)


def test_parse_value_types():
    assert parse_value("batch_size", "full") == "full"
    assert parse_value("batch_size", "64") == 64
    assert parse_value("batch_cycle", "16,32,64") == [16, 32, 64]
    assert parse_value("stop_at_target", "true") is True
    assert parse_value("target", "none") is None
    assert parse_value("lr", "1e-3") == 0.001


@pytest.mark.parametrize("user, message", [
    ({"workload": "nope"}, "unknown workload 'nope'; allowed: linreg"),
    ({"workload": "linreg", "optimizer": "sgdd"}, "unknown optimizer 'sgdd'; allowed: sgd, momentum"),
    ({"workload": "linreg", "schedule": "zigzag"}, "unknown schedule 'zigzag'"),
    ({"workload": "linreg", "lr": 0.0}, "bad lr 0.0; allowed: a finite number > 0"),
    ({"workload": "linreg", "lr": -1.0}, "bad lr -1.0"),
    ({"workload": "linreg", "batch_size": 0}, "bad batch_size 0; allowed: an integer >= 1 or 'full'"),
    ({"workload": "linreg", "epochs": 0}, "bad epochs 0; allowed: an integer >= 1"),
    ({"workload": "linreg", "colour": 1}, "unknown option 'colour'"),
    ({"workload": "linreg", "batch_schedule": "cyclic"}, "bad batch_cycle []"),
    ({"workload": "linreg", "target_metric": "val_acc"}, "unknown target_metric 'val_acc'"),
])
def test_bad_specs_name_the_value_and_what_is_allowed(user, message):
    with pytest.raises(SweepbenchError) as err:
        resolve(user)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_parse_value_rejects_bad_text():
    with pytest.raises(SweepbenchError, match="bad value 'abc' for epochs; expected an integer"):
        parse_value("epochs", "abc")


def test_epochs_are_bounded_before_a_run_spends_them():
    """--set epochs=1000000000000 without max_steps just ran (a hostile pass stopped it after 30 s)."""
    import pytest

    from sweepbench import SweepbenchError
    from sweepbench.spec import resolve

    with pytest.raises(SweepbenchError, match=r"^bad epochs 1000000000000; allowed: an integer >= 1 and <= 1000000$"):
        resolve({"workload": "linreg", "epochs": 10**12})
