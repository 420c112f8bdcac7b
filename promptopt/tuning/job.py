"""One tuning run from a `TuneConfig`: every method through the runner loop."""

import dataclasses
import json
import os
import time

import numpy as np

from promptopt.callbacks.progress_bar import ProgressBar
from promptopt.distribution.primary_process import is_primary_process
from promptopt.hub import load_language_model
from promptopt.models import PromptedModel
from promptopt.models.class_scoring import accuracy
from promptopt.runner.dev_selection import DevSelection
from promptopt.runner.runner import PromptTuningRunner
from promptopt.tuning.config import GRADIENT_METHODS
from promptopt.tuning.config import METHOD_DESCRIPTIONS
from promptopt.tuning.config import write_json
from promptopt.tuning.model_factory import build_model
from promptopt.tuning.model_factory import default_placement
from promptopt.tuning.stage_factory import StageFactory
from promptopt.tuning.task_data import TaskData

CHECKPOINT_DIR = "checkpoint"


class TuningJob:
    """Runs a `TuneConfig`: data, model, stages, dev selection, files.

    Every method runs through `PromptTuningRunner`, so all of them share
    its defaults, its checkpoint (written atomically after every step into
    `output_dir/checkpoint/`, with the dev selection's state, so a run
    killed at any point resumes to the identical prompt), the progress bar
    and the TensorBoard logger. The exported prompt is the one best on dev
    (`DevSelection`), or the last export when there is no dev set.

    Writes into `config.output_dir` only: `prompt.npz` (soft prompt),
    `prefix.npz` (prefix) or `prompt.json` (text prompt), `results.json`
    (the resolved config, library versions, counters and accuracies) and
    the checkpoint.

    Args:
        config: a `TuneConfig`.
        log: callable taking one line for people (default `print`).
        progress: bool, whether to show the progress bar (on stderr).
        callbacks: more `RunnerCallback`s for the run, after the job's own
            (progress bar, TensorBoard), e.g. to record a diagnostic of the
            current export (`runner.current_optimizer.best(runner.current_state)`)
            at every step.

    Example:
    ```python
    results = TuningJob(TuneConfig(task="sst2", method="prefix")).run()
    results["test_accuracy_after"]
    ```
    """

    def __init__(self, config, log=print, progress=True, callbacks=()):
        self.config = config.resolved()
        self.log = log
        self.progress = progress
        self.extra_callbacks = list(callbacks)

    def run(self):
        if self.config.devices is None:
            return self._run()
        from promptopt.distribution import DistributionSetup

        # Models and evaluators built inside the scope run on its devices.
        with DistributionSetup(self.config.devices).scope():
            return self._run()

    def _run(self):
        started = time.time()
        data = TaskData.from_config(self.config)
        log = self.log
        dev_size = len(data.dev) if data.dev is not None else 0
        log(f"Task: {data.description}; {len(data.train)} train / {dev_size} dev / "
            f"{len(data.test)} test examples; template {data.template!r}; label words "
            + ", ".join(f"{c}: {'|'.join(w)!r}" for c, w in data.label_words.items()))
        loaded = load_language_model(self.config.model)
        config = dataclasses.replace(
            self.config, placement=default_placement(self.config, loaded.backbone))
        self.config = config
        model = build_model(config, loaded, data)
        factory = StageFactory(config, model, data)
        log(f"Model: {loaded.model_id} ({config.dtype}), loaded in {time.time() - started:.1f} s. "
            f"{_describe_prompt(config, model)}")
        # In a multi-process run every process computes the same prompt;
        # only the first writes the files (they would be identical copies).
        primary = is_primary_process()
        if primary:
            os.makedirs(config.output_dir, exist_ok=True)

        before = None
        if config.test_before:
            before = accuracy(model, data.test, config.eval_batch_size)
            log(f"Test accuracy before tuning: {before:.4f}")
        stages = factory.stages()
        for index, (method, stage) in enumerate(zip(config.stage_methods(), stages)):
            log(("Then: " if index else "Method: ") + _describe_stage(method, stage, config, factory))
        selection = self._dev_selection(factory, dev_size)
        initial = factory.initial_candidate()
        train_scorer = factory.train_scorer()
        train_loss_before = train_scorer(initial)
        runner = PromptTuningRunner(
            factory.evaluator_for(config.method),
            callbacks=self._callbacks(model, factory, primary),
            checkpoint_dir=os.path.join(config.output_dir, CHECKPOINT_DIR),
            checkpoint_every=factory.checkpoint_every(),
            selection=selection,
            write_checkpoints=primary,
        )
        result = runner.run(initial, stages, seed=config.seed)
        final = result.selected_prompt if result.selected_prompt is not None else result.best_prompt
        train_loss_after = train_scorer(final)
        factory.assign(final)
        after = _accuracy_with(factory, model, data.test, final, config)
        log(f"Test accuracy after tuning:  {after:.4f}")
        saved = self._save(model, factory, final, data, config, primary)
        results = {
            "config": config.to_dict(),
            "versions": library_versions(),
            "task": data.description,
            "model": loaded.model_id,
            "stages": [_stage_record(method, stage)
                       for method, stage in zip(config.stage_methods(), stages)],
            "counters": {k: (round(v, 3) if isinstance(v, float) else v)
                         for k, v in result.counters.items()},
            "train_loss_before": train_loss_before,
            "train_loss_after": train_loss_after,
            "test_accuracy_before": before,
            "test_accuracy_after": after,
            "dev_selection": _selection_record(result.selection),
            "prompt_file": saved,
            "seconds": round(time.time() - started, 1),
        }
        if not primary:
            return results
        write_json(os.path.join(config.output_dir, "results.json"), results)
        log(f"Saved the {'prefix' if saved.endswith('prefix.npz') else 'prompt'} to {saved} "
            f"and the run's config and results to {os.path.join(config.output_dir, 'results.json')}.")
        return results

    def _dev_selection(self, factory, dev_size):
        """A `DevSelection` on the dev set (None without one), announced."""
        config = self.config
        scorer = factory.dev_scorer()
        if scorer is None:
            self.log("No dev set: the last export is kept.")
            return None
        gradient = config.method in GRADIENT_METHODS
        every = config.eval_every or (factory.steps_per_epoch() if gradient else 1)
        unit = "step" if gradient else "generation"
        period = f"every {unit}" if every == 1 else f"every {every} {unit}s"
        self.log(f"Dev selection: the prompt is scored on the {dev_size} dev examples {period} "
                 "and the best one kept.")
        return DevSelection(scorer, every=every)

    def _callbacks(self, model, factory, primary):
        config = self.config
        callbacks = []
        if self.progress and primary:
            callbacks.append(ProgressBar([METHOD_DESCRIPTIONS[m].split(" (")[0].split(":")[0]
                                          for m in config.stage_methods()]))
        if config.logdir and primary:
            from promptopt.callbacks.tensorboard_logger import TensorBoardLogger

            names = ("task", "fewshot_seed", "model", "method", "then", "dtype", "placement",
                     "prompt_length", "init", "optimizer", "learning_rate", "batch_size",
                     "forward_calls", "popsize", "sigma", "loss", "seed")
            hparams = {n: getattr(config, n) for n in names if getattr(config, n) is not None}
            kwargs = {}
            if factory.kind == "prompt" and factory.parameters == "all":
                evaluator = factory.evaluator_for(config.method)

                def materialized(candidate):
                    evaluator.assign(candidate)
                    return model.soft_prompt.materialize()

                kwargs["prompt_fn"] = materialized
            callbacks.append(TensorBoardLogger(config.logdir, hparams=hparams, **kwargs))
        return callbacks + self.extra_callbacks

    def _save(self, model, factory, final, data, config, primary):
        """Writes the prompt file (the first process only); returns its path."""
        if not primary:
            return prompt_file_path(config, factory)
        return save_tuned_prompt(model, factory, final, data, config)


