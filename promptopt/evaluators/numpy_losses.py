"""`classification_loss` in numpy, for evaluators that only receive scores.

An API client gets class scores back and computes the loss itself; doing
it with Keras would make the light client load TensorFlow.
`promptopt.tasks.losses.classification_loss` is the Keras one (the
gradient evaluators and the server differentiate or compile it);
tests/evaluators/test_light_client.py checks that the two agree.
"""

import numpy as np

from promptopt.wire.names import LOSSES


def numpy_classification_loss(scores, labels, kind="cross_entropy", margin=2.0):
    """Per-example loss `[B]` from class scores `[B, C]` and labels `[B]`.

    Args:
        scores: float array `[B, C]`.
        labels: int array `[B]`, class indices.
        kind: one of `LOSSES`: "cross_entropy", "hinge" (margin loss
            against the best other class) or "negative_accuracy" (-1 when
            correct, else 0).
        margin: float, for "hinge".

    Example:

    ```python
    numpy_classification_loss(np.array([[0.0, 2.0]]), np.array([1]))  # [0.127]
    ```
    """
    if kind not in LOSSES:
        raise ValueError(f"Unknown loss {kind!r}; choose one of {', '.join(LOSSES)}.")
    scores = np.asarray(scores, "float32")
    rows = np.arange(len(scores))
    labels = np.asarray(labels, "int64")
    true_score = scores[rows, labels]
    if kind == "cross_entropy":
        top = scores.max(axis=-1)
        return top + np.log(np.exp(scores - top[:, None]).sum(axis=-1)) - true_score
    others = scores.copy()
    others[rows, labels] = -np.inf
    best_other = others.max(axis=-1)
    if kind == "hinge":
        return np.maximum(0.0, margin - (true_score - best_other)).astype("float32")
    return -(true_score > best_other).astype("float32")
