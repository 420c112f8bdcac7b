"""Class scores and next-token log-probabilities of a frozen model."""

import dataclasses

import numpy as np
from keras import ops

from promptopt.adapters import adapter_for
from promptopt.backends.value_and_grad import compile_function
from promptopt.prefixes.prefix_initializers import prefix_shape
from promptopt.prompts.placement import right_align
from promptopt.prompts.shared_input import left_align
from promptopt.prompts.shared_input import suffix_answer_states
from promptopt.prompts.shared_input import suffix_input_caches
from promptopt.prompts.shared_input import supports_shared_input
from promptopt.server.deep_suffix_scoring import DeepSuffixFunctions
from promptopt.server.deep_suffix_scoring import DeepSuffixScoreJob
from promptopt.server.deep_suffix_scoring import score_deep_suffixes
from promptopt.tasks.classification import VerbalizerClassification
from promptopt.tasks.losses import classification_loss
from promptopt.tasks.text_encoder import TextEncoder
from promptopt.tasks.text_encoder import tokenize_all
from promptopt.tasks.verbalizer import Verbalizer


@dataclasses.dataclass
class ScoreJob:
    """One `/v1/score` request, decoded.

    Args:
        task_key: tuple, the verbalizer's identity (`ScoringEngine.task_key`).
        texts: list of B input strings.
        labels: int array `[B]` or None.
        prompt: float32 `[P, H]` (P = 0 for a text prompt or none).
        prompt_text: str, put in front of every text ("" for none).
        loss: loss name for `classification_loss`.
        batchable: bool; False keeps the job in a forward pass of its own,
            so its results are bit-identical to a local `KerasEvaluator`.
    """

    task_key: tuple
    texts: list
    labels: np.ndarray
    prompt: np.ndarray
    prompt_text: str
    loss: str
    batchable: bool = True

    @property
    def rows(self):
        return len(self.texts)

    @property
    def group_key(self):
        # Jobs with the same key can share one forward pass.
        if not self.batchable:
            return None
        return ("score", self.task_key, self.loss, self.prompt.shape[0], self.labels is not None)


@dataclasses.dataclass
class PopulationScoreJob:
    """K candidate soft prompts scored on the same B inputs (`[K, P, H]`).

    Args:
        task_key: tuple, the verbalizer's identity (`ScoringEngine.task_key`).
        texts: list of B input strings.
        labels: int array `[B]` or None.
        prompts: float32 `[K, P, H]`, the candidates to compute.
        loss: loss name for `classification_loss`.
    """

    task_key: tuple
    texts: list
    labels: np.ndarray
    prompts: np.ndarray
    loss: str

    @property
    def rows(self):
        return len(self.texts) * len(self.prompts)

    @property
    def group_key(self):
        # Never merged with other jobs: a population is a batch of its own,
        # and running alone keeps each candidate bit-identical to a solo
        # single-candidate request.
        return None


@dataclasses.dataclass
class CompletionJob:
    """One `/v1/completions` request: top-k next-token log-probabilities.

    Args:
        texts: list of B prompts.
        top_k: int, how many alternatives to return per prompt.
    """

    texts: list
    top_k: int

    @property
    def rows(self):
        return len(self.texts)

    @property
    def group_key(self):
        return ("complete", self.top_k)


