"""The names a server answers for: its base model and the tuned prompts loaded."""

import dataclasses
import os
import time

import numpy as np
from keras import ops

from promptopt.prefixes.prefix_file import PrefixFile
from promptopt.prefixes.prefix_initializers import prefix_shape
from promptopt.prompts.prompt_file import PromptFile
from promptopt.prompts.prompt_file import embedding_fingerprint


class UnknownModelError(KeyError):
    """A request named a model that this server does not serve."""

    def __str__(self):
        return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class ServedPrompt:
    """One servable name: the base model, a soft prompt, a prefix or an ensemble.

    Args:
        name: str, what a request's `model` field selects it by.
        kind: "base", "soft_prompt", "prefix" or "ensemble".
        value: float32 `[P, H]` (a soft prompt; `[0, H]` for the base model),
            `[L, 2, P, N, D]` (a prefix), or for an ensemble its first
            member's `[P, H]`.
        sites: the prefix's attention sites (`()` for the others).
        path: str, the file it came from (None for the base model; an
            ensemble's files joined by commas).
        created: int, Unix time it was loaded.
        members: an ensemble's N soft-prompt `ServedPrompt`s (`()` otherwise).
        combine: an ensemble's rule, "mean" or "vote" (`PromptEnsemble`).
    """

    name: str
    kind: str
    value: np.ndarray
    sites: tuple = ()
    path: str = None
    created: int = 0
    members: tuple = ()
    combine: str = None

    @property
    def length(self):
        """P, the prompt vectors or prefix slots in front of the text (an ensemble: the longest)."""
        if self.kind == "ensemble":
            return max(member.length for member in self.members)
        return int(self.value.shape[-3] if self.kind == "prefix" else self.value.shape[0])

    @property
    def batch_kind(self):
        """Names with one batch kind can share a forward pass.

        Soft prompts of any length and the base model mix freely (a
        `PromptTable` gives each row its own); prefixes mix only with
        prefixes of the same shape (a `PrefixTable`).
        """
        if self.kind == "prefix":
            return ("prefix", self.value.shape, self.sites)
        return ("soft_prompt",)


