"""Maps classes to label words and label words to token ids."""

from keras_hub.tokenizers import BytePairTokenizer

from promptopt.tasks.text_encoder import detokenize
from promptopt.tasks.text_encoder import tokenize_all


class LabelWordError(ValueError):
    """A label word cannot be scored by this model's vocabulary."""


class Verbalizer:
    """Label words for each class, resolved to token ids once.

    A class may have several label words; each word may be several tokens.

    Args:
        classes: sequence of class names, in class-index order.
        label_words: mapping class name -> word or list of words, e.g.
            `{"0": " terrible", "1": [" great", " good"]}`. Leading spaces
            matter for byte-level BPE vocabularies: " great" is one token
            where "great" may be another.
        tokenizer: keras-hub tokenizer used to resolve the words; optional
            when `token_ids` is given (e.g. when rebuilt from a config).
        single_token: if True, every word must be one vocabulary token.
        token_ids: precomputed list of id lists, one per word in
            `words` order.

    Example:
    ```python
    v = Verbalizer(["0", "1"], {"0": " terrible", "1": " great"}, tokenizer)
    v.word_token_ids  # [[6159], [1049]]
    ```
    """

    def __init__(
        self,
        classes,
        label_words,
        tokenizer=None,
        single_token=False,
        token_ids=None,
    ):
        self.classes = tuple(str(c) for c in classes)
        if not self.classes:
            raise LabelWordError(
                "A verbalizer needs at least one class; give label words for "
                "each class, e.g. {'0': ' terrible', '1': ' great'}."
            )
        label_words = {str(k): v for k, v in dict(label_words).items()}
        missing = [c for c in self.classes if c not in label_words]
        if missing:
            raise LabelWordError(
                f"No label word for class(es) {missing}. Give one or more "
                f"words for every class in {list(self.classes)}."
            )
        unknown = [k for k in label_words if k not in self.classes]
        if unknown:
            raise LabelWordError(
                f"Label words given for unknown class(es) {unknown}; the "
                f"classes are {list(self.classes)}."
            )
        self.label_words = {
            c: [label_words[c]] if isinstance(label_words[c], str)
            else list(label_words[c])
            for c in self.classes
        }
        self.single_token = bool(single_token)
        # Flattened word list: (class index, word), in class order.
        self.words = [
            (i, w) for i, c in enumerate(self.classes) for w in self.label_words[c]
        ]
        if token_ids is None:
            if tokenizer is None:
                raise ValueError("Verbalizer needs a tokenizer or token_ids.")
            token_ids = self._resolve(tokenizer)
        self.word_token_ids = [list(map(int, ids)) for ids in token_ids]

    def _resolve(self, tokenizer):
        word_texts = [w for _, w in self.words]
        for w in word_texts:
            if not w.strip():
                raise LabelWordError(
                    f"Label word {w!r} is empty; give a real word such as ' great'."
                )
        all_ids = tokenize_all(tokenizer, word_texts)
        vocabulary_size = tokenizer.vocabulary_size()
        unknown_ids = {
            getattr(tokenizer, name, None)
            for name in ("unk_token_id", "oov_token_id")
        }
        for name in ("<unk>", "[UNK]", "<UNK>"):
            try:
                unknown_ids.add(tokenizer.token_to_id(name))
            except Exception:  # not in this vocabulary
                pass
        unknown_ids.discard(None)
        for word, ids in zip(word_texts, all_ids):
            if not ids or any(
                i in unknown_ids or not 0 <= i < vocabulary_size for i in ids
            ):
                raise LabelWordError(
                    f"Label word {word!r} is not in the vocabulary: the "
                    f"tokenizer maps it to {ids}, which includes the unknown "
                    "token. Choose a word the tokenizer knows (check with "
                    "tokenizer.id_to_token)."
                )
            if isinstance(tokenizer, BytePairTokenizer):
                # keras-hub's byte-level BPE has no unknown token: it silently
                # drops characters whose bytes are missing from the
                # vocabulary (" zebra" -> " ebra"). Byte-level BPE is
                # lossless otherwise, so a word that does not read back
                # exactly has lost characters.
                text = detokenize(tokenizer, ids)
                if text != word:
                    raise LabelWordError(
                        f"Label word {word!r} is not in the vocabulary: the "
                        f"tokenizer maps it to {ids}, which reads back as "
                        f"{text!r} (characters missing from the vocabulary "
                        "are dropped). Choose a word the tokenizer knows "
                        "(check with tokenizer.id_to_token)."
                    )
            if self.single_token and len(ids) != 1:
                pieces = [tokenizer.id_to_token(i) for i in ids]
                raise LabelWordError(
                    f"Label word {word!r} is not in the vocabulary as a single "
                    f"token: it splits into {len(ids)} tokens {pieces}. Pick a "
                    "word that is one token (a leading space often helps), or "
                    "allow multi-token words with single_token=False; they are "
                    "scored by summed log-probability."
                )
        return all_ids

    @property
    def num_classes(self):
        return len(self.classes)

    @property
    def word_classes(self):
        """Class index of each word, in `words` order."""
        return [i for i, _ in self.words]

    @property
    def max_word_length(self):
        return max(len(ids) for ids in self.word_token_ids)

    def get_config(self):
        return {
            "classes": list(self.classes),
            "label_words": self.label_words,
            "single_token": self.single_token,
            "token_ids": self.word_token_ids,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
