"""Text-to-text data (source -> target), e.g. E2E table-to-text.

E2E (Novikova et al., 2017) pairs a restaurant meaning representation (MR)
such as "name[Alimentum], area[city centre], familyFriendly[no]" with several
human references. Prefix-tuning (Li and Liang, 2021) feeds the model a
linearized MR ("name : Alimentum | area : city centre | ...") and scores the
output against all references of that MR, which is why references stay
grouped by MR here and why train and validation are split by MR.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Iterable, Mapping, Sequence

import numpy as np

from promptopt.data.table_reader import read_table

__all__ = [
    "GenerationData",
    "load_generation_file",
    "load_e2e",
    "parse_mr",
    "linearize_mr",
]


@dataclasses.dataclass(eq=False)
class GenerationData:
    """N (source, target) text pairs, with every reference of each source.

    Args:
        sources: N input texts (what the model is conditioned on).
        targets: N target texts (what it is trained to produce; teacher
            forcing uses one target per row).
        references: None, or N lists, `references[i]` holding every acceptable
            output for `sources[i]` (multi-reference BLEU/ROUGE), including
            `targets[i]`.

    Example:

    >>> data = GenerationData(
    ...     sources=["name: Aromi", "name: Aromi"],
    ...     targets=["Aromi is a place.", "There is Aromi."],
    ...     references=[["Aromi is a place.", "There is Aromi."]] * 2,
    ... )
    >>> grouped = data.grouped()
    >>> len(data), len(grouped), grouped.references[0]
    (2, 1, ['Aromi is a place.', 'There is Aromi.'])
    """

    sources: list[str]
    targets: list[str]
    references: list[list[str]] | None = None

    def __post_init__(self):
        self.sources = list(self.sources)
        self.targets = list(self.targets)
        if len(self.sources) != len(self.targets):
            raise ValueError(
                f"Got {len(self.sources)} sources but {len(self.targets)} "
                "targets; pass exactly one target per source."
            )
        for name, texts in (("sources", self.sources), ("targets", self.targets)):
            for index, text in enumerate(texts):
                if not isinstance(text, str):
                    raise TypeError(
                        f"{name}[{index}] is a {type(text).__name__}, not a str; "
                        "pass text."
                    )
        if self.references is not None:
            self.references = [list(refs) for refs in self.references]
            if len(self.references) != len(self.sources):
                raise ValueError(
                    f"Got {len(self.references)} reference lists for "
                    f"{len(self.sources)} sources; pass one list per source, or "
                    "references=None."
                )
            for index, refs in enumerate(self.references):
                if not refs or not all(isinstance(r, str) for r in refs):
                    raise ValueError(
                        f"references[{index}] must be a non-empty list of str; "
                        "give at least the target itself."
                    )

    def __len__(self) -> int:
        return len(self.sources)

    def grouped(self) -> "GenerationData":
        """One row per distinct source, in order of first appearance.

        The row's target is the source's first target; its references are all
        of the source's targets (plus any given references), without repeats.
        Use this for evaluation, so each input is generated for once.
        """
        order: list[str] = []
        collected: dict[str, list[str]] = {}
        for index, (source, target) in enumerate(zip(self.sources, self.targets)):
            if source not in collected:
                order.append(source)
                collected[source] = []
            extra = self.references[index] if self.references is not None else []
            for text in [target, *extra]:
                if text not in collected[source]:
                    collected[source].append(text)
        return GenerationData(
            sources=order,
            targets=[collected[s][0] for s in order],
            references=[collected[s] for s in order],
        )

    def select(self, indices: Sequence[int] | np.ndarray) -> "GenerationData":
        """Returns the rows at `indices`, in that order."""
        indices = [int(i) for i in np.asarray(indices, dtype=np.int64).reshape(-1)]
        return GenerationData(
            sources=[self.sources[i] for i in indices],
            targets=[self.targets[i] for i in indices],
            references=(
                None if self.references is None else [self.references[i] for i in indices]
            ),
        )

    def subset(self, n: int, seed: int) -> "GenerationData":
        """Draws `n` rows without replacement (file order kept), seeded."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"subset size n must be a positive integer, got {n!r}.")
        if n > len(self):
            raise ValueError(
                f"Cannot draw {n} rows from a data set of {len(self)}; ask for "
                f"at most {len(self)}."
            )
        rng = np.random.default_rng(seed)
        return self.select(np.sort(rng.choice(len(self), size=int(n), replace=False)))

    @classmethod
    def from_pairs(
        cls, pairs: Iterable[tuple[str, str]], source: str | None = None
    ) -> "GenerationData":
        """Builds pair rows, with `references[i]` = every target of `sources[i]`."""
        pairs = list(pairs)
        if not pairs:
            where = f" in {source!r}" if source else ""
            raise ValueError(
                f"No examples{where}: there are zero (source, target) pairs; "
                "pass at least one row (check that the file has data rows "
                "below its header)."
            )
        by_source: dict[str, list[str]] = {}
        for src, tgt in pairs:
            by_source.setdefault(src, []).append(tgt)
        return cls(
            sources=[src for src, _ in pairs],
            targets=[tgt for _, tgt in pairs],
            references=[list(by_source[src]) for src, _ in pairs],
        )


def _column(record: Mapping[str, str], column: str, index: int, path, fix: str) -> str:
    if column not in record:
        available = ", ".join(repr(str(k)) for k in record) or "(none)"
        raise ValueError(
            f"Record {index} in {str(path)!r} has no column {column!r}; "
            f"available columns: {available}. {fix}"
        )
    return record[column]


