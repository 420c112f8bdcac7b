"""The runner stages of a tuning method: optimizer, budget and evaluator."""

import numpy as np

from promptopt.adapters.llama import LlamaAdapter
from promptopt.evaluators.deep_suffix_evaluator import DeepSuffixEvaluator
from promptopt.evaluators.keras_evaluator import KerasEvaluator
from promptopt.evaluators.prefix_evaluator import PrefixEvaluator
from promptopt.evaluators.shared_input_evaluator import SharedInputEvaluator
from promptopt.evaluators.text_prompt_evaluator import TextPromptEvaluator
from promptopt.optimizers import BackpropOptimizer
from promptopt.optimizers import CMAESOptimizer
from promptopt.optimizers import DiscretePromptSearch
from promptopt.optimizers import get_optimizer
from promptopt.runner.budget import Budget
from promptopt.runner.runner import Stage
from promptopt.tuning.config import GRADIENT_METHODS
from promptopt.tuning.model_factory import kind_of

# The discrete search space when --phrases is not given: generic task
# phrases, fixed before any run (the list of experiments/sst2_via_api.py).
DEFAULT_PHRASES = (
    "Review: ", "Movie review: ", "Sentiment: ", "Opinion: ", "Critic says: ",
    "Classify the sentiment. ", "Is this review positive or negative? ",
    "The following is a movie review. ", "Rate the movie. ", "Verdict: ",
    "In short, ", "Honestly, ", "Overall, ", "Text: ", "Sentence: ",
    "Positive or negative? ", "Question: ", "Classify: ", "Topic: ", "Answer: ",
)


def uses_shared_input(model):
    """Whether `SharedInputEvaluator` can score this soft-prompt model.

    It can when the prompt follows the input on a Llama-family backbone:
    causal attention then makes the input's keys and values independent of
    the prompt, so they are computed once for all candidates.
    """
    task = getattr(model, "task", None)
    return (
        getattr(task, "placement", None) == "suffix"
        and isinstance(model.adapter, LlamaAdapter)
        and getattr(model, "prompt_length", 0) > 0
    )