def _stage_record(method, stage):
    budget = {k: v for k, v in dataclasses.asdict(stage.budget).items() if v is not None}
    return {"method": method, "optimizer": type(stage.optimizer).__name__,
            "optimizer_config": stage.optimizer.get_config(),
            "evaluator": type(stage.evaluator).__name__, "budget": budget}


def _selection_record(selection):
    """The dev selection's choice, or None when nothing was scored."""
    if not selection or selection.get("step") is None:
        return None
    return {k: selection[k] for k in ("accuracy", "loss", "step", "forward_calls")}


def _accuracy_with(factory, model, split, final, config):
    if factory.kind == "text":
        from promptopt.models.class_scoring import class_probabilities

        prefix = factory.prompt_text(final)
        probabilities = class_probabilities(model, [prefix + t for t in split.texts],
                                            config.eval_batch_size)
        return float(np.mean(probabilities.argmax(-1) == split.labels))
    return accuracy(model, split, config.eval_batch_size)


def _without_reparameterization(model):
    """A copy whose prompt is the materialized one, MLP dropped."""
    return PromptedModel(
        model.backbone, model.task, prompt_length=model.prompt_length,
        prompt_initializer=model.soft_prompt.materialize(), tokenizer=model.tokenizer,
        model_id=model.model_id, max_length=model.max_length,
    )


