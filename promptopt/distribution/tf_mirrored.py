"""`fit()` over several devices on the TensorFlow backend (tf.distribute)."""

import keras

from promptopt.distribution.device_spec import parse_devices


def mirrored_strategy(devices="all", device_type=None):
    """A `tf.distribute.MirroredStrategy` for `PromptedModel.fit()`.

    Keras 3's TensorFlow trainer runs `fit()` under a `tf.distribute`
    strategy: build and compile the model inside `strategy.scope()`, and
    each step splits the global batch over the replicas and all-reduces
    the prompt's gradient (the frozen backbone is mirrored, never
    updated). Only `fit()`, `evaluate()` and `predict()` go through the
    strategy; promptopt's runner loop and evaluators do not (use the JAX
    backend and `DistributionSetup` for those).

    On a CPU, TensorFlow shows one device; split it into N logical ones
    before TensorFlow starts (`tf.config.set_logical_device_configuration`,
    as the test does) to try this without accelerators.

    Args:
        devices: "all" or an int N, the first N logical devices.
        device_type: "GPU" or "CPU"; default GPUs when there are any.

    Example:
    ```python
    strategy = mirrored_strategy("all")
    with strategy.scope():
        model = PromptedModel(backbone_fn(), task, prompt_length=20)
        model.compile(optimizer=keras.optimizers.AdamW(0.03))
    model.fit(x, y, batch_size=32)  # 32 / N examples per replica
    ```
    """
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "mirrored_strategy is tf.distribute and needs KERAS_BACKEND=tensorflow; "
            "on JAX use promptopt.distribution.DistributionSetup.")
    import tensorflow as tf

    if device_type is None:
        device_type = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    available = [d.name for d in tf.config.list_logical_devices(device_type)]
    count = parse_devices(devices)
    if count == "all":
        count = len(available)
    if count > len(available):
        raise ValueError(
            f"devices={count} asks for more than the {len(available)} logical "
            f"{device_type} devices ({', '.join(available)}). Use devices='all'.")
    return tf.distribute.MirroredStrategy(available[:count])
