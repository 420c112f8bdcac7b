"""Parses label words given as text (`--label-words`) or as a mapping."""

import json


def parse_label_words(text, template_text=""):
    """`'0=terrible,1=great'` or a JSON object -> `{class: [words]}`.

    In the `k=v` form, several words for a class are joined with `|`
    (`'1=great|good'`). When the template does not end in whitespace, a
    leading space is added to each word: byte-level BPE vocabularies encode
    a word after a space (" great") differently from the bare word. The
    JSON form, and a mapping (from a JSON config file), are taken verbatim.
    """
    if isinstance(text, dict):
        return {str(k): [v] if isinstance(v, str) else list(v) for k, v in text.items()}
    text = text.strip()
    if text.startswith("{"):
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(
                f"--label-words is not valid JSON ({e}). Use "
                "'{\"0\": \" terrible\", \"1\": \" great\"}' or '0=terrible,1=great'."
            ) from None
        return {
            str(k): [v] if isinstance(v, str) else list(v)
            for k, v in mapping.items()
        }
    space = "" if template_text[-1:].isspace() else " "
    mapping = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in item:
            raise ValueError(
                f"--label-words entry {item!r} has no '='. Write "
                "class=word pairs, e.g. '0=terrible,1=great'."
            )
        label, words = item.split("=", 1)
        mapping[label.strip()] = [
            space + w.strip() for w in words.split("|") if w.strip()
        ]
    if not mapping:
        raise ValueError(
            "--label-words is empty. Give class=word pairs, e.g. "
            "'0=terrible,1=great'."
        )
    return mapping
