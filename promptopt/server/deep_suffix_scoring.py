"""Server-side scoring of deep suffixes `[K, L, 2, P, N, D]` (BBTv2's search).

The computation of `DeepSuffixEvaluator` (`_loss_inputs`, `_loss_of`): the
inputs are left-aligned and split into heads and k-token tails
(`promptopt.prefixes.deep_suffix`); the heads' per-layer caches do not
depend on the candidate, so they run once per request, and each candidate
then runs only its `B * k` tail rows through the L layers.
"""

import dataclasses

import numpy as np
from keras import ops

from promptopt.backends.value_and_grad import compile_function
from promptopt.prefixes.deep_suffix import head_caches
from promptopt.prefixes.deep_suffix import split_tail
from promptopt.prefixes.deep_suffix import tail_answer_states
from promptopt.prompts.shared_input import left_align
from promptopt.tasks.losses import classification_loss


@dataclasses.dataclass
class DeepSuffixScoreJob:
    """K candidate deep suffixes scored on the same B inputs.

    Args:
        task_key: tuple, the verbalizer's identity (`ScoringEngine.task_key`,
            placement "suffix").
        texts: list of B input strings.
        labels: int array `[B]` or None.
        prefixes: float32 `[K, L, 2, P, N, D]`, the candidates to compute;
            keys after RoPE at positions 0..P-1 (`KeyValuePrefix`'s convention).
        tail_length: int k >= 1, the tokens of each input that read the prefix.
        loss: loss name for `classification_loss`.
    """

    task_key: tuple
    texts: list
    labels: np.ndarray
    prefixes: np.ndarray
    tail_length: int
    loss: str

    @property
    def rows(self):
        return len(self.texts) * len(self.prefixes)

    @property
    def group_key(self):
        # Never merged: each candidate must equal a single-candidate request.
        return None


class DeepSuffixFunctions:
    """Compiled scoring of deep suffixes `[L, 2, P, N, D]` against shared heads.

    One per (task, P, k), as `_SharedInputFunctions` is per (task, P):
    `caches(head_ids, head_mask)` runs the left-aligned heads `[B, T - k]`
    once (L caches `[B, 2, T - k + P + k, N, D]`); `scores` and `solo` run
    one candidate's tails `[B, k]` against them, with the ops of
    `DeepSuffixEvaluator._loss_of`.
    """

    def __init__(self, task, adapter, prompt_length, tail_length):
        self.task = task
        self.adapter = adapter
        self.prompt_length = int(prompt_length)
        self.tail_length = int(tail_length)
        self.caches = compile_function(self._caches)
        self.scores = compile_function(self._scores)
        self.solo = compile_function(self._solo)

    def _caches(self, head_ids, head_mask):
        return head_caches(self.adapter, head_ids, head_mask, self.prompt_length,
                           self.tail_length)

    def _scores(self, prefix, caches, head_mask, tail_ids):
        answer = tail_answer_states(self.adapter, prefix, caches, head_mask, tail_ids)
        return self.task.scores_at_answer(self.adapter, answer)

    def _solo(self, prefix, caches, head_mask, tail_ids, y, loss):
        scores = self._scores(prefix, caches, head_mask, tail_ids)
        return ops.mean(classification_loss(scores, y, loss)), scores


def score_deep_suffixes(functions, encoder, job):
    """`{"candidates": [K results]}` of a `DeepSuffixScoreJob`.

    Each result holds `scores` `[B, C]`, `loss` (None without labels) and
    `input_tokens`: every candidate is charged its `B * k` tail rows plus
    `B * P` prompt positions, and the heads' real tokens (run once per
    request) are charged to the first candidate computed, so the counts add
    up to the positions the model ran or attended anew.

    Raises:
        ValueError: an input with fewer than k tokens (its tail would
            hold padding).
    """
    k, (rows, p) = job.tail_length, (len(job.texts), job.prefixes.shape[3])
    x = encoder.encode(job.texts)
    lengths = x["padding_mask"].sum(axis=1)
    short = [i for i, n in enumerate(lengths) if n < k]
    if short:
        raise ValueError(
            f"inputs {short} have fewer tokens than suffix_tail_length={k}; every "
            "input needs at least k tokens (its tail). Lower suffix_tail_length "
            "or lengthen those inputs.")
    token_ids, padding_mask = left_align(x["token_ids"], x["padding_mask"])
    head_ids, head_mask, tail_ids = split_tail(token_ids, padding_mask, k)
    caches = functions.caches(head_ids, head_mask)  # once for all K candidates
    head_tokens = int(head_mask.sum())
    candidates = []
    for index, prefix in enumerate(job.prefixes):
        if job.labels is not None:
            loss, scores = functions.solo(prefix, caches, head_mask, tail_ids, job.labels,
                                          job.loss)
            loss = float(ops.convert_to_numpy(loss))
        else:
            scores, loss = functions.scores(prefix, caches, head_mask, tail_ids), None
        candidates.append({
            "scores": np.asarray(ops.convert_to_numpy(scores), "float32"),
            "loss": loss,
            "input_tokens": rows * (k + p) + (head_tokens if index == 0 else 0),
        })
    return {"candidates": candidates}
