import numpy as np
import pytest
from keras import ops

from promptopt.tasks import classification_loss

SCORES = np.array(
    [
        [2.0, 0.5, -1.0],  # label 0: right, margin 1.5
        [0.0, 3.0, 2.5],  # label 2: wrong, 0.5 behind
        [1.0, 1.0, -4.0],  # label 1: tied with class 0
        [-10.0, 5.0, 1.0],  # label 1: right, margin 4
    ],
    dtype="float32",
)
LABELS = np.array([0, 2, 1, 1])


def _loss(kind, **kwargs):
    return ops.convert_to_numpy(
        classification_loss(SCORES, LABELS, kind=kind, **kwargs)
    )


def test_cross_entropy_is_minus_log_softmax_of_the_true_class():
    scores = SCORES.astype("float64")
    log_softmax = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
    expected = -log_softmax[np.arange(4), LABELS]
    np.testing.assert_allclose(_loss("cross_entropy"), expected, atol=1e-6)
    default = ops.convert_to_numpy(classification_loss(SCORES, LABELS))
    np.testing.assert_allclose(default, expected, atol=1e-6)


def test_cross_entropy_is_stable_for_huge_scores():
    scores = np.array([[1e4, 0.0], [-1e9, 0.0]], "float32")
    loss = ops.convert_to_numpy(classification_loss(scores, np.array([1, 1])))
    np.testing.assert_allclose(loss, [1e4, 0.0], rtol=1e-6)


def test_hinge_is_the_margin_shortfall_against_the_best_other_class():
    # max(0, margin - (s_y - max_{c != y} s_c))
    np.testing.assert_allclose(_loss("hinge"), [0.5, 2.5, 2.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(
        _loss("hinge", margin=1.0), [0.0, 1.5, 1.0, 0.0], atol=1e-6
    )


def test_negative_accuracy_counts_strict_wins_only():
    np.testing.assert_array_equal(_loss("negative_accuracy"), [-1.0, 0.0, 0.0, -1.0])


def test_losses_accept_labels_of_any_int_or_float_dtype():
    for labels in (LABELS.astype("int64"), LABELS.astype("float32")):
        np.testing.assert_allclose(
            ops.convert_to_numpy(classification_loss(SCORES, labels, "hinge")),
            [0.5, 2.5, 2.0, 0.0],
            atol=1e-6,
        )


def test_unknown_loss_is_refused():
    with pytest.raises(
        ValueError,
        match=r"Unknown loss 'accuracy'; choose one of cross_entropy, hinge, "
        r"negative_accuracy\.",
    ):
        classification_loss(SCORES, LABELS, kind="accuracy")