def _describe_prompt(config, model):
    if config.method in ("prefix", "bbtv2"):
        shape = tuple(model.prefix.prefix_shape)
        where = ("in front of the input" if config.placement != "suffix" else
                 f"after the input, read by its last {model.suffix_tail_length} tokens")
        return (f"Prefix: {config.prompt_length} key/value positions in each of {shape[0]} "
                f"layers, {where}, init {config.init!r}.")
    if config.method == "discrete":
        return f"Text prompt: {config.prompt_length} phrases."
    where = "before" if config.placement == "prefix" else "after"
    return (f"Soft prompt: P={config.prompt_length} vectors of H={model.adapter.hidden_dim} "
            f"{where} the input, init {config.init!r}.")


def _describe_stage(method, stage, config, factory):
    budget = stage.budget
    description = METHOD_DESCRIPTIONS[method]
    if method in GRADIENT_METHODS:
        return (f"{description}; {config.optimizer} at lr {config.learning_rate:g} (weight decay "
                f"{config.weight_decay:g}), {budget.steps} steps of {config.batch_size} examples.")
    evaluator = type(stage.evaluator).__name__
    scored = "shared-input scorer" if evaluator == "SharedInputEvaluator" else evaluator
    return (f"{description}; popsize {config.popsize}, {budget.forward_calls} forward calls, "
            f"each candidate scored on all {len(factory.data.train)} training examples "
            f"({scored}, chunks of {config.chunk_size}).")


def library_versions():
    """Versions of promptopt, Keras, keras-hub and the backend, for results."""
    import keras
    import keras_hub

    backend = keras.backend.backend()
    backend_module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend)
    versions = {"promptopt": _package_version("promptopt"), "keras": keras.__version__,
                "keras_hub": keras_hub.__version__, "backend": backend}
    if backend_module:
        versions[backend_module] = __import__(backend_module).__version__
    return versions


def _package_version(name):
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def prompt_file_path(config, factory):
    """Where `save_tuned_prompt` writes: `prompt.npz`, `prefix.npz` or `prompt.json`."""
    filename = {"text": "prompt.json", "prefix": "prefix.npz"}.get(factory.kind, "prompt.npz")
    return os.path.join(config.output_dir, filename)


def save_tuned_prompt(model, factory, final, data, config):
    """Writes `final` as the file `promptopt eval` and `SavedPrompt` read; returns its path.

    The model must already hold `final` (`factory.assign(final)`); the
    file records the template, label words, model, method, placement and
    dtype, so it reloads on its own.
    """
    extra = {"template": data.template, "label_words": data.label_words,
             "model_spec": config.model, "method": config.method,
             "placement": config.placement, "dtype": config.dtype}
    path = prompt_file_path(config, factory)
    if factory.kind == "text":
        write_json(path, {"format": "promptopt-text-prompt", "text": factory.prompt_text(final),
                          "phrases": factory.phrases, "indices": [int(i) for i in final],
                          "model_id": model.model_id, **extra})
        return path
    if factory.kind == "prefix":
        return model.save_prefix(path, extra=extra)
    if model.soft_prompt.parameterization is not None:
        model = _without_reparameterization(model)
    return model.save_prompt(path, extra=extra)
