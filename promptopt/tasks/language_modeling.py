"""Text generation: the LM loss on target tokens, with the prompt in place."""

import numpy as np
from keras import ops

from promptopt.prompts.placement import prepend_prompt
from promptopt.prompts.placement import right_align
from promptopt.tasks.text_encoder import tokenize_all


class LanguageModeling:
    """Trains the prompt with the LM loss on the target tokens only.

    Decoder-only models read `[prompt; source; target]` and the model's
    output at position t predicts token t + 1 (its logits `[B, T, V]`).
    Encoder-decoder models encode `[prompt; source]` and the decoder,
    teacher-forced on `[start; target]`, predicts `target; end`.
    `encode()` builds the matching `(x, y, sample_weight)`, with weights 1
    only where the label is a target token (the source is not learned).

    Example:
    ```python
    task = LanguageModeling()
    x, y, w = task.encode(tokenizer, ["name[Aromi]"], [" Aromi is a pub."],
                          is_encoder_decoder=False, max_length=64)
    ```
    """

    name = "language_modeling"

    def __call__(self, adapter, prompt, inputs):
        """Logits `[B, T, V]` (decoder-only) or `[B, U, V]` (T5)."""
        token_ids, padding_mask = right_align(
            inputs["token_ids"], inputs["padding_mask"]
        )
        x = adapter.embed_tokens(token_ids)
        x, mask = prepend_prompt(prompt, x, padding_mask)
        if adapter.is_encoder_decoder:
            encoded = adapter.encode(x, mask)
            hidden = adapter.decode_from_encoder(
                inputs["decoder_token_ids"],
                inputs["decoder_padding_mask"],
                encoded,
                mask,
            )
        else:
            hidden = adapter.decode(x, mask)
            hidden = hidden[:, ops.shape(x)[1] - ops.shape(token_ids)[1] :]
        return adapter.token_logits(hidden)

    def encode(
        self,
        tokenizer,
        sources,
        targets,
        is_encoder_decoder,
        max_length=128,
        pad_id=0,
        end_token_id=None,
        start_token_id=0,
    ):
        """Builds `(x, y, sample_weight)` numpy arrays for `fit()`.

        Args:
            sources, targets: lists of N strings.
            is_encoder_decoder: bool, the adapter's family.
            max_length: T, longest source + target kept (the source is
                truncated from the left first).
            end_token_id: appended after the target so the model learns to
                stop; defaults to the tokenizer's end token.
            start_token_id: decoder start id for encoder-decoder models.
        """
        if end_token_id is None:
            end_token_id = getattr(tokenizer, "end_token_id", None)
        end = [] if end_token_id is None else [int(end_token_id)]
        source_ids = tokenize_all(tokenizer, sources)
        target_ids = [t + end for t in tokenize_all(tokenizer, targets)]
        if is_encoder_decoder:
            return self._encode_encoder_decoder(
                source_ids, target_ids, max_length, pad_id, start_token_id
            )
        n = len(source_ids)
        token_ids = np.full((n, max_length), pad_id, "int32")
        padding_mask = np.zeros((n, max_length), "int32")
        y = np.full((n, max_length), pad_id, "int32")
        weight = np.zeros((n, max_length), "float32")
        for i, (s, t) in enumerate(zip(source_ids, target_ids)):
            t = t[:max_length - 1]
            s = s[-(max_length - len(t)) :] if max_length > len(t) else []
            row = s + t
            token_ids[i, : len(row)] = row
            padding_mask[i, : len(row)] = 1
            y[i, : len(row) - 1] = row[1:]
            # Output at position p predicts row[p + 1]; learn only targets.
            weight[i, max(len(s) - 1, 0) : len(row) - 1] = 1.0
        x = {"token_ids": token_ids, "padding_mask": padding_mask}
        return x, y, weight

    def _encode_encoder_decoder(
        self, source_ids, target_ids, max_length, pad_id, start_token_id
    ):
        n = len(source_ids)
        src_len = max(1, min(max_length, max(len(s) for s in source_ids)))
        tgt_len = max(1, min(max_length, max(len(t) for t in target_ids)))
        token_ids = np.full((n, src_len), pad_id, "int32")
        padding_mask = np.zeros((n, src_len), "int32")
        dec_ids = np.full((n, tgt_len), pad_id, "int32")
        dec_mask = np.zeros((n, tgt_len), "int32")
        y = np.full((n, tgt_len), pad_id, "int32")
        weight = np.zeros((n, tgt_len), "float32")
        for i, (s, t) in enumerate(zip(source_ids, target_ids)):
            s, t = s[-src_len:], t[:tgt_len]
            token_ids[i, : len(s)] = s
            padding_mask[i, : len(s)] = 1
            decoder_in = [start_token_id] + t[:-1]
            dec_ids[i, : len(decoder_in)] = decoder_in
            dec_mask[i, : len(decoder_in)] = 1
            y[i, : len(t)] = t
            weight[i, : len(t)] = 1.0
        x = {
            "token_ids": token_ids,
            "padding_mask": padding_mask,
            "decoder_token_ids": dec_ids,
            "decoder_padding_mask": dec_mask,
        }
        return x, y, weight

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
