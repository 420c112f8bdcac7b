"""Classification examples: templated texts with integer class labels."""

from __future__ import annotations

import dataclasses
import math
import os
import re
from typing import Iterable, Mapping, Sequence

import numpy as np

from promptopt.data.table_reader import read_table
from promptopt.data.template import Template, as_template

__all__ = ["ClassificationData", "load_classification_file", "sort_class_names"]


@dataclasses.dataclass(eq=False)
class ClassificationData:
    """N classification examples, already rendered through a template.

    Args:
        texts: N input texts, each the template filled from one row (what the
            frozen model reads; the prompt is added later by the model side).
        labels: int64 array [N] of class indices into `classes`.
        classes: C class names; the index of a name is its class id. These are
            the label values found in the data ("0", "1", ...), which a
            verbalizer maps to label words.

    Example:

    >>> data = ClassificationData.from_records(
    ...     [{"sentence": "A gem.", "label": "1"},
    ...      {"sentence": "A mess.", "label": "0"}],
    ...     template="{sentence} It was",
    ...     label_column="label",
    ...     classes=("0", "1"),
    ... )
    >>> data.texts
    ['A gem. It was', 'A mess. It was']
    >>> data.labels.tolist(), len(data)
    ([1, 0], 2)
    """

    texts: list[str]
    labels: np.ndarray
    classes: tuple[str, ...]

    def __post_init__(self):
        self.texts = list(self.texts)
        self.classes = tuple(str(name) for name in self.classes)
        for index, text in enumerate(self.texts):
            if not isinstance(text, str):
                raise TypeError(
                    f"texts[{index}] is a {type(text).__name__}, not a str; "
                    "format every example to text first (see Template)."
                )
        labels = np.asarray(self.labels)
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"labels must be integer class indices, got dtype {labels.dtype}; "
                "map label values to indices, e.g. with "
                "ClassificationData.from_records."
            )
        if labels.ndim != 1:
            raise ValueError(
                f"labels must have shape [N], got {labels.shape}; pass one "
                "class index per text."
            )
        self.labels = labels.astype(np.int64)
        if len(self.texts) != len(self.labels):
            raise ValueError(
                f"Got {len(self.texts)} texts but {len(self.labels)} labels; "
                "pass exactly one label per text."
            )
        if not self.classes:
            raise ValueError(
                "classes is empty; pass the class names, e.g. classes=('0', '1')."
            )
        if len(set(self.classes)) != len(self.classes):
            duplicates = sorted({c for c in self.classes if self.classes.count(c) > 1})
            raise ValueError(
                f"classes lists {duplicates} more than once; give each class "
                "exactly once."
            )
        if len(self.labels):
            low, high = int(self.labels.min()), int(self.labels.max())
            if low < 0 or high >= len(self.classes):
                bad = low if low < 0 else high
                raise ValueError(
                    f"Label index {bad} is outside the {len(self.classes)} "
                    f"classes {self.classes}; labels must lie in "
                    f"[0, {len(self.classes) - 1}]."
                )

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def num_classes(self) -> int:
        """C, the number of classes."""
        return len(self.classes)

    def class_counts(self) -> np.ndarray:
        """int64 [C]: how many examples each class has."""
        return np.bincount(self.labels, minlength=self.num_classes).astype(np.int64)

    def select(self, indices: Sequence[int] | np.ndarray) -> "ClassificationData":
        """Returns the examples at `indices` (in that order), same classes."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        return ClassificationData(
            texts=[self.texts[i] for i in indices],
            labels=self.labels[indices],
            classes=self.classes,
        )

    def subset(self, n: int, seed: int) -> "ClassificationData":
        """Draws `n` examples without replacement, keeping their file order.

        The draw uses `np.random.default_rng(seed)`, so the same seed gives the
        same subset and no global random state is touched.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"subset size n must be a positive integer, got {n!r}.")
        if n > len(self):
            raise ValueError(
                f"Cannot draw {n} examples from a data set of {len(self)}; ask "
                f"for at most {len(self)}."
            )
        rng = np.random.default_rng(seed)
        return self.select(np.sort(rng.choice(len(self), size=int(n), replace=False)))

    @classmethod
    def from_records(
        cls,
        records: Iterable[Mapping[str, str]],
        template: Template | str,
        label_column: str = "label",
        classes: Sequence[str] | None = None,
        source: str | None = None,
    ) -> "ClassificationData":
        """Builds the data from rows (column -> value), e.g. from `read_table`.

        Args:
            records: rows, each a mapping that has the template's fields and
                `label_column`.
            template: a `Template` or template string, e.g. "{sentence} It was".
            label_column: the column that holds the label value.
            classes: the class names, in class-id order. If None, the sorted
                unique label values (numbers sort by value, see
                `sort_class_names`). Label values are compared after
                stripping surrounding whitespace.
            source: where the records came from, used in error messages.
        """
        template = as_template(template)
        records = list(records)
        where = f" in {source!r}" if source else ""
        if not records:
            raise ValueError(
                f"No examples{where}: there are zero records; pass at least one "
                "row (check that the file has data rows below its header)."
            )
        values = []
        for index, record in enumerate(records):
            if label_column not in record:
                available = ", ".join(repr(str(k)) for k in record) or "(none)"
                raise ValueError(
                    f"Record {index}{where} has no label column {label_column!r}; "
                    f"available columns: {available}. Pass label_column= naming "
                    "the column that holds the labels."
                )
            value = record[label_column]
            if value is None:
                raise ValueError(
                    f"Record {index}{where} has an empty (None) label in column "
                    f"{label_column!r}; fill it in or drop the row."
                )
            values.append(str(value).strip())
        if classes is None:
            classes = sort_class_names(set(values))
        classes = tuple(str(name).strip() for name in classes)
        index_of = {name: i for i, name in enumerate(classes)}
        labels = np.empty(len(records), dtype=np.int64)
        texts = []
        for index, (record, value) in enumerate(zip(records, values)):
            if value not in index_of:
                raise ValueError(
                    f"Label {value!r} of record {index}{where} is not a known "
                    f"class; known classes: {classes}. Add it to classes= or fix "
                    "the data."
                )
            labels[index] = index_of[value]
            try:
                texts.append(template.format(record))
            except ValueError as error:
                raise ValueError(f"Record {index}{where}: {error}") from None
        return cls(texts=texts, labels=labels, classes=classes)


