"""The devices setting: its parsing, the config field, and clear refusals."""

import keras
import pytest

from promptopt.distribution import DistributionSetup
from promptopt.distribution import parse_devices
from promptopt.tuning.config import ConfigError
from promptopt.tuning.config import TuneConfig


@pytest.mark.parametrize("spec, expected", [("all", "all"), ("ALL", "all"), (2, 2), ("3", 3)])
def test_devices_take_all_or_a_count(spec, expected):
    assert parse_devices(spec) == expected


@pytest.mark.parametrize("spec", [0, -1, "two", "1.5", True, 2.0, ""])
def test_other_devices_are_refused_with_the_fix(spec):
    with pytest.raises(ValueError, match="devices must be 'all' or a positive number"):
        parse_devices(spec)


def test_the_config_field_checks_devices():
    assert TuneConfig(devices="all").validate().devices == "all"
    assert TuneConfig(devices="2").resolved().devices == "2"  # as given, for results.json
    assert TuneConfig().validate().devices is None
    with pytest.raises(ConfigError, match="^--devices: devices must be 'all'"):
        TuneConfig(devices="many").validate()
    with pytest.raises(ConfigError, match="unknown keys"):
        TuneConfig.from_dict({"device": 2})


@pytest.mark.skipif(keras.backend.backend() == "jax", reason="the refusal of other backends")
def test_other_backends_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="needs the JAX backend.*KERAS_BACKEND=jax"):
        DistributionSetup("all")
    assert DistributionSetup.current() is None


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX only: keras.distribution")
def test_a_setup_on_this_process_devices():
    count = len(keras.distribution.list_devices())
    setup = DistributionSetup("all")
    assert setup.num_devices == setup.data_shards == count
    assert DistributionSetup.current() is None
    with setup.scope() as current:
        assert current is setup and DistributionSetup.current() is setup
        assert keras.distribution.distribution() is setup.distribution
    assert DistributionSetup.current() is None
    with pytest.raises(ValueError, match=f"more devices than the {count} available.*xla_force"):
        DistributionSetup(count + 1)
    with pytest.raises(ValueError, match="needs layout_map_fn"):
        DistributionSetup("all", model_parallel=2)
    with pytest.raises(ValueError, match=f"model_parallel must divide the {count} devices"):
        DistributionSetup("all", model_parallel=count + 1, layout_map_fn=lambda mesh: None)
    with pytest.raises(ValueError, match="population must be one of"):
        DistributionSetup("all", population="layers")
