"""Text templates that turn a table row into the model's input text."""

from __future__ import annotations

import string
from typing import Any, Mapping

__all__ = ["Template", "as_template"]

_FORMATTER = string.Formatter()


class Template:
    """A text template with named `{field}` slots filled from a table row.

    A template is how a row of a data set becomes the text the frozen model
    reads, for instance LM-BFF's manual template `"{sentence} It was"`, after
    which the model's next-token distribution is read at the last position.
    Field names are column names and are used as dictionary keys verbatim
    (no attribute or index lookup), so a column called `"a.b"` works as
    `{a.b}`. Write `{{` and `}}` for literal braces. A field may carry a
    conversion or a format spec (`{score:.2f}`, `{name!r}`), applied as in
    `str.format`.

    Args:
        text: the template string, e.g. `"{sentence} It was"`. It must name
            at least one field.

    Example:

    >>> template = Template("Review: {sentence} It was")
    >>> template.fields
    ('sentence',)
    >>> template.format({"sentence": "A gem.", "label": "1"})
    'Review: A gem. It was'
    >>> Template("{{literal}} {text}").format({"text": "x"})
    '{literal} x'
    """

    def __init__(self, text: str):
        if not isinstance(text, str):
            raise TypeError(
                f"Template text must be a str, got {type(text).__name__}; "
                "pass a string such as '{sentence} It was'."
            )
        self.text = text
        self._parts = _parse(text)
        fields = []
        for _, field_name, _, _ in self._parts:
            if field_name is not None and field_name not in fields:
                fields.append(field_name)
        if not fields:
            raise ValueError(
                f"Template {text!r} has no text field; put the input column "
                "in braces, e.g. '{sentence} It was'"
            )
        self.fields = tuple(fields)

    def format(self, record: Mapping[str, Any]) -> str:
        """Fills every field from `record` (a mapping of column -> value)."""
        pieces = []
        for literal, field_name, format_spec, conversion in self._parts:
            pieces.append(literal)
            if field_name is None:
                continue
            if field_name not in record:
                available = ", ".join(repr(str(k)) for k in record) or "(none)"
                raise ValueError(
                    f"Template {self.text!r} needs field {field_name!r}, but "
                    f"the record has no such column; available columns: "
                    f"{available}. Rename the field in the template or the "
                    "column in the data."
                )
            value = record[field_name]
            if value is None:
                raise ValueError(
                    f"Template {self.text!r}: field {field_name!r} is empty "
                    "(None) in the record; fill in the value or drop the row."
                )
            if conversion:
                value = _FORMATTER.convert_field(value, conversion)
            pieces.append(format(value, format_spec) if format_spec else str(value))
        return "".join(pieces)

    def __call__(self, record: Mapping[str, Any]) -> str:
        return self.format(record)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Template) and other.text == self.text

    def __hash__(self) -> int:
        return hash((Template, self.text))

    def __repr__(self) -> str:
        return f"Template({self.text!r})"

    def __str__(self) -> str:
        return self.text


def as_template(template: "Template | str") -> Template:
    """Returns `template` itself, or a `Template` built from a string."""
    if isinstance(template, Template):
        return template
    if isinstance(template, str):
        return Template(template)
    raise TypeError(
        f"Expected a Template or a str, got {type(template).__name__}; pass "
        "a string such as '{sentence} It was'."
    )


def _parse(text: str) -> list[tuple[str, str | None, str, str | None]]:
    """Splits `text` with `string.Formatter` into (literal, field, spec, conv)."""
    try:
        parts = list(_FORMATTER.parse(text))
    except ValueError as error:
        raise ValueError(
            f"Template {text!r} has an unmatched brace ({error}); write '{{{{' "
            "or '}}' for a literal brace, and '{column}' for a field."
        ) from None
    for _, field_name, format_spec, _ in parts:
        if field_name is None:
            continue
        if field_name == "" or field_name.isdigit():
            raise ValueError(
                f"Template {text!r} has a positional field '{{{field_name}}}'; "
                "name every field after a column, e.g. '{sentence}'."
            )
        if format_spec and "{" in format_spec:
            raise ValueError(
                f"Template {text!r} nests a field inside the format spec of "
                f"{{{field_name}}}; nested fields are not supported, write a "
                "fixed format spec such as '{score:.2f}'."
            )
    return [
        (literal, field_name, format_spec or "", conversion)
        for literal, field_name, format_spec, conversion in parts
    ]
