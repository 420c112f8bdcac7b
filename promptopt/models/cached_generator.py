"""Autoregressive generation with the prompt in place."""

import keras_hub
import numpy as np
from keras import ops

from promptopt.prompts.placement import prepend_prompt


class CachedGenerator:
    """Samples continuations of `[prompt; text]` with a key/value cache.

    The prompt and the text are run once to seed the cache (the prompt's
    keys and values fill its first P slots); each new token then costs one
    single-position pass, as in keras-hub's `CausalLM.generate`, whose
    samplers (greedy, top-k, top-p, beam, ...) are used unchanged.
    Encoder-decoder models encode `[prompt; text]` once and decode greedily
    without a cache (`use_cache=False` does the same for any model, and is
    the reference the cached path is tested against).

    Args:
        adapter: a `BackboneAdapter`.
    """

    def __init__(self, adapter):
        self.adapter = adapter

    def __call__(
        self,
        prompt,
        token_ids,
        padding_mask,
        sampler="greedy",
        stop_token_ids=None,
        use_cache=True,
        max_new_tokens=None,
        on_step=None,
    ):
        """Fills the padding of right-padded `token_ids` `[B, T]`.

        Args:
            prompt: `[P, H]`.
            token_ids: `[B, T]`, right padded; T bounds the total length.
            padding_mask: `[B, T]`, 1 on the given text.
            sampler: a keras-hub sampler or its name.
            stop_token_ids: ids that end a row.
            max_new_tokens: encoder-decoder models only: decoder steps
                (default T).
            on_step: optional callable `(token_ids [B, T], index)`, called
                before each cached step with every token up to `index - 1`
                in place (for streaming). It sees concrete values where the
                sampling loop runs eagerly (TensorFlow); a traced loop (JAX)
                hands it tracers.

        Returns:
            `[B, T]` token ids: the text followed by what was generated
            (decoder-only), or `[B, max_new_tokens]` decoder outputs
            (encoder-decoder).
        """
        prompt_length = int(prompt.shape[0])
        lengths = np.sum(np.asarray(padding_mask), axis=1)
        if prompt_length == 0 and np.any(lengths == 0):
            raise ValueError(
                f"Row {int(np.argmin(lengths))} has no text and the prompt is "
                "empty (P = 0), so there is nothing to continue. Give every "
                "row at least one token, or generate with a prompt."
            )
        if self.adapter.is_encoder_decoder or not use_cache:
            return self._generate_uncached(
                prompt, token_ids, padding_mask, stop_token_ids, max_new_tokens
            )
        sampler = keras_hub.samplers.get(sampler)
        adapter = self.adapter
        batch, length = token_ids.shape
        cache = ops.zeros(
            adapter.cache_shape(batch, prompt_length + length),
            dtype=adapter.backbone.compute_dtype,
        )
        x = adapter.embed_tokens(token_ids)
        x, _ = prepend_prompt(prompt, x, padding_mask)
        seed_hidden, cache = adapter.decode_with_cache(x, cache, 0)
        hidden = seed_hidden[:, prompt_length:]

        def next(ids, cache, index):
            # The token at index - 1 is the newest; it sits at cache slot
            # P + index - 1 because the prompt holds the first P slots.
            if on_step is not None:
                on_step(ids, index)
            rows = ops.shape(ids)[0]
            current = ops.slice(ids, [0, index - 1], [rows, 1])
            h, cache = adapter.decode_with_cache(
                adapter.embed_tokens(current), cache, prompt_length + index - 1
            )
            logits = adapter.token_logits(h)
            return ops.squeeze(logits, 1), ops.squeeze(h, 1), cache

        index = int(np.min(lengths))
        if index == 0 and length > 0:
            # A row without text continues the prompt alone. `next` reads
            # the newest token at index - 1, which does not exist yet, so
            # the first token is drawn here from the last prompt position
            # of the seed pass, and sampling goes on from index 1.
            logits = adapter.token_logits(seed_hidden[:, prompt_length - 1])
            first = ops.convert_to_numpy(
                sampler.get_next_token(sampler.compute_probabilities(logits))
            )
            empty = np.asarray(padding_mask)[:, 0] == 0
            token_ids = np.array(token_ids)
            padding_mask = np.array(padding_mask)
            token_ids[empty, 0] = first[empty]
            padding_mask[empty, 0] = 1
            index = 1
        if stop_token_ids:
            # keras-hub's sampler stops once every row holds a stop id
            # outside its mask, and it counts the not-yet-generated padding.
            # Padding with the end id (GPT-2 pads with <|endoftext|>) would
            # end generation before the first step, so the slots to be
            # generated hold a non-stop id instead (they are overwritten).
            filler = min(set(range(len(stop_token_ids) + 1)) - set(stop_token_ids))
            token_ids = np.where(
                np.asarray(padding_mask).astype(bool), token_ids, filler
            ).astype(np.asarray(token_ids).dtype)
        return sampler(
            next=next,
            prompt=ops.convert_to_tensor(token_ids),
            cache=cache,
            index=index,
            mask=ops.convert_to_tensor(padding_mask),
            stop_token_ids=stop_token_ids,
            hidden_states=hidden,
        )

    def _generate_uncached(
        self, prompt, token_ids, padding_mask, stop_token_ids, max_new_tokens=None
    ):
        """Greedy decoding by full forward passes (the reference path)."""
        adapter = self.adapter
        token_ids = np.array(token_ids)
        padding_mask = np.array(padding_mask)
        stop = set(stop_token_ids or ())
        if adapter.is_encoder_decoder:
            return self._greedy_encoder_decoder(
                prompt, token_ids, padding_mask, stop, max_new_tokens
            )
        lengths = padding_mask.sum(axis=1)
        done = np.zeros(len(token_ids), dtype=bool)
        for position in range(int(lengths.min()), token_ids.shape[1]):
            x = adapter.embed_tokens(token_ids[:, :position])
            x, mask = prepend_prompt(prompt, x, padding_mask[:, :position])
            hidden = adapter.decode(x, mask)
            logits = ops.convert_to_numpy(adapter.token_logits(hidden[:, -1]))
            chosen = logits.argmax(axis=-1)
            fill = (position >= lengths) & ~done
            token_ids[fill, position] = chosen[fill]
            padding_mask[fill, position] = 1
            done |= fill & np.isin(chosen, list(stop))
        return token_ids

    def _greedy_encoder_decoder(
        self, prompt, token_ids, padding_mask, stop, max_new_tokens=None
    ):
        adapter = self.adapter
        x = adapter.embed_tokens(token_ids)
        x, mask = prepend_prompt(prompt, x, padding_mask)
        encoded = adapter.encode(x, mask)
        batch = token_ids.shape[0]
        length = max_new_tokens or token_ids.shape[1]
        out = np.full((batch, length + 1), adapter.decoder_start_token_id, "int32")
        done = np.zeros(batch, dtype=bool)
        for position in range(length):
            hidden = adapter.decode_from_encoder(
                out[:, : position + 1],
                np.ones((batch, position + 1), "int32"),
                encoded,
                mask,
            )
            logits = ops.convert_to_numpy(adapter.token_logits(hidden[:, -1]))
            chosen = np.where(done, 0, logits.argmax(axis=-1))
            out[:, position + 1] = chosen
            done |= np.isin(chosen, list(stop))
            if done.all():
                break
        return out[:, 1:]
