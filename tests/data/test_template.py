import pytest

from promptopt.data.template import Template, as_template


def test_fields_are_ordered_and_unique():
    template = Template("{premise} Question: {hypothesis}? {premise}")
    assert template.fields == ("premise", "hypothesis")


def test_format_fills_fields_and_ignores_extra_columns():
    template = Template("{sentence} It was")
    assert template.format({"sentence": "A gem.", "label": "1"}) == "A gem. It was"
    assert template({"sentence": "Bad."}) == "Bad. It was"


def test_double_braces_are_literal_braces():
    template = Template("{{json}} {text} }}{{")
    assert template.fields == ("text",)
    assert template.format({"text": "x"}) == "{json} x }{"


def test_field_names_are_plain_keys_and_format_specs_apply():
    template = Template("{a.b}|{c[0]}|{score:.2f}|{name!r}")
    record = {"a.b": "dot", "c[0]": "bracket", "score": 0.5, "name": "n"}
    assert template.format(record) == "dot|bracket|0.50|'n'"


def test_template_without_field_is_rejected():
    with pytest.raises(
        ValueError,
        match=r"Template 'It was' has no text field; put the input column in "
        r"braces, e\.g\. '\{sentence\} It was'",
    ):
        Template("It was")


def test_escaped_braces_alone_do_not_count_as_a_field():
    with pytest.raises(ValueError, match="has no text field"):
        Template("{{sentence}} It was")


def test_missing_field_names_field_and_available_columns():
    template = Template("{sentence} It was")
    with pytest.raises(
        ValueError,
        match=r"needs field 'sentence', but the record has no such column; "
        r"available columns: 'text', 'label'\. Rename the field",
    ):
        template.format({"text": "A gem.", "label": "1"})


def test_none_value_is_rejected():
    with pytest.raises(ValueError, match=r"field 'sentence' is empty \(None\)"):
        Template("{sentence}").format({"sentence": None})


def test_unmatched_brace_is_explained():
    with pytest.raises(ValueError, match=r"has an unmatched brace .*write '\{\{' or '\}\}'"):
        Template("{sentence} It was }")
    with pytest.raises(ValueError, match="has an unmatched brace"):
        Template("{sentence")


def test_positional_fields_are_rejected():
    with pytest.raises(ValueError, match=r"has a positional field '\{\}'; name every field"):
        Template("{} It was")
    with pytest.raises(ValueError, match=r"has a positional field '\{0\}'"):
        Template("{0} It was")


def test_nested_format_spec_is_rejected():
    with pytest.raises(ValueError, match="nested fields are not supported"):
        Template("{score:{width}}")


def test_non_string_template_is_a_type_error():
    with pytest.raises(TypeError, match="Template text must be a str, got int"):
        Template(3)


def test_equality_hash_and_as_template():
    template = Template("{sentence} It was")
    assert template == Template("{sentence} It was")
    assert template != Template("{sentence} It is")
    assert len({template, Template("{sentence} It was")}) == 1
    assert as_template(template) is template
    assert as_template("{x}") == Template("{x}")
    assert str(template) == "{sentence} It was"
    assert repr(template) == "Template('{sentence} It was')"
    with pytest.raises(TypeError, match="Expected a Template or a str, got list"):
        as_template(["{x}"])
