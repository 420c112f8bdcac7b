"""Scores discrete text prompts with a local model (no gradients)."""

import numpy as np

from promptopt.evaluators.base import Evaluation
from promptopt.evaluators.base import Evaluator
from promptopt.evaluators.black_box_evaluator import phrases_to_text
from promptopt.evaluators.minibatch import minibatch_indices
from promptopt.models.class_scoring import class_probabilities
from promptopt.tasks.losses import classification_loss


class TextPromptEvaluator(Evaluator):
    """Losses of text prompts made of phrases, on a local Keras model.

    The local twin of `HTTPEvaluator(prompt="text")`: a candidate is a
    vector `[P]` of indices into `phrases` (what `DiscretePromptSearch`
    asks), its text is the phrases joined by `separator`, and that text is
    put in front of every example before it is scored by `model` (a
    `PromptedModel` with `prompt_length=0`). Each candidate is one forward
    call per example group, BBT's unit.

    Args:
        model: a `PromptedModel` with P = 0 and a classification task.
        texts: N templated input texts.
        labels: int `[N]`.
        phrases: list of str, the choices.
        separator: str between phrases; the prompt is followed by a space
            unless it ends in whitespace.
        batch_size: examples per evaluation (all N if larger).
        chunk_size: examples per forward pass.
        loss: "cross_entropy", "hinge" or "negative_accuracy".
        seed: int, for mini-batch sampling.

    Example:
    ```python
    evaluator = TextPromptEvaluator(model, train.texts, train.labels, phrases)
    evaluator.evaluate(np.array([[0, 3, 1]], "float32"), step=0).losses  # [1]
    ```
    """

    provides_gradients = False

    def __init__(self, model, texts, labels, phrases, separator="", batch_size=32,
                 chunk_size=32, loss="cross_entropy", seed=0):
        if not phrases or len(phrases) < 2:
            raise ValueError(
                f"TextPromptEvaluator needs at least 2 phrases to choose from, got "
                f"{0 if not phrases else len(phrases)}. Pass e.g. phrases=['Review:', 'Sentiment:'].")
        self.model = model
        self.texts = list(texts)
        self.labels = np.asarray(labels, "int64")
        self.phrases = [str(p) for p in phrases]
        self.separator = separator
        self.batch_size = int(batch_size)
        self.chunk_size = int(chunk_size)
        self.loss = loss
        self.seed = int(seed)
        classification_loss(np.zeros((1, 2)), np.zeros(1), loss)  # validates

    def prompt_text(self, candidate):
        text = phrases_to_text(candidate, self.phrases, self.separator)
        return text if not text or text[-1:].isspace() else text + " "

    def evaluate(self, candidates, step, compute_gradients=False):
        if compute_gradients:
            raise ValueError(
                "Text prompts have no gradient; use a search optimizer such as "
                "DiscretePromptSearch.")
        index = minibatch_indices(len(self.labels), self.batch_size, self.seed, step)
        labels = self.labels[index]
        losses, accuracies = [], []
        for candidate in np.asarray(candidates):
            prefix = self.prompt_text(candidate)
            probabilities = class_probabilities(
                self.model, [prefix + self.texts[i] for i in index], self.chunk_size)
            scores = np.log(np.maximum(probabilities, 1e-30))
            losses.append(float(np.mean(np.asarray(classification_loss(scores, labels, self.loss)))))
            accuracies.append(float(np.mean(probabilities.argmax(-1) == labels)))
        return Evaluation(
            losses=np.array(losses), forward_calls=len(losses),
            metrics={"batch_accuracy": float(np.mean(accuracies))})