def sort_class_names(values: Iterable[str]) -> tuple[str, ...]:
    """Sorts label values so that numbers go by value: "2" before "10".

    If every value is a number (including "-1" or "0.5"), they sort by value;
    otherwise by a natural order that compares runs of digits as integers
    ("class2" before "class10").
    """
    values = sorted({str(v) for v in values})  # Deterministic tie-breaks.
    numbers = [_as_number(v) for v in values]
    if all(n is not None for n in numbers):
        return tuple(v for _, v in sorted(zip(numbers, values)))
    return tuple(sorted(values, key=_natural_key))


def _as_number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return None if math.isnan(number) else number


def _natural_key(value: str) -> tuple:
    # re.split with a capturing group alternates text, digits, text, ...; so
    # the key's element types line up and tuples always compare.
    parts = re.split(r"(\d+)", value)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


def load_classification_file(
    path: str | os.PathLike,
    template: Template | str,
    label_column: str = "label",
    classes: Sequence[str] | None = None,
    format: str | None = None,
    column_names: Sequence[str] | None = None,
) -> ClassificationData:
    """Reads a CSV/TSV/JSONL file into `ClassificationData`.

    Args:
        path: the data file.
        template: a `Template` or template string over the file's columns.
        label_column: the column with the label values.
        classes: class names in class-id order; None sorts the unique label
            values found in this file (numbers by value). Pass them explicitly
            when a split may miss a class, so ids agree across splits.
        format: "csv", "tsv" or "jsonl"; inferred from the extension if None.
        column_names: column names for a headerless CSV/TSV file.

    Example:

    >>> train = load_classification_file(  # doctest: +SKIP
    ...     "train.csv", "{sentence} It was", column_names=["label", "sentence"])
    """
    records = read_table(path, format=format, column_names=column_names)
    return ClassificationData.from_records(
        records, template, label_column=label_column, classes=classes, source=str(path)
    )