class PromptRegistry:
    """The base model and the tuned prompts and prefixes served with it.

    `load` reads what `promptopt tune` writes (`prompt.npz`: a soft prompt
    `[P, H]`; `prefix.npz`: per-layer keys and values `[L, 2, P, N, D]`)
    and refuses a file tuned for another model: another hidden size,
    another embedding table (the files' own fingerprint check, as
    `PromptedModel.load_prompt` and `PrefixModel.load_prefix` do it) or
    another prefix shape.

    Args:
        adapter: the served backbone's `BackboneAdapter`.
        model_id: str, the base model's name.

    Example:
    ```python
    registry = PromptRegistry(engine.adapter, engine.model_id)
    registry.load("sst2", "runs/sst2/prompt.npz")
    registry.get("sst2").value  # [P, H]
    registry.get(None).kind     # "base"
    ```
    """

    def __init__(self, adapter, model_id):
        self.adapter = adapter
        self.model_id = str(model_id)
        self._fingerprints = {}
        base = np.zeros((0, int(adapter.hidden_dim)), "float32")
        self._served = {
            self.model_id: ServedPrompt(self.model_id, "base", base, created=int(time.time()))
        }

    def entries(self):
        """Every `ServedPrompt`, the base model first."""
        return list(self._served.values())

    def get(self, name):
        """The `ServedPrompt` called `name` (None: the base model).

        Raises:
            UnknownModelError: no such name; the message lists the names.
        """
        if name is None:
            return self._served[self.model_id]
        if name not in self._served:
            raise UnknownModelError(
                f"The model '{name}' does not exist on this server. Served "
                f"models: {', '.join(self._served)} (see GET /v1/models)."
            )
        return self._served[name]

    def load(self, name, path):
        """Loads a prompt or prefix file under `name`; returns its `ServedPrompt`.

        Raises:
            ValueError: a name already taken, or a file that is neither a
                promptopt prompt nor prefix file.
            PromptMismatchError: a file tuned for another model.
        """
        name, path = str(name), os.fspath(path)
        if not name or name != name.strip():
            raise ValueError(
                f"Prompt name {name!r} is empty or has surrounding spaces; "
                "give --prompt NAME=PATH with a plain name."
            )
        if name in self._served:
            raise ValueError(
                f"The name '{name}' is already served (by "
                f"{self._served[name].path or 'the base model'}). Give each "
                "prompt its own name."
            )
        if not os.path.exists(path):
            raise FileNotFoundError(f"No prompt or prefix file at {path} (for '{name}').")
        try:
            prompt_file = PromptFile.load(path)
        except ValueError as prompt_error:
            try:
                prefix_file = PrefixFile.load(path)
            except ValueError as prefix_error:
                raise ValueError(
                    f"{path} (for '{name}') is neither a promptopt prompt file "
                    f"nor a prefix file ({prompt_error} {prefix_error}) Give "
                    "the prompt.npz or prefix.npz that `promptopt tune` wrote."
                ) from None
            served = self._checked_prefix(name, path, prefix_file)
        else:
            served = self._checked_prompt(name, path, prompt_file)
        self._served[name] = served
        return served

    def load_ensemble(self, name, paths, combine="mean"):
        """Serves N prompt files of one task under `name`, combined (Lester et al. section 7).

        `/v1/score` with `model=name` scores the N prompts on the same
        inputs and combines their class probabilities by `combine`
        (`PromptEnsemble.combine_members`: "mean" or "vote"). Each file is
        checked against the model as `load` checks one.

        Raises:
            ValueError: fewer than 2 files, a prefix among them, an unknown
                rule, or a name already taken.
        """
        from promptopt.models.prompt_ensemble import COMBINE_RULES

        paths = [os.fspath(p) for p in paths]
        if combine not in COMBINE_RULES:
            raise ValueError(
                f"Ensemble '{name}': combine must be one of {', '.join(COMBINE_RULES)}, "
                f"got {combine!r}.")
        if len(paths) < 2:
            raise ValueError(
                f"Ensemble '{name}' names {len(paths)} prompt file; an ensemble combines at "
                "least 2. Give --ensemble NAME=PATH1,PATH2[,...], or serve one prompt with "
                "--prompt NAME=PATH.")
        if name in self._served:
            raise ValueError(
                f"The name '{name}' is already served (by "
                f"{self._served[name].path or 'the base model'}). Give each "
                "prompt and ensemble its own name.")
        members = []
        for index, path in enumerate(paths):
            member = f"{name}[{index}]"
            self.load(member, path)
            served = self._served.pop(member)  # a member, not a name of its own
            if served.kind != "soft_prompt":
                raise ValueError(
                    f"{path} (member {index} of ensemble '{name}') is a prefix; an ensemble "
                    "combines soft prompts (prompt.npz files).")
            members.append(served)
        ensemble = ServedPrompt(
            name, "ensemble", members[0].value, path=",".join(paths), created=int(time.time()),
            members=tuple(members), combine=combine)
        self._served[name] = ensemble
        return ensemble

    def _fingerprint(self, format_version):
        if format_version not in self._fingerprints:
            table = np.asarray(ops.convert_to_numpy(self.adapter.embedding_matrix))
            self._fingerprints[format_version] = embedding_fingerprint(table, format_version)
        return self._fingerprints[format_version]

    def _checked_prompt(self, name, path, prompt_file):
        prompt_file.check_compatible(
            self.model_id,
            self._fingerprint(prompt_file.format_version),
            self.adapter.hidden_dim,
            source=f"file {path} (for '{name}')",
        )
        return ServedPrompt(
            name, "soft_prompt", prompt_file.prompt, path=path, created=int(time.time())
        )

    def _checked_prefix(self, name, path, prefix_file):
        if self.adapter.is_encoder_decoder:
            raise ValueError(
                f"{path} (for '{name}') is a prefix, and this server generates "
                "with decoder-only models only; serve it with a decoder-only "
                "model or score it with `promptopt eval`."
            )
        length = int(prefix_file.prefix.shape[2])
        prefix_file.check_compatible(
            self.model_id,
            self._fingerprint(prefix_file.format_version),
            prefix_shape(self.adapter, length),
            ("decoder",),
            source=f"file {path} (for '{name}')",
        )
        return ServedPrompt(
            name, "prefix", prefix_file.prefix, sites=("decoder",), path=path,
            created=int(time.time()),
        )
