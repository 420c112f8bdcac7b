"""The LM-BFF 16-shot splits of SST-2, SST-5 and TREC (Gao et al., 2021).

Gao, Fisch and Chen, "Making Pre-trained Language Models Better Few-shot
Learners" (ACL 2021) sample, per seed in {13, 21, 42, 87, 100}, 16 training
and 16 development examples per class; the test set is the original
evaluation set. BBT and most prompt-optimization papers report on these
exact splits, so numbers are comparable.
"""

from __future__ import annotations

import dataclasses
import os
import types
from pathlib import Path
from typing import Mapping

from promptopt.data.classification_data import ClassificationData
from promptopt.data.table_reader import read_table
from promptopt.data.template import Template

__all__ = [
    "FewShotTask",
    "FEWSHOT_TASKS",
    "FEWSHOT_SEEDS",
    "FEWSHOT_SPLITS",
    "DATA_DIR_ENV",
    "get_fewshot_task",
    "default_data_dir",
    "resolve_data_dir",
    "load_fewshot_split",
]

DATA_DIR_ENV = "PROMPTOPT_DATA_DIR"
FEWSHOT_SEEDS = (13, 21, 42, 87, 100)
FEWSHOT_SPLITS = ("train", "dev", "test")
_LMBFF_FOLDER = "lmbff_16shot"


class _ReadOnlyDict(dict):
    """A dict that refuses changes, so shared task specs cannot be edited.

    Unlike `types.MappingProxyType` it pickles and deep-copies.
    """

    def _refuse(self, *args, **kwargs):
        raise TypeError(
            "Task label words are read-only; build a new FewShotTask (e.g. "
            "dataclasses.replace(task, label_words={...})) to change them."
        )

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse
    __ior__ = _refuse

    def __reduce__(self):
        return (_ReadOnlyDict, (dict(self),))


@dataclasses.dataclass(frozen=True)
class FewShotTask:
    """A classification task: its default template and label words.

    Args:
        name: short task name, e.g. "sst2".
        template: the default template string; its fields are column names
            of the task's files (all built-in tasks call the text "sentence").
        classes: the label values in class-id order, as written in the files.
        label_words: class name -> tuple of label words (each with its leading
            space, as the model sees a word after the template text). A
            verbalizer scores these at the last position.
        class_names: human-readable names of the classes, in class-id order.
        folder: the task's folder under `lmbff_16shot/`, or None for tasks
            that are not loaded from there.
        file_format: "csv" or "tsv".
        column_names: column names for headerless files, or None when the
            files have a header row.
        label_column: the column that holds the label value.

    Example:

    >>> task = FEWSHOT_TASKS["sst2"]
    >>> task.template, task.classes
    ('{sentence} It was', ('0', '1'))
    >>> task.label_words["1"]
    (' great',)
    """

    name: str
    template: str
    classes: tuple[str, ...]
    # A dict is unhashable, so it is left out of the hash (still compared).
    label_words: Mapping[str, tuple[str, ...]] = dataclasses.field(hash=False)
    class_names: tuple[str, ...] = ()
    folder: str | None = None
    file_format: str = "csv"
    column_names: tuple[str, ...] | None = None
    label_column: str = "label"

    def __post_init__(self):
        Template(self.template)  # Fails early on a template with no field.
        words = {str(k): tuple(v) for k, v in dict(self.label_words).items()}
        if set(words) != set(self.classes):
            raise ValueError(
                f"Task {self.name!r}: label_words has keys {sorted(words)} but "
                f"the classes are {list(self.classes)}; give label words for "
                "every class and no others."
            )
        for name, options in words.items():
            if not options or not all(isinstance(w, str) and w for w in options):
                raise ValueError(
                    f"Task {self.name!r}: class {name!r} needs at least one "
                    "non-empty label word, e.g. (' great',)."
                )
        ordered = {name: words[name] for name in self.classes}
        object.__setattr__(self, "label_words", _ReadOnlyDict(ordered))
        if self.class_names and len(self.class_names) != len(self.classes):
            raise ValueError(
                f"Task {self.name!r}: {len(self.class_names)} class_names for "
                f"{len(self.classes)} classes; give one name per class."
            )

    def label_words_list(self) -> list[list[str]]:
        """Label words as a list per class, in class-id order."""
        return [list(self.label_words[name]) for name in self.classes]


# Templates and words follow LM-BFF's manual prompts (their Table 1) in spirit,
# with a leading space on each word, because SmolLM2's byte-level BPE has
# separate tokens for " great" and "great".
FEWSHOT_TASKS: Mapping[str, FewShotTask] = types.MappingProxyType(
    {
        "sst2": FewShotTask(
            name="sst2",
            template="{sentence} It was",
            classes=("0", "1"),
            label_words={"0": (" terrible",), "1": (" great",)},
            class_names=("negative", "positive"),
            folder="SST-2",
            file_format="tsv",
            column_names=None,  # Header row: sentence<TAB>label.
        ),
        "sst5": FewShotTask(
            name="sst5",
            template="{sentence} It was",
            classes=("0", "1", "2", "3", "4"),
            label_words={
                "0": (" terrible",),
                "1": (" bad",),
                "2": (" okay",),
                "3": (" good",),
                "4": (" great",),
            },
            class_names=("very negative", "negative", "neutral", "positive", "very positive"),
            folder="sst-5",
            file_format="csv",
            column_names=("label", "sentence"),
        ),
        "trec": FewShotTask(
            name="trec",
            template="{sentence} Answer type:",
            classes=("0", "1", "2", "3", "4", "5"),
            label_words={
                "0": (" description",),
                "1": (" entity",),
                "2": (" abbreviation",),
                "3": (" human",),
                "4": (" location",),
                "5": (" number",),
            },
            class_names=("description", "entity", "abbreviation", "human", "location", "number"),
            folder="trec",
            file_format="csv",
            column_names=("label", "sentence"),
        ),
    }
)


