"""Per-family adapters that feed a prompt into a frozen keras-hub backbone."""

from promptopt.adapters.base import BackboneAdapter
from promptopt.adapters.gemma import GemmaAdapter
from promptopt.adapters.gpt2 import GPT2Adapter
from promptopt.adapters.llama import LlamaAdapter
from promptopt.adapters.t5 import T5Adapter

ADAPTERS = (GPT2Adapter, LlamaAdapter, GemmaAdapter, T5Adapter)


def adapter_for(backbone):
    """Returns the adapter for `backbone`'s model family.

    Raises:
        ValueError: if no adapter handles the backbone's class.
    """
    for adapter_cls in ADAPTERS:
        if isinstance(backbone, adapter_cls.backbone_classes):
            return adapter_cls(backbone)
    supported = ", ".join(
        cls.__name__ for a in ADAPTERS for cls in a.backbone_classes
    )
    raise ValueError(
        f"No promptopt adapter for {type(backbone).__name__}. Supported "
        f"backbones: {supported}. Add a subclass of "
        "promptopt.adapters.BackboneAdapter for this family."
    )


__all__ = [
    "ADAPTERS",
    "BackboneAdapter",
    "GPT2Adapter",
    "GemmaAdapter",
    "LlamaAdapter",
    "T5Adapter",
    "adapter_for",
]
