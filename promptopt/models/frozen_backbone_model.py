"""What every model that tunes a few tensors of a frozen backbone shares."""

import keras
import numpy as np
from keras import ops

from promptopt.adapters import adapter_for
from promptopt.models.cached_generator import CachedGenerator
from promptopt.models.prompt_table import per_row_class_scores
from promptopt.models.tokenizer_config import deserialize_tokenizer
from promptopt.models.tokenizer_config import serialize_tokenizer
from promptopt.prompts.prompt_file import FORMAT_VERSION
from promptopt.prompts.prompt_file import embedding_fingerprint
from promptopt.tasks import deserialize_task
from promptopt.tasks import serialize_task
from promptopt.tasks.classification import VerbalizerClassification
from promptopt.tasks.text_encoder import TextEncoder
from promptopt.tasks.text_encoder import detokenize
from promptopt.tasks.text_encoder import pad_rows
from promptopt.tasks.text_encoder import tokenize_all


class FrozenBackboneModel(keras.Model):
    """A frozen keras-hub backbone and a task, with text in and text out.

    The base of `PromptedModel` (a trained soft prompt `[P, H]`) and
    `PrefixModel` (trained keys and values `[L, 2, P, N, D]`). It freezes
    the backbone, encodes text, classifies, generates through keras-hub's
    cached samplers, fills in `compile()` defaults, serializes the backbone,
    task and tokenizer, and fingerprints the embedding table that saved
    prompts and prefixes are checked against.

    A subclass builds its trained layer and says how it reaches the task:
    `_adapter_and_prompt(trained)` returns the adapter and the prompt
    `[P, H]` that the task runs with, `trained` (or the layer's own value
    when None) bound into one of them. It also sets `default_learning_rate`
    and adds its own arguments to `get_config`/`from_config`.

    Args:
        backbone: a keras-hub backbone (GPT-2, Llama family, Gemma, T5);
            set to `trainable = False`.
        task: `VerbalizerClassification` or `LanguageModeling`.
        tokenizer: the backbone's keras-hub tokenizer; needed to encode text.
        model_id: str stored in saved prompts and prefixes (default: the
            backbone's name).
        seed: int for random initializers.
        max_length: int, longest tokenized text.

    Example:
    ```python
    class BareModel(FrozenBackboneModel):
        default_learning_rate = 0.01

        def _adapter_and_prompt(self, trained=None):
            return self.adapter, ops.zeros((0, self.adapter.hidden_dim))

        def call(self, inputs, training=False):
            return self.task(*self._adapter_and_prompt(), inputs)
    ```
    """

    # AdamW's learning rate when `compile()` is given no optimizer.
    default_learning_rate = None

    def __init__(
        self,
        backbone,
        task,
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
        self._fingerprints = {}  # format version -> embedding fingerprint

    def _adapter_and_prompt(self, trained=None):
        """The adapter and prompt `[P, H]` the task runs with."""
        raise NotImplementedError(
            f"{type(self).__name__} must say how its trained tensor reaches "
            "the task: define _adapter_and_prompt(trained)."
        )

    # --- Keras ---------------------------------------------------------------

    def compile(self, optimizer=None, loss=None, metrics=None, **kwargs):
        """`keras.Model.compile` with the task's loss and metrics as defaults.

        The default optimizer is AdamW without weight decay at the model's
        `default_learning_rate`; pass any Keras optimizer to override.
        """
        if optimizer is None:
            optimizer = keras.optimizers.AdamW(
                learning_rate=self.default_learning_rate, weight_decay=0.0
            )
        if loss is None:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if metrics is None and isinstance(self.task, VerbalizerClassification):
            metrics = ["accuracy"]
        super().compile(
            optimizer=optimizer, loss=loss, metrics=metrics, **kwargs
        )

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
        config["tokenizer"] = deserialize_tokenizer(config.get("tokenizer"))
        return cls(**config)

    # --- text in, predictions out --------------------------------------------

    def text_encoder(self):
        if self.tokenizer is None:
            raise ValueError(
                "This model has no tokenizer; pass tokenizer= to "
                f"{type(self).__name__}, or feed token_ids/padding_mask "
                "yourself."
            )
        return TextEncoder(self.tokenizer, max_length=self.max_length)

    def _tokenize(self):
        """`text -> token ids` for "text:" initializers, or None."""
        if self.tokenizer is None:
            return None
        return lambda text: tokenize_all(self.tokenizer, [text])[0]

    def encode_texts(self, texts):
        """Texts -> `{"token_ids", "padding_mask"}` arrays `[N, T]`."""
        return self.text_encoder().encode(texts)

    def classify(self, texts, batch_size=32, prompts=None, prompt_ids=None):
        """Predicted class indices `[N]` for raw texts.

        Args:
            texts: list of N strings.
            batch_size: int.
            prompts: optional `PromptTable` (soft prompts) or `PrefixTable`;
                text i then runs with `prompts[prompt_ids[i]]` in place of
                the model's own trained tensor, all in shared passes.
            prompt_ids: N ints into `prompts`.
        """
        if prompts is not None:
            scores = per_row_class_scores(self, texts, prompts, prompt_ids, batch_size)
            return np.argmax(scores, axis=-1)
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
        prompts=None,
        prompt_ids=None,
    ):
        """Continues each text, prompt or prefix in place; returns new text.

        Decoder-only models sample through keras-hub's samplers with a K/V
        cache seeded by the prompt or prefix (`use_cache=False` runs full
        forward passes, greedy, as a reference). T5 decodes greedily.

        Args:
            texts: list of N strings (each with at least one token when
                there is no prompt).
            max_new_tokens: int.
            sampler: keras-hub sampler or name ("greedy", "top_k", "beam").
            use_cache: bool.
            prompts: optional `PromptTable` or `PrefixTable`; text i then
                continues `prompts[prompt_ids[i]]` instead of the model's own
                trained tensor, all rows in one pass.
            prompt_ids: N ints into `prompts`.
        """
        rows = self.text_encoder().ids(texts)
        end = getattr(self.tokenizer, "end_token_id", None)
        stop = None if end is None else (end,)
        adapter, prompt = self._adapter_and_prompt()
        longest_input = self.max_length
        if prompts is not None:
            # The rows carry their prompts (as virtual ids) or the adapter
            # their prefixes; the shared prompt is then empty.
            if self.adapter.is_encoder_decoder:
                rows = [row[-self.max_length :] for row in rows]  # as pad_rows would
            adapter, rows = prompts.bind(self.adapter, prompt_ids, rows)
            prompt = ops.zeros((0, self.adapter.hidden_dim))
            longest_input = max(len(row) for row in rows)  # cut nothing more
        generator = CachedGenerator(adapter)
        if self.adapter.is_encoder_decoder:
            batch = pad_rows(rows, longest_input)
            out = generator(
                prompt,
                batch["token_ids"],
                batch["padding_mask"],
                stop_token_ids=stop,
                max_new_tokens=max_new_tokens,
            )
            new_tokens = [list(r) for r in np.asarray(out)]
        else:
            total = max(len(r) for r in rows) + max_new_tokens
            batch = pad_rows(rows, total, length=total)
            out = generator(
                prompt,
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

    # --- saved prompts and prefixes ------------------------------------------

    def embedding_table(self):
        """The backbone's input embeddings as numpy `[V, H]`."""
        return np.asarray(ops.convert_to_numpy(self.adapter.embedding_matrix))

    def embedding_hash(self, format_version=FORMAT_VERSION):
        """The embedding table's fingerprint as files of `format_version` hold it.

        The current version is the same for this backbone in float32 and
        bfloat16, so their saved prompts and prefixes load into each other.
        """
        if format_version not in self._fingerprints:
            self._fingerprints[format_version] = embedding_fingerprint(
                self.embedding_table(), format_version
            )
        return self._fingerprints[format_version]

    def _save_trained(self, file_class, path, extra, **contents):
        """Saves `file_class(**contents)` stamped with this model's identity.

        The file's `extra` holds the task, then `extra`; `file_class` is
        `PromptFile` or `PrefixFile`.
        """
        meta = {"task": serialize_task(self.task)}
        meta.update(extra or {})
        return file_class(
            model_id=self.model_id,
            embedding_hash=self.embedding_hash(),
            extra=meta,
            **contents,
        ).save(path)

    @staticmethod
    def _assign_exported(layer, value, noun, argument):
        """Writes an exported (final) tensor into `layer`.

        A file holds the tensor the model sees, not a reparameterization's
        input, so a layer with a parameterization cannot take it; `noun`
        and `argument` name the two in the error.
        """
        if layer.parameterization is not None:
            raise ValueError(
                f"This model's {noun} has a reparameterization; a {noun} file "
                f"holds the final {noun}. Build the model without "
                f"{argument}= to load it."
            )
        layer.assign(value)