def load_generation_file(
    path: str | os.PathLike,
    source_column: str,
    target_column: str,
    format: str | None = None,
    column_names: Sequence[str] | None = None,
) -> GenerationData:
    """Reads (source, target) pairs from a CSV/TSV/JSONL file.

    Every row becomes one pair; rows sharing a source share their references
    (all of that source's targets). Call `.grouped()` for one row per source.

    Args:
        path: the data file.
        source_column: the column with the input text.
        target_column: the column with the output text.
        format: "csv", "tsv" or "jsonl"; inferred from the extension if None.
        column_names: column names for a headerless CSV/TSV file.

    Example:

    >>> data = load_generation_file("pairs.jsonl", "question", "answer")  # doctest: +SKIP
    """
    records = read_table(path, format=format, column_names=column_names)
    pairs = [
        (
            _column(record, source_column, index, path, "Pass source_column= naming the input column."),
            _column(record, target_column, index, path, "Pass target_column= naming the output column."),
        )
        for index, record in enumerate(records)
    ]
    return GenerationData.from_pairs(pairs, source=str(path))


_MR_SLOT = re.compile(r"\s*([^\[\],]+?)\s*\[([^\]]*)\]\s*(?:,|$)")


def parse_mr(mr: str) -> list[tuple[str, str]]:
    """Splits an E2E meaning representation into (slot, value) pairs.

    >>> parse_mr("name[The Eagle], food[French]")
    [('name', 'The Eagle'), ('food', 'French')]
    """
    slots = []
    position = 0
    text = mr.strip()
    while position < len(text):
        match = _MR_SLOT.match(text, position)
        if match is None:
            raise ValueError(
                f"Cannot parse meaning representation {mr!r} at character "
                f"{position}; E2E MRs look like 'name[Alimentum], area[city centre]'."
            )
        slots.append((match.group(1), match.group(2).strip()))
        position = match.end()
    if not slots:
        raise ValueError(
            f"Meaning representation {mr!r} is empty; E2E MRs look like "
            "'name[Alimentum], area[city centre]'."
        )
    return slots


def linearize_mr(mr: str, slot_separator: str = " | ", value_separator: str = " : ") -> str:
    """Turns an E2E MR into the flat text that prefix-tuning feeds the model.

    Li and Liang (2021) write "name : Alimentum | area : city centre"; the
    separators can be changed.

    >>> linearize_mr("name[Alimentum], area[city centre], familyFriendly[no]")
    'name : Alimentum | area : city centre | familyFriendly : no'
    """
    return slot_separator.join(
        f"{slot}{value_separator}{value}" for slot, value in parse_mr(mr)
    )


def load_e2e(
    path: str | os.PathLike,
    valid_fraction: float = 0.1,
    seed: int = 0,
    linearize: bool = True,
) -> tuple[GenerationData, GenerationData]:
    """Loads an E2E CSV (header `mr,ref`) and splits it by MR.

    Every MR, with all of its references, goes either to train or to
    validation, so no validation input is seen in training. Train keeps one
    row per (MR, reference) pair, for teacher forcing; validation is grouped
    (`GenerationData.grouped`): one row per MR with all its references, for
    multi-reference scoring.

    Args:
        path: e.g. `e2e/devset.csv` or `trainset.csv`.
        valid_fraction: the fraction of distinct MRs put in validation, in
            (0, 1); at least one MR goes to each side.
        seed: seed of `np.random.default_rng` for the MR split.
        linearize: if True the sources are `linearize_mr(mr)`, otherwise the
            raw MR strings.

    Returns:
        (train, validation) `GenerationData`.

    Example:

    >>> train, valid = load_e2e("e2e/devset.csv", valid_fraction=0.1)  # doctest: +SKIP
    """
    if not isinstance(valid_fraction, (int, float)) or not 0.0 < valid_fraction < 1.0:
        raise ValueError(
            f"valid_fraction must lie strictly between 0 and 1, got "
            f"{valid_fraction!r}; e.g. 0.1 puts 10% of the MRs in validation."
        )
    records = read_table(path)
    pairs = []
    for index, record in enumerate(records):
        fix = "An E2E file needs the header 'mr,ref'; for other files use load_generation_file."
        mr = _column(record, "mr", index, path, fix).strip()
        ref = _column(record, "ref", index, path, fix)
        pairs.append((mr, ref))
    mrs = list(dict.fromkeys(mr for mr, _ in pairs))  # Unique, in file order.
    if len(mrs) < 2:
        raise ValueError(
            f"{str(path)!r} has {len(mrs)} distinct MR; a train/validation split "
            "by MR needs at least 2."
        )
    n_valid = min(max(1, int(round(valid_fraction * len(mrs)))), len(mrs) - 1)
    rng = np.random.default_rng(seed)
    valid_mrs = {mrs[i] for i in rng.permutation(len(mrs))[:n_valid]}
    to_source = linearize_mr if linearize else (lambda mr: mr)
    train = [(to_source(mr), ref) for mr, ref in pairs if mr not in valid_mrs]
    valid = [(to_source(mr), ref) for mr, ref in pairs if mr in valid_mrs]
    return (
        GenerationData.from_pairs(train, source=str(path)),
        GenerationData.from_pairs(valid, source=str(path)).grouped(),
    )
