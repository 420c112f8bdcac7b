"""What the prompt is tuned for: classification by verbalizer, generation."""

from promptopt.tasks.classification import VerbalizerClassification
from promptopt.tasks.language_modeling import LanguageModeling
from promptopt.tasks.losses import classification_loss
from promptopt.tasks.text_encoder import TextEncoder
from promptopt.tasks.verbalizer import LabelWordError
from promptopt.tasks.verbalizer import Verbalizer

TASKS = {
    VerbalizerClassification.name: VerbalizerClassification,
    LanguageModeling.name: LanguageModeling,
}


def serialize_task(task):
    return {"name": task.name, "config": task.get_config()}


def deserialize_task(config):
    return TASKS[config["name"]].from_config(config["config"])


__all__ = [
    "LabelWordError",
    "LanguageModeling",
    "TASKS",
    "TextEncoder",
    "Verbalizer",
    "VerbalizerClassification",
    "classification_loss",
    "deserialize_task",
    "serialize_task",
]
