import numpy as np
import pytest

from promptopt.data.classification_data import (
    ClassificationData,
    load_classification_file,
    sort_class_names,
)
from promptopt.data.template import Template

RECORDS = [
    {"sentence": "A gem.", "label": "1"},
    {"sentence": "A mess.", "label": "0"},
    {"sentence": "Fine.", "label": " 1 "},
]


def test_from_records_formats_texts_and_maps_labels():
    data = ClassificationData.from_records(RECORDS, "{sentence} It was", "label", ("0", "1"))
    assert data.texts == ["A gem. It was", "A mess. It was", "Fine. It was"]
    assert data.labels.dtype == np.int64
    assert data.labels.tolist() == [1, 0, 1]
    assert data.classes == ("0", "1")
    assert len(data) == 3
    assert data.num_classes == 2
    assert data.class_counts().tolist() == [1, 2]


def test_explicit_classes_fix_the_ids():
    data = ClassificationData.from_records(RECORDS, Template("{sentence}"), "label", ("1", "0"))
    assert data.labels.tolist() == [0, 1, 0]


def test_classes_inferred_when_none():
    data = ClassificationData.from_records(RECORDS, "{sentence}")
    assert data.classes == ("0", "1")


def test_numeric_aware_class_sort():
    labels = [str(i) for i in range(12)]
    assert sort_class_names(reversed(labels)) == tuple(labels)
    assert sort_class_names(["10", "-1", "2", "0.5"]) == ("-1", "0.5", "2", "10")
    assert sort_class_names(["class10", "class2", "b", "a"]) == ("a", "b", "class2", "class10")
    assert sort_class_names(["pos", "neg", "neg"]) == ("neg", "pos")


def test_inferred_classes_sort_numerically_from_a_file(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("".join(f"{i},text {i}\n" for i in [10, 2, 0, 1, 11, 3, 4, 5, 6, 7, 8, 9]))
    data = load_classification_file(path, "{text}", column_names=["label", "text"])
    assert data.classes == tuple(str(i) for i in range(12))
    assert data.labels.tolist() == [10, 2, 0, 1, 11, 3, 4, 5, 6, 7, 8, 9]
    assert data.texts[0] == "text 10"


def test_unknown_label_lists_value_and_known_classes():
    with pytest.raises(
        ValueError,
        match=r"Label '2' of record 1 is not a known class; known classes: "
        r"\('0', '1'\)\. Add it to classes= or fix the data\.",
    ):
        ClassificationData.from_records(
            [{"s": "a", "label": "1"}, {"s": "b", "label": "2"}], "{s}", classes=("0", "1")
        )


def test_zero_records_is_the_empty_data_error():
    with pytest.raises(ValueError, match=r"No examples: there are zero records; pass at least one row"):
        ClassificationData.from_records([], "{sentence}", "label", ("0", "1"))


def test_missing_label_column():
    with pytest.raises(
        ValueError,
        match=r"Record 0 has no label column 'label'; available columns: 'sentence', "
        r"'polarity'\. Pass label_column=",
    ):
        ClassificationData.from_records([{"sentence": "a", "polarity": "1"}], "{sentence}")


def test_missing_template_field_names_record_and_file(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "a", "label": "1"}\n')
    with pytest.raises(
        ValueError,
        match=r"Record 0 in '.*data\.jsonl': Template '\{sentence\} It was' needs field "
        r"'sentence'.*available columns: 'text', 'label'",
    ):
        load_classification_file(path, "{sentence} It was")


def test_empty_file_error_propagates(tmp_path):
    path = tmp_path / "data.tsv"
    path.write_text("sentence\tlabel\n")
    with pytest.raises(ValueError, match=r"No examples in .*: the file has a header but no rows"):
        load_classification_file(path, "{sentence}")


def test_load_each_format_gives_the_same_data(tmp_path):
    (tmp_path / "a.csv").write_text("sentence,label\nA gem.,1\nA mess.,0\n")
    (tmp_path / "a.tsv").write_text("sentence\tlabel\nA gem.\t1\nA mess.\t0\n")
    (tmp_path / "a.jsonl").write_text(
        '{"sentence": "A gem.", "label": 1}\n{"sentence": "A mess.", "label": 0}\n'
    )
    loaded = [load_classification_file(tmp_path / n, "{sentence}!") for n in ("a.csv", "a.tsv", "a.jsonl")]
    for data in loaded:
        assert data.texts == ["A gem.!", "A mess.!"]
        assert data.labels.tolist() == [1, 0]
        assert data.classes == ("0", "1")


def test_subset_is_seeded_ordered_and_without_replacement():
    data = ClassificationData(
        texts=[f"t{i}" for i in range(20)], labels=np.arange(20) % 2, classes=("0", "1")
    )
    first = data.subset(7, seed=3)
    again = data.subset(7, seed=3)
    other = data.subset(7, seed=4)
    assert first.texts == again.texts
    assert first.texts != other.texts
    indices = [int(t[1:]) for t in first.texts]
    assert indices == sorted(set(indices))
    assert first.labels.tolist() == [i % 2 for i in indices]
    assert first.classes == data.classes
    assert data.subset(20, seed=0).texts == data.texts


def test_subset_errors():
    data = ClassificationData(texts=["a", "b"], labels=[0, 1], classes=("0", "1"))
    with pytest.raises(ValueError, match=r"Cannot draw 3 examples from a data set of 2; ask for at most 2\."):
        data.subset(3, seed=0)
    with pytest.raises(ValueError, match=r"subset size n must be a positive integer, got 0\."):
        data.subset(0, seed=0)


def test_constructor_validation():
    with pytest.raises(ValueError, match=r"Got 2 texts but 1 labels; pass exactly one label per text\."):
        ClassificationData(texts=["a", "b"], labels=[0], classes=("0",))
    with pytest.raises(ValueError, match=r"Label index 2 is outside the 2 classes \('0', '1'\)"):
        ClassificationData(texts=["a"], labels=[2], classes=("0", "1"))
    with pytest.raises(ValueError, match=r"Label index -1 is outside"):
        ClassificationData(texts=["a"], labels=[-1], classes=("0", "1"))
    with pytest.raises(ValueError, match=r"labels must be integer class indices, got dtype float64"):
        ClassificationData(texts=["a"], labels=[0.0], classes=("0",))
    with pytest.raises(ValueError, match=r"labels must have shape \[N\], got \(1, 1\)"):
        ClassificationData(texts=["a"], labels=[[0]], classes=("0",))
    with pytest.raises(ValueError, match=r"classes lists \['a'\] more than once"):
        ClassificationData(texts=["x"], labels=[0], classes=("a", "b", "a"))
    with pytest.raises(ValueError, match=r"classes is empty"):
        ClassificationData(texts=[], labels=[], classes=())
    with pytest.raises(TypeError, match=r"texts\[0\] is a int, not a str"):
        ClassificationData(texts=[1], labels=[0], classes=("0",))
