"""PEFT's prompt-learning adapter files: promptopt's prompts and prefixes in and out.

PEFT saves a prompt-learning run as a folder of two files:
`adapter_config.json` (a `PromptTuningConfig` or `PrefixTuningConfig`) and
`adapter_model.safetensors`, whose one tensor `prompt_embeddings` is what
the model reads (for prefix tuning with an MLP, PEFT saves the MLP's
output, not the MLP).

**Prompt tuning** (`PROMPT_TUNING`). The tensor is
`[num_virtual_tokens * num_transformer_submodules, token_dim]`; for a
decoder-only model (`CAUSAL_LM`, one submodule) that is promptopt's `[P, H]`
as it is, and PEFT concatenates it in front of the input embeddings: our
placement "prefix". Positions count from the first virtual token in both.

**Prefix tuning** (`PREFIX_TUNING`) maps cleanly onto promptopt's decoder
prefix `[L, 2, P, N, D]`, grouped-query attention included. PEFT's
`get_prompt` views the tensor `[P, L * 2 * token_dim]` as
`[P, 2L, heads, token_dim / heads]`, permutes it to `[2L, heads, P, D]` and
splits it into L pairs, so that layer l's keys are slice 2l and its values
slice 2l + 1. For grouped-query models PEFT (since its issue #1901) sets
`token_dim = num_key_value_heads * head_dim` and `num_attention_heads =
num_key_value_heads`: the prefix holds one key and one value per KV head,
which the attention repeats across each group of query heads (query head
i reads KV head i // (query heads / KV heads), in transformers and in
keras-hub alike). So element `[p, ((2l + kv) * N + n) * D + d]` of PEFT's
tensor is promptopt's `[l, kv, p, n, d]`: a transpose and a reshape, with
nothing lost. For SmolLM2 (30 layers, 9 query heads, 3 KV heads of 64)
that is `[P, 11520]` <-> `[30, 2, P, 3, 64]`. Both libraries store keys
after the rotary embedding (keras-hub's cache and transformers' `Cache`
hold rotated keys) and give the text positions `P..P+T-1` after a P-slot
prefix, so the same numbers mean the same thing in both.

Not covered, and refused with the reason: encoder-decoder models (PEFT's
`SEQ_2_SEQ_LM` files have `num_transformer_submodules = 2`: for prefix
tuning it copies one prefix into both the encoder's and the decoder's
self-attention and gives cross-attention none, while promptopt's T5
prefixes have a tensor per site), and PEFT's other prompt-learning methods
(P-tuning, multitask prompt tuning), whose files hold encoder outputs or
task-dependent tensors.
"""

import dataclasses
import json
import os

import numpy as np

from promptopt.interop import safetensors_io

