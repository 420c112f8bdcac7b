"""Class probabilities of many texts, with little padding."""

import numpy as np
from keras import ops


def class_probabilities(model, texts, batch_size=32, bucket=16):
    """Class probabilities `[N, C]` of `model` on raw `texts`.

    Texts are scored in batches of similar length, each padded to a multiple
    of `bucket` tokens rather than to the longest text of the whole set:
    on SST-2 (5 to 60 tokens) that halves the cost and changes no score, as
    padding is masked. The probabilities are the softmax over the C class
    scores (the verbalizer's label-word log-probabilities).

    Args:
        model: a `PromptedModel` or `PrefixModel` with a classification task.
        texts: N strings, already rendered by the template.
        batch_size: int, texts per forward pass.
        bucket: int, pad widths are rounded up to a multiple of this.

    Example:
    ```python
    probabilities = class_probabilities(model, test.texts)  # [N, C]
    accuracy = np.mean(probabilities.argmax(-1) == test.labels)
    ```
    """
    encoded = model.encode_texts(list(texts))
    lengths = encoded["padding_mask"].sum(axis=1)
    order = np.argsort(lengths, kind="stable")
    rows = []
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        width = max(int(-(-lengths[index].max() // bucket) * bucket), 1)
        x = {k: v[index, :width] for k, v in encoded.items()}
        scores = ops.convert_to_numpy(ops.cast(model(x, training=False), "float32"))
        rows.append((index, scores))
    probabilities = np.zeros((len(order), rows[0][1].shape[-1]) if rows else (0, 0), "float64")
    for index, scores in rows:
        scores = scores.astype("float64")
        scores -= scores.max(axis=-1, keepdims=True)
        exp = np.exp(scores)
        probabilities[index] = exp / exp.sum(axis=-1, keepdims=True)
    return probabilities


def accuracy(model, data, batch_size=32):
    """Accuracy of `model` on a `ClassificationData`."""
    if len(data) == 0:
        return float("nan")
    predictions = class_probabilities(model, data.texts, batch_size).argmax(axis=-1)
    return float(np.mean(predictions == data.labels))
