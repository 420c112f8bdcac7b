from promptopt.data.demo_task import demo_task
from promptopt.data.fewshot_splits import FEWSHOT_TASKS


def test_demo_splits_are_balanced_and_disjoint():
    train, dev, test, task = demo_task()
    assert (len(train), len(dev), len(test)) == (24, 16, 24)
    assert train.class_counts().tolist() == [12, 12]
    assert dev.class_counts().tolist() == [8, 8]
    assert test.class_counts().tolist() == [12, 12]
    texts = train.texts + dev.texts + test.texts
    assert len(set(texts)) == len(texts)
    # Classes alternate, so any even-sized prefix stays balanced.
    assert train.labels[:4].tolist() == [1, 0, 1, 0]


def test_demo_uses_sst2_template_and_label_words():
    train, _, _, task = demo_task()
    sst2 = FEWSHOT_TASKS["sst2"]
    assert task.name == "demo"
    assert (task.template, task.classes, dict(task.label_words)) == (
        sst2.template,
        sst2.classes,
        dict(sst2.label_words),
    )
    assert all(text.endswith(" It was") for text in train.texts)
    assert train.classes == ("0", "1")


def test_demo_is_deterministic():
    first, second = demo_task(), demo_task()
    for a, b in zip(first[:3], second[:3]):
        assert a.texts == b.texts
        assert a.labels.tolist() == b.labels.tolist()
