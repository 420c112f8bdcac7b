"""Classification by verbalizer: class score = log p(label word | prompt, x)."""

import numpy as np
from keras import ops

from promptopt.prompts.placement import prepend_prompt
from promptopt.prompts.placement import right_align
from promptopt.prompts.suffix_placement import append_prompt
from promptopt.tasks.verbalizer import Verbalizer

_NEG = -1e9  # log(0) stand-in that keeps gradients finite


class VerbalizerClassification:
    """Scores each class by the log-probability of its label words.

    For a decoder-only model the words are read at the answer position, the
    last real token of `[prompt; x]`. A word of m tokens scores
    `sum_j log p(w_j | prompt, x, w_<j)` (the sum of its tokens'
    log-probabilities); a class with several words scores
    `log sum_w p(w)`, the probability that the model says any of its words.
    Training minimizes cross-entropy over these class scores, i.e. over the
    distribution restricted to the label words (Lester et al. 2021; Schick &
    Schuetze 2021).

    When every label word is a single token, the LM head runs only at the
    answer position, `[B, H] -> [B, V]`, never over all `T` positions.

    `placement="suffix"` puts the prompt right after each text instead of in
    front of it, `[x; prompt]`, and reads the answer at the last prompt
    vector. The text's hidden states then do not depend on the prompt, so a
    population of candidates can share one pass over the input
    (`SharedInputEvaluator`, for black-box search). It needs a decoder-only
    model and single-token label words.

    Args:
        verbalizer: a `Verbalizer`.
        placement: "prefix" (default, Lester et al. 2021) or "suffix".

    Example:
    ```python
    task = VerbalizerClassification(
        Verbalizer(["0", "1"], {"0": " terrible", "1": " great"}, tokenizer)
    )
    ```
    """

    name = "classification"

    def __init__(self, verbalizer, placement="prefix"):
        if placement not in ("prefix", "suffix"):
            raise ValueError(
                f"placement must be 'prefix' or 'suffix', got {placement!r}."
            )
        self.verbalizer = verbalizer
        self.placement = placement
        ids = verbalizer.word_token_ids
        self.max_word_length = max(len(w) for w in ids)
        if placement == "suffix" and self.max_word_length > 1:
            raise ValueError(
                "placement='suffix' needs single-token label words, but a "
                f"label word has {self.max_word_length} tokens. Choose words "
                "that are one token each, or use placement='prefix'."
            )
        m = self.max_word_length
        self._word_ids = np.array(
            [w + [0] * (m - len(w)) for w in ids], dtype="int32"
        )  # [W, M]
        self._word_mask = np.array(
            [[1] * len(w) + [0] * (m - len(w)) for w in ids], dtype="int32"
        )  # [W, M]
        class_mask = np.full((len(ids), verbalizer.num_classes), _NEG, "float32")
        class_mask[np.arange(len(ids)), verbalizer.word_classes] = 0.0
        self._log_class_mask = class_mask  # [W, C]

    @property
    def num_classes(self):
        return self.verbalizer.num_classes

    def __call__(self, adapter, prompt, inputs):
        """Class scores `[B, C]` (log-probabilities of the label words).

        Args:
            adapter: the backbone's `BackboneAdapter`.
            prompt: `[P, H]` or `[B, P, H]`.
            inputs: dict with `token_ids` and `padding_mask`, `[B, T]`.
        """
        token_ids, padding_mask = right_align(
            inputs["token_ids"], inputs["padding_mask"]
        )
        if adapter.is_encoder_decoder:
            if self.placement == "suffix":
                raise ValueError(
                    "placement='suffix' needs a decoder-only model; this "
                    "backbone is encoder-decoder. Use placement='prefix'."
                )
            word_logp = self._word_logp_encoder_decoder(
                adapter, prompt, token_ids, padding_mask
            )
        else:
            word_logp = self._word_logp_decoder_only(
                adapter, prompt, token_ids, padding_mask
            )
        # log sum_{w in c} p(w): [B, W, 1] + [1, W, C] -> [B, C]
        return ops.logsumexp(
            ops.add(word_logp[:, :, None], self._log_class_mask[None]), axis=1
        )

    def scores_at_answer(self, adapter, answer_hidden):
        """Class scores `[B, C]` from final hidden states at the answer `[B, H]`.

        For single-token label words: the LM head runs on these B rows only.
        `SharedInputEvaluator` computes the answer states itself (from a
        shared K/V cache) and scores them here, so both paths agree.
        """
        if self.max_word_length > 1:
            raise ValueError(
                "scores_at_answer needs single-token label words; a label "
                f"word here has {self.max_word_length} tokens."
            )
        logp = ops.log_softmax(
            ops.cast(adapter.token_logits(answer_hidden), "float32"), axis=-1
        )  # [B, V]
        word_logp = ops.take(logp, self._word_ids[:, 0], axis=1)  # [B, W]
        return ops.logsumexp(
            ops.add(word_logp[:, :, None], self._log_class_mask[None]), axis=1
        )

    def _word_logp_decoder_only(self, adapter, prompt, token_ids, padding_mask):
        batch = ops.shape(token_ids)[0]
        lengths = ops.sum(ops.cast(padding_mask, "int32"), axis=1)  # [B]
        num_words, m = self._word_ids.shape
        if m > 1:
            # Append each word after the text: [B * W, T + M] rows, so the
            # model reads w_j after x, w_<j (teacher forcing).
            token_ids, padding_mask = self._append_words(
                token_ids, padding_mask, lengths
            )
            lengths = ops.repeat(lengths, num_words, axis=0)
            if len(ops.shape(prompt)) == 3:
                prompt = ops.repeat(prompt, num_words, axis=0)
        x = adapter.embed_tokens(token_ids)
        if self.placement == "suffix":
            x, mask = append_prompt(prompt, x, padding_mask)
        else:
            x, mask = prepend_prompt(prompt, x, padding_mask)
        hidden = adapter.decode(x, mask)  # [B', P + T', H]
        prompt_length = ops.shape(x)[1] - ops.shape(token_ids)[1]
        # Hidden state j of the answer predicts word token j. The answer
        # position P + L - 1 is the last real token with a prefix prompt
        # and the last prompt vector with a suffix prompt.
        positions = (
            prompt_length + lengths[:, None] - 1 + ops.arange(m)[None, :]
        )  # [B', M]
        answer = ops.take_along_axis(
            hidden, ops.cast(positions, "int32")[:, :, None], axis=1
        )  # [B', M, H]
        logp = ops.log_softmax(
            ops.cast(adapter.token_logits(answer), "float32"), axis=-1
        )  # [B', M, V]
        if m == 1:
            return ops.take(logp[:, 0, :], self._word_ids[:, 0], axis=1)  # [B, W]
        targets = ops.tile(self._word_ids, (batch, 1))  # [B * W, M]
        token_logp = ops.take_along_axis(logp, targets[:, :, None], axis=2)[..., 0]
        mask = ops.cast(ops.tile(self._word_mask, (batch, 1)), token_logp.dtype)
        return ops.reshape(ops.sum(token_logp * mask, axis=1), (batch, num_words))

    def _append_words(self, token_ids, padding_mask, lengths):
        batch, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
        num_words, m = self._word_ids.shape
        ids = ops.concatenate(
            [
                ops.repeat(token_ids[:, None, :], num_words, axis=1),
                ops.broadcast_to(self._word_ids[None], (batch, num_words, m)),
            ],
            axis=2,
        )  # [B, W, T + M]
        masks = ops.concatenate(
            [
                ops.repeat(ops.cast(padding_mask, "int32")[:, None, :], num_words, axis=1),
                ops.broadcast_to(self._word_mask[None], (batch, num_words, m)),
            ],
            axis=2,
        )
        i = ops.arange(length + m)[None, None, :]
        offset = i - lengths[:, None, None]
        # Position i reads the text below the length, then word token
        # (i - length), then padding.
        gather = ops.where(
            i < lengths[:, None, None], i, ops.where(offset < m, length + offset, 0)
        )
        gather = ops.broadcast_to(ops.cast(gather, "int32"), ops.shape(ids))
        ids = ops.take_along_axis(ids, gather, axis=2)
        keep = ops.cast(offset < m, "int32")
        masks = ops.take_along_axis(masks, gather, axis=2) * keep
        flat = (batch * num_words, length + m)
        return ops.reshape(ids, flat), ops.reshape(masks, flat)

    def _word_logp_encoder_decoder(self, adapter, prompt, token_ids, padding_mask):
        batch = ops.shape(token_ids)[0]
        num_words, m = self._word_ids.shape
        x = adapter.embed_tokens(token_ids)
        x, mask = prepend_prompt(prompt, x, padding_mask)
        encoded = adapter.encode(x, mask)  # [B, S, H]
        start = adapter.decoder_start_token_id
        if m == 1:
            decoder_ids = ops.full((batch, 1), start, dtype="int32")
            hidden = adapter.decode_from_encoder(
                decoder_ids, ops.ones_like(decoder_ids), encoded, mask
            )  # [B, 1, H]
            logp = ops.log_softmax(
                ops.cast(adapter.token_logits(hidden[:, 0]), "float32"), axis=-1
            )
            return ops.take(logp, self._word_ids[:, 0], axis=1)
        # Teacher forcing: decoder input [start, w_0 .. w_{M-2}] per word.
        decoder_ids = np.concatenate(
            [np.full((num_words, 1), start, "int32"), self._word_ids[:, :-1]], 1
        )
        decoder_mask = np.concatenate(
            [np.ones((num_words, 1), "int32"), self._word_mask[:, :-1]], 1
        )
        encoded = ops.repeat(encoded, num_words, axis=0)  # [B * W, S, H]
        mask = ops.repeat(mask, num_words, axis=0)
        hidden = adapter.decode_from_encoder(
            ops.tile(decoder_ids, (batch, 1)),
            ops.tile(decoder_mask, (batch, 1)),
            encoded,
            mask,
        )  # [B * W, M, H]
        logp = ops.log_softmax(
            ops.cast(adapter.token_logits(hidden), "float32"), axis=-1
        )
        targets = ops.tile(self._word_ids, (batch, 1))
        token_logp = ops.take_along_axis(logp, targets[:, :, None], axis=2)[..., 0]
        word_mask = ops.cast(ops.tile(self._word_mask, (batch, 1)), "float32")
        return ops.reshape(
            ops.sum(token_logp * word_mask, axis=1), (batch, num_words)
        )

    def get_config(self):
        return {
            "verbalizer": self.verbalizer.get_config(),
            "placement": self.placement,
        }

    @classmethod
    def from_config(cls, config):
        return cls(
            Verbalizer.from_config(config["verbalizer"]),
            placement=config.get("placement", "prefix"),
        )
