"""Runs the distribution scenarios in a process of its own, for the tests.

JAX fixes its device count when it is imported, so the tests run this
file in a fresh process with `XLA_FLAGS=--xla_force_host_platform_device_count=N`
and read back the arrays it saves.

    python tests/distribution/mesh_worker.py mesh OUT.npz
        4 devices: each scenario on one device (no distribution; the
        reference) and on the mesh, and `promptopt tune` without and with
        `--devices 4`.
    python tests/distribution/mesh_worker.py process ID PORT OUT.npz
        one of 2 processes with 2 devices each, joined on 127.0.0.1:PORT
        through keras.distribution.initialize; the mesh scenarios only, and
        `promptopt tune --devices all`.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
os.environ["KERAS_BACKEND"] = "jax"

import pathlib  # noqa: E402

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402

from promptopt.cli.main import main as promptopt_main  # noqa: E402
from promptopt.distribution import DistributionSetup  # noqa: E402
from promptopt.evaluators import KerasEvaluator  # noqa: E402
from promptopt.evaluators import PrefixEvaluator  # noqa: E402
from tests.cli.cli_fixtures import save_tiny_preset  # noqa: E402
from tests.cli.cli_fixtures import write_data  # noqa: E402
from tests.model_factories import classifier  # noqa: E402
from tests.model_factories import toy_batch  # noqa: E402
from tests.prefixes.helpers import prefix_classifier  # noqa: E402

POPSIZE = 6  # not a multiple of 4: the last shard is padded


def evaluators(kinds=("prompt", "prefix")):
    """A prompt (BBT, prompt tuning) and a prefix (BBTv2, prefix tuning) evaluator."""
    x, y = toy_batch(n=16)
    makers = {
        "prompt": lambda: KerasEvaluator(classifier("llama", prompt_length=3), x, y, batch_size=8),
        "prefix": lambda: PrefixEvaluator(
            prefix_classifier("llama", prefix_length=2), x, y, batch_size=8),
    }
    return {kind: makers[kind]() for kind in kinds}


def candidates(evaluator):
    """`[POPSIZE, *S]`: the initial candidate and noisy copies of it."""
    rng = np.random.default_rng(1)
    start = evaluator.initial_candidate()
    noise = 0.1 * rng.standard_normal((POPSIZE,) + start.shape).astype("float32")
    return start[None] + noise


def score(prefix, built, results):
    """One gradient step and one population per evaluator, into `results`."""
    for name, evaluator in built.items():
        population = candidates(evaluator)
        step = evaluator.evaluate(population[:1], step=3, compute_gradients=True)
        results[f"{prefix}_{name}_loss"] = step.losses
        results[f"{prefix}_{name}_grads"] = step.grads
        scored = evaluator.evaluate(population, step=3)
        results[f"{prefix}_{name}_population"] = scored.losses
        results[f"{prefix}_{name}_population_metric"] = np.array(
            list(scored.metrics.values()))
        if evaluator._mesh is not None:
            inputs = evaluator._mesh.shard_examples(evaluator._loss_inputs(3)[0][0])
            ids = inputs[0]["token_ids"]
            results[f"{prefix}_{name}_rows_per_device"] = np.array(
                [shard.data.shape[0] for shard in ids.addressable_shards])


def mesh_scenarios(results):
    score("one_device", evaluators(), results)
    with DistributionSetup(4).scope() as setup:
        results["data_shards"] = np.array(setup.data_shards)
        score("mesh", evaluators(), results)
    with DistributionSetup(4, population="examples").scope():
        built = evaluators(("prompt",))
        for name, evaluator in built.items():
            results[f"examples_{name}_population"] = evaluator.evaluate(
                candidates(evaluator), step=3).losses

    x, _ = toy_batch(n=8)
    results["one_device_llama_scores"] = np.asarray(classifier("llama")(x))
    sharded = DistributionSetup(
        4, model_parallel=2, layout_map_fn=keras_hub.models.LlamaBackbone.get_layout_map)
    with sharded.scope():
        model = classifier("llama")
        results["model_parallel_llama_scores"] = np.asarray(model(x))
    kernel = model.backbone.get_layer("transformer_layer_0")._feedforward_gate_dense.kernel
    results["model_parallel_kernel_spec"] = np.array([str(a) for a in kernel.value.sharding.spec])
    results["model_parallel_kernel_shard"] = np.array(kernel.value.addressable_shards[0].data.shape)


def tune_scenarios(results, work):
    tune(results, "tune_one_device", work, None)
    tune(results, "tune_mesh", work, "4")


def tune(results, name, work, devices):
    """`promptopt tune` end to end on a tiny saved preset, into `results`.

    Records the files the run wrote in its output directory and, where it
    wrote one, the saved prompt `[P, H]`.
    """
    work = pathlib.Path(work)
    work.mkdir(parents=True, exist_ok=True)
    preset = save_tiny_preset(work / "tiny_llama", "llama")  # the same weights every time
    data = write_data(work / "data.csv")
    out = work / name
    # Kept small: under a mesh every new shape compiles afresh (each program
    # costs the JAX pass seconds), so no dev set and the test set once.
    args = ["tune", "--model", preset, "--train", data, "--test", data,
            "--template", "{review}. It was", "--label-words", "0=terrible,1=great",
            "--prompt-length", "3", "--batch-size", "4", "--steps", "2", "--no-test-before",
            "--quiet", "--output-dir", str(out)]
    assert promptopt_main(args + ([] if devices is None else ["--devices", devices])) == 0
    files = sorted(os.listdir(out)) if out.exists() else []
    results[f"{name}_files"] = np.array(files, dtype=str)
    if "prompt.npz" in files:
        with np.load(out / "prompt.npz") as saved:
            results[f"{name}_prompt"] = saved["prompt"]


def process_scenarios(results, process_id, port, work):
    keras.distribution.initialize(
        job_addresses=f"127.0.0.1:{port}", num_processes=2, process_id=process_id)
    with DistributionSetup("all").scope() as setup:
        results["num_devices"] = np.array(setup.num_devices)
        # The prompt alone: each compiled program costs the two processes
        # seconds of CPU, and the prefix runs the same code on the 4-device mesh.
        score("mesh", evaluators(("prompt",)), results)
    # Each process its own output directory: only the first may write.
    tune(results, "tune_processes", work, "all")


def main(argv):
    results = {}
    if argv[0] == "mesh":
        out = argv[1]
        mesh_scenarios(results)
        tune_scenarios(results, os.path.join(os.path.dirname(out), "tune"))
    else:
        out = argv[3]
        process_scenarios(results, int(argv[1]), int(argv[2]),
                          os.path.join(os.path.dirname(out), f"tune{argv[1]}"))
    np.savez(out, **results)


if __name__ == "__main__":
    main(sys.argv[1:])
