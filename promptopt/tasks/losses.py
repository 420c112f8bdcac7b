"""Per-example losses on class scores, for gradient and black-box search."""

from keras import ops

LOSSES = ("cross_entropy", "hinge", "negative_accuracy")


def classification_loss(scores, labels, kind="cross_entropy", margin=2.0):
    """Per-example loss `[B]` from class scores `[B, C]` and labels `[B]`.

    Args:
        kind: `"cross_entropy"` (softmax over class scores), `"hinge"`
            (BBT's margin loss: `max(0, margin - (s_y - max_{c != y} s_c))`),
            or `"negative_accuracy"` (`-1` if correct else `0`; only for
            derivative-free search).
        margin: float, for `"hinge"`.
    """
    scores = ops.cast(scores, "float32")
    labels = ops.cast(labels, "int32")
    num_classes = ops.shape(scores)[-1]
    onehot = ops.one_hot(labels, num_classes)
    true_score = ops.sum(scores * onehot, axis=-1)
    if kind == "cross_entropy":
        return ops.logsumexp(scores, axis=-1) - true_score
    best_other = ops.max(scores - onehot * 1e9, axis=-1)
    if kind == "hinge":
        return ops.relu(margin - (true_score - best_other))
    if kind == "negative_accuracy":
        return -ops.cast(true_score > best_other, "float32")
    raise ValueError(
        f"Unknown loss {kind!r}; choose one of {', '.join(LOSSES)}."
    )
