"""Whether this machine computes in bfloat16 natively, or emulates it."""

import functools


@functools.lru_cache(maxsize=None)
def has_native_bfloat16(cpuinfo_path="/proc/cpuinfo"):
    """True if the backend's accelerator or this CPU has bfloat16 arithmetic.

    A GPU or TPU that the current Keras backend sees counts as native (every
    TPU, and NVIDIA GPUs from Ampere on; an older GPU emulates, like a CPU
    without the instructions). On a CPU, bfloat16 is native with the
    AVX-512 BF16 or AMX instructions, read from `cpuinfo_path` (Linux);
    elsewhere it is assumed emulated. Emulated bfloat16 is slow: on a
    2-core AMD EPYC without AVX-512, one BBT candidate (32 sentences, the
    prompt in front) took 75 s in bfloat16 against about 5 s in float32
    (experiments/results/cli_speed.md).
    """
    if _backend_sees_an_accelerator():
        return True
    try:
        with open(cpuinfo_path) as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def _backend_sees_an_accelerator():
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("TPU"))
    if backend == "jax":
        import jax

        return jax.devices()[0].platform != "cpu"
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    return False