class StageFactory:
    """Makes the stages, the dev scorer and the initial prompt of a run.

    Gradient methods take mini-batches of `batch_size` and count steps;
    search methods score every candidate on the whole training set (in
    chunks of `chunk_size`), as BBT does, so that a candidate's fitness
    does not change between generations, and count forward calls. Each
    stage has its own evaluator, so a gradient stage after a search stage
    still trains at `batch_size`.

    Args:
        config: a resolved `TuneConfig`.
        model: the model from `build_model`.
        data: `TaskData`.

    Example:
    ```python
    factory = StageFactory(config, model, data)
    runner = PromptTuningRunner(factory.evaluator_for(config.method),
                                selection=factory.dev_selection())
    result = runner.run(factory.initial_candidate(), factory.stages())
    ```
    """

    def __init__(self, config, model, data):
        self.config = config
        self.model = model
        self.data = data
        self.kind = kind_of(config.method)
        self.phrases = None
        if self.kind == "text":
            self.phrases = _phrases(config.phrases)
        else:
            self.x_train = model.encode_texts(data.train.texts)
        self._evaluators = {}

    # --- evaluators -----------------------------------------------------------

    @property
    def parameters(self):
        """The candidate form: the raw tensor, or every weight for residual."""
        if self.kind == "prefix":
            return "prefix"
        return "all" if self.config.method == "residual" else "prompt"

    def evaluator_for(self, method):
        if method not in self._evaluators:
            self._evaluators[method] = self._make_evaluator(method)
        return self._evaluators[method]

    def _make_evaluator(self, method):
        config, data = self.config, self.data
        whole_set = len(data.train)
        if method in GRADIENT_METHODS:
            batch_size, chunk_size = config.batch_size, None
        else:
            batch_size, chunk_size = whole_set, config.chunk_size
        return self._evaluator(self.x_train if self.kind != "text" else None, data.train,
                               batch_size, chunk_size, config.loss, config.seed)

    def _evaluator(self, x, split, batch_size, chunk_size, loss, seed):
        model = self.model
        if self.kind == "text":
            return TextPromptEvaluator(model, split.texts, split.labels, self.phrases,
                                       batch_size=batch_size, chunk_size=chunk_size or 32,
                                       loss=loss, seed=seed)
        if (self.kind == "prefix" and getattr(model, "placement", "prefix") == "suffix"
                and batch_size == len(split)):
            # A search scores the whole training set: share the heads' pass.
            return DeepSuffixEvaluator(model, x, split.labels, batch_size=batch_size, loss=loss,
                                       parameters="prefix", seed=seed, chunk_size=chunk_size)
        if self.kind == "prefix":
            return PrefixEvaluator(model, x, split.labels, batch_size=batch_size, loss=loss,
                                   parameters="prefix", seed=seed, chunk_size=chunk_size)
        if uses_shared_input(model) and self.parameters == "prompt" and batch_size == len(split):
            return SharedInputEvaluator(model, x, split.labels, batch_size=batch_size, loss=loss,
                                        seed=seed, chunk_size=chunk_size)
        return KerasEvaluator(model, x, split.labels, batch_size=batch_size, loss=loss,
                              parameters=self.parameters, seed=seed, chunk_size=chunk_size)

    def dev_scorer(self):
        """`candidate -> (accuracy, cross-entropy)` on the dev set, or None."""
        dev = self.data.dev
        if dev is None or len(dev) == 0:
            return None
        x = None if self.kind == "text" else self.model.encode_texts(dev.texts)
        evaluator = self._evaluator(x, dev, len(dev), self.config.eval_batch_size,
                                    "cross_entropy", 0)

        def score(candidate):
            evaluation = evaluator.evaluate(np.asarray(candidate, "float32")[None], step=0)
            return evaluation.metrics["batch_accuracy"], float(evaluation.losses[0])

        return score

    def train_scorer(self):
        """`candidate -> cross-entropy` on the whole training set (reports)."""
        x = None if self.kind == "text" else self.x_train
        evaluator = self._evaluator(x, self.data.train, len(self.data.train),
                                    self.config.eval_batch_size, "cross_entropy", 0)
        return lambda c: float(evaluator.evaluate(np.asarray(c, "float32")[None], step=0).losses[0])

    def prompt_text(self, candidate):
        """The text of a discrete candidate `[P]` (text methods only)."""
        return self.evaluator_for(self.config.method).prompt_text(candidate)

    # --- stages ---------------------------------------------------------------

    def steps_per_epoch(self):
        return -(-len(self.data.train) // self.config.batch_size)

    def budget_of(self, method, stage_index):
        config = self.config
        if stage_index == 1 and config.then_budget is not None:
            amount = config.then_budget
        elif method in GRADIENT_METHODS:
            amount = config.steps if config.steps is not None else (
                config.epochs * self.steps_per_epoch())
        else:
            amount = config.forward_calls
        if method in GRADIENT_METHODS:
            return Budget(steps=amount)
        return Budget(forward_calls=amount)

    def optimizer_for(self, method):
        config = self.config
        if method in GRADIENT_METHODS:
            second_group = None
            if method == "residual" and (config.residual_lr is not None
                                         or config.residual_weight_decay is not None):
                # The MLP's weights follow the P * H prompt entries in the
                # flat candidate (KerasEvaluator, parameters="all").
                second_group = (int(np.prod(self.model.soft_prompt.prompt.shape)),
                                config.residual_lr or config.learning_rate,
                                config.residual_weight_decay)
            return BackpropOptimizer(config.optimizer, config.learning_rate,
                                     weight_decay=config.weight_decay, second_group=second_group)
        if method == "bbt":
            embedding_std = float(np.std(self.model.embedding_table()))
            return CMAESOptimizer(subspace_dim=config.subspace_dim, popsize=config.popsize,
                                  sigma=config.sigma, embedding_std=embedding_std)
        if method == "bbtv2":
            from promptopt.prefixes.prefix_statistics import layer_kv_stds

            stds = layer_kv_stds(self.model, self.x_train)
            return get_optimizer("bbtv2", subspace_dim=config.subspace_dim, popsize=config.popsize,
                                 sigma=config.sigma, alpha=config.alpha,
                                 layer_stds=[float(s) for s in stds])
        return DiscretePromptSearch(num_choices=len(self.phrases), popsize=config.popsize)

    def checkpoint_every(self):
        """Runner steps between checkpoints.

        Every step, except for BBTv2, whose state holds one CMA-ES (about
        4 MB at d = 500) per layer: it is written once per cycle over the
        layers. A killed run then redoes at most one cycle, and still ends
        with the identical prompt, since every step is deterministic.
        """
        if "bbtv2" in self.config.stage_methods():
            return max(1, int(self.model.prefix.prefix_shape[0]))
        return 1

    def stages(self):
        return [
            Stage(self.optimizer_for(method), self.budget_of(method, index),
                  evaluator=self.evaluator_for(method))
            for index, method in enumerate(self.config.stage_methods())
        ]

    def initial_candidate(self):
        if self.kind == "text":
            # The first P phrases: a fixed, data-independent start.
            count = min(self.config.prompt_length, len(self.phrases))
            return np.arange(count, dtype="float32")
        return self.evaluator_for(self.config.method).initial_candidate()

    def assign(self, candidate):
        if self.kind != "text":
            self.evaluator_for(self.config.method).assign(candidate)


def _phrases(spec):
    if spec is None:
        return list(DEFAULT_PHRASES)
    if isinstance(spec, (list, tuple)):
        phrases = [str(p) for p in spec]
    else:
        text = str(spec)
        if text.lstrip().startswith("["):
            import json

            phrases = [str(p) for p in json.loads(text)]
        else:
            with open(text) as f:
                phrases = [line.rstrip("\n") for line in f if line.strip()]
    if len(phrases) < 2:
        raise ValueError(
            f"--phrases needs at least 2 phrases to choose from, got {len(phrases)}. Give a JSON "
            "list or a file with one phrase a line.")
    return phrases
