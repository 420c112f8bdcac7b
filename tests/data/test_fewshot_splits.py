import copy
import dataclasses
import pickle

import pytest

from promptopt.data import fewshot_splits
from promptopt.data.fewshot_splits import (
    FEWSHOT_TASKS,
    FewShotTask,
    default_data_dir,
    get_fewshot_task,
    load_fewshot_split,
    resolve_data_dir,
)

DATA_DIR = default_data_dir()
needs_data = pytest.mark.skipif(
    DATA_DIR is None or not (DATA_DIR / "lmbff_16shot").is_dir(),
    reason="LM-BFF 16-shot data not found: set PROMPTOPT_DATA_DIR or place it at "
    "<repo>/../shared/data/lmbff_16shot",
)


@pytest.fixture
def fake_data_dir(tmp_path, monkeypatch):
    """A tiny LM-BFF layout: SST-2 (TSV, header) and trec (headerless CSV)."""
    sst2 = tmp_path / "lmbff_16shot" / "SST-2" / "16-42"
    sst2.mkdir(parents=True)
    (sst2 / "train.tsv").write_text("sentence\tlabel\ngood \"fun\"\t1\nbad\t0\n")
    trec = tmp_path / "lmbff_16shot" / "trec" / "16-13"
    trec.mkdir(parents=True)
    (trec / "dev.csv").write_text('4,"Where is it , then ?"\n5,How many ?\n')
    monkeypatch.delenv(fewshot_splits.DATA_DIR_ENV, raising=False)
    return tmp_path


def test_task_names_are_normalized():
    assert get_fewshot_task("SST-2") is FEWSHOT_TASKS["sst2"]
    assert get_fewshot_task("sst_5") is FEWSHOT_TASKS["sst5"]
    assert get_fewshot_task("TREC") is FEWSHOT_TASKS["trec"]
    with pytest.raises(ValueError, match=r"Unknown few-shot task 'mnli'; choose one of sst2, sst5, trec"):
        get_fewshot_task("mnli")


def test_task_specs_are_consistent():
    assert dict(FEWSHOT_TASKS["sst2"].label_words) == {"0": (" terrible",), "1": (" great",)}
    assert FEWSHOT_TASKS["sst5"].label_words_list() == [
        [" terrible"], [" bad"], [" okay"], [" good"], [" great"]
    ]
    for task in FEWSHOT_TASKS.values():
        assert tuple(task.label_words) == task.classes
        assert len(task.class_names) == len(task.classes)


def test_task_is_frozen_hashable_and_pickles():
    task = FEWSHOT_TASKS["trec"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.template = "{sentence}"
    with pytest.raises(TypeError, match="Task label words are read-only"):
        task.label_words["0"] = (" what",)
    assert pickle.loads(pickle.dumps(task)) == task
    assert copy.deepcopy(task) == task
    assert hash(dataclasses.replace(task)) == hash(task)
    changed = dataclasses.replace(task, label_words={**task.label_words, "0": (" what",)})
    assert changed != task and changed.label_words["0"] == (" what",)


def test_task_validation():
    with pytest.raises(ValueError, match=r"label_words has keys \['0'\] but the classes are \['0', '1'\]"):
        FewShotTask(name="t", template="{s}", classes=("0", "1"), label_words={"0": (" no",)})
    with pytest.raises(ValueError, match=r"class '1' needs at least one non-empty label word"):
        FewShotTask(name="t", template="{s}", classes=("0", "1"), label_words={"0": (" no",), "1": ()})
    with pytest.raises(ValueError, match="has no text field"):
        FewShotTask(name="t", template="It was", classes=("0",), label_words={"0": (" a",)})


def test_loads_from_explicit_data_dir(fake_data_dir):
    data = load_fewshot_split("SST-2", seed=42, split="train", data_dir=fake_data_dir)
    assert data.texts == ['good "fun" It was', "bad It was"]
    assert data.labels.tolist() == [1, 0]
    # The lmbff_16shot folder itself is accepted too.
    trec = load_fewshot_split("trec", 13, "dev", template="Q: {sentence}", data_dir=fake_data_dir / "lmbff_16shot")
    assert trec.texts == ["Q: Where is it , then ?", "Q: How many ?"]
    assert trec.labels.tolist() == [4, 5]
    assert trec.classes == ("0", "1", "2", "3", "4", "5")


def test_env_var_is_honoured(fake_data_dir, monkeypatch):
    monkeypatch.setenv(fewshot_splits.DATA_DIR_ENV, str(fake_data_dir))
    assert default_data_dir() == fake_data_dir
    assert resolve_data_dir() == fake_data_dir
    assert len(load_fewshot_split("sst2", 42, "train")) == 2


def test_bad_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv(fewshot_splits.DATA_DIR_ENV, str(tmp_path / "absent"))
    assert default_data_dir() is None
    with pytest.raises(FileNotFoundError, match=r"\$PROMPTOPT_DATA_DIR is '.*absent', which is not a folder"):
        resolve_data_dir()


def test_not_found_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.delenv(fewshot_splits.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(
        fewshot_splits, "_candidate_dirs", lambda: [(tmp_path / "a", "<repo>/../shared/data")]
    )
    assert default_data_dir() is None
    with pytest.raises(
        FileNotFoundError,
        match=r"Could not find the data folder; looked in: .*a \(<repo>/\.\./shared/data\)\. "
        r"Pass data_dir= or set \$PROMPTOPT_DATA_DIR",
    ):
        load_fewshot_split("sst2", 42, "train")


def test_argument_errors(fake_data_dir):
    with pytest.raises(ValueError, match=r"Unknown split 'valid'; use one of train, dev, test\."):
        load_fewshot_split("sst2", 42, "valid", data_dir=fake_data_dir)
    with pytest.raises(ValueError, match=r"Unknown LM-BFF seed 7; the 16-shot splits exist for seeds 13, 21, 42, 87, 100\."):
        load_fewshot_split("sst2", 7, "train", data_dir=fake_data_dir)
    with pytest.raises(FileNotFoundError, match=r"data_dir '.*nowhere' is not a folder"):
        load_fewshot_split("sst2", 42, "train", data_dir=fake_data_dir / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"Missing '.*dev\.tsv'.*should hold SST-2/16-42/dev\.tsv"):
        load_fewshot_split("sst2", 42, "dev", data_dir=fake_data_dir)


@needs_data
def test_real_sst2_seed42_sizes():
    train = load_fewshot_split("sst2", 42, "train")
    dev = load_fewshot_split("SST-2", 42, "dev")
    test = load_fewshot_split("sst-2", 42, "test")
    assert (len(train), len(dev), len(test)) == (32, 32, 872)
    assert train.class_counts().tolist() == [16, 16]
    assert dev.class_counts().tolist() == [16, 16]
    assert all(text.endswith(" It was") for text in test.texts)


@needs_data
@pytest.mark.parametrize("task, n_train, n_test", [("trec", 96, 500), ("sst5", 80, 2210)])
@pytest.mark.parametrize("seed", [13, 100])
def test_real_multiclass_sizes(task, n_train, n_test, seed):
    train = load_fewshot_split(task, seed, "train")
    assert len(train) == n_train
    assert train.class_counts().tolist() == [16] * len(FEWSHOT_TASKS[task].classes)
    assert len(load_fewshot_split(task, seed, "dev")) == n_train
    assert len(load_fewshot_split(task, seed, "test")) == n_test
