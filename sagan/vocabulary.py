"""Tokens and ids for text GANs: splitting text into character or word tokens, and a vocabulary.

A `Vocabulary` is a list of tokens in id order. When it has the special tokens they come first:
`<pad>` 0, `<bos>` 1, `<eos>` 2, `<unk>` 3. A vocabulary without them (the synthetic oracle's, whose
5,000 tokens are all real) decodes every id. It is saved as JSON (`{"level", "tokens"}`) so that any
token, a space or a newline character included, survives the round trip.
"""

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from sagan.errors import UsageError

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
Level = Literal["word", "char"]


def tokenize(text: str, level: Level) -> list[str]:
    """`word`: split on whitespace; `char`: every character (spaces included) is a token."""
    return list(text) if level == "char" else text.split()


def detokenize(tokens: Sequence[str], level: Level) -> str:
    """The inverse of `tokenize` (word level normalizes whitespace to single spaces)."""
    return "".join(tokens) if level == "char" else " ".join(tokens)


class Vocabulary:
    """Tokens in id order, with encoding of token lists and decoding of id sequences.

    Args:
        tokens: the tokens, id order; the special tokens, if used, are the first four (see `SPECIALS`).
        level: how text was split into tokens ("word" or "char"), used to join decoded tokens.
    """

    def __init__(self, tokens: Sequence[str], level: Level = "word"):
        if level not in ("word", "char"):
            raise ValueError(f"level must be 'word' or 'char', got {level!r}")
        self.tokens = list(tokens)
        self.level = level
        self.index = {token: i for i, token in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("the tokens of a vocabulary must be distinct")
        self.has_specials = tuple(self.tokens[: len(SPECIALS)]) == SPECIALS
        self.pad_id = self.index[PAD] if self.has_specials else None
        self.bos_id = self.index[BOS] if self.has_specials else None
        self.eos_id = self.index[EOS] if self.has_specials else None
        self.unk_id = self.index[UNK] if self.has_specials else None

    @classmethod
    def build(
        cls, sentences: Iterable[Sequence[str]], level: Level = "word", min_freq: int = 1, max_size: int | None = None
    ) -> "Vocabulary":
        """The special tokens, then every token seen at least `min_freq` times, most frequent first
        (ties in alphabetical order, so the result does not depend on the order of the sentences);
        `max_size` caps the total size."""
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        counts = Counter(token for sentence in sentences for token in sentence)
        kept = sorted((t for t, c in counts.items() if c >= min_freq and t not in SPECIALS), key=lambda t: (-counts[t], t))
        if max_size is not None:
            if max_size <= len(SPECIALS):
                raise ValueError(f"max_size must be > {len(SPECIALS)} (the special tokens), got {max_size}")
            kept = kept[: max_size - len(SPECIALS)]
        return cls([*SPECIALS, *kept], level)

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.tokens == other.tokens and self.level == other.level

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} {self.level} tokens)"

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Token ids; tokens outside the vocabulary become `<unk>` (a KeyError without specials)."""
        if self.unk_id is None:
            return [self.index[t] for t in tokens]
        return [self.index.get(t, self.unk_id) for t in tokens]

    def strip(self, ids: Iterable[int]) -> list[int]:
        """The ids of a generated or padded sequence up to its first `<eos>`, without `<pad>`/`<bos>`."""
        out = []
        for i in ids:
            if i == self.eos_id:
                break
            if i != self.pad_id and i != self.bos_id:
                out.append(i)
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """The text of a sequence of ids, cut at its first `<eos>`."""
        return detokenize([self.tokens[i] for i in self.strip(ids)], self.level)

    def difference(self, other: "Vocabulary") -> str:
        """A short description of how `other` differs from this vocabulary ('' if equal)."""
        if self == other:
            return ""
        if self.level != other.level:
            return f"{self.level}-level tokens vs {other.level}-level tokens"
        if len(self) != len(other):
            return f"{len(self)} tokens vs {len(other)} tokens"
        i = next(i for i, (a, b) in enumerate(zip(self.tokens, other.tokens)) if a != b)
        return f"token {i} is {self.tokens[i]!r} vs {other.tokens[i]!r}"

    def to_dict(self) -> dict:
        """Plain containers only, for checkpoints loaded with `weights_only=True`."""
        return {"level": self.level, "tokens": list(self.tokens)}

    @classmethod
    def from_dict(cls, state: dict) -> "Vocabulary":
        return cls(state["tokens"], state["level"])

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=0), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def check_vocabulary(saved: Vocabulary, current: Vocabulary, where: str) -> None:
    """Raises UsageError when a run's or checkpoint's vocabulary (`where`) is not the data's."""
    difference = saved.difference(current)
    if difference:
        raise UsageError(
            f"vocabulary mismatch: {where} has another vocabulary than the data ({difference}); "
            "resume with the same data settings (path, level, min_freq, max_vocab) or start a new run"
        )
