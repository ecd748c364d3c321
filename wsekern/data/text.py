"""Text for language models: a character tokenizer, CPython's own documentation as the
default corpus, next-token windows, and synthetic sequence tasks for tests."""
import numpy as np


class CharTokenizer:
    """Characters <-> ids, the vocabulary sorted so the same text gives the same ids."""

    def __init__(self, text):
        if not text:
            raise ValueError("the tokenizer needs some text")
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self):
        return len(self.chars)

    def encode(self, text):
        missing = sorted(set(text) - set(self.index))
        if missing:
            raise ValueError(f"characters not in the vocabulary: {missing[:10]!r}")
        return np.fromiter((self.index[c] for c in text), dtype=np.int64, count=len(text))

    def decode(self, ids):
        return "".join(self.chars[int(i)] for i in np.asarray(ids).ravel())


def load_pydoc_corpus():
    """CPython's ``pydoc_data.topics``: every topic joined in sorted key order (~465 KB of
    English prose that ships with Python)."""
    from pydoc_data.topics import topics
    return "".join(topics[k] for k in sorted(topics))


def load_text(path=None, validation_fraction=0.1):
    """(tokenizer, train ids, validation ids): the first 90% of characters for training."""
    if path is None:
        text = load_pydoc_corpus()
    else:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except UnicodeDecodeError as e:
            raise ValueError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); give "
                             f"a text file") from None
    if len(text) < 100:
        raise ValueError(f"the text has only {len(text)} characters; give it at least 100")
    tok = CharTokenizer(text)
    ids = tok.encode(text)
    split = int(len(ids) * (1 - validation_fraction))
    return tok, ids[:split], ids[split:]


def lm_windows(ids, context, count, seed=0):
    """``count`` random windows: x (count, context) and y = x shifted by one token."""
    ids = np.asarray(ids)
    if len(ids) <= context:
        raise ValueError(f"{len(ids)} tokens cannot give windows of {context} + 1")
    starts = np.random.default_rng(seed).integers(0, len(ids) - context, size=count)
    offsets = np.arange(context + 1)
    block = ids[starts[:, None] + offsets[None, :]]
    return block[:, :-1], block[:, 1:]


def reversal_task(n, length=16, vocab=10, seed=0):
    """x: random sequences over ``vocab`` symbols; y: the same sequences reversed."""
    x = np.random.default_rng(seed).integers(0, vocab, size=(n, length))
    return x, x[:, ::-1].copy()


def sorting_task(n, length=16, vocab=10, seed=0):
    """x: random sequences; y: the same sequences sorted."""
    x = np.random.default_rng(seed).integers(0, vocab, size=(n, length))
    return x, np.sort(x, axis=1)
