"""Statistics of what a prefix stands beside: real tokens' keys and values."""

import numpy as np

from promptopt.prefixes.prefix_initializers import real_word_prefix
from promptopt.prefixes.prefix_model import PrefixModel


def _clipped_std(values, clip_rounds, clip_at):
    """Std of `values` `[n]` after `clip_rounds` rounds of clipping.

    Each round clips to `mean +- clip_at * std` and recomputes both, as the
    reference BBTv2 (`deepbbt.py`) does before scaling its projections, so
    that a few outlying activations do not set the spread of a layer.
    """
    values = np.asarray(values, np.float64)
    for _ in range(clip_rounds):
        mean, std = values.mean(), values.std()
        values = np.clip(values, mean - clip_at * std, mean + clip_at * std)
    return float(values.std())


def layer_kv_stds(model, x, clip_rounds=5, clip_at=3.0):
    """`sigma_l` `[L]`: the spread of real tokens' keys and values per layer.

    BBTv2 (Sun et al. 2022) scales layer `l`'s random projection by
    `sigma_l`, the standard deviation of what that layer's prompt replaces
    (`BBTv2Optimizer(layer_stds=...)`). A prefix `[L, 2, P, N, D]` stands
    beside the keys and values of the text in each attention layer, so
    `sigma_l` here is the standard deviation, over every entry, of the keys
    and values of the real (unpadded) tokens of `x` in prefix layer `l`:
    what `real_word_prefix` computes for each example's tokens (the frozen
    model without a prefix). For T5, layer `l` follows the prefix's layout
    over `model.sites`: encoder self-attention keys/values of the input,
    decoder self-attention keys/values with the input tokens read by the
    decoder, and cross-attention keys/values of the encoded input.

    Args:
        model: a `PrefixModel`.
        x: dict with `token_ids` and `padding_mask` `[B, T]` (a task's
            inputs; padding on either side). One forward pass per example,
            so a few dozen examples are plenty.
        clip_rounds: int, rounds of clipping to `mean +- clip_at * std`
            before the final std, per layer (5 in the reference, which clips
            its hidden states so); 0 gives the plain standard deviation.
        clip_at: float, the clipping width in standard deviations.

    Returns:
        numpy float64 `[L]`, positive where the layer's keys/values vary.

    Example:
    ```python
    stds = layer_kv_stds(model, {"token_ids": ids, "padding_mask": mask})
    optimizer = BBTv2Optimizer(layer_stds=stds)
    ```
    """
    if not isinstance(model, PrefixModel):
        raise ValueError(
            f"layer_kv_stds() needs a PrefixModel, got {type(model).__name__}. "
            "Build one with PrefixModel(backbone, task, prefix_length=...)."
        )
    if not isinstance(x, dict) or not {"token_ids", "padding_mask"} <= set(x):
        raise ValueError(
            "layer_kv_stds() needs x as a dict with 'token_ids' and "
            "'padding_mask' arrays [B, T], e.g. from model.task.encode(...) "
            "or the x given to PrefixEvaluator."
        )
    if isinstance(clip_rounds, bool) or not isinstance(clip_rounds, int) or clip_rounds < 0:
        raise ValueError(
            f"clip_rounds must be an int >= 0, got {clip_rounds!r}. Pass "
            "e.g. clip_rounds=5 (the reference), or 0 for the plain std."
        )
    if not (isinstance(clip_at, (int, float)) and np.isfinite(clip_at) and clip_at > 0):
        raise ValueError(
            f"clip_at must be a positive number, got {clip_at!r}. Pass e.g. "
            "clip_at=3.0."
        )
    token_ids = np.asarray(x["token_ids"])
    mask = np.asarray(x["padding_mask"]).astype(bool)
    rows = [ids[keep] for ids, keep in zip(token_ids, mask) if keep.any()]
    if not rows:
        raise ValueError(
            "layer_kv_stds() got no real tokens: every padding_mask entry is "
            "0. Pass examples with at least one unpadded token."
        )
    # Each [L, 2, S_i, N, D]; joined over the examples' positions.
    key_values = np.concatenate(
        [real_word_prefix(model.adapter, ids, model.sites) for ids in rows], axis=2
    )
    per_layer = key_values.reshape(len(key_values), -1)
    return np.array([_clipped_std(v, clip_rounds, clip_at) for v in per_layer])
