"""A frozen keras-hub backbone plus trainable per-layer K/V prefixes."""

import keras
import numpy as np
from keras import ops

from promptopt.adapters import adapter_for
from promptopt.models.cached_generator import CachedGenerator
from promptopt.models.tokenizer_config import deserialize_tokenizer
from promptopt.models.tokenizer_config import serialize_tokenizer
from promptopt.tasks.text_encoder import detokenize
from promptopt.prefixes.prefix_file import PrefixFile
from promptopt.prefixes.prefix_initializers import bind_prefix
from promptopt.prefixes.prefix_initializers import initial_prefix
from promptopt.prefixes.prefix_initializers import prefix_shape
from promptopt.prefixes.prefix_layer import KeyValuePrefix
from promptopt.prefixes.prefixed_t5 import T5_SITES
from promptopt.prompts.prompt_file import embedding_fingerprint
from promptopt.tasks import deserialize_task
from promptopt.tasks import serialize_task
from promptopt.tasks.classification import VerbalizerClassification
from promptopt.tasks.text_encoder import TextEncoder
from promptopt.tasks.text_encoder import pad_rows
from promptopt.tasks.text_encoder import tokenize_all


@keras.saving.register_keras_serializable(package="promptopt")
class PrefixModel(keras.Model):
    """Prefix tuning (Li & Liang 2021): a frozen LM plus K/V prefixes.

    Every attention layer of the frozen backbone reads `P` trained keys and
    values in front of the text's own (`KeyValuePrefix`, `[L, 2, P, N, D]`);
    the token embeddings are untouched. For T5, `sites` chooses the encoder
    self-attention, decoder self-attention and cross-attention (all three
    by default, the paper's full form). The backbone is frozen, so
    `trainable_weights` holds only the prefix (and its `PrefixMLP`).

    The tasks of `promptopt.tasks` run unchanged: the model binds the prefix
    into the backbone's adapter and hands the task an empty prompt. Inputs
    and outputs are those of `PromptedModel` (class scores `[B, C]` or
    next-token logits `[B, T, V]`), and `generate` samples through keras-hub's
    cached samplers (greedy, top-k, beam, ...).

    Args:
        backbone: a keras-hub backbone (GPT-2, Llama family, T5).
        task: `VerbalizerClassification` or `LanguageModeling`.
        prefix_length: int, P.
        prefix_initializer: see `initial_prefix`: "vocab" (default),
            "text:<words>", "random", "zeros" or an array; None leaves the
            prefix at zero (weights are then loaded).
        reparameterization: optional `PrefixMLP` (`P = MLP(P')`).
        sites: T5 only, subset of `("encoder", "decoder", "cross")`.
        tokenizer: the backbone's keras-hub tokenizer.
        model_id: str stored in saved prefixes.
        seed: int for random initializers.
        max_length: int, longest tokenized text.

    Example:
    ```python
    model = PrefixModel(backbone, LanguageModeling(), prefix_length=10,
                        prefix_initializer="text:table to text", tokenizer=tokenizer)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    x, y, w = model.task.encode(tokenizer, sources, targets, False)
    model.fit(x, y, sample_weight=w, epochs=3)
    model.generate(["name : Aromi | food : Chinese"], max_new_tokens=40)
    ```
    """

    def __init__(
        self,
        backbone,
        task,
        prefix_length=10,
        prefix_initializer="vocab",
        reparameterization=None,
        sites=None,
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
        if self.adapter.is_encoder_decoder:
            self.sites = tuple(sites or T5_SITES)
            unknown = set(self.sites) - set(T5_SITES)
            if unknown or not self.sites:
                raise ValueError(
                    f"sites must be a non-empty subset of {T5_SITES}, got "
                    f"{sites!r}."
                )
        else:
            if sites not in (None, ("decoder",), ["decoder"]):
                raise ValueError(
                    f"A decoder-only model has one attention site, 'decoder'; "
                    f"got sites={sites!r}. Leave sites=None."
                )
            self.sites = ("decoder",)
        self.prefix_length = int(prefix_length)
        self._fingerprint = None
        value = None
        if prefix_initializer is not None:
            tokenize = None
            if tokenizer is not None:
                tokenize = lambda text: tokenize_all(tokenizer, [text])[0]
            value = initial_prefix(
                prefix_initializer,
                self.adapter,
                self.prefix_length,
                self.sites,
                tokenize,
                self.seed,
            )
        self.prefix = KeyValuePrefix(
            prefix_shape(self.adapter, self.prefix_length, self.sites),
            initial_value=value,
            parameterization=reparameterization,
            seed=self.seed,
            name="prefix",
        )
        self.prefix.build()

    # --- Keras ---------------------------------------------------------------

    def bound_adapter(self, prefix=None):
        """The backbone's adapter with `prefix` (default: the layer's) bound in."""
        if prefix is None:
            prefix = self.prefix()
        return bind_prefix(self.adapter, prefix, self.sites)

    def call(self, inputs, training=False, prefix=None):
        """Forward pass; `prefix` `[(B,) L, 2, P, N, D]` overrides the layer's."""
        no_prompt = ops.zeros((0, self.adapter.hidden_dim))
        return self.task(self.bound_adapter(prefix), no_prompt, inputs)

    def compile(self, optimizer=None, loss=None, metrics=None, **kwargs):
        """`keras.Model.compile` with the task's loss; AdamW 1e-3 by default.

        Keys and values are far larger than Li & Liang's learning rate of
        5e-5 (tuned for days of GPU training) can move in a few hundred
        steps; 1e-3 without weight decay trains the prefix of SmolLM2 on E2E
        within CPU budgets (experiments/results/e2e_table_to_text.md).
        """
        if optimizer is None:
            optimizer = keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.0)
        if loss is None:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if metrics is None and isinstance(self.task, VerbalizerClassification):
            metrics = ["accuracy"]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def get_config(self):
        backbone = keras.saving.serialize_keras_object(self.backbone)
        if hasattr(self.backbone, "tie_word_embeddings"):
            # keras-hub 0.32's LlamaBackbone.get_config drops this flag
            # (upstream issue #3098).
            backbone["config"]["tie_word_embeddings"] = bool(
                self.backbone.tie_word_embeddings
            )
        parameterization = self.prefix.parameterization
        return {
            "name": self.name,
            "backbone": backbone,
            "task": serialize_task(self.task),
            "prefix_length": self.prefix_length,
            "reparameterization": (
                None
                if parameterization is None
                else keras.saving.serialize_keras_object(parameterization)
            ),
            "sites": list(self.sites),
            "tokenizer": serialize_tokenizer(self.tokenizer),
            "model_id": self.model_id,
            "seed": self.seed,
            "max_length": self.max_length,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        config["task"] = deserialize_task(config["task"])
        if config.get("reparameterization") is not None:
            config["reparameterization"] = keras.saving.deserialize_keras_object(
                config["reparameterization"]
            )
        config["sites"] = tuple(config["sites"])
        config["tokenizer"] = deserialize_tokenizer(config.get("tokenizer"))
        # Weights (the prefix included) are restored by Keras after this.
        return cls(prefix_initializer=None, **config)

    # --- text in, text out ---------------------------------------------------

    def text_encoder(self):
        if self.tokenizer is None:
            raise ValueError(
                "This model has no tokenizer; pass tokenizer= to PrefixModel, "
                "or feed token_ids/padding_mask yourself."
            )
        return TextEncoder(self.tokenizer, max_length=self.max_length)

    def encode_texts(self, texts):
        """Texts -> `{"token_ids", "padding_mask"}` arrays `[N, T]`."""
        return self.text_encoder().encode(texts)

    def classify(self, texts, batch_size=32):
        """Predicted class indices `[N]` for raw texts."""
        scores = self.predict(self.encode_texts(texts), batch_size=batch_size, verbose=0)
        return np.argmax(scores, axis=-1)

    def generate(self, texts, max_new_tokens=32, sampler="greedy", use_cache=True):
        """Continues each text with the prefix in place; returns new text.

        Decoder-only models sample through keras-hub's samplers with a K/V
        cache whose first `P` slots hold the prefix (`use_cache=False` runs
        full forward passes, greedy, as a reference). T5 decodes greedily.

        Args:
            texts: list of N strings (each with at least one token).
            max_new_tokens: int.
            sampler: keras-hub sampler or name ("greedy", "top_k", "beam").
            use_cache: bool.
        """
        rows = self.text_encoder().ids(texts)
        end = getattr(self.tokenizer, "end_token_id", None)
        stop = None if end is None else (end,)
        generator = CachedGenerator(self.bound_adapter())
        no_prompt = ops.zeros((0, self.adapter.hidden_dim))
        if self.adapter.is_encoder_decoder:
            batch = pad_rows(rows, self.max_length)
            out = generator(
                no_prompt,
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
                no_prompt,
                batch["token_ids"],
                batch["padding_mask"],
                sampler=sampler,
                stop_token_ids=stop,
                use_cache=use_cache,
            )
            out = np.asarray(ops.convert_to_numpy(out))
            new_tokens = [
                list(out[i, len(r) : len(r) + max_new_tokens]) for i, r in enumerate(rows)
            ]
        texts_out = []
        for tokens in new_tokens:
            if stop is not None and stop[0] in tokens:
                tokens = tokens[: tokens.index(stop[0])]
            texts_out.append(detokenize(self.tokenizer, tokens))
        return texts_out

    # --- the prefix on its own -------------------------------------------------

    def embedding_hash(self):
        if self._fingerprint is None:
            table = ops.convert_to_numpy(self.adapter.embedding_matrix)
            self._fingerprint = embedding_fingerprint(table)
        return self._fingerprint

    def save_prefix(self, path, extra=None):
        """Saves the materialized prefix `[L, 2, P, N, D]` (the MLP dropped)."""
        meta = {"task": serialize_task(self.task)}
        meta.update(extra or {})
        return PrefixFile(
            prefix=self.prefix.materialize(),
            model_id=self.model_id,
            embedding_hash=self.embedding_hash(),
            sites=self.sites,
            extra=meta,
        ).save(path)

    def load_prefix(self, path):
        """Loads a prefix file, refusing one made for another model or shape."""
        prefix_file = PrefixFile.load(path)
        prefix_file.check_compatible(
            self.model_id,
            self.embedding_hash(),
            self.prefix.prefix_shape,
            self.sites,
            source=f"file {path}",
        )
        if self.prefix.parameterization is not None:
            raise ValueError(
                "This model's prefix has a reparameterization; a prefix file "
                "holds the final prefix. Build the model without "
                "reparameterization= to load it."
            )
        self.prefix.assign(prefix_file.prefix)
        return prefix_file
