"""A frozen backbone in another precision (bfloat16 on CPUs that have it)."""


def cast_backbone(backbone, dtype="bfloat16"):
    """A copy of `backbone` whose weights and compute are in `dtype`.

    The backbone is frozen, so its weights never need float32 master copies:
    holding them in bfloat16 halves their memory and lets the matmuls run on
    bfloat16 units (AVX512-BF16/AMX on recent x86 CPUs, tensor cores on
    GPUs). The prompt stays a float32 variable; `prepend_prompt` casts it to
    the embeddings' dtype, gradients flow back through that cast, and the
    task computes its log-softmax in float32. keras-hub's Llama layers keep
    RMSNorm, SiLU and the attention softmax in float32. FIELD_NOTES: the
    embedded SmolLM2's perplexity is 4.76 with bfloat16 weights vs 4.8.

    Args:
        backbone: a built keras-hub backbone.
        dtype: "bfloat16", "float16" or "float32".

    Returns:
        A new backbone of the same class and config (the original is left
        unchanged).

    Example:
    ```python
    model = PromptedModel(cast_backbone(lm.backbone), task, prompt_length=20)
    ```
    """
    if dtype not in ("bfloat16", "float16", "float32"):
        raise ValueError(
            f"dtype must be 'bfloat16', 'float16' or 'float32', got {dtype!r}."
        )
    config = backbone.get_config()
    if hasattr(backbone, "tie_word_embeddings"):
        # keras-hub 0.32's LlamaBackbone.get_config drops this flag
        # (upstream issue #3098); without it the copy gets an untied head.
        config["tie_word_embeddings"] = bool(backbone.tie_word_embeddings)
    config["dtype"] = dtype
    copy = type(backbone).from_config(config)
    # Keras casts each value to its variable's dtype on assignment.
    copy.set_weights(backbone.get_weights())
    return copy
