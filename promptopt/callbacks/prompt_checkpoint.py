"""Resumable `fit()` that keeps the best prompt seen on the dev set."""

import json
import os
import tempfile

import keras
import numpy as np


class PromptCheckpoint(keras.callbacks.Callback):
    """Checkpoints the prompt (not the frozen backbone) after every epoch.

    The checkpoint holds the prompt layer's weights (the reparameterization
    included), the optimizer's state, the epoch, and the best prompt so far
    by `monitor`. It is small (the 135M backbone is never copied) and is
    written atomically, so a run killed at any point resumes from the last
    finished epoch with `initial_epoch = restore(model)`. At the end of
    training the best prompt is put back into the model.

    Args:
        directory: where `prompt_checkpoint.npz` lives.
        monitor: a logs key, e.g. "val_accuracy"; higher is better unless
            `mode="min"`. Ties keep the earlier prompt.
        mode: "max" or "min".
        restore_best: put the best prompt back at the end of training.

    Example:
    ```python
    checkpoint = PromptCheckpoint("runs/sst2")
    start = checkpoint.restore(model)
    model.fit(x, y, epochs=10, initial_epoch=start, callbacks=[checkpoint],
              validation_data=(x_dev, y_dev))
    ```
    """

    def __init__(self, directory, monitor="val_accuracy", mode="max", restore_best=True):
        super().__init__()
        self.directory = os.fspath(directory)
        self.monitor = monitor
        self.mode = mode
        self.restore_best = restore_best
        self.best_value = None
        self.best_weights = None
        self.best_epoch = None

    @property
    def path(self):
        return os.path.join(self.directory, "prompt_checkpoint.npz")

    def _prompt_weights(self):
        return [np.array(w.numpy()) for w in self.model.soft_prompt.weights]

    def _is_better(self, value):
        if self.best_value is None:
            return True
        if self.mode == "max":
            return value > self.best_value
        return value < self.best_value

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise ValueError(
                f"PromptCheckpoint monitors {self.monitor!r}, which fit() did "
                f"not report (it reported {sorted(logs or {})}). Pass "
                "validation_data= to fit(), or monitor another key."
            )
        if self._is_better(float(value)):
            self.best_value = float(value)
            self.best_weights = self._prompt_weights()
            self.best_epoch = int(epoch)
        self._save(epoch)

    def on_train_end(self, logs=None):
        if self.restore_best and self.best_weights is not None:
            for variable, value in zip(
                self.model.soft_prompt.weights, self.best_weights
            ):
                variable.assign(value)

    def _save(self, epoch):
        arrays = {}
        for i, w in enumerate(self._prompt_weights()):
            arrays[f"prompt_{i}"] = w
        for i, w in enumerate(self.best_weights or []):
            arrays[f"best_{i}"] = w
        optimizer = self.model.optimizer
        for i, v in enumerate(optimizer.variables):
            arrays[f"optimizer_{i}"] = np.array(v.numpy())
        meta = {
            "epoch": int(epoch),
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "monitor": self.monitor,
        }
        arrays["meta"] = np.array(json.dumps(meta))
        os.makedirs(self.directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp.npz")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, self.path)

    def restore(self, model):
        """Loads the checkpoint into `model`; returns fit's `initial_epoch`.

        Returns 0 when there is no checkpoint. The model must be compiled
        (its optimizer's state is restored too).
        """
        self.set_model(model)
        if not os.path.exists(self.path):
            return 0
        with np.load(self.path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            prompt = [data[f"prompt_{i}"] for i in range(len(model.soft_prompt.weights))]
            best = [
                data[f"best_{i}"]
                for i in range(len(model.soft_prompt.weights))
                if f"best_{i}" in data
            ]
            optimizer_values = [
                data[k] for k in sorted(
                    (k for k in data.files if k.startswith("optimizer_")),
                    key=lambda k: int(k.split("_")[1]),
                )
            ]
        for variable, value in zip(model.soft_prompt.weights, prompt):
            variable.assign(value)
        optimizer = model.optimizer
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        if len(optimizer.variables) != len(optimizer_values):
            raise ValueError(
                f"Checkpoint {self.path} was written with another optimizer "
                f"({len(optimizer_values)} state variables, this one has "
                f"{len(optimizer.variables)}). Resume with the same optimizer, "
                "or start in a new directory."
            )
        for variable, value in zip(optimizer.variables, optimizer_values):
            variable.assign(value)
        self.best_value = meta["best_value"]
        self.best_epoch = meta["best_epoch"]
        self.best_weights = best or None
        return int(meta["epoch"]) + 1
