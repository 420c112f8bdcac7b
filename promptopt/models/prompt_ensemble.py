"""N soft prompts for one task, combined (Lester et al. 2021, section 7)."""

import numpy as np
from keras import ops

from promptopt.prompts.prompt_file import PromptFile
from promptopt.prompts.prompt_file import PromptMismatchError
from promptopt.tasks import serialize_task
from promptopt.tasks.classification import VerbalizerClassification

COMBINE_RULES = ("mean", "vote")
STRATEGIES = ("batched", "loop")


class PromptEnsemble:
    """N soft prompts of one task on one frozen model, scored together.

    Lester et al. (2021, section 7) ensemble prompts tuned for one task on
    one frozen model: the model is stored once and one batch serves all N.
    `member_scores` runs the batch replicated N times, copy n with prompt
    n (`strategy="batched"`: one pass of `[N * B, P + T, H]`; row
    `n * B + b` is input b under prompt n), or one pass per prompt
    (`"loop"`); both give the same scores. The members' class
    probabilities are then combined:

    - `"mean"`: the mean of the N members' class probabilities; the class
      is its argmax.
    - `"vote"`: each member votes for its argmax class; the probabilities
      are the vote shares. A tie (possible with an even N, or with more
      than two classes) goes to the tied class with the highest mean
      probability, and if that is tied too, to the lowest class index, so
      the result never depends on the order of floating-point sums or on
      the members' order beyond that.

    All members must have one prompt length P (they share one pass); the
    model's own prompt is not used.

    Args:
        model: a `PromptedModel` with a `VerbalizerClassification` task.
        prompts: N arrays `[P, H]` (or one `[N, P, H]`).
        combine: "mean" or "vote".
        strategy: "batched" (default) or "loop".
        template: str or None, the template the prompts were tuned with
            (texts are rendered with it by the caller).
        names: N strs naming the members (default "prompt 0", ...).

    Example:
    ```python
    ensemble = PromptEnsemble.from_files(model, ["a/prompt.npz", "b/prompt.npz"])
    probabilities = ensemble.probabilities(["A fine film. It was"])  # [1, C]
    ensemble.member_probabilities(["A fine film. It was"])  # [N, 1, C]
    ```
    """

    def __init__(self, model, prompts, combine="mean", strategy="batched", template=None,
                 names=None):
        if not isinstance(model.task, VerbalizerClassification):
            raise ValueError(
                f"A prompt ensemble combines class probabilities, but this model's task is "
                f"{type(model.task).__name__}. Build the model with a VerbalizerClassification.")
        if combine not in COMBINE_RULES:
            raise ValueError(f"combine must be one of {', '.join(COMBINE_RULES)}, got {combine!r}.")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}.")
        prompts = [np.asarray(p, "float32") for p in prompts]
        if not prompts:
            raise ValueError("A prompt ensemble needs at least one prompt [P, H].")
        shapes = sorted({p.shape for p in prompts})
        if len(shapes) > 1 or len(shapes[0]) != 2:
            raise ValueError(
                f"The prompts of an ensemble share one pass, so they must all be [P, H] with one "
                f"P and H; got shapes {[list(s) for s in shapes]}. Tune them with the same "
                "--prompt-length.")
        if shapes[0][1] != model.adapter.hidden_dim:
            raise ValueError(
                f"The prompts have H={shapes[0][1]}, but this model has "
                f"H={model.adapter.hidden_dim}. Use prompts tuned for this model.")
        self.model = model
        self.prompts = np.stack(prompts)  # [N, P, H]
        self.combine = combine
        self.strategy = strategy
        self.template = template
        self.names = list(names) if names is not None else [f"prompt {n}" for n in range(len(prompts))]

    def __len__(self):
        return len(self.prompts)

    @property
    def classes(self):
        return self.model.task.verbalizer.classes

    @classmethod
    def from_files(cls, model, paths, combine="mean", strategy="batched", template=None):
        """An ensemble of prompt files, each checked against `model`.

        Every file must come from `promptopt tune` (or `save_prompt`) for
        `model`: the same model id and embedding table, the same task
        (classes, label words, placement), template and prompt length.

        Args:
            model: the `PromptedModel` the prompts run on.
            paths: N prompt.npz paths.
            combine, strategy: as in the constructor.
            template: the template the caller renders texts with; None
                takes the first file's.

        Raises:
            PromptMismatchError: a file was tuned for another model.
            ValueError: another task, template or prompt length.
        """
        paths = [str(p) for p in paths]
        if not paths:
            raise ValueError("Give at least one prompt file for the ensemble.")
        files = [PromptFile.load(path) for path in paths]
        task = serialize_task(model.task)
        if template is None:
            template = files[0].extra.get("template")
        for path, file in zip(paths, files):
            if file.model_id != model.model_id:
                raise PromptMismatchError(
                    f"Prompt {path} was tuned for model '{file.model_id}', but the ensemble runs "
                    f"on '{model.model_id}'. An ensemble combines prompts of one model: give "
                    "prompt files tuned on the same --model.")
            file.check_compatible(model.model_id, model.embedding_hash(file.format_version),
                                  model.adapter.hidden_dim, source=f"file {path}")
            theirs = file.extra.get("task")
            if theirs != task:
                raise ValueError(
                    f"Prompt {path} was tuned for another task than the ensemble's: "
                    f"{_task_difference(theirs, task)}. An ensemble combines prompts of one "
                    "task: give prompt files tuned with the same --task (or label words) and "
                    "--placement.")
            if file.extra.get("template", template) != template:
                raise ValueError(
                    f"Prompt {path} was tuned with the template {file.extra.get('template')!r}, "
                    f"the ensemble's is {template!r}. Its members must read the same texts: give "
                    "prompt files tuned with one --template.")
            if file.length != files[0].length:
                raise ValueError(
                    f"Prompt {path} has P={file.length} vectors, {paths[0]} has "
                    f"P={files[0].length}. The members of an ensemble share one pass, so they "
                    "need one prompt length: give prompt files tuned with the same "
                    "--prompt-length.")
        return cls(model, [f.prompt for f in files], combine=combine, strategy=strategy,
                   template=template, names=paths)

    # --- scores --------------------------------------------------------------

    def member_scores(self, inputs):
        """Class scores `[N, B, C]` of every member on one encoded batch.

        Args:
            inputs: dict of `token_ids` and `padding_mask`, `[B, T]`.
        """
        model, n = self.model, len(self.prompts)
        if self.strategy == "loop":
            rows = [model(inputs, training=False, prompt=p) for p in self.prompts]
            return ops.stack([ops.cast(r, "float32") for r in rows])
        batch = ops.shape(inputs["token_ids"])[0]
        # Copy n of the batch (rows n*B .. n*B + B - 1) reads prompt n.
        tiled = {k: ops.tile(v, (n, 1)) for k, v in inputs.items()}
        prompts = ops.repeat(ops.convert_to_tensor(self.prompts), batch, axis=0)  # [N * B, P, H]
        scores = ops.cast(model(tiled, training=False, prompt=prompts), "float32")
        return ops.reshape(scores, (n, batch, -1))

    def member_probabilities(self, texts, batch_size=32, bucket=16):
        """Class probabilities `[N, len(texts), C]` of every member on raw texts.

        Texts are scored in batches of similar length, each padded to a
        multiple of `bucket` tokens (as `class_probabilities` does), so
        little of a pass is padding. With `strategy="batched"` a pass holds
        `batch_size` texts under every prompt, `N * batch_size` rows.
        """
        encoded = self.model.encode_texts(list(texts))
        lengths = encoded["padding_mask"].sum(axis=1)
        order = np.argsort(lengths, kind="stable")
        probabilities = np.zeros((len(self), len(order), len(self.classes)), "float64")
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            width = max(int(-(-lengths[index].max() // bucket) * bucket), 1)
            scores = self.member_scores({k: v[index, :width] for k, v in encoded.items()})
            probabilities[:, index] = class_softmax(ops.convert_to_numpy(scores))
        return probabilities

    def probabilities(self, texts, batch_size=32):
        """The ensemble's class probabilities `[len(texts), C]` (see `combine_members`)."""
        return self.combine_members(self.member_probabilities(texts, batch_size), self.combine)[0]

    def classify(self, texts, batch_size=32):
        """The ensemble's classes `[len(texts)]`, ties resolved as the class docstring says."""
        return self.combine_members(self.member_probabilities(texts, batch_size), self.combine)[1]

    def __call__(self, inputs):
        """`(probabilities [B, C], classes [B])` of one encoded batch."""
        probabilities = class_softmax(ops.convert_to_numpy(self.member_scores(inputs)))
        return self.combine_members(probabilities, self.combine)

    @staticmethod
    def combine_members(member_probabilities, rule):
        """`(probabilities [B, C], classes [B])` from members' `[N, B, C]`.

        "mean": the mean probability and its argmax. "vote": the vote
        shares, and the class with most votes; ties go to the highest mean
        probability, then to the lowest class index.
        """
        member_probabilities = np.asarray(member_probabilities, "float64")
        mean = member_probabilities.mean(axis=0)  # [B, C]
        if rule == "mean":
            return mean, mean.argmax(axis=-1)
        if rule != "vote":
            raise ValueError(f"rule must be one of {', '.join(COMBINE_RULES)}, got {rule!r}.")
        n, _, classes = member_probabilities.shape
        votes = np.eye(classes)[member_probabilities.argmax(axis=-1)].sum(axis=0)  # [B, C]
        leading = votes == votes.max(axis=-1, keepdims=True)
        # np.argmax returns the first maximum: the lowest index among equal means.
        winner = np.where(leading, mean, -np.inf).argmax(axis=-1)
        return votes / n, winner


def class_softmax(scores):
    """Class probabilities `[..., C]` (float64) from class scores `[..., C]`."""
    scores = np.asarray(scores, "float64")
    scores = scores - scores.max(axis=-1, keepdims=True)
    exp = np.exp(scores)
    return exp / exp.sum(axis=-1, keepdims=True)


def _task_difference(theirs, ours):
    """What differs between two serialized tasks, for people."""
    if not isinstance(theirs, dict):
        return "the file records no task"
    if theirs.get("name") != ours.get("name"):
        return f"task {theirs.get('name')!r} instead of {ours.get('name')!r}"
    a, b = theirs.get("config", {}), ours.get("config", {})
    if a.get("placement") != b.get("placement"):
        return f"placement {a.get('placement')!r} instead of {b.get('placement')!r}"
    va, vb = a.get("verbalizer", {}), b.get("verbalizer", {})
    for key in ("classes", "label_words", "token_ids", "single_token"):
        if va.get(key) != vb.get(key):
            return f"{key.replace('_', ' ')} {va.get(key)!r} instead of {vb.get(key)!r}"
    return "their task configs differ"
