"""`fit()` under tf.distribute.MirroredStrategy on 2 logical CPU devices."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="tf.distribute is TensorFlow's")
WORKER = os.path.join(os.path.dirname(__file__), "tf_mirrored_worker.py")


def test_mirrored_fit_equals_one_device():
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    done = subprocess.run([sys.executable, WORKER], env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    np.testing.assert_allclose(result["mirrored_loss"], result["one_device_loss"], atol=1e-5)
    assert result["prompt_moved"] > 1e-3  # two epochs of SGD moved the prompt
    assert result["prompt_difference"] < 1e-5
    assert result["backbone_unchanged"]


def test_mirrored_strategy_refuses_other_backends_or_too_many_devices():
    from promptopt.distribution.tf_mirrored import mirrored_strategy

    with pytest.raises(ValueError, match="more than the 1 logical CPU devices"):
        mirrored_strategy(2, device_type="CPU")
