"""profiles/: Snakemake loads profiles/default on top of any --profile, and a key given there
replaces that profile's whole key (a default-resources block there dropped the slurm profile's
partition and account). So profiles/default may only repeat keys with the same value."""

import os

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROFILES = os.path.join(ROOT, "profiles")


def profile(name):
    with open(os.path.join(PROFILES, name, "config.yaml")) as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize("name", sorted(set(os.listdir(PROFILES)) - {"default"}))
def test_the_default_profile_never_overrides_another_profile(name):
    default, other = profile("default"), profile(name)
    clashes = {key: (default[key], other[key]) for key in default.keys() & other.keys() if default[key] != other[key]}
    assert clashes == {}


def test_the_default_profile_sets_no_resources_or_executor():
    assert not ({"default-resources", "set-resources", "resources", "executor", "set-threads"}
                & profile("default").keys())



def test_the_packaged_workflow_profile_is_the_default_profile():
    """`sweepbench run` in a folder without profiles/default gets the same settings from the package."""
    from sweepbench.cli import WORKFLOW_DIR

    with open(os.path.join(WORKFLOW_DIR, "profiles", "default", "config.yaml")) as f:
        assert yaml.safe_load(f) == profile("default")
