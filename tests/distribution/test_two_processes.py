"""Two processes on 127.0.0.1, joined through keras.distribution.initialize.

Each process has 2 virtual CPU devices; together they form one 4-device
data-parallel mesh, as two hosts would. One data-parallel step and one
population scoring must equal a single process on one device.
"""

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="Keras distributes only on JAX (keras.distribution); run with KERAS_BACKEND=jax",
)


@pytest.fixture
def processes(process_results):
    return process_results


@pytest.fixture
def single(mesh_results):
    """The one-device results of the 4-device worker: no distribution at all."""
    return mesh_results


def test_both_processes_see_one_mesh_of_four_devices(processes):
    for results in processes:
        assert results["num_devices"] == 4
        # Each process holds the rows of its own 2 devices only.
        np.testing.assert_array_equal(results["mesh_prompt_rows_per_device"], [2, 2])


def test_a_data_parallel_step_equals_a_single_process(processes, single):
    kind = "prompt"
    for results in processes:
        np.testing.assert_allclose(
            results[f"mesh_{kind}_loss"], single[f"one_device_{kind}_loss"], rtol=0, atol=1e-5)
        np.testing.assert_allclose(
            results[f"mesh_{kind}_grads"], single[f"one_device_{kind}_grads"], rtol=0, atol=1e-5)
        np.testing.assert_allclose(
            results[f"mesh_{kind}_population"], single[f"one_device_{kind}_population"],
            rtol=0, atol=1e-5)
    # Both processes read the same replicated results.
    np.testing.assert_array_equal(processes[0]["mesh_prompt_grads"], processes[1]["mesh_prompt_grads"])