class ScoringEngine:
    """A frozen keras-hub model that returns class scores and nothing else.

    A score request puts its prompt in front of each input (soft prompt
    `[P, H]` before the token embeddings, or prompt text before the text)
    and reads the label words' log-probabilities at the answer position
    (`VerbalizerClassification`). A job scored on its own takes the exact
    code path of `KerasEvaluator` (one compiled function computing scores
    and the batch-mean loss), so the server's losses equal a local run's
    bit for bit. Jobs that `score` runs together (server-side batching) share
    one forward pass over `[sum B, ...]` rows; their scores agree with the
    solo ones up to float32 rounding.

    `embedding_std` is the standard deviation of all entries of the input
    embedding table `[V, H]`, the one statistic of the weights that is
    published (BBT's projection scale).

    Args:
        backbone: a keras-hub backbone (frozen here).
        tokenizer: its tokenizer.
        model_id: str, reported in replies.
        max_length: int, tokens kept per input (the last ones).

    Example:

    ```python
    loaded = load_language_model("smollm2-135m")
    engine = ScoringEngine(loaded.backbone, loaded.tokenizer, loaded.model_id)
    key = engine.task_key(["0", "1"], {"0": [" terrible"], "1": [" great"]})
    [result] = engine.run([ScoreJob(key, ["Great fun. It was"], np.array([1]),
                                    np.zeros((0, 576), "float32"), "", "cross_entropy")])
    result["scores"]  # [1, 2]
    suffix = engine.task_key(["0", "1"], {"0": [" terrible"], "1": [" great"]}, "suffix")
    [result] = engine.run([PopulationScoreJob(suffix, ["Great fun. It was"], np.array([1]),
                                              population, "cross_entropy")])  # [K, P, H]
    [c["loss"] for c in result["candidates"]]  # K losses
    [result] = engine.run([DeepSuffixScoreJob(suffix, ["Great fun. It was"], np.array([1]),
                                              prefixes, 2, "cross_entropy")])  # [K, L, 2, P, N, D]
    ```
    """

    def __init__(self, backbone, tokenizer, model_id, max_length=128):
        backbone.trainable = False
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.model_id = str(model_id)
        self.max_length = int(max_length)
        self.adapter = adapter_for(backbone)
        self.hidden_dim = int(self.adapter.hidden_dim)
        self.encoder = TextEncoder(tokenizer, max_length=self.max_length)
        table = np.asarray(ops.convert_to_numpy(self.adapter.embedding_matrix))
        self.embedding_std = float(np.std(table))
        self._tasks = {}
        self._compiled = {}
        self._token_texts = None
        self._top_k_function = compile_function(self._top_k_logprobs)

    # --- tasks ------------------------------------------------------------

    def task_key(self, classes, label_words, placement="prefix"):
        """Resolves (and caches) a verbalizer and placement; returns its key.

        Raises:
            LabelWordError: a class without words, or an unknown class.
            ValueError: a suffix placement with a multi-token label word.
        """
        extra = sorted(set(label_words) - set(classes))
        if extra:
            raise ValueError(
                f"label_words has class(es) {extra} that are not in "
                f"classes {list(classes)}. List every class in classes."
            )
        key = (
            tuple(classes),
            tuple((c, tuple(label_words.get(c, ()))) for c in classes),
            placement,
        )
        if key not in self._tasks:
            verbalizer = Verbalizer(
                classes, {c: list(w) for c, w in label_words.items()}, self.tokenizer
            )
            self._tasks[key] = VerbalizerClassification(verbalizer, placement=placement)
        return key

    def _functions(self, task_key, prompt_length):
        # One set of compiled functions per prompt length: with
        # `reduce_retracing`, one function seeing several P would trace the
        # prompt as [None, H], which `prepend_prompt` cannot broadcast.
        key = (task_key, prompt_length)
        if key not in self._compiled:
            self._compiled[key] = _TaskFunctions(self._tasks[task_key], self.adapter)
        return self._compiled[key]

    def _shares_input(self, task_key, prompt_length):
        """Whether candidates of this task can share one pass over the inputs."""
        return (
            self._tasks[task_key].placement == "suffix"
            and prompt_length > 0
            and supports_shared_input(self.adapter)
        )

    def _shared_functions(self, task_key, prompt_length):
        key = (task_key, prompt_length, "shared_input")
        if key not in self._compiled:
            self._compiled[key] = _SharedInputFunctions(
                self._tasks[task_key], self.adapter, prompt_length
            )
        return self._compiled[key]

    def prefix_shape(self, prompt_length):
        """`(L, 2, P, N, D)`: the shape of one deep suffix for this model."""
        return tuple(int(n) for n in prefix_shape(self.adapter, prompt_length))

    def _deep_suffix_functions(self, task_key, prompt_length, tail_length):
        key = (task_key, prompt_length, tail_length, "deep_suffix")
        if key not in self._compiled:
            self._compiled[key] = DeepSuffixFunctions(
                self._tasks[task_key], self.adapter, prompt_length, tail_length
            )
        return self._compiled[key]

    # --- running jobs -------------------------------------------------------

    def run(self, jobs):
        """Runs jobs sharing one `group_key`; returns one result dict each."""
        if isinstance(jobs[0], CompletionJob):
            return self._complete(jobs)
        if isinstance(jobs[0], PopulationScoreJob):
            return [self._score_population(job) for job in jobs]
        if isinstance(jobs[0], DeepSuffixScoreJob):
            return [self._score_deep_suffix(job) for job in jobs]
        prompt_length = jobs[0].prompt.shape[0]
        if len(jobs) == 1 and self._shares_input(jobs[0].task_key, prompt_length):
            # As a population of one, so a suffix prompt scores alike alone
            # and in a population.
            job = jobs[0]
            texts = [job.prompt_text + text for text in job.texts]
            population = PopulationScoreJob(
                job.task_key, texts, job.labels, job.prompt[None], job.loss
            )
            return [self._score_population(population)["candidates"][0]]
        functions = self._functions(jobs[0].task_key, prompt_length)
        texts = [job.prompt_text + text for job in jobs for text in job.texts]
        x = self.encoder.encode(texts)
        real_tokens = x["padding_mask"].sum(axis=1)
        has_labels = jobs[0].labels is not None
        if len(jobs) == 1:
            job = jobs[0]
            if has_labels:
                loss, scores = functions.solo(job.prompt, x, job.labels, job.loss)
                losses = [float(ops.convert_to_numpy(loss))]
            else:
                scores = functions.scores(job.prompt, x)
                losses = [None]
            scores = np.asarray(ops.convert_to_numpy(scores), "float32")
        else:
            # One forward pass for all rows; each row keeps its own prompt.
            prompts = np.concatenate(
                [np.repeat(job.prompt[None], job.rows, axis=0) for job in jobs]
            )  # [sum B, P, H]
            if has_labels:
                labels = np.concatenate([job.labels for job in jobs])
                per_example, scores = functions.per_example(
                    prompts, x, labels, jobs[0].loss
                )
                per_example = np.asarray(ops.convert_to_numpy(per_example), "float32")
            else:
                scores = functions.scores(prompts, x)
            scores = np.asarray(ops.convert_to_numpy(scores), "float32")
            losses, start = [], 0
            for job in jobs:
                stop = start + job.rows
                losses.append(
                    float(np.mean(per_example[start:stop])) if has_labels else None
                )
                start = stop
        results, start = [], 0
        for job, loss in zip(jobs, losses):
            stop = start + job.rows
            results.append(
                {
                    "scores": scores[start:stop],
                    "loss": loss,
                    "input_tokens": int(real_tokens[start:stop].sum())
                    + job.rows * prompt_length,
                }
            )
            start = stop
        return results

    def _score_population(self, job):
        """`{"candidates": [K results]}`, each as a solo job would give it."""
        rows, prompt_length = len(job.texts), job.prompts.shape[1]
        x = self.encoder.encode(job.texts)  # once for all K candidates
        real_tokens = int(x["padding_mask"].sum())
        shared = self._shares_input(job.task_key, prompt_length)
        if shared:
            functions = self._shared_functions(job.task_key, prompt_length)
            token_ids, padding_mask = left_align(x["token_ids"], x["padding_mask"])
            inputs = (functions.caches(token_ids, padding_mask), padding_mask)
        else:
            functions = self._functions(job.task_key, prompt_length)
            inputs = (x,)
        candidates = []
        for k, prompt in enumerate(job.prompts):
            if job.labels is not None:
                loss, scores = functions.solo(prompt, *inputs, job.labels, job.loss)
                loss = float(ops.convert_to_numpy(loss))
            else:
                scores, loss = functions.scores(prompt, *inputs), None
            # The shared pass ran the inputs' tokens once: charged to the
            # first candidate, so the counts add up to the positions run.
            ran_inputs = not shared or k == 0
            candidates.append(
                {
                    "scores": np.asarray(ops.convert_to_numpy(scores), "float32"),
                    "loss": loss,
                    "input_tokens": rows * prompt_length + (real_tokens if ran_inputs else 0),
                }
            )
        return {"candidates": candidates}

    def _score_deep_suffix(self, job):
        """`{"candidates": [K results]}` of deep suffixes (`score_deep_suffixes`)."""
        if not supports_shared_input(self.adapter):
            raise ValueError(
                "A deep suffix needs a Llama-family model (rotary positions); this "
                "server runs " f"{type(self.backbone).__name__}.")
        functions = self._deep_suffix_functions(
            job.task_key, int(job.prefixes.shape[3]), int(job.tail_length))
        return score_deep_suffixes(functions, self.encoder, job)

    # --- next-token log-probabilities --------------------------------------

    def token_text(self, token_id):
        """The text of one vocabulary token (decoded once for all ids)."""
        if self._token_texts is None:
            size = self.adapter.vocabulary_size
            texts = self.tokenizer.detokenize([[i] for i in range(size)])
            if hasattr(texts, "numpy"):
                texts = texts.numpy()
            self._token_texts = [
                t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t)
                for t in np.asarray(texts).reshape(-1)
            ]
        return self._token_texts[int(token_id)]

    def count_tokens(self, texts):
        return [len(row) for row in tokenize_all(self.tokenizer, texts)]

    def _top_k_logprobs(self, x, k):
        token_ids, padding_mask = right_align(x["token_ids"], x["padding_mask"])
        hidden = self.adapter.decode(self.adapter.embed_tokens(token_ids), padding_mask)
        last = ops.sum(ops.cast(padding_mask, "int32"), axis=1) - 1  # [B]
        answer = ops.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]
        logp = ops.log_softmax(
            ops.cast(self.adapter.token_logits(answer), "float32"), axis=-1
        )  # [B, V]
        return ops.top_k(logp, k)

    def _complete(self, jobs):
        if self.adapter.is_encoder_decoder:
            raise ValueError(
                "/v1/completions serves decoder-only models; this server runs "
                "an encoder-decoder model. Use /v1/score instead."
            )
        texts = [t for job in jobs for t in job.texts]
        x = self.encoder.encode(texts)
        top_k = min(jobs[0].top_k, self.adapter.vocabulary_size)
        values, indices = self._top_k_function(x, top_k)
        values = np.asarray(ops.convert_to_numpy(values))
        indices = np.asarray(ops.convert_to_numpy(indices))
        lengths = x["padding_mask"].sum(axis=1)
        results, start = [], 0
        for job in jobs:
            stop = start + job.rows
            results.append(
                {
                    "top": [
                        [(self.token_text(i), float(v)) for i, v in zip(ids, vals)]
                        for ids, vals in zip(indices[start:stop], values[start:stop])
                    ],
                    "prompt_tokens": [int(n) for n in lengths[start:stop]],
                }
            )
            start = stop
        return results