def get_fewshot_task(task: str | FewShotTask) -> FewShotTask:
    """Looks a task up by name: "sst2", "SST-2", "sst_5", "TREC" all work."""
    if isinstance(task, FewShotTask):
        return task
    key = str(task).lower().replace("-", "").replace("_", "").strip()
    if key not in FEWSHOT_TASKS:
        raise ValueError(
            f"Unknown few-shot task {task!r}; choose one of "
            f"{', '.join(FEWSHOT_TASKS)} (case and '-' do not matter)."
        )
    return FEWSHOT_TASKS[key]


def _candidate_dirs() -> list[tuple[Path, str]]:
    """Default places to look for the data, each with where it came from."""
    repo_root = Path(__file__).resolve().parents[2]
    candidates = [
        (repo_root.parent / "shared" / "data", "<repo>/../shared/data"),
        (Path.cwd().parent / "shared" / "data", "<cwd>/../shared/data"),
    ]
    return candidates


def default_data_dir() -> Path | None:
    """The data folder from $PROMPTOPT_DATA_DIR or `<repo>/../shared/data`.

    Returns None when no such folder exists (tests use this to skip).
    """
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        path = Path(env).expanduser()
        return path if path.is_dir() else None
    for path, _ in _candidate_dirs():
        if path.is_dir():
            return path
    return None


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data folder: `data_dir`, else $PROMPTOPT_DATA_DIR, else defaults.

    Raises FileNotFoundError naming every place it looked.
    """
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"data_dir {str(path)!r} is not a folder; pass the folder that "
                f"holds {_LMBFF_FOLDER}/ (or that folder itself)."
            )
        return path
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"${DATA_DIR_ENV} is {env!r}, which is not a folder; point it at "
                f"the folder that holds {_LMBFF_FOLDER}/ or unset it."
            )
        return path
    looked = []
    for path, origin in _candidate_dirs():
        if path.is_dir():
            return path
        looked.append(f"{path} ({origin})")
    raise FileNotFoundError(
        "Could not find the data folder; looked in: "
        + "; ".join(looked)
        + f". Pass data_dir= or set ${DATA_DIR_ENV} to the folder that holds "
        f"{_LMBFF_FOLDER}/."
    )


def load_fewshot_split(
    task: str | FewShotTask,
    seed: int,
    split: str,
    template: Template | str | None = None,
    data_dir: str | os.PathLike | None = None,
) -> ClassificationData:
    """Loads one LM-BFF 16-shot split as `ClassificationData`.

    Args:
        task: "sst2", "sst5" or "trec" (also "SST-2", "sst-5", ...), or a
            `FewShotTask`.
        seed: the LM-BFF sampling seed, one of 13, 21, 42, 87, 100.
        split: "train" (16 per class), "dev" (16 per class) or "test" (the
            full original evaluation set).
        template: overrides the task's default template.
        data_dir: the folder holding `lmbff_16shot/` (or `lmbff_16shot/`
            itself); defaults to $PROMPTOPT_DATA_DIR, then
            `<repo>/../shared/data`.

    Returns:
        `ClassificationData` whose `classes` are the task's classes, so class
        ids agree across splits and seeds.

    Example:

    >>> train = load_fewshot_split("sst2", seed=42, split="train")  # doctest: +SKIP
    >>> len(train), train.class_counts().tolist()  # doctest: +SKIP
    (32, [16, 16])
    """
    spec = get_fewshot_task(task)
    if spec.folder is None:
        raise ValueError(
            f"Task {spec.name!r} has no LM-BFF folder; it is not one of the "
            f"few-shot tasks {', '.join(FEWSHOT_TASKS)}."
        )
    if split not in FEWSHOT_SPLITS:
        raise ValueError(
            f"Unknown split {split!r}; use one of {', '.join(FEWSHOT_SPLITS)}."
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed not in FEWSHOT_SEEDS:
        raise ValueError(
            f"Unknown LM-BFF seed {seed!r}; the 16-shot splits exist for seeds "
            f"{', '.join(map(str, FEWSHOT_SEEDS))}."
        )
    root = resolve_data_dir(data_dir)
    if (root / _LMBFF_FOLDER).is_dir():
        root = root / _LMBFF_FOLDER
    path = root / spec.folder / f"16-{seed}" / f"{split}.{spec.file_format}"
    if not path.is_file():
        raise FileNotFoundError(
            f"Missing {str(path)!r}; the data folder {str(root)!r} should hold "
            f"{spec.folder}/16-{seed}/{split}.{spec.file_format} (the LM-BFF "
            "k-shot layout). Pass data_dir= pointing at the right folder."
        )
    records = read_table(path, format=spec.file_format, column_names=spec.column_names)
    return ClassificationData.from_records(
        records,
        template if template is not None else spec.template,
        label_column=spec.label_column,
        classes=spec.classes,
        source=str(path),
    )
