import csv
import json

import pytest

from promptopt.data.table_reader import infer_table_format, read_table

ROWS = [
    {"sentence": 'He said "wow", then left.', "label": "1"},
    {"sentence": "Commas, quotes and\ttabs", "label": "0"},
    {"sentence": "Ünïcödé ✓", "label": "10"},
]


def write_csv(path, rows, delimiter=",", header=True, **kwargs):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter, **kwargs)
        if header:
            writer.writerow(rows[0].keys())
        for row in rows:
            writer.writerow(row.values())


def test_csv_round_trip(tmp_path):
    path = tmp_path / "data.csv"
    write_csv(path, ROWS)
    assert read_table(path) == ROWS


def test_tsv_round_trip_keeps_bare_quotes(tmp_path):
    # GLUE/SST-2 TSVs are unquoted and contain bare '"' characters.
    rows = [{"sentence": 'a "quoted" word', "label": "1"}, {"sentence": '" alone', "label": "0"}]
    path = tmp_path / "data.tsv"
    path.write_text("sentence\tlabel\n" + "".join(f"{r['sentence']}\t{r['label']}\n" for r in rows))
    assert read_table(path) == rows


@pytest.mark.parametrize("suffix", [".jsonl", ".json-lines", ".ndjson"])
def test_jsonl_round_trip(tmp_path, suffix):
    path = tmp_path / f"data{suffix}"
    path.write_text("\n".join(json.dumps(row, ensure_ascii=False) for row in ROWS) + "\n\n")
    assert read_table(path) == ROWS


def test_jsonl_scalars_become_json_text(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"label": 1, "ok": true, "p": 0.5, "refs": ["a", "b"]}\n')
    assert read_table(path) == [{"label": "1", "ok": "true", "p": "0.5", "refs": '["a", "b"]'}]


def test_headerless_csv_with_column_names(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text('3,"good, but long"\n0,awful\n')
    rows = read_table(path, column_names=["label", "text"])
    assert rows == [{"label": "3", "text": "good, but long"}, {"label": "0", "text": "awful"}]


def test_format_argument_overrides_extension_and_bom_is_dropped(tmp_path):
    path = tmp_path / "data.txt"
    path.write_bytes("\ufeffsentence\tlabel\nfine\t1\n".encode("utf-8"))
    assert read_table(path, format="TSV") == [{"sentence": "fine", "label": "1"}]


def test_blank_lines_and_crlf_are_handled(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,b\r\n1,2\r\n\r\n3,4\r\n\r\n")
    assert read_table(path) == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]


def test_infer_format():
    assert infer_table_format("x/DATA.CSV") == "csv"
    assert infer_table_format("a.tsv") == "tsv"
    assert infer_table_format("a.json-lines") == "jsonl"


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No such data file: '.*nope\.csv'; check the path"):
        read_table(tmp_path / "nope.csv")


def test_folder_instead_of_file(tmp_path):
    folder = tmp_path / "data.csv"
    folder.mkdir()
    with pytest.raises(ValueError, match=r"is a folder, not a data file"):
        read_table(folder)


def test_unknown_extension(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_text("a\n1\n")
    with pytest.raises(
        ValueError,
        match=r"Cannot tell the format of '.*data\.xlsx' from its extension '\.xlsx'; "
        r"known extensions: .*Pass format='csv', 'tsv' or 'jsonl'\.",
    ):
        read_table(path)


def test_unknown_format_argument(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("a\n1\n")
    with pytest.raises(ValueError, match=r"Unknown table format 'parquet'; use one of csv, tsv, jsonl\."):
        read_table(path, format="parquet")


def test_malformed_json_line_gives_line_number(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"a": "1"}\n\n{"a": "2",}\n')
    with pytest.raises(ValueError, match=r"Line 3 of '.*data\.jsonl' is not valid JSON \(.*\); a JSONL file needs"):
        read_table(path)


def test_json_line_that_is_not_an_object(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"a": "1"}\n["a", "2"]\n')
    with pytest.raises(ValueError, match=r"Line 2 of .* is a JSON list, not an object"):
        read_table(path)


def test_json_null_gives_line_and_column(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"a": "1", "label": null}\n')
    with pytest.raises(ValueError, match=r"Line 1 of .*: column 'label' is null; fill in a value"):
        read_table(path)


def test_column_names_with_jsonl_is_rejected(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"a": "1"}\n')
    with pytest.raises(ValueError, match=r"column_names= applies only to headerless CSV/TSV files"):
        read_table(path, column_names=["a"])


def test_ragged_row_gives_line_number(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("sentence,label\nfine,1\ntoo, many,0\n")
    with pytest.raises(
        ValueError,
        match=r"Line 3 of '.*data\.csv' has 3 columns but the header has 2 "
        r"\(sentence, label\); quote cells that contain the delimiter ','",
    ):
        read_table(path)


def test_ragged_headerless_row_names_column_names(tmp_path):
    path = tmp_path / "data.tsv"
    path.write_text("1\tgood\n0\n")
    with pytest.raises(ValueError, match=r"Line 2 of .* has 1 columns but the column_names has 2"):
        read_table(path, column_names=["label", "sentence"])


def test_header_without_rows(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("sentence,label\n\n")
    with pytest.raises(
        ValueError,
        match=r"No examples in '.*data\.csv': the file has a header but no rows; "
        r"add at least one data row below the header",
    ):
        read_table(path)


@pytest.mark.parametrize("name", ["data.csv", "data.tsv"])
def test_empty_delimited_file(tmp_path, name):
    path = tmp_path / name
    path.write_text("")
    with pytest.raises(ValueError, match=r"No examples in '.*': the file is empty"):
        read_table(path)
    with pytest.raises(ValueError, match=r"No examples in '.*': the file is empty"):
        read_table(path, column_names=["label", "sentence"])


def test_empty_jsonl_file(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("\n  \n")
    with pytest.raises(ValueError, match=r"No examples in '.*data\.jsonl': the file has no JSON lines"):
        read_table(path)


def test_duplicate_header_column(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("text,text\na,b\n")
    with pytest.raises(ValueError, match=r"The header row of .* names column 'text' twice"):
        read_table(path)