class _TaskFunctions:
    """Compiled scoring functions of one verbalizer task."""

    def __init__(self, task, adapter):
        self.task = task
        self.adapter = adapter
        self.solo = compile_function(self._solo)
        self.per_example = compile_function(self._per_example)
        self.scores = compile_function(self._scores)

    def _scores(self, prompt, x):
        return self.task(self.adapter, prompt, x)

    def _solo(self, prompt, x, y, loss):
        # The same ops, in the same order, as KerasEvaluator._loss_of.
        scores = self.task(self.adapter, prompt, x)
        return ops.mean(classification_loss(scores, y, loss)), scores

    def _per_example(self, prompt, x, y, loss):
        scores = self.task(self.adapter, prompt, x)
        return classification_loss(scores, y, loss), scores


class _SharedInputFunctions:
    """Compiled scoring of suffix prompts `[P, H]` against one pass over x.

    `caches(token_ids, padding_mask)` runs the left-aligned inputs `[B, T]`
    once; `solo` and `scores` then run one candidate's `B * P` prompt rows
    against those caches, as `SharedInputEvaluator` does.
    """

    def __init__(self, task, adapter, prompt_length):
        self.task = task
        self.adapter = adapter
        self.prompt_length = int(prompt_length)
        self.caches = compile_function(self._caches)
        self.solo = compile_function(self._solo)
        self.scores = compile_function(self._scores)

    def _caches(self, token_ids, padding_mask):
        return suffix_input_caches(self.adapter, token_ids, padding_mask, self.prompt_length)

    def _scores(self, prompt, caches, padding_mask):
        answer = suffix_answer_states(self.adapter, prompt, caches, padding_mask)
        return self.task.scores_at_answer(self.adapter, answer)

    def _solo(self, prompt, caches, padding_mask, y, loss):
        # The same ops, in the same order, as SharedInputEvaluator._loss_of.
        scores = self._scores(prompt, caches, padding_mask)
        return ops.mean(classification_loss(scores, y, loss)), scores
