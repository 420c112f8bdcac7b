"""The data of a tuning run: train/dev/test splits, template and label words."""

import dataclasses

from promptopt.data import demo_task
from promptopt.data import get_fewshot_task
from promptopt.data import load_classification_file
from promptopt.data import load_fewshot_split
from promptopt.data.label_words import parse_label_words


@dataclasses.dataclass
class TaskData:
    """The splits of a classification task, already rendered by its template.

    Args:
        train, dev, test: `ClassificationData` (dev may be None).
        label_words: dict, class name -> list of label words.
        template: str, the template the texts were rendered with.
        description: str, for people ("sst2 16-shot, seed 42").
    """

    train: object
    dev: object
    test: object
    label_words: dict
    template: str
    description: str

    @property
    def classes(self):
        return self.train.classes

    @classmethod
    def from_config(cls, config):
        """The data a `TuneConfig` names: files, a built-in task, or the demo."""
        if config.train or config.dev or config.test:
            missing = [n for n in ("train", "test") if not getattr(config, n)]
            if missing:
                raise ValueError(
                    f"--{missing[0]} is missing: give --train and --test (and "
                    "optionally --dev), or no data arguments for the demo task."
                )
            if not config.template or not config.label_words:
                raise ValueError(
                    "Your own files need --template (e.g. '{sentence} It was') and "
                    "--label-words (e.g. '0=terrible,1=great')."
                )
            label_words = parse_label_words(config.label_words, config.template)
            classes = tuple(label_words)

            def load(path):
                return load_classification_file(
                    path, config.template, label_column=config.label_column, classes=classes
                )

            return cls(load(config.train), load(config.dev) if config.dev else None,
                       load(config.test), label_words, config.template, f"files {config.train}")
        if config.task:
            task = get_fewshot_task(config.task)
            template = config.template or task.template

            def load(split):
                return load_fewshot_split(
                    task, config.fewshot_seed, split, template=template, data_dir=config.data_dir
                )

            label_words = (
                parse_label_words(config.label_words, template)
                if config.label_words
                else {c: list(w) for c, w in task.label_words.items()}
            )
            return cls(load("train"), load("dev"), load("test"), label_words, template,
                       f"{task.name} 16-shot, seed {config.fewshot_seed}")
        train, dev, test, task = demo_task()
        label_words = {c: list(w) for c, w in task.label_words.items()}
        return cls(train, dev, test, label_words, task.template, "built-in demo sentiment task")
