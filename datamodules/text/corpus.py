"""`TextDataModule`: a UTF-8 file with one sentence per line. Sentences are split into words or
characters, cut to `max_length` tokens, closed with `<eos>` and padded with `<pad>` to
`seq_len = max_length + 1`. The vocabulary is built from the training split only.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from lightning.pytorch.utilities import rank_zero_warn

from datamodules.text.base import TokenDataModule
from sagan.errors import UsageError, check_ranges
from sagan.vocabulary import Level, Vocabulary, tokenize


@dataclass
class Corpus:
    """The sentences of a corpus file as tokens, and what reading it found."""

    sentences: list[list[str]]
    lines: int  # non-blank lines
    invalid_utf8: int  # lines whose invalid bytes were replaced by U+FFFD
    truncated: int  # sentences cut to max_length tokens


def read_corpus(path: Path, level: Level, max_length: int) -> Corpus:
    """Reads one sentence per line: invalid UTF-8 is replaced (and counted), blank lines are
    skipped, sentences longer than `max_length` tokens are truncated (and counted)."""
    sentences, invalid, truncated = [], 0, 0
    data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    for raw in data.splitlines():
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            line = raw.decode("utf-8", errors="replace")
            invalid += 1
        tokens = tokenize(line.strip(), level)
        if not tokens:
            continue
        if len(tokens) > max_length:
            tokens = tokens[:max_length]
            truncated += 1
        sentences.append(tokens)
    return Corpus(sentences, len(sentences), invalid, truncated)


class TextDataModule(TokenDataModule):
    """A UTF-8 text file, one sentence per line, as word or character tokens.

    Args:
        path: the corpus file.
        level: "word" (split on whitespace) or "char" (every character is a token).
        min_freq: tokens seen fewer times in the training split become `<unk>`.
        max_vocab: largest vocabulary, special tokens included (None: no limit).
        max_length: tokens kept per sentence; longer sentences are truncated (with a warning).
        valid_fraction: fraction of the sentences held out for validation.
        test_fraction: fraction of the sentences held out for testing (BLEU references, NLL-test).
        split_seed: seed of the random split; keep it fixed to compare runs.
        batch_size: sequences per batch and per device.
        num_workers: DataLoader worker processes.
    """

    def __init__(
        self,
        path: str = "data/corpus.txt",
        level: Level = "word",
        min_freq: int = 1,
        max_vocab: int | None = None,
        max_length: int = 32,
        valid_fraction: float = 0.05,
        test_fraction: float = 0.05,
        split_seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
    ):
        super().__init__(batch_size, num_workers)
        check_ranges(
            type(self).__name__, min_freq=(min_freq, "[1, inf)"), max_vocab=(max_vocab, "[1, inf)"),
            max_length=(max_length, "[1, inf)"), valid_fraction=(valid_fraction, "[0, 1)"),
            test_fraction=(test_fraction, "[0, 1)"),
        )
        if valid_fraction + test_fraction >= 1.0:
            raise ValueError(f"valid_fraction and test_fraction must be in [0, 1) with a sum < 1, got {valid_fraction}, {test_fraction}")
        self.path = Path(path)
        if not self.path.is_file():
            raise UsageError(
                f"corpus not found: {self.path} (expected a UTF-8 text file, one sentence per line; "
                "make train DATA=text TEXT=<file> or --data.init_args.path=<file>)"
            )
        self.level = level
        self.min_freq = min_freq
        self.max_vocab = max_vocab
        self.max_length = max_length
        self.valid_fraction = valid_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self._vocabulary: Vocabulary | None = None
        self._split_sentences: tuple[list, list, list] | None = None

    @property
    def seq_len(self) -> int:
        return self.max_length + 1  # room for <eos>

    @property
    def vocabulary(self) -> Vocabulary:
        """Built once per process from the training split (the CLI asks for it to size the networks)."""
        if self._vocabulary is None:
            train, _, _ = self.split_sentences()
            self._vocabulary = Vocabulary.build(train, self.level, self.min_freq, self.max_vocab)
        return self._vocabulary

    def split_sentences(self) -> tuple[list, list, list]:
        """The tokenized sentences of the train, validation and test splits (read once)."""
        if self._split_sentences is None:
            corpus = read_corpus(self.path, self.level, self.max_length)
            if not corpus.sentences:
                raise UsageError(f"{self.path}: the corpus is empty (expected UTF-8 text, one sentence per line)")
            if corpus.invalid_utf8:
                rank_zero_warn(
                    f"{self.path}: {corpus.invalid_utf8} of {corpus.lines} lines had invalid UTF-8; "
                    "the bad bytes were replaced by U+FFFD"
                )
            if corpus.truncated:
                rank_zero_warn(
                    f"{self.path}: {corpus.truncated} of {corpus.lines} sentences were longer than "
                    f"max_length={self.max_length} tokens and were truncated"
                )
            n = len(corpus.sentences)
            n_valid = math.ceil(self.valid_fraction * n)
            n_test = math.ceil(self.test_fraction * n)
            if n - n_valid - n_test < 1:
                raise UsageError(f"{self.path}: {n} sentences are too few for a train/valid/test split")
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed)).tolist()
            picked = [corpus.sentences[i] for i in order]
            self._split_sentences = (picked[n_valid + n_test :], picked[:n_valid], picked[n_valid : n_valid + n_test])
        return self._split_sentences

    def encode(self, sentences: list[list[str]]) -> torch.Tensor:
        """`[N, seq_len]` ids: the tokens, `<eos>`, then `<pad>` up to `seq_len`."""
        vocab = self.vocabulary
        out = torch.full((len(sentences), self.seq_len), vocab.pad_id, dtype=torch.long)
        for row, sentence in zip(out, sentences):
            ids = vocab.encode(sentence) + [vocab.eos_id]
            row[: len(ids)] = torch.tensor(ids)
        return out

    def _splits(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return tuple(self.encode(sentences) for sentences in self.split_sentences())
