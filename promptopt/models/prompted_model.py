"""A frozen keras-hub backbone plus a trainable prompt, as a keras.Model."""

import keras

from promptopt.models.frozen_backbone_model import FrozenBackboneModel
from promptopt.prompts.initializers import get_initializer
from promptopt.prompts.prompt_file import PromptFile
from promptopt.prompts.soft_prompt import SoftPrompt
from promptopt.tasks.classification import VerbalizerClassification


@keras.saving.register_keras_serializable(package="promptopt")
class PromptedModel(FrozenBackboneModel):
    """A frozen language model whose only trainable tensor is its prompt.

    The backbone is frozen (`trainable = False`) and its sublayers always
    run in inference mode; `model.trainable_weights` holds only the
    `SoftPrompt` (and its reparameterization, if any). The model trains with
    plain `fit()` on numpy arrays or a `tf.data.Dataset`. Text encoding,
    `classify`, `generate` and the compile defaults come from
    `FrozenBackboneModel`.

    Inputs are dicts of `token_ids` and `padding_mask`, `[B, T]` (left or
    right padding); outputs are class scores `[B, C]` for
    `VerbalizerClassification` and next-token logits `[B, T, V]` for
    `LanguageModeling`.

    Args:
        backbone: a keras-hub backbone (GPT-2, Llama family, Gemma, T5).
        task: `VerbalizerClassification` or `LanguageModeling`.
        prompt_length: int, P.
        prompt_initializer: see `promptopt.prompts.get_initializer`:
            "vocab" (default), "random", "labels", "text:<words>", an array
            `[P, H]` or a file.
        parameterization: optional Keras layer `[P, H] -> [P, H]` applied
            to the raw prompt (e.g. the residual MLP).
        tokenizer: the backbone's keras-hub tokenizer; needed to encode text
            and for the "text:" initializer.
        model_id: str stored in saved prompts (e.g. "smollm2-135m-instruct").
        seed: int for random initializers.
        max_length: int, longest tokenized text.

    Example:
    ```python
    task = VerbalizerClassification(
        Verbalizer(["0", "1"], {"0": " terrible", "1": " great"}, tokenizer))
    model = PromptedModel(backbone, task, prompt_length=20, tokenizer=tokenizer)
    model.compile(optimizer=keras.optimizers.AdamW(0.03))
    model.fit(model.encode_texts(texts), labels, epochs=3)
    model.save_prompt("sst2.prompt.npz")
    ```
    """

    # The most robust AdamW rate (no weight decay) in FIELD_NOTES' PEFT
    # sweep on SmolLM2.
    default_learning_rate = 0.03

    def __init__(
        self,
        backbone,
        task,
        prompt_length=20,
        prompt_initializer="vocab",
        parameterization=None,
        tokenizer=None,
        model_id=None,
        seed=0,
        max_length=128,
        **kwargs,
    ):
        super().__init__(
            backbone,
            task,
            tokenizer=tokenizer,
            model_id=model_id,
            seed=seed,
            max_length=max_length,
            **kwargs,
        )
        initial_value = None
        if prompt_initializer is not None and int(prompt_length) > 0:
            label_ids = None
            if isinstance(task, VerbalizerClassification):
                label_ids = task.verbalizer.word_token_ids
            initializer = get_initializer(prompt_initializer, label_ids, seed)
            initial_value = initializer(
                int(prompt_length), self.embedding_table(), self._tokenize()
            )
        self.soft_prompt = SoftPrompt(
            prompt_length,
            self.adapter.hidden_dim,
            initial_value=initial_value,
            parameterization=parameterization,
            name="soft_prompt",
        )
        self.soft_prompt.build()
        self.prompt_length = int(prompt_length)

    # --- Keras ---------------------------------------------------------------

    def _adapter_and_prompt(self, prompt=None):
        if prompt is None:
            prompt = self.soft_prompt()
        return self.adapter, prompt

    def call(self, inputs, training=False, prompt=None):
        """Forward pass; `prompt` `[P, H]` or `[B, P, H]` overrides the layer's."""
        adapter, prompt = self._adapter_and_prompt(prompt)
        return self.task(adapter, prompt, inputs)

    def get_config(self):
        config = super().get_config()
        config.update(
            prompt_length=self.prompt_length,
            parameterization=keras.saving.serialize_keras_object(
                self.soft_prompt.parameterization
            ),
        )
        return config

    @classmethod
    def from_config(cls, config):
        parameterization = keras.saving.deserialize_keras_object(
            config.get("parameterization")
        )
        # Weights (the prompt included) are restored by Keras after this.
        return super().from_config(
            dict(
                config,
                parameterization=parameterization,
                prompt_initializer=None,
            )
        )

    # --- the prompt on its own -----------------------------------------------

    def save_prompt(self, path, extra=None):
        """Saves the materialized prompt `[P, H]` with its model's identity."""
        return self._save_trained(
            PromptFile, path, extra, prompt=self.soft_prompt.materialize()
        )

    def load_prompt(self, path):
        """Loads a prompt file, refusing one made for another model.

        Raises:
            PromptMismatchError: another hidden size or embedding table.
            ValueError: another prompt length.
        """
        prompt_file = PromptFile.load(path)
        prompt_file.check_compatible(
            self.model_id,
            self.embedding_hash(prompt_file.format_version),
            self.adapter.hidden_dim,
            source=f"file {path}",
        )
        if prompt_file.length != self.prompt_length:
            raise ValueError(
                f"Prompt file {path} holds P={prompt_file.length} vectors but "
                f"this model has prompt_length={self.prompt_length}. Build the "
                f"model with prompt_length={prompt_file.length}."
            )
        self._assign_exported(
            self.soft_prompt, prompt_file.prompt, "prompt", "parameterization"
        )
        return prompt_file
