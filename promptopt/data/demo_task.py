"""A tiny built-in sentiment task for examples, smoke tests and the CLI demo.

The sentences were written for this project (no external data), in the style
of short SST-2 movie-review snippets. Each split is balanced.
"""

from __future__ import annotations

import numpy as np

from promptopt.data.classification_data import ClassificationData
from promptopt.data.fewshot_splits import FEWSHOT_TASKS, FewShotTask
from promptopt.data.template import Template

__all__ = ["demo_task", "DEMO_TASK"]

DEMO_TASK = FewShotTask(
    name="demo",
    template=FEWSHOT_TASKS["sst2"].template,
    classes=FEWSHOT_TASKS["sst2"].classes,
    label_words=dict(FEWSHOT_TASKS["sst2"].label_words),
    class_names=FEWSHOT_TASKS["sst2"].class_names,
)

# (split, label, sentence); label 1 = positive, 0 = negative, as in SST-2.
_SENTENCES = (
    # train: 12 positive, 12 negative
    ("train", 1, "A warm, funny film that never misses a beat."),
    ("train", 1, "The cast is wonderful and the script sparkles."),
    ("train", 1, "I loved every minute of this charming story."),
    ("train", 1, "A moving, beautifully acted drama."),
    ("train", 1, "Smart, tender and often hilarious."),
    ("train", 1, "The best animated film of the year."),
    ("train", 1, "Gorgeous photography and a score to match."),
    ("train", 1, "An inspiring tale told with real heart."),
    ("train", 1, "She gives a brilliant, fearless performance."),
    ("train", 1, "A delightful surprise from start to finish."),
    ("train", 1, "Clever, fresh and full of life."),
    ("train", 1, "This thriller kept me on the edge of my seat."),
    ("train", 0, "A dull, lifeless mess of a movie."),
    ("train", 0, "The plot makes no sense and the jokes fall flat."),
    ("train", 0, "I was bored within ten minutes."),
    ("train", 0, "Wooden acting and a painfully slow story."),
    ("train", 0, "A loud, stupid waste of two hours."),
    ("train", 0, "The dialogue is clumsy and the ending is worse."),
    ("train", 0, "Nothing here is funny, clever or new."),
    ("train", 0, "An ugly, joyless film."),
    ("train", 0, "The director has no idea what story he is telling."),
    ("train", 0, "Tedious, predictable and far too long."),
    ("train", 0, "Even the great cast cannot save this disaster."),
    ("train", 0, "I wanted my money back."),
    # dev: 8 positive, 8 negative
    ("dev", 1, "A joyful film with a big heart."),
    ("dev", 1, "Sharp writing and terrific performances."),
    ("dev", 1, "One of the most touching movies I have seen."),
    ("dev", 1, "Funny, smart and surprisingly sweet."),
    ("dev", 1, "The action scenes are thrilling."),
    ("dev", 1, "A lovely, gentle comedy."),
    ("dev", 1, "Beautifully shot and wonderfully acted."),
    ("dev", 1, "An absolute treat for the whole family."),
    ("dev", 0, "A boring, forgettable sequel."),
    ("dev", 0, "The story drags and the characters are flat."),
    ("dev", 0, "A clumsy and confused film."),
    ("dev", 0, "The jokes are stale and the pacing is awful."),
    ("dev", 0, "Badly written and badly acted."),
    ("dev", 0, "A tiresome, empty spectacle."),
    ("dev", 0, "I fell asleep halfway through."),
    ("dev", 0, "A miserable experience from the first scene."),
    # test: 12 positive, 12 negative
    ("test", 1, "A triumph of wit and warmth."),
    ("test", 1, "The performances are superb across the board."),
    ("test", 1, "An enchanting film that stays with you."),
    ("test", 1, "Hilarious from the opening scene to the credits."),
    ("test", 1, "A gripping, intelligent thriller."),
    ("test", 1, "Tender, honest and beautifully made."),
    ("test", 1, "The music alone is worth the ticket."),
    ("test", 1, "A rich, rewarding story about friendship."),
    ("test", 1, "I laughed, I cried, and I loved it."),
    ("test", 1, "A bold and brilliant debut."),
    ("test", 1, "Pure fun, with a clever twist."),
    ("test", 1, "The finest work of the director's career."),
    ("test", 0, "A tedious film with nothing to say."),
    ("test", 0, "The acting is stiff and the script is lazy."),
    ("test", 0, "A dreary, pointless remake."),
    ("test", 0, "Every joke lands with a thud."),
    ("test", 0, "The plot is a tangled, silly mess."),
    ("test", 0, "Two hours I will never get back."),
    ("test", 0, "Dull characters in a dull story."),
    ("test", 0, "A cheap, ugly and noisy film."),
    ("test", 0, "The ending is an insult to the audience."),
    ("test", 0, "Slow, confusing and utterly unfunny."),
    ("test", 0, "A waste of a talented cast."),
    ("test", 0, "Poorly made and hard to sit through."),
)


def demo_task() -> tuple[ClassificationData, ClassificationData, ClassificationData, FewShotTask]:
    """Returns the built-in demo task: (train, dev, test, task).

    Train has 24 examples, dev 16 and test 24, each split half positive
    (class "1") and half negative (class "0"), already rendered through the
    SST-2 template "{sentence} It was", with the classes alternating
    (positive first); the task's label words are " terrible" and " great".
    Nothing is read from or written to disk.

    Example:

    >>> train, dev, test, task = demo_task()
    >>> len(train), len(dev), len(test)
    (24, 16, 24)
    >>> train.texts[0]
    'A warm, funny film that never misses a beat. It was'
    """
    template = Template(DEMO_TASK.template)
    splits = []
    for split in ("train", "dev", "test"):
        positive = [(1, t) for name, label, t in _SENTENCES if name == split and label == 1]
        negative = [(0, t) for name, label, t in _SENTENCES if name == split and label == 0]
        # Alternate the classes so that the first k examples stay balanced.
        rows = [row for pair in zip(positive, negative) for row in pair]
        splits.append(
            ClassificationData(
                texts=[template.format({"sentence": text}) for _, text in rows],
                labels=np.array([label for label, _ in rows], dtype=np.int64),
                classes=DEMO_TASK.classes,
            )
        )
    train, dev, test = splits
    return train, dev, test, DEMO_TASK
