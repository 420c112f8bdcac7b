"""One epoch of `fit()` under a 2-replica MirroredStrategy, and on one device.

TensorFlow fixes its logical devices when it starts, so the test runs this
in a process of its own. Prints a JSON line.
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
os.environ["KERAS_BACKEND"] = "tensorflow"

import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from promptopt.distribution.tf_mirrored import mirrored_strategy  # noqa: E402
from tests.model_factories import classifier  # noqa: E402
from tests.model_factories import toy_batch  # noqa: E402


def fit(strategy):
    x, y = toy_batch(n=16)
    with strategy.scope():
        model = classifier("gpt2")
        # No XLA: compiling the tiny step takes longer than running it.
        model.compile(optimizer=keras.optimizers.SGD(0.5), jit_compile=False)
    before = [w.numpy().copy() for w in model.backbone.weights]
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    frozen = all(np.array_equal(a, w.numpy()) for a, w in zip(before, model.backbone.weights))
    return history.history["loss"], model.soft_prompt.weights[0].numpy(), frozen


one_loss, one_prompt, _ = fit(tf.distribute.get_strategy())
strategy = mirrored_strategy(2)
two_loss, two_prompt, frozen = fit(strategy)
print(json.dumps({
    "replicas": strategy.num_replicas_in_sync,
    "one_device_loss": one_loss, "mirrored_loss": two_loss,
    "prompt_moved": float(np.abs(two_prompt - classifier("gpt2").soft_prompt.weights[0].numpy()).max()),
    "prompt_difference": float(np.abs(one_prompt - two_prompt).max()),
    "backbone_unchanged": frozen,
}))
