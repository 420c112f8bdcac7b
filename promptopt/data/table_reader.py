"""Reads a user's CSV, TSV or JSONL file into a list of rows (`dict`s of str)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Sequence

__all__ = ["read_table", "infer_table_format", "TABLE_FORMATS"]

# Extension -> format. JSON Lines goes by several names in the wild.
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".json-lines": "jsonl",
    ".jsonlines": "jsonl",
    ".ndjson": "jsonl",
}
TABLE_FORMATS = ("csv", "tsv", "jsonl")


def infer_table_format(path: str | os.PathLike) -> str:
    """Returns "csv", "tsv" or "jsonl" from the extension of `path`."""
    suffix = Path(path).suffix.lower()
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    known = ", ".join(_EXTENSIONS)
    raise ValueError(
        f"Cannot tell the format of {str(path)!r} from its extension "
        f"{suffix or '(none)'!r}; known extensions: {known}. Pass "
        "format='csv', 'tsv' or 'jsonl'."
    )


def read_table(
    path: str | os.PathLike,
    format: str | None = None,
    column_names: Sequence[str] | None = None,
    encoding: str = "utf-8-sig",
) -> list[dict[str, str]]:
    """Reads a table of examples, one `dict` (column -> text) per row.

    CSV and TSV files have a header row unless `column_names` is given, in
    which case every line is data (LM-BFF's TREC and SST-5 files are
    headerless `label,text`). TSV is read without quoting, as GLUE-style files
    (SST-2) contain bare `"` characters. JSONL holds one JSON object per line;
    its numbers and booleans become their JSON text (`1` -> "1",
    `true` -> "true"), lists and objects become JSON strings, and a `null`
    is an error. Blank lines are skipped. The default encoding, `utf-8-sig`,
    also drops the byte-order mark that spreadsheet programs write.

    Args:
        path: the file to read.
        format: "csv", "tsv" or "jsonl"; inferred from the extension
            (.csv, .tsv, .jsonl, .json-lines, .jsonlines, .ndjson) if None.
        column_names: names for the columns of a headerless CSV/TSV file.
        encoding: the text encoding of the file.

    Returns:
        A list of N rows, each a `dict[str, str]` keyed by column name.

    Example:

    >>> rows = read_table("reviews.csv")  # doctest: +SKIP
    >>> rows[0]  # doctest: +SKIP
    {'sentence': 'A gem.', 'label': '1'}
    >>> read_table("train.csv", column_names=["label", "sentence"])  # doctest: +SKIP
    """
    path = Path(path)
    if format is None:
        format = infer_table_format(path)
    else:
        format = str(format).lower().lstrip(".")
        format = {"json-lines": "jsonl", "jsonlines": "jsonl", "ndjson": "jsonl"}.get(
            format, format
        )
        if format not in TABLE_FORMATS:
            raise ValueError(
                f"Unknown table format {format!r}; use one of "
                f"{', '.join(TABLE_FORMATS)}."
            )
    if not path.exists():
        raise FileNotFoundError(
            f"No such data file: {str(path)!r}; check the path (relative paths "
            f"start at {os.getcwd()!r})."
        )
    if path.is_dir():
        raise ValueError(
            f"{str(path)!r} is a folder, not a data file; pass the path of a "
            ".csv, .tsv or .jsonl file inside it."
        )
    if format == "jsonl":
        if column_names is not None:
            raise ValueError(
                "column_names= applies only to headerless CSV/TSV files; JSONL "
                "rows already name their columns, so leave column_names=None."
            )
        return _read_jsonl(path, encoding)
    return _read_delimited(path, format, column_names, encoding)


def _read_delimited(
    path: Path, format: str, column_names: Sequence[str] | None, encoding: str
) -> list[dict[str, str]]:
    if format == "tsv":
        dialect = dict(delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        dialect = dict(delimiter=",")
    rows = []
    with open(path, newline="", encoding=encoding) as handle:
        reader = csv.reader(handle, **dialect)
        header = None
        if column_names is not None:
            header = [str(name) for name in column_names]
            _check_header(header, path, "column_names")
        for cells in reader:
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # Blank line.
            if header is None:
                header = [cell.strip() for cell in cells]
                _check_header(header, path, "header row")
                continue
            if len(cells) != len(header):
                raise ValueError(
                    f"Line {reader.line_num} of {str(path)!r} has {len(cells)} "
                    f"columns but the {'column_names' if column_names is not None else 'header'} "
                    f"has {len(header)} ({', '.join(header)}); quote cells that "
                    f"contain the delimiter {dialect['delimiter']!r}, or fix the row."
                )
            rows.append(dict(zip(header, cells)))
    if not rows:
        if header is None or column_names is not None:
            raise ValueError(
                f"No examples in {str(path)!r}: the file is empty; add data "
                "rows (and a header row unless you pass column_names=)."
            )
        raise ValueError(
            f"No examples in {str(path)!r}: the file has a header but no rows; "
            "add at least one data row below the header (or, for a headerless "
            "file, pass column_names= so the first line is read as data)."
        )
    return rows


def _check_header(header: list[str], path: Path, what: str) -> None:
    seen = set()
    for name in header:
        if name in seen:
            raise ValueError(
                f"The {what} of {str(path)!r} names column {name!r} twice; "
                "give every column a distinct name."
            )
        seen.add(name)


def _read_jsonl(path: Path, encoding: str) -> list[dict[str, str]]:
    rows = []
    with open(path, encoding=encoding) as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"Line {line_number} of {str(path)!r} is not valid JSON "
                    f"({error.msg} at column {error.colno}); a JSONL file needs "
                    "one complete JSON object per line."
                ) from None
            if not isinstance(record, dict):
                raise ValueError(
                    f"Line {line_number} of {str(path)!r} is a JSON "
                    f"{type(record).__name__}, not an object; write each row as "
                    '{"column": value, ...}.'
                )
            rows.append(
                {
                    str(key): _json_cell(value, key, line_number, path)
                    for key, value in record.items()
                }
            )
    if not rows:
        raise ValueError(
            f"No examples in {str(path)!r}: the file has no JSON lines; add one "
            'JSON object per line, e.g. {"sentence": "A gem.", "label": "1"}.'
        )
    return rows


def _json_cell(value, key: str, line_number: int, path: Path) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        raise ValueError(
            f"Line {line_number} of {str(path)!r}: column {key!r} is null; fill "
            "in a value or drop the row."
        )
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False)
