"""A frozen keras-hub backbone plus a trainable prompt, as a keras.Model."""

import keras
import numpy as np
from keras import ops

from promptopt.adapters import adapter_for
from promptopt.models.cached_generator import CachedGenerator
from promptopt.models.tokenizer_config import deserialize_tokenizer
from promptopt.models.tokenizer_config import serialize_tokenizer
from promptopt.prompts.initializers import get_initializer
from promptopt.prompts.prompt_file import PromptFile
from promptopt.prompts.prompt_file import embedding_fingerprint
from promptopt.prompts.soft_prompt import SoftPrompt
from promptopt.tasks import deserialize_task
from promptopt.tasks import serialize_task
from promptopt.tasks.classification import VerbalizerClassification
from promptopt.tasks.text_encoder import TextEncoder
from promptopt.tasks.text_encoder import detokenize
from promptopt.tasks.text_encoder import pad_rows
from promptopt.tasks.text_encoder import tokenize_all


@keras.saving.register_keras_serializable(package="promptopt")
class PromptedModel(keras.Model):
    """A frozen language model whose only trainable tensor is its prompt.

    The backbone is frozen (`trainable = False`) and its sublayers always
    run in inference mode; `model.trainable_weights` holds only the
    `SoftPrompt` (and its reparameterization, if any). The model trains with
    plain `fit()` on numpy arrays or a `tf.data.Dataset`.

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
        super().__init__(**kwargs)
        backbone.trainable = False
        self.backbone = backbone
        self.task = task
        self.tokenizer = tokenizer
        self.model_id = model_id or backbone.name
        self.seed = int(seed)
        self.max_length = int(max_length)
        self.adapter = adapter_for(backbone)
        self._fingerprint = None
        initial_value = None
        if prompt_initializer is not None and int(prompt_length) > 0:
            label_ids = None
            if isinstance(task, VerbalizerClassification):
                label_ids = task.verbalizer.word_token_ids
            initializer = get_initializer(prompt_initializer, label_ids, seed)
            tokenize = None
            if tokenizer is not None:
                tokenize = lambda text: tokenize_all(tokenizer, [text])[0]
            initial_value = initializer(
                int(prompt_length), self.embedding_table(), tokenize
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

    def call(self, inputs, training=False, prompt=None):
        """Forward pass; `prompt` `[P, H]` or `[B, P, H]` overrides the layer's."""
        if prompt is None:
            prompt = self.soft_prompt()
        return self.task(self.adapter, prompt, inputs)

    def compile(self, optimizer=None, loss=None, metrics=None, **kwargs):
        """`keras.Model.compile` with the task's loss and metrics as defaults.

        The default optimizer is AdamW at learning rate 0.03 without weight
        decay (the most robust setting in FIELD_NOTES' PEFT sweep on
        SmolLM2); pass any Keras optimizer to override.
        """
        if optimizer is None:
            optimizer = keras.optimizers.AdamW(
                learning_rate=0.03, weight_decay=0.0
            )
        if loss is None:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if metrics is None and isinstance(self.task, VerbalizerClassification):
            metrics = ["accuracy"]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def get_config(self):
        backbone = keras.saving.serialize_keras_object(self.backbone)
        if hasattr(self.backbone, "tie_word_embeddings"):
            # keras-hub 0.32's LlamaBackbone.get_config drops this flag
            # (upstream issue #3098); without it a clone gets an untied head.
            backbone["config"]["tie_word_embeddings"] = bool(
                self.backbone.tie_word_embeddings
            )
        return {
            "name": self.name,
            "backbone": backbone,
            "task": serialize_task(self.task),
            "prompt_length": self.prompt_length,
            "parameterization": (
                None
                if self.soft_prompt.parameterization is None
                else keras.saving.serialize_keras_object(
                    self.soft_prompt.parameterization
                )
            ),
            "tokenizer": serialize_tokenizer(self.tokenizer),
            "model_id": self.model_id,
            "seed": self.seed,
            "max_length": self.max_length,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(
            config["backbone"]
        )
        config["task"] = deserialize_task(config["task"])
        if config.get("parameterization") is not None:
            config["parameterization"] = keras.saving.deserialize_keras_object(
                config["parameterization"]
            )
        config["tokenizer"] = deserialize_tokenizer(config.get("tokenizer"))
        # Weights (the prompt included) are restored by Keras after this.
        return cls(prompt_initializer=None, **config)

    # --- text in, predictions out -----------------------------------------

    def text_encoder(self):
        if self.tokenizer is None:
            raise ValueError(
                "This model has no tokenizer; pass tokenizer= to "
                "PromptedModel, or feed token_ids/padding_mask yourself."
            )
        return TextEncoder(self.tokenizer, max_length=self.max_length)

    def encode_texts(self, texts):
        """Texts -> `{"token_ids", "padding_mask"}` arrays `[N, T]`."""
        return self.text_encoder().encode(texts)

    def classify(self, texts, batch_size=32):
        """Predicted class indices `[N]` for raw texts."""
        scores = self.predict(
            self.encode_texts(texts), batch_size=batch_size, verbose=0
        )
        return np.argmax(scores, axis=-1)

    def generate(
        self,
        texts,
        max_new_tokens=32,
        sampler="greedy",
        use_cache=True,
    ):
        """Continues each text with the prompt in place; returns new text.

        Args:
            texts: list of N strings.
            max_new_tokens: int.
            sampler: keras-hub sampler or name ("greedy", "top_k", "beam").
            use_cache: False runs full forward passes (reference path).
        """
        rows = self.text_encoder().ids(texts)
        end = getattr(self.tokenizer, "end_token_id", None)
        stop = None if end is None else (end,)
        if self.adapter.is_encoder_decoder:
            batch = pad_rows(rows, self.max_length)
            out = CachedGenerator(self.adapter)(
                self.soft_prompt(),
                batch["token_ids"],
                batch["padding_mask"],
                stop_token_ids=stop,
                max_new_tokens=max_new_tokens,
            )
            new_tokens = [list(r) for r in np.asarray(out)]
        else:
            total = max(len(r) for r in rows) + max_new_tokens
            batch = pad_rows(rows, total, length=total)
            out = CachedGenerator(self.adapter)(
                self.soft_prompt(),
                batch["token_ids"],
                batch["padding_mask"],
                sampler=sampler,
                stop_token_ids=stop,
                use_cache=use_cache,
            )
            out = np.asarray(ops.convert_to_numpy(out))
            # Every row is filled up to the longest text + max_new_tokens;
            # a shorter text must still get at most max_new_tokens.
            new_tokens = [
                list(out[i, len(r) : len(r) + max_new_tokens])
                for i, r in enumerate(rows)
            ]
        texts_out = []
        for tokens in new_tokens:
            if stop is not None and stop[0] in tokens:
                tokens = tokens[: tokens.index(stop[0])]
            texts_out.append(detokenize(self.tokenizer, tokens))
        return texts_out

    # --- the prompt on its own -----------------------------------------------

    def embedding_table(self):
        """The backbone's input embeddings as numpy `[V, H]`."""
        return np.asarray(ops.convert_to_numpy(self.adapter.embedding_matrix))

    def embedding_hash(self):
        if self._fingerprint is None:
            self._fingerprint = embedding_fingerprint(self.embedding_table())
        return self._fingerprint

    def save_prompt(self, path, extra=None):
        """Saves the materialized prompt `[P, H]` with its model's identity."""
        meta = {"task": serialize_task(self.task)}
        meta.update(extra or {})
        return PromptFile(
            prompt=self.soft_prompt.materialize(),
            model_id=self.model_id,
            embedding_hash=self.embedding_hash(),
            extra=meta,
        ).save(path)

    def load_prompt(self, path):
        """Loads a prompt file, refusing one made for another model.

        Raises:
            PromptMismatchError: another hidden size or embedding table.
            ValueError: another prompt length.
        """
        prompt_file = PromptFile.load(path)
        prompt_file.check_compatible(
            self.model_id,
            self.embedding_hash(),
            self.adapter.hidden_dim,
            source=f"file {path}",
        )
        if prompt_file.length != self.prompt_length:
            raise ValueError(
                f"Prompt file {path} holds P={prompt_file.length} vectors but "
                f"this model has prompt_length={self.prompt_length}. Build the "
                f"model with prompt_length={prompt_file.length}."
            )
        if self.soft_prompt.parameterization is not None:
            raise ValueError(
                "This model's prompt has a reparameterization; a prompt file "
                "holds the final prompt. Build the model without "
                "parameterization= to load it."
            )
        self.soft_prompt.assign(prompt_file.prompt)
        return prompt_file
