"""Tokenizer configs that survive keras-hub 0.32's round-trip bugs."""

import keras
import keras_hub


def serialize_tokenizer(tokenizer):
    """A keras-hub tokenizer -> a JSON-able config (None stays None)."""
    if tokenizer is None:
        return None
    config = keras.saving.serialize_keras_object(tokenizer)
    if isinstance(tokenizer, keras_hub.models.Llama3Tokenizer):
        # keras-hub 0.32's Llama3Tokenizer does not save its special tokens
        # and would come back with Llama 3's, which SmolLM2 lacks.
        misc = sorted(
            value
            for name, value in vars(tokenizer).items()
            if name.startswith("special_token_") and isinstance(value, str)
        )
        config["config"].update(
            bos_token=tokenizer.start_token,
            eos_token=tokenizer.end_token,
            misc_special_tokens=misc,
        )
    return config


def deserialize_tokenizer(config):
    """The inverse of `serialize_tokenizer`."""
    if config is None:
        return None
    config = {**config, "config": dict(config["config"])}
    if isinstance(config["config"].get("misc_special_tokens"), list):
        config["config"]["misc_special_tokens"] = set(
            config["config"]["misc_special_tokens"]
        )
    return keras.saving.deserialize_keras_object(config)
