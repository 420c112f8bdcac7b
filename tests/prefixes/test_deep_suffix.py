"""A deep suffix (per-layer prompts after the input) on a tiny Llama."""

import numpy as np
from keras import ops

from promptopt.adapters import adapter_for
from promptopt.prefixes.deep_suffix import deep_suffix_answer_states
from promptopt.prefixes.deep_suffix import left_align_tensor
from promptopt.prefixes.deep_suffix import shift_key_positions
from tests.model_factories import backbone_and_tokenizer
from tests.prefixes.helpers import numpy
from tests.prefixes.helpers import random_ids

TOLERANCE = dict(rtol=1e-5, atol=2e-5)
P, K = 3, 2  # prompt slots, tail tokens


def _adapter():
    backbone, _ = backbone_and_tokenizer("llama")
    return adapter_for(backbone)


def _in_context_prefix(adapter, ids, start):
    """The keys and values `[L, 2, P, N, D]` of `ids[0, start:start+P]` in context,
    keys moved to positions 0..P-1 (the deep suffix's convention)."""
    cache = ops.zeros(adapter.cache_shape(1, ids.shape[1]))
    _, cache = adapter.decode_with_cache(adapter.embed_tokens(ids), cache, 0)
    slots = numpy(cache)[0, :, :, start : start + P]
    layers = adapter.backbone.transformer_layers
    keys = [numpy(shift_key_positions(layer, slots[i, 0][None], -start))[0]
            for i, layer in enumerate(layers)]
    return np.stack([np.stack(keys), slots[:, 1]], axis=1)


def test_left_align_tensor_moves_each_rows_tokens_to_the_end():
    ids = np.array([[5, 6, 7, 0], [8, 0, 0, 0], [1, 2, 3, 4]], "int32")
    mask = (ids > 0).astype("int32")
    aligned, aligned_mask = left_align_tensor(ids, mask)
    np.testing.assert_array_equal(
        numpy(aligned), [[0, 5, 6, 7], [0, 0, 0, 8], [1, 2, 3, 4]])
    np.testing.assert_array_equal(numpy(aligned_mask), [[0, 1, 1, 1], [0, 0, 0, 1], [1, 1, 1, 1]])


def test_a_deep_suffix_of_real_tokens_reproduces_the_full_text():
    # [head; t; tail] run whole equals [head; tail] with t's own keys and
    # values put in the P slots between them.
    adapter = _adapter()
    head, words, tail = random_ids((1, 5)), random_ids((1, P), seed=1), random_ids((1, K), seed=2)
    full = np.concatenate([head, words, tail], axis=1)
    expected = numpy(adapter.decode(adapter.embed_tokens(full), np.ones_like(full)))[:, -1]
    prefix = _in_context_prefix(adapter, full, 5)
    text = np.concatenate([head, tail], axis=1)
    answer = deep_suffix_answer_states(adapter, prefix, text, np.ones_like(text), K)
    np.testing.assert_allclose(numpy(answer), expected, **TOLERANCE)


def test_padded_rows_of_different_lengths_each_equal_their_own_unpadded_pass():
    adapter = _adapter()
    heads = [random_ids((1, n), seed=n) for n in (6, 3, 1)]
    words = [random_ids((1, P), seed=10 + i) for i in range(3)]
    tail = random_ids((1, K), seed=2)
    expected, prefixes, rows = [], [], []
    for head, word in zip(heads, words):
        full = np.concatenate([head, word, tail], axis=1)
        expected.append(numpy(adapter.decode(adapter.embed_tokens(full), np.ones_like(full)))[0, -1])
        prefixes.append(_in_context_prefix(adapter, full, head.shape[1]))
        rows.append(np.concatenate([head, tail], axis=1)[0])
    width = max(len(r) for r in rows)
    ids = np.zeros((3, width), "int32")
    mask = np.zeros((3, width), "int32")
    for i, row in enumerate(rows):  # right padding, as the tasks encode it
        ids[i, : len(row)], mask[i, : len(row)] = row, 1
    answer = deep_suffix_answer_states(adapter, np.stack(prefixes), ids, mask, K)
    np.testing.assert_allclose(numpy(answer), np.stack(expected), **TOLERANCE)


def test_a_rows_scores_do_not_depend_on_the_rows_batched_with_it():
    # One shared deep suffix: a short row scored alone and beside a long row
    # (which left-pads it) gives the same answer state.
    adapter = _adapter()
    prefix = np.random.default_rng(0).normal(
        size=adapter.cache_shape(1, P)[1:]).astype("float32")  # [L, 2, P, N, D]
    short, long = random_ids((1, 4), seed=1), random_ids((1, 9), seed=2)
    alone = deep_suffix_answer_states(adapter, prefix, short, np.ones_like(short), K)
    ids = np.zeros((2, 9), "int32")
    mask = np.zeros((2, 9), "int32")
    ids[0, :4], mask[0, :4] = short[0], 1
    ids[1], mask[1] = long[0], 1
    batched = deep_suffix_answer_states(adapter, prefix, ids, mask, K)
    np.testing.assert_allclose(numpy(batched)[0], numpy(alone)[0], **TOLERANCE)
