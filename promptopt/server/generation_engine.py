"""Text generation for the server: many prompts, one forward pass."""

import dataclasses

import keras
import keras_hub
import numpy as np
from keras import ops

from promptopt.models.cached_generator import CachedGenerator
from promptopt.models.prefix_table import PrefixTable
from promptopt.models.prompt_table import PromptTable
from promptopt.tasks.text_encoder import pad_rows


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How the next token is chosen (OpenAI's fields, keras-hub's samplers).

    Args:
        temperature: float; 0 is greedy decoding.
        top_p: float in (0, 1]; below 1 samples from the smallest set of
            tokens with that much probability (`TopPSampler`).
        top_k: int or None; samples among the k most likely (`TopKSampler`,
            or the cap of `TopPSampler`).
        seed: int or None; fixes the random draws of a sampled request.
    """

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = None
    seed: int = None

    @property
    def greedy(self):
        return self.temperature == 0

    def sampler(self):
        """A fresh keras-hub sampler (its seed generator starts anew)."""
        if self.greedy:
            return keras_hub.samplers.GreedySampler()
        common = dict(seed=self.seed, temperature=self.temperature)
        if self.top_p < 1:
            return keras_hub.samplers.TopPSampler(p=self.top_p, k=self.top_k, **common)
        if self.top_k is not None:
            return keras_hub.samplers.TopKSampler(k=self.top_k, **common)
        return keras_hub.samplers.RandomSampler(**common)

    @property
    def merge_key(self):
        """Requests with one key can share a sampler; None: run alone.

        A seeded sampled request runs alone, since its random draws would
        otherwise depend on which rows it shared the pass with.
        """
        if self.greedy:
            return ("greedy",)
        if self.seed is not None:
            return None
        return (self.temperature, self.top_p, self.top_k)


@dataclasses.dataclass
class GenerationJob:
    """One generation request, tokenized: B rows under one served prompt.

    Args:
        token_rows: B lists of token ids (the prompts' text, already
            templated for chat; `n` choices are `n` copies of a row).
        prompt: the `ServedPrompt` the rows run with.
        max_tokens: int, most new tokens per row.
        sampling: a `Sampling`.
        stop_token_ids: tuple of ids that end a row.
        logprobs: int or None; with k, every new token's log-probability
            and its k most likely alternatives come back.
        echo_logprobs: bool, also score the rows' own text tokens.
        on_tokens: optional callable `(row, new token ids)`, called on the
            model thread whenever a row has new tokens (streaming).
        max_merged_rows: int, most rows of one forward pass this job may
            share (0: it runs alone).
    """

    token_rows: list
    prompt: object
    max_tokens: int
    sampling: Sampling
    stop_token_ids: tuple = ()
    logprobs: int = None
    echo_logprobs: bool = False
    on_tokens: object = None
    max_merged_rows: int = 16

    @property
    def rows(self):
        return len(self.token_rows)

    @property
    def length_bucket(self):
        """Jobs merge only when their rows are of similar length.

        keras-hub's samplers advance one position for all rows, so a batch
        decodes from its shortest row's end to its longest row's end plus
        `max_tokens`. Rows whose ends (prompt vectors included) fall in one
        window of `max(max_tokens, 16)` positions make a merged batch take
        at most twice the steps of a request alone, which a batch of rows
        pays back on a CPU already (experiments/results/serve_load_test.md).
        """
        width = max(self.max_tokens, 16)
        return (self.prompt.length + max(len(row) for row in self.token_rows)) // width

    @property
    def group_key(self):
        # Jobs with one key share a pass, whatever their prompts: soft
        # prompts and the base model mix, prefixes mix with prefixes of one
        # shape (`ServedPrompt.batch_kind`).
        if self.sampling.merge_key is None:
            return None
        return (
            "generate", self.prompt.batch_kind, self.sampling.merge_key,
            self.max_tokens, tuple(self.stop_token_ids), self.length_bucket,
        )


class GenerationEngine:
    """Continues token rows through keras-hub's cached samplers.

    A group of jobs (`MicroBatcher` merges jobs whose `group_key` agrees)
    runs as one batch: every row gathers its own soft prompt from a
    `PromptTable` `[N, P, H]` (the base model's rows get none) or its own
    prefix from a `PrefixTable`, so concurrent requests for different
    prompts share each forward pass, and each row equals a pass of its
    prompt alone (tests/models/test_prompt_table.py). Log-probabilities come
    from one more, teacher-forced pass over the finished rows.

    Args:
        adapter: the backbone's `BackboneAdapter` (decoder-only).

    Example:
    ```python
    engine = GenerationEngine(adapter_for(backbone))
    [[row]] = engine.run([GenerationJob([[464, 3139]], registry.get("sst2"), 8, Sampling())])
    row["tokens"]  # up to 8 new ids
    ```
    """

    def __init__(self, adapter):
        # Every batch runs through one compiled copy of the backbone's
        # decoding (traced once, then reused whatever the prompts): an eager
        # decoding step of SmolLM2 took 4.7 s on the 2-core CPU, a compiled
        # one 0.2 s. Prompt tables and prefixes wrap it per batch.
        self.adapter = _CompiledDecoding(adapter)
        # The longest sequence the backbone can place (GPT-2's learned
        # positions); None where positions are not bounded (RoPE).
        self.context_length = getattr(adapter.backbone, "max_sequence_length", None)

    def run(self, jobs):
        """Returns, per job, one dict per row.

        Each row dict holds `tokens` (the new ids, cut before the first stop
        id), `stopped` (bool: a stop id ended it), `prompt_tokens` (the
        positions in front: text plus P prompt vectors or prefix slots),
        and, when the job asked for logprobs, `logprobs` (per new token,
        `(logprob, [(id, logprob)] top-k)`) and with `echo_logprobs`,
        `prompt_logprobs` (the same per text token; None for the first
        token of a sequence).
        """
        if self.adapter.is_encoder_decoder:
            raise ValueError(
                "This server generates with decoder-only models; it runs an "
                "encoder-decoder model. Use /v1/score instead."
            )
        table, prompt_ids = self._table(jobs)
        owners = [(j, r) for j, job in enumerate(jobs) for r in range(job.rows)]
        rows = [jobs[j].token_rows[r] for j, r in owners]
        adapter, bound = table.bind(self.adapter, prompt_ids, rows)
        lengths = [len(row) for row in bound]
        if min(lengths) == 0:
            raise ValueError(
                "A row has no tokens and no soft prompt in front, so there is "
                "nothing to continue. Send at least one token of text."
            )
        new = self._sample(adapter, bound, lengths, jobs, owners)
        stops = [set(jobs[j].stop_token_ids) for j, _ in owners]
        results = [[None] * job.rows for job in jobs]
        for b, (j, r) in enumerate(owners):
            tokens, stopped = _cut_at_stop(new[b], stops[b])
            results[j][r] = {
                "tokens": tokens, "stopped": stopped,
                "prompt_tokens": len(rows[b]) + jobs[j].prompt.length,
            }
        self._add_logprobs(adapter, bound, lengths, rows, results, jobs, owners)
        return results

    def _table(self, jobs):
        """The group's prompts as one table, and each row's index into it."""
        served = {}
        for job in jobs:
            served.setdefault(job.prompt.name, job.prompt)
        index = {name: i for i, name in enumerate(served)}
        values = [p.value for p in served.values()]
        first = jobs[0].prompt
        table = (
            PrefixTable(values, first.sites) if first.kind == "prefix" else PromptTable(values)
        )
        return table, [index[job.prompt.name] for job in jobs for _ in range(job.rows)]

    def _sample(self, adapter, bound, lengths, jobs, owners):
        """The new ids of every row `[B][max_tokens]` (before stop cuts)."""
        budgets = [jobs[j].max_tokens for j, _ in owners]
        steps = max(budgets)
        if steps == 0:
            return [[] for _ in bound]
        total = max(lengths) + steps
        batch = pad_rows(bound, total, length=total)
        streaming = any(job.on_tokens is not None for job in jobs)
        emitted = [0] * len(bound)

        def on_step(ids, index):
            # Every id below `index` is final: hand each streaming row its
            # new ones (up to its own budget and first stop id).
            try:
                ids, index = np.asarray(ids), int(index)
            except Exception:  # noqa: BLE001 - a traced loop (JAX): no streaming
                return
            for b, (j, r) in enumerate(owners):
                ready = min(index, lengths[b] + budgets[b]) - lengths[b]
                if jobs[j].on_tokens is not None and ready > emitted[b]:
                    emitted[b] = ready
                    tokens, _ = _cut_at_stop(
                        ids[b, lengths[b] : lengths[b] + ready].tolist(),
                        set(jobs[j].stop_token_ids),
                    )
                    jobs[j].on_tokens(r, tokens)

        out = CachedGenerator(adapter)(
            np.zeros((0, self.adapter.hidden_dim), "float32"),
            batch["token_ids"],
            batch["padding_mask"],
            sampler=jobs[0].sampling.sampler(),
            stop_token_ids=tuple(jobs[0].stop_token_ids) or None,
            on_step=on_step if streaming else None,
        )
        out = np.asarray(ops.convert_to_numpy(out))
        return [
            out[b, n : n + budget].tolist()
            for b, (n, budget) in enumerate(zip(lengths, budgets))
        ]

    def _add_logprobs(self, adapter, bound, lengths, rows, results, jobs, owners):
        """Adds teacher-forced log-probabilities to the rows that asked."""
        wanted = [b for b, (j, _) in enumerate(owners) if jobs[j].logprobs is not None]
        if not wanted:
            return
        k = max(jobs[owners[b][0]].logprobs for b in wanted)
        sequences, targets = [], []
        for b in wanted:
            j, r = owners[b]
            result = results[j][r]
            sequences.append(list(bound[b]) + result["tokens"])
            first = lengths[b] - len(rows[b]) if jobs[j].echo_logprobs else lengths[b]
            targets.append(list(range(first, len(sequences[-1]))))
        scored = self._score_positions(adapter, sequences, targets, k)
        for b, (logprob, top) in zip(wanted, scored):
            j, r = owners[b]
            job, result = jobs[j], results[j][r]
            top = [None if pairs is None else pairs[: job.logprobs] for pairs in top]
            records = list(zip(logprob, top))
            generated = len(result["tokens"])
            result["logprobs"] = records[len(records) - generated :]
            if job.echo_logprobs:
                result["prompt_logprobs"] = records[: len(records) - generated]

    def _score_positions(self, adapter, sequences, targets, k):
        """Per sequence, the logprob of each target position's token and the top-k.

        Args:
            sequences: B id lists (virtual prompt ids included).
            targets: B lists of positions; position 0 has no context and
                gets `(None, None)`.
            k: int, alternatives per position.

        Returns:
            B pairs `(logprobs, tops)`, one entry per target position.
        """
        batch = pad_rows(sequences, max(len(s) for s in sequences))
        width = max(max((len(t) for t in targets), default=0), 1)
        # Position p is predicted by the hidden state at p - 1.
        read = np.zeros((len(sequences), width), "int32")
        chosen = np.zeros((len(sequences), width), "int32")  # the target ids
        for b, positions in enumerate(targets):
            positions = np.asarray(positions, "int32")
            read[b, : len(positions)] = np.maximum(positions - 1, 0)
            chosen[b, : len(positions)] = batch["token_ids"][b, positions]
        hidden = adapter.decode(
            adapter.embed_tokens(batch["token_ids"]), batch["padding_mask"]
        )  # [B, S, H]
        picked = ops.take_along_axis(hidden, read[:, :, None], axis=1)  # [B, M, H]
        logp = ops.log_softmax(
            ops.cast(adapter.token_logits(picked), "float32"), axis=-1
        )  # [B, M, V]
        values, indices = ops.top_k(logp, max(min(k, adapter.vocabulary_size), 1))
        chosen = ops.take_along_axis(logp, chosen[:, :, None], axis=2)[..., 0]  # [B, M]
        chosen, values, indices = (
            np.asarray(ops.convert_to_numpy(a)) for a in (chosen, values, indices)
        )
        scored = []
        for b, positions in enumerate(targets):
            logprobs, tops = [], []
            for m, position in enumerate(positions):
                if position == 0:
                    logprobs.append(None)
                    tops.append(None)
                    continue
                logprobs.append(float(chosen[b, m]))
                tops.append(
                    [(int(i), float(v)) for i, v in zip(indices[b, m, :k], values[b, m, :k])]
                )
            scored.append((logprobs, tops))
        return scored


class _CompiledDecoding:
    """An adapter whose decoding and LM head are compiled once.

    Everything else is the wrapped adapter's. The LM head is compiled too:
    eagerly, a tied head transposes the whole `[V, H]` table on every call.
    """

    def __init__(self, adapter):
        self._adapter = adapter
        self.decode = _shape_free(adapter.decode)
        self.decode_with_cache = _shape_free(adapter.decode_with_cache)
        self.token_logits = _shape_free(adapter.token_logits)

    def __getattr__(self, name):
        return getattr(self._adapter, name)


def _shape_free(fn):
    """`fn` compiled for tensors of any shape (`tf.function` on TensorFlow).

    Every batch of a server has other rows and lengths. Traced for the first
    call's exact shapes, `tf.function` would trace again for each new batch
    size and length until `reduce_retracing` has widened every dimension,
    and tracing SmolLM2 takes tens of seconds on a busy CPU; so the first
    trace already leaves every dimension unknown: of integer tensors (ids,
    masks) all, of float ones all but the last (the hidden or head size,
    which the layers' weights fix). Python values (a cache index of 0) stay
    static. Other backends run `fn` as it is.
    """
    if keras.backend.backend() != "tensorflow":
        return fn
    import tensorflow as tf

    function = tf.function(fn, reduce_retracing=True)

    def spec(value):
        if isinstance(value, np.ndarray) or ops.is_tensor(value):
            value = tf.convert_to_tensor(value)
            known = [] if value.dtype.is_integer else list(value.shape[-1:])
            return tf.TensorSpec([None] * (value.shape.rank - len(known)) + known, value.dtype)
        return value

    def call(*args):
        # get_concrete_function traces once per signature, then reuses it.
        return function.get_concrete_function(*tf.nest.map_structure(spec, args))(*args)

    return call


def _cut_at_stop(tokens, stop_ids):
    """`(tokens before the first stop id, whether one was found)`."""
    for i, token in enumerate(tokens):
        if token in stop_ids:
            return list(tokens[:i]), True
    return list(tokens), False
