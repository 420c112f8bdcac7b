import csv

import pytest

from promptopt.data.fewshot_splits import default_data_dir
from promptopt.data.generation_data import (
    GenerationData,
    linearize_mr,
    load_e2e,
    load_generation_file,
    parse_mr,
)

DATA_DIR = default_data_dir()
E2E_PATH = None if DATA_DIR is None else DATA_DIR / "e2e" / "devset.csv"
needs_e2e = pytest.mark.skipif(
    E2E_PATH is None or not E2E_PATH.is_file(),
    reason="E2E data not found: set PROMPTOPT_DATA_DIR or place it at <repo>/../shared/data/e2e/devset.csv",
)


def write_e2e(path, n_mrs=10, refs_per_mr=3):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["mr", "ref"])
        for i in range(n_mrs):
            for j in range(refs_per_mr):
                writer.writerow([f"name[Place {i}], area[city centre], priceRange[£20-25]", f"Ref {j} of {i}."])


def test_parse_and_linearize_mr():
    mr = "name[The Eagle], eatType[coffee shop], priceRange[£20-25], near[Burger King]"
    assert parse_mr(mr) == [
        ("name", "The Eagle"),
        ("eatType", "coffee shop"),
        ("priceRange", "£20-25"),
        ("near", "Burger King"),
    ]
    assert linearize_mr("name[Alimentum], area[city centre], familyFriendly[no]") == (
        "name : Alimentum | area : city centre | familyFriendly : no"
    )
    assert linearize_mr("name[A], food[B]", slot_separator="; ", value_separator="=") == "name=A; food=B"
    assert parse_mr("customer rating[5 out of 5]") == [("customer rating", "5 out of 5")]


def test_bad_mr_is_rejected():
    with pytest.raises(ValueError, match=r"Cannot parse meaning representation 'name\[A\], oops' at character 8"):
        parse_mr("name[A], oops")
    with pytest.raises(ValueError, match=r"Meaning representation '  ' is empty"):
        parse_mr("  ")


def test_e2e_split_is_by_mr(tmp_path):
    path = tmp_path / "e2e.csv"
    write_e2e(path, n_mrs=10, refs_per_mr=3)
    train, valid = load_e2e(path, valid_fraction=0.3, seed=1)
    assert len(valid) == 3  # One grouped row per validation MR.
    assert len(train) == 7 * 3  # One row per (MR, reference) pair.
    assert set(train.sources).isdisjoint(valid.sources)
    for refs in valid.references:
        assert len(refs) == 3
    assert train.sources[0].startswith("name : Place ")
    assert train.references[0] == [f"Ref {j} of {train.sources[0].split()[3]}." for j in range(3)]
    again, _ = load_e2e(path, valid_fraction=0.3, seed=1)
    assert again.sources == train.sources
    other, _ = load_e2e(path, valid_fraction=0.3, seed=2)
    assert set(other.sources) != set(train.sources)
    raw, _ = load_e2e(path, valid_fraction=0.3, seed=1, linearize=False)
    assert raw.sources[0].startswith("name[Place ")


def test_e2e_errors(tmp_path):
    path = tmp_path / "e2e.csv"
    write_e2e(path, n_mrs=1)
    with pytest.raises(ValueError, match=r"has 1 distinct MR; a train/validation split by MR needs at least 2"):
        load_e2e(path)
    with pytest.raises(ValueError, match=r"valid_fraction must lie strictly between 0 and 1, got 1\.0"):
        load_e2e(path, valid_fraction=1.0)
    other = tmp_path / "other.csv"
    other.write_text("meaning,text\nname[A],A.\n")
    with pytest.raises(ValueError, match=r"Record 0 in .* has no column 'mr'; available columns: 'meaning', 'text'\. An E2E file needs the header 'mr,ref'"):
        load_e2e(other)


@needs_e2e
def test_real_e2e_split_keeps_all_references_of_an_mr():
    with open(E2E_PATH, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    refs_by_mr = {}
    for row in rows:
        refs_by_mr.setdefault(linearize_mr(row["mr"]), []).append(row["ref"])
    train, valid = load_e2e(E2E_PATH, valid_fraction=0.1, seed=0)
    assert set(train.sources).isdisjoint(valid.sources)
    assert set(train.sources) | set(valid.sources) == set(refs_by_mr)
    assert len(valid) == round(0.1 * len(refs_by_mr))
    for source, refs in zip(valid.sources, valid.references):
        assert sorted(refs) == sorted(set(refs_by_mr[source]))
    assert len(train) == sum(len(refs_by_mr[s]) for s in set(train.sources))
    for source, refs in zip(train.sources, train.references):
        assert refs == refs_by_mr[source]


def test_load_generation_file_groups_references(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        '{"q": "a", "ans": "1"}\n{"q": "b", "ans": "2"}\n{"q": "a", "ans": "3"}\n'
    )
    data = load_generation_file(path, "q", "ans")
    assert data.sources == ["a", "b", "a"]
    assert data.targets == ["1", "2", "3"]
    assert data.references == [["1", "3"], ["2"], ["1", "3"]]
    grouped = data.grouped()
    assert (grouped.sources, grouped.targets, grouped.references) == (["a", "b"], ["1", "2"], [["1", "3"], ["2"]])


def test_load_generation_file_headerless_tsv(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("src one\ttgt one\n")
    data = load_generation_file(path, "source", "target", column_names=["source", "target"])
    assert (data.sources, data.targets) == (["src one"], ["tgt one"])


def test_load_generation_file_errors(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("q,ans\na,1\n")
    with pytest.raises(ValueError, match=r"has no column 'question'; available columns: 'q', 'ans'\. Pass source_column="):
        load_generation_file(path, "question", "ans")
    with pytest.raises(ValueError, match=r"Pass target_column="):
        load_generation_file(path, "q", "answer")
    empty = tmp_path / "empty.csv"
    empty.write_text("q,ans\n")
    with pytest.raises(ValueError, match=r"No examples in .*: the file has a header but no rows"):
        load_generation_file(empty, "q", "ans")
    with pytest.raises(ValueError, match=r"No examples: there are zero \(source, target\) pairs"):
        GenerationData.from_pairs([])


def test_generation_data_validation_and_subset():
    with pytest.raises(ValueError, match=r"Got 2 sources but 1 targets"):
        GenerationData(sources=["a", "b"], targets=["x"])
    with pytest.raises(ValueError, match=r"Got 1 reference lists for 2 sources"):
        GenerationData(sources=["a", "b"], targets=["x", "y"], references=[["x"]])
    with pytest.raises(ValueError, match=r"references\[0\] must be a non-empty list of str"):
        GenerationData(sources=["a"], targets=["x"], references=[[]])
    data = GenerationData(sources=[f"s{i}" for i in range(10)], targets=[f"t{i}" for i in range(10)])
    part = data.subset(4, seed=0)
    assert part.references is None
    assert [s[1:] for s in part.sources] == [t[1:] for t in part.targets]
    assert part.sources == data.subset(4, seed=0).sources
    with pytest.raises(ValueError, match=r"Cannot draw 11 rows from a data set of 10"):
        data.subset(11, seed=0)
