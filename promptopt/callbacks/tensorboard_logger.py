"""TensorBoard logging for `fit()` and the runner loop, with one class."""

import os
import time

import keras
import numpy as np

from promptopt.callbacks.base import RunnerCallback

# Runner log keys that are bookkeeping, not curves.
_NOT_SCALARS = ("stage", "step")
# Runner log keys shown under clearer TensorBoard tags.
_RUNNER_TAGS = {"batch_accuracy": "accuracy", "best_loss": "best_so_far_loss"}
# A DevSelection's log keys, written under validation/ with these tags.
_DEV_TAGS = {"dev_accuracy": "accuracy", "dev_loss": "loss", "best_dev_accuracy": "best_accuracy"}


class TensorBoardLogger(RunnerCallback, keras.callbacks.Callback):
    """Writes a prompt-tuning run to TensorBoard, from `fit()` or the runner.

    The same object is a Keras callback (`model.fit(callbacks=[logger])`)
    and a `RunnerCallback` (`PromptTuningRunner(callbacks=[logger])`). Under
    `logdir` it keeps one event-file folder per split, `train/` and
    `validation/` (as Keras' own TensorBoard callback), created on first
    write; nothing is written anywhere else, and TensorFlow is imported only
    when the first summary is written.

    What it records (the step is the epoch under `fit()`, the runner step
    under the runner):

    - scalars: `loss` and `accuracy` on train and (`val_*` keys, a
      runner `DevSelection`'s `dev_*` logs, or `dev_metrics`) on validation; `learning_rate`, or CMA-ES' `sigma` and
      `best_so_far_loss`; `forward_calls` (`fit()`: training batches) and
      `wall_time` in seconds; everything else numeric in the logs;
    - `prompt/norm_mean`, and histograms `prompt/values` and `prompt/norms`
      (the L2 norm of each of the P vectors), every `histogram_every` steps;
    - text `prompt/nearest_tokens`: for each prompt vector, the `top_k`
      vocabulary tokens of highest cosine similarity (the interpretability
      view of Lester et al., 2021, Sec. 7), every `text_every` steps and at
      the end of the run;
    - `hparams` through TensorBoard's HParams plugin, once, so that runs
      can be compared side by side.

    The prompt, the embedding table and the tokenizer are found on the
    `PromptedModel` (under `fit()`, or as the runner's `evaluator.model`),
    or given explicitly. Under the runner the prompt is the optimizer's
    current export `best(state)`; a candidate that is not `[P, H]` (e.g.
    `KerasEvaluator(parameters="all")` flattens the prompt with its MLP)
    goes through `prompt_fn(candidate) -> [P, H]` when given, and is
    otherwise logged only as `prompt/values` and `prompt/norm_mean`.

    Args:
        logdir: str or path, the folder for the event files.
        hparams: dict of str -> bool, int, float or str, or None.
        embedding_table: array `[V, H]` or None (taken from the model).
        tokenizer: keras-hub tokenizer or None (taken from the model).
        prompt_fn: callable `candidate [*S] -> [P, H]` or None (runner only).
        dev_metrics: callable `() -> dict` (e.g. `{"loss": .., "accuracy":
            ..}`) logged under `validation/` every `dev_every` runner steps,
            or None.
        dev_every: int, runner steps between `dev_metrics` calls.
        histogram_every: int, steps between prompt norms and histograms.
        text_every: int, steps between nearest-token tables.
        top_k: int, nearest tokens shown per prompt vector.
        run_name: str, the HParams trial id (default: the logdir's name).

    Example:

    ```python
    logger = TensorBoardLogger("logs/sst2", hparams={"lr": 0.03, "P": 20})
    model.fit(x, y, epochs=10, validation_data=(x_dev, y_dev),
              callbacks=[logger])
    # or, for any optimizer:
    PromptTuningRunner(evaluator, callbacks=[logger]).run(prompt, stages)
    # then: tensorboard --logdir logs
    ```
    """

    def __init__(
        self,
        logdir,
        hparams=None,
        embedding_table=None,
        tokenizer=None,
        prompt_fn=None,
        dev_metrics=None,
        dev_every=10,
        histogram_every=1,
        text_every=50,
        top_k=5,
        run_name=None,
    ):
        keras.callbacks.Callback.__init__(self)
        if logdir is None or not str(logdir):
            raise ValueError(
                "TensorBoardLogger needs a logdir, got "
                f"{logdir!r}. Pass e.g. TensorBoardLogger('logs/run1')."
            )
        for name, value in (
            ("dev_every", dev_every),
            ("histogram_every", histogram_every),
            ("text_every", text_every),
            ("top_k", top_k),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"TensorBoardLogger({name}=...) must be a positive int, "
                    f"got {value!r}. Pass e.g. {name}=10."
                )
        hparams = dict(hparams or {})
        for key, value in hparams.items():
            if not isinstance(value, (bool, int, float, str)):
                raise ValueError(
                    f"hparams[{key!r}] is a {type(value).__name__}; the HParams "
                    "plugin takes bool, int, float or str values. Convert it, "
                    f"e.g. hparams[{key!r}] = str(value)."
                )
        self.logdir = os.fspath(logdir)
        self.hparams = hparams
        self.embedding_table = embedding_table
        self.tokenizer = tokenizer
        self.prompt_fn = prompt_fn
        self.dev_metrics = dev_metrics
        self.dev_every = dev_every
        self.histogram_every = histogram_every
        self.text_every = text_every
        self.top_k = top_k
        self.run_name = run_name or os.path.basename(os.path.normpath(self.logdir))
        self._writers = {}
        self._hparams_written = False
        self._fit_started = None
        self._fit_batches = 0
        self._last_step = None

    # --- writing ------------------------------------------------------------

    def writer(self, split):
        """The `tf.summary` writer of `split` ("train", "validation"), made lazily."""
        if split not in self._writers:
            import tensorflow as tf

            self._writers[split] = tf.summary.create_file_writer(
                os.path.join(self.logdir, split)
            )
        return self._writers[split]

    def write_scalars(self, values, step, split="train"):
        """Writes a dict of numbers as scalars at `step`."""
        import tensorflow as tf

        numbers = {
            k: float(v)
            for k, v in values.items()
            if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
            and np.isfinite(float(v))
        }
        if not numbers:
            return
        with self.writer(split).as_default(step=int(step)):
            for tag, value in numbers.items():
                tf.summary.scalar(tag, value)

    def write_prompt(self, prompt, step, with_text):
        """Norms, histograms and (optionally) nearest tokens of `prompt`."""
        import tensorflow as tf

        prompt = np.asarray(prompt, dtype="float32")
        with self.writer("train").as_default(step=int(step)):
            tf.summary.histogram("prompt/values", prompt.reshape(-1))
            if prompt.ndim != 2:
                tf.summary.scalar("prompt/norm_mean", float(np.linalg.norm(prompt)))
                return
            norms = np.linalg.norm(prompt, axis=-1)  # [P]
            tf.summary.scalar("prompt/norm_mean", float(np.mean(norms)))
            tf.summary.histogram("prompt/norms", norms)
            if with_text:
                table = self.nearest_tokens_markdown(prompt)
                if table is not None:
                    tf.summary.text("prompt/nearest_tokens", table)

    def write_hparams(self):
        if self._hparams_written or not self.hparams:
            return
        from tensorboard.plugins.hparams import api as hparams_api

        with self.writer("train").as_default(step=0):
            hparams_api.hparams(self.hparams, trial_id=self.run_name)
        self._hparams_written = True

    def flush(self):
        for writer in self._writers.values():
            writer.flush()

    def close(self):
        """Flushes and closes the writers; a later write opens new ones."""
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    # --- nearest vocabulary tokens -----------------------------------------

    def nearest_tokens(self, prompt):
        """Top-k tokens by cosine similarity per prompt vector.

        Args:
            prompt: array `[P, H]`.

        Returns:
            list of P lists of `(token_text, similarity)`, or None when no
            embedding table or tokenizer is known.
        """
        if self.embedding_table is None or self.tokenizer is None:
            return None
        table = np.asarray(self.embedding_table, dtype="float32")  # [V, H]
        prompt = np.asarray(prompt, dtype="float32")  # [P, H]
        # Cosine similarity, as in Lester et al.'s interpretability analysis.
        table_unit = table / np.maximum(np.linalg.norm(table, axis=-1, keepdims=True), 1e-12)
        prompt_unit = prompt / np.maximum(np.linalg.norm(prompt, axis=-1, keepdims=True), 1e-12)
        similarity = prompt_unit @ table_unit.T  # [P, V]
        k = min(self.top_k, table.shape[0])
        top = np.argsort(-similarity, axis=-1)[:, :k]  # [P, k]
        texts = _token_texts(self.tokenizer, top.reshape(-1).tolist())
        return [
            [(texts[p * k + j], float(similarity[p, top[p, j]])) for j in range(k)]
            for p in range(prompt.shape[0])
        ]

    def nearest_tokens_markdown(self, prompt):
        rows = self.nearest_tokens(prompt)
        if rows is None:
            return None
        lines = ["| prompt vector | nearest tokens (cosine similarity) |", "|---|---|"]
        for index, row in enumerate(rows):
            cells = ", ".join(f"`{text!r}` {score:.2f}" for text, score in row)
            lines.append(f"| {index} | {cells} |")
        return "\n".join(lines)

    def _find_model_parts(self, model):
        if model is None:
            return
        if self.embedding_table is None and callable(getattr(model, "embedding_table", None)):
            self.embedding_table = model.embedding_table()
        if self.tokenizer is None:
            self.tokenizer = getattr(model, "tokenizer", None)

    # --- the runner ---------------------------------------------------------

    def on_run_begin(self, logs):
        evaluator = getattr(self.runner, "evaluator", None)
        self._find_model_parts(getattr(evaluator, "model", None))
        self.write_hparams()

    def _runner_prompt(self):
        optimizer = getattr(self.runner, "current_optimizer", None)
        state = getattr(self.runner, "current_state", None)
        if optimizer is None or state is None:
            return None
        candidate = np.asarray(optimizer.best(state))
        if self.prompt_fn is not None:
            return np.asarray(self.prompt_fn(candidate))
        return candidate

    def on_step_end(self, step, logs):
        values = {
            _RUNNER_TAGS.get(k, k): v
            for k, v in logs.items()
            if k not in _NOT_SCALARS and k not in _DEV_TAGS
        }
        self.write_scalars(values, step)
        # A DevSelection's scores of the export, under validation/ as fit()'s.
        dev = {_DEV_TAGS[k]: v for k, v in logs.items() if k in _DEV_TAGS}
        if dev:
            self.write_scalars(dev, step, split="validation")
        if self.dev_metrics is not None and (step + 1) % self.dev_every == 0:
            self.write_scalars(self.dev_metrics(), step, split="validation")
        if step % self.histogram_every == 0 or (step + 1) % self.text_every == 0:
            prompt = self._runner_prompt()
            if prompt is not None:
                self.write_prompt(prompt, step, with_text=(step + 1) % self.text_every == 0)
        self._last_step = step

    def on_run_end(self, logs):
        if self._last_step is not None:
            if self.dev_metrics is not None and (self._last_step + 1) % self.dev_every:
                self.write_scalars(self.dev_metrics(), self._last_step, split="validation")
            prompt = self._runner_prompt()
            if prompt is not None:
                self.write_prompt(prompt, self._last_step, with_text=True)
        self.close()

    # --- Keras fit() --------------------------------------------------------

    def on_train_begin(self, logs=None):
        self._find_model_parts(self.model)
        self._fit_started = time.monotonic()
        self._fit_batches = 0
        self.write_hparams()

    def on_train_batch_end(self, batch, logs=None):
        self._fit_batches += 1

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        validation = {k[len("val_"):]: v for k, v in logs.items() if k.startswith("val_")}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and "learning_rate" not in train:
            train["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        train["forward_calls"] = self._fit_batches
        train["wall_time"] = time.monotonic() - self._fit_started
        self.write_scalars(train, epoch)
        self.write_scalars(validation, epoch, split="validation")
        prompt_layer = getattr(self.model, "soft_prompt", None)
        if prompt_layer is not None and prompt_layer.length > 0:
            if epoch % self.histogram_every == 0 or (epoch + 1) % self.text_every == 0:
                self.write_prompt(
                    prompt_layer.materialize(), epoch, with_text=(epoch + 1) % self.text_every == 0
                )
        self._last_step = epoch

    def on_train_end(self, logs=None):
        prompt_layer = getattr(self.model, "soft_prompt", None)
        if self._last_step is not None and prompt_layer is not None and prompt_layer.length > 0:
            self.write_prompt(prompt_layer.materialize(), self._last_step, with_text=True)
        self.close()


def _token_texts(tokenizer, ids):
    """The text of each token id (detokenized one by one)."""
    try:
        texts = tokenizer.detokenize([[i] for i in ids])
        if hasattr(texts, "numpy"):
            texts = texts.numpy()
        texts = np.asarray(texts).reshape(-1).tolist()
        return [t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t) for t in texts]
    except Exception:  # Tokenizers without batch detokenize: name the ids.
        id_to_token = getattr(tokenizer, "id_to_token", None)
        return [str(id_to_token(i)) if id_to_token else str(i) for i in ids]
