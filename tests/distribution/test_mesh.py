"""Data-parallel, population-parallel and model-parallel scoring on 4 CPU devices.

The scenarios run in one worker process with 4 virtual devices
(`mesh_worker.py`); each test compares one of its mesh results with the
same computation on one device. The last tests run the same step in two
processes on 127.0.0.1, joined through keras.distribution.initialize: each
has 2 virtual CPU devices, and together they form one 4-device mesh, as two
hosts would. They are in this module because they compare with its
one-device results: under `pytest -n 2 --dist loadscope` a module goes
whole to one worker, so those results are computed once, not once per
module.
"""

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="Keras distributes only on JAX (keras.distribution); run with KERAS_BACKEND=jax",
)
TOLERANCE = 1e-5


@pytest.fixture
def results(mesh_results):
    return mesh_results


@pytest.mark.parametrize("kind", ["prompt", "prefix"])
def test_a_data_parallel_step_equals_one_device(results, kind):
    # The mini-batch of 8 really was split: 2 rows on each of 4 devices.
    assert results["data_shards"] == 4
    np.testing.assert_array_equal(results[f"mesh_{kind}_rows_per_device"], [2, 2, 2, 2])
    np.testing.assert_allclose(
        results[f"mesh_{kind}_loss"], results[f"one_device_{kind}_loss"], rtol=0, atol=TOLERANCE)
    grads = results[f"one_device_{kind}_grads"]
    assert np.abs(grads).max() > 1e-3  # a gradient worth comparing
    np.testing.assert_allclose(results[f"mesh_{kind}_grads"], grads, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("kind, axis", [("prompt", "mesh"), ("prefix", "mesh"),
                                        ("prompt", "examples")])
def test_sharded_population_scoring_equals_unsharded(results, kind, axis):
    # "mesh": the 6 candidates split over the 4 devices (padded to 8);
    # "examples": one candidate at a time, its mini-batch split.
    expected = results[f"one_device_{kind}_population"]
    assert np.ptp(expected) > 1e-2  # the candidates score differently
    np.testing.assert_allclose(
        results[f"{axis}_{kind}_population"], expected, rtol=0, atol=TOLERANCE)


def test_population_metric_equals_unsharded(results):
    for kind in ("prompt", "prefix"):
        np.testing.assert_allclose(
            results[f"mesh_{kind}_population_metric"],
            results[f"one_device_{kind}_population_metric"], atol=1e-12)


def test_a_model_parallel_llama_forward_pass_equals_the_unsharded_one(results):
    # keras-hub's Llama layout map sharded the weights over both axes:
    # the (16, 32) gate kernel is (8, 16) on each device.
    assert list(results["model_parallel_kernel_spec"]) == ["batch", "model"]
    np.testing.assert_array_equal(results["model_parallel_kernel_shard"], [8, 16])
    np.testing.assert_allclose(
        results["model_parallel_llama_scores"], results["one_device_llama_scores"],
        rtol=0, atol=TOLERANCE)


def test_two_processes_see_one_mesh_of_four_devices(process_results):
    for process in process_results:
        assert process["num_devices"] == 4
        # Each process holds the rows of its own 2 devices only.
        np.testing.assert_array_equal(process["mesh_prompt_rows_per_device"], [2, 2])


def test_a_data_parallel_step_in_two_processes_equals_a_single_process(process_results, results):
    for process in process_results:
        for quantity in ("loss", "grads", "population"):
            np.testing.assert_allclose(
                process[f"mesh_prompt_{quantity}"], results[f"one_device_prompt_{quantity}"],
                rtol=0, atol=TOLERANCE)
    # Both processes read the same replicated results.
    np.testing.assert_array_equal(
        process_results[0]["mesh_prompt_grads"], process_results[1]["mesh_prompt_grads"])


def test_promptopt_tune_on_four_devices_gives_the_one_device_prompt(results):
    # `promptopt tune --devices 4` end to end: the same 2 steps of 4 rows
    # (one per device) and the same files as one device.
    assert list(results["tune_mesh_files"]) == ["checkpoint", "prompt.npz", "results.json"]
    assert np.abs(results["tune_one_device_prompt"]).max() > 0
    np.testing.assert_allclose(
        results["tune_mesh_prompt"], results["tune_one_device_prompt"], rtol=0, atol=TOLERANCE)


def test_in_two_processes_only_the_first_writes_and_its_prompt_is_the_single_process_one(
        process_results, results):
    first, second = process_results
    assert list(first["tune_processes_files"]) == ["checkpoint", "prompt.npz", "results.json"]
    assert list(second["tune_processes_files"]) == []
    np.testing.assert_allclose(
        first["tune_processes_prompt"], results["tune_one_device_prompt"], rtol=0, atol=TOLERANCE)
