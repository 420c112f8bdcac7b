"""A frozen keras-hub backbone plus trainable per-layer K/V prefixes."""

import keras
from keras import ops

from promptopt.models.frozen_backbone_model import FrozenBackboneModel
from promptopt.prefixes.deep_suffix import deep_suffix_answer_states
from promptopt.prompts.placement import right_align
from promptopt.prompts.shared_input import supports_shared_input
from promptopt.prefixes.prefix_file import PrefixFile
from promptopt.prefixes.prefix_initializers import bind_prefix
from promptopt.prefixes.prefix_initializers import initial_prefix
from promptopt.prefixes.prefix_initializers import prefix_shape
from promptopt.prefixes.prefix_layer import KeyValuePrefix
from promptopt.prefixes.prefixed_t5 import T5_SITES


@keras.saving.register_keras_serializable(package="promptopt")
class PrefixModel(FrozenBackboneModel):
    """Prefix tuning (Li & Liang 2021): a frozen LM plus K/V prefixes.

    Every attention layer of the frozen backbone reads `P` trained keys and
    values in front of the text's own (`KeyValuePrefix`, `[L, 2, P, N, D]`);
    the token embeddings are untouched. For T5, `sites` chooses the encoder
    self-attention, decoder self-attention and cross-attention (all three
    by default, the paper's full form). The backbone is frozen, so
    `trainable_weights` holds only the prefix (and its `PrefixMLP`).

    With `VerbalizerClassification(placement="suffix")` on a Llama-family
    backbone the same `[L, 2, P, N, D]` is a *deep suffix*
    (`promptopt.prefixes.deep_suffix`): it sits after the input's head and
    only the last `suffix_tail_length` tokens (the template's tail, ending
    at the answer position) read it, so a population shares one pass over
    the heads (`DeepSuffixEvaluator`).

    The tasks of `promptopt.tasks` run unchanged: the model binds the prefix
    into the backbone's adapter and hands the task an empty prompt. Inputs
    and outputs are those of `PromptedModel` (class scores `[B, C]` or
    next-token logits `[B, T, V]`), and so are text encoding, `classify` and
    `generate` (keras-hub's cached samplers: greedy, top-k, beam, ...),
    which both take from `FrozenBackboneModel`.

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
        suffix_tail_length: int k >= 1, deep suffix only: how many of each
            text's last tokens read the prefix (the template's tail).
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

    # Keys and values are far larger than Li & Liang's learning rate of
    # 5e-5 (tuned for days of GPU training) can move in a few hundred
    # steps; 1e-3 without weight decay trains the prefix of SmolLM2 on E2E
    # within CPU budgets (experiments/results/e2e_table_to_text.md).
    default_learning_rate = 1e-3

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
        suffix_tail_length=1,
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
        self.placement = getattr(task, "placement", "prefix")
        if self.placement == "suffix":
            if not supports_shared_input(self.adapter):
                raise ValueError(
                    "A deep suffix (placement='suffix') needs a Llama-family backbone "
                    "(rotary positions); got "
                    f"{type(backbone).__name__}. Use placement='prefix'.")
            if int(suffix_tail_length) < 1:
                raise ValueError(
                    f"suffix_tail_length must be at least 1 (the answer position), got "
                    f"{suffix_tail_length!r}.")
        self.suffix_tail_length = int(suffix_tail_length)
        self.prefix_length = int(prefix_length)
        value = None
        if prefix_initializer is not None:
            value = initial_prefix(
                prefix_initializer,
                self.adapter,
                self.prefix_length,
                self.sites,
                self._tokenize(),
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

    def _adapter_and_prompt(self, prefix=None):
        if self.placement == "suffix":
            # Generation would read the prefix in front, not where it was tuned.
            raise ValueError(
                "This PrefixModel holds a deep suffix (placement='suffix'), which "
                "scores classes only; generation and served completions need a "
                "prefix tuned in front (placement='prefix').")
        # The prefix lives in the adapter; the task's prompt is empty.
        no_prompt = ops.zeros((0, self.adapter.hidden_dim))
        return self.bound_adapter(prefix), no_prompt

    def call(self, inputs, training=False, prefix=None):
        """Forward pass; `prefix` `[(B,) L, 2, P, N, D]` overrides the layer's."""
        if self.placement == "suffix":
            token_ids, padding_mask = right_align(inputs["token_ids"], inputs["padding_mask"])
            answer = deep_suffix_answer_states(
                self.adapter, self.prefix() if prefix is None else prefix,
                token_ids, padding_mask, self.suffix_tail_length)
            return self.task.scores_at_answer(self.adapter, answer)
        adapter, no_prompt = self._adapter_and_prompt(prefix)
        return self.task(adapter, no_prompt, inputs)

    def get_config(self):
        config = super().get_config()
        config.update(
            prefix_length=self.prefix_length,
            reparameterization=keras.saving.serialize_keras_object(
                self.prefix.parameterization
            ),
            sites=list(self.sites),
            suffix_tail_length=self.suffix_tail_length,
        )
        return config

    @classmethod
    def from_config(cls, config):
        reparameterization = keras.saving.deserialize_keras_object(
            config.get("reparameterization")
        )
        # Weights (the prefix included) are restored by Keras after this.
        return super().from_config(
            dict(
                config,
                reparameterization=reparameterization,
                sites=tuple(config["sites"]),
                prefix_initializer=None,
            )
        )

    # --- the prefix on its own -----------------------------------------------

    def save_prefix(self, path, extra=None):
        """Saves the materialized prefix `[L, 2, P, N, D]` (the MLP dropped).

        A deep suffix also records how many tail tokens read it
        (`extra["suffix_tail_length"]`), which loading needs.
        """
        if self.placement == "suffix":
            extra = {"suffix_tail_length": self.suffix_tail_length, **(extra or {})}
        return self._save_trained(
            PrefixFile,
            path,
            extra,
            prefix=self.prefix.materialize(),
            sites=self.sites,
        )

    def load_prefix(self, path):
        """Loads a prefix file, refusing one made for another model or shape."""
        prefix_file = PrefixFile.load(path)
        prefix_file.check_compatible(
            self.model_id,
            self.embedding_hash(prefix_file.format_version),
            self.prefix.prefix_shape,
            self.sites,
            source=f"file {path}",
        )
        self._assign_exported(
            self.prefix, prefix_file.prefix, "prefix", "reparameterization"
        )
        return prefix_file