CONFIG_FILENAME = "adapter_config.json"
WEIGHTS_FILENAME = "adapter_model.safetensors"
TENSOR_KEY = "prompt_embeddings"
PROMPT_TUNING = "PROMPT_TUNING"
PREFIX_TUNING = "PREFIX_TUNING"
# Hugging Face names of the models promptopt embeds, for base_model_name_or_path.
HUB_NAMES = {"smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}


class PEFTFormatError(ValueError):
    """A PEFT adapter folder cannot be read or does not fit the model; says why and the fix."""


@dataclasses.dataclass
class PEFTAdapter:
    """A PEFT prompt-tuning or prefix-tuning adapter, as PEFT saves it.

    Args:
        tensor: float32 `prompt_embeddings`: `[P, H]` for prompt tuning,
            `[P, L * 2 * N * D]` for prefix tuning.
        config: dict, the `adapter_config.json` fields.

    Example:
    ```python
    PEFTAdapter.for_prompt(prompt, model.adapter, "HuggingFaceTB/SmolLM2-135M-Instruct").save("out")
    # then, in PyTorch: PeftModel.from_pretrained(hf_model, "out")
    prompt = PEFTAdapter.load("out").prompt(model.adapter)  # [P, H]
    ```
    """

    tensor: np.ndarray
    config: dict

    @property
    def peft_type(self):
        return self.config.get("peft_type")

    @classmethod
    def for_prompt(cls, prompt, adapter, base_model_name_or_path):
        """The PROMPT_TUNING adapter of a soft prompt `[P, H]` on `adapter`'s backbone."""
        _require_decoder_only(adapter)
        prompt = np.asarray(prompt, "float32")
        layers = _kv_layout(adapter)[0]
        config = _config_base(PROMPT_TUNING, base_model_name_or_path, prompt.shape[0])
        config.update(token_dim=int(prompt.shape[1]), num_attention_heads=_query_heads(adapter),
                      num_layers=layers, prompt_tuning_init="RANDOM",
                      prompt_tuning_init_text=None, tokenizer_name_or_path=None,
                      tokenizer_kwargs=None)
        return cls(prompt, dict(sorted(config.items())))

    @classmethod
    def for_prefix(cls, prefix, adapter, base_model_name_or_path):
        """The PREFIX_TUNING adapter of a decoder prefix `[L, 2, P, N, D]`."""
        _require_decoder_only(adapter)
        prefix = np.asarray(prefix, "float32")
        layers, heads, head_dim = _kv_layout(adapter)
        length = prefix.shape[2] if prefix.ndim == 5 else -1
        if prefix.shape != (layers, 2, length, heads, head_dim):
            raise PEFTFormatError(
                f"The prefix has shape {list(prefix.shape)}, but this model's is [L, 2, P, N, D] "
                f"= {[layers, 2, 'P', heads, head_dim]}. Export it with the model it was tuned for.")
        # [L, 2, P, N, D] -> [P, L, 2, N, D] -> [P, L * 2 * N * D]: see the module docstring.
        tensor = prefix.transpose(2, 0, 1, 3, 4).reshape(length, -1)
        config = _config_base(PREFIX_TUNING, base_model_name_or_path, length)
        config.update(token_dim=int(heads * head_dim), num_attention_heads=int(heads),
                      num_layers=int(layers), encoder_hidden_size=int(heads * head_dim),
                      prefix_projection=False, init_weights=None)
        return cls(np.ascontiguousarray(tensor), dict(sorted(config.items())))

    def save(self, directory):
        """Writes `adapter_config.json` and `adapter_model.safetensors`; returns both paths."""
        os.makedirs(directory, exist_ok=True)
        config_path = os.path.join(directory, CONFIG_FILENAME)
        weights_path = os.path.join(directory, WEIGHTS_FILENAME)
        # {"format": "pt"}: PEFT's own metadata, which transformers' loaders look for.
        safetensors_io.save_file({TENSOR_KEY: self.tensor}, weights_path, {"format": "pt"})
        with open(config_path, "w") as f:
            json.dump(self.config, f, indent=2)
            f.write("\n")
        return config_path, weights_path

    @classmethod
    def load(cls, directory):
        """Reads a PEFT adapter folder (prompt or prefix tuning)."""
        directory = os.fspath(directory)
        config_path = os.path.join(directory, CONFIG_FILENAME)
        weights_path = os.path.join(directory, WEIGHTS_FILENAME)
        for path in (config_path, weights_path):
            if not os.path.isfile(path):
                hint = (" PEFT versions before 0.7 wrote adapter_model.bin (a pickle), which "
                        "promptopt does not read: load it in PEFT and save_pretrained() it again."
                        if path == weights_path and os.path.isfile(
                            os.path.join(directory, "adapter_model.bin")) else "")
                raise FileNotFoundError(
                    f"{directory} is not a PEFT adapter folder: it has no {os.path.basename(path)}. "
                    f"Give the folder PeftModel.save_pretrained() wrote.{hint}")
        try:
            with open(config_path) as f:
                config = json.load(f)
        except json.JSONDecodeError as error:
            raise PEFTFormatError(f"{config_path} is not JSON ({error}).") from None
        if not isinstance(config, dict):
            raise PEFTFormatError(f"{config_path} does not hold a JSON object of settings.")
        peft_type = config.get("peft_type")
        if peft_type not in (PROMPT_TUNING, PREFIX_TUNING):
            raise PEFTFormatError(
                f"{directory} holds a {peft_type!r} adapter; promptopt reads PEFT's "
                f"{PROMPT_TUNING} and {PREFIX_TUNING} adapters only (other methods change weights "
                "or save encoder outputs that are no soft prompt).")
        submodules = config.get("num_transformer_submodules") or 1
        if submodules != 1:
            raise PEFTFormatError(
                f"{directory} has num_transformer_submodules={submodules} (task_type "
                f"{config.get('task_type')!r}, an encoder-decoder model); promptopt reads PEFT "
                "files of decoder-only models (CAUSAL_LM, one submodule).")
        tensors, _ = safetensors_io.load_file(weights_path)
        if TENSOR_KEY not in tensors:
            raise PEFTFormatError(
                f"{weights_path} has no tensor {TENSOR_KEY!r} (it has {sorted(tensors)}); PEFT "
                "saves prompt-learning adapters under that key.")
        tensor = np.asarray(tensors[TENSOR_KEY], "float32")
        if tensor.ndim != 2 or tensor.shape[0] != config.get("num_virtual_tokens"):
            raise PEFTFormatError(
                f"{weights_path}: {TENSOR_KEY} has shape {list(tensor.shape)}, but the config "
                f"says num_virtual_tokens={config.get('num_virtual_tokens')}; the two files do "
                "not belong together.")
        return cls(tensor, config)

    def prompt(self, adapter):
        """The soft prompt `[P, H]` for `adapter`'s backbone (PROMPT_TUNING only)."""
        self._require_type(PROMPT_TUNING)
        _require_decoder_only(adapter)
        hidden = adapter.hidden_dim
        if self.tensor.shape[1] != hidden or self.config.get("token_dim", hidden) != hidden:
            raise PEFTFormatError(
                f"This PEFT prompt has token_dim={self.config.get('token_dim')} "
                f"({self.tensor.shape[1]} columns), but the model has H={hidden}: it was tuned "
                "for another model. Import it with the --model it was tuned on.")
        return self.tensor.copy()

    def prefix(self, adapter):
        """The decoder prefix `[L, 2, P, N, D]` for `adapter`'s backbone (PREFIX_TUNING only)."""
        self._require_type(PREFIX_TUNING)
        _require_decoder_only(adapter)
        layers, heads, head_dim = _kv_layout(adapter)
        stated = (self.config.get("num_layers"), self.config.get("num_attention_heads"),
                  self.config.get("token_dim"))
        if stated != (layers, heads, heads * head_dim) or self.tensor.shape[1] != layers * 2 * heads * head_dim:
            raise PEFTFormatError(
                f"This PEFT prefix has num_layers, num_attention_heads, token_dim = "
                f"{list(stated)} ({self.tensor.shape[1]} columns), but the model's cache has "
                f"{layers} layers of {heads} key/value heads of {head_dim} "
                f"(= {[layers, heads, heads * head_dim]}): it was tuned for another model, or by "
                "a PEFT from before its grouped-query fix (its issue #1901), which gave such "
                "models a prefix per query head. "
                "Import it with the --model it was tuned on.")
        length = self.tensor.shape[0]
        return np.ascontiguousarray(
            self.tensor.reshape(length, layers, 2, heads, head_dim).transpose(1, 2, 0, 3, 4))

    def _require_type(self, peft_type):
        if self.peft_type != peft_type:
            raise PEFTFormatError(
                f"This is a {self.peft_type} adapter, not {peft_type}: read it with "
                f"{'prompt' if self.peft_type == PROMPT_TUNING else 'prefix'}().")


def hub_name(model_id):
    """The Hugging Face name of a promptopt model id (the id itself if unknown)."""
    return HUB_NAMES.get(model_id, model_id)


def _config_base(peft_type, base_model_name_or_path, num_virtual_tokens):
    return {
        "peft_type": peft_type,
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model_name_or_path,
        "num_virtual_tokens": int(num_virtual_tokens),
        "num_transformer_submodules": 1,
        "inference_mode": True,
        "auto_mapping": None,
        "modules_to_save": None,
        "revision": None,
    }


def _require_decoder_only(adapter):
    if adapter.is_encoder_decoder:
        raise PEFTFormatError(
            "PEFT interop covers decoder-only models: PEFT's encoder-decoder prompts and "
            "prefixes (two transformer submodules, no cross-attention prefix) do not match "
            "promptopt's per-site T5 layout.")


def _kv_layout(adapter):
    """`(layers, kv_heads, head_dim)` of a decoder-only backbone's key/value cache."""
    _, layers, _, _, heads, head_dim = adapter.cache_shape(1, 0)
    return int(layers), int(heads), int(head_dim)


def _query_heads(adapter):
    """The query heads (PEFT's num_attention_heads for prompt tuning)."""
    backbone = adapter.backbone
    # Llama and Gemma name them num_query_heads, GPT-2 num_heads.
    return int(getattr(backbone, "num_query_heads", None) or backbone.num_heads)
