"""The corpus data module: tokens, splits, vocabulary saved with the run, and bad input."""

import lightning as L
import pytest
import torch
from conftest import CORPUS, write_corpus

from datamodules.text.corpus import TextDataModule, read_corpus
from sagan.errors import UsageError
from sagan.vocabulary import Vocabulary


def _dm(path, **kwargs) -> TextDataModule:
    dm = TextDataModule(str(path), **{"batch_size": 4, **kwargs})
    dm.setup()
    return dm


def test_sequences_are_tokens_eos_then_padding(tmp_path):
    dm = _dm(write_corpus(tmp_path / "c.txt"), max_length=8)
    vocab = dm.vocabulary
    assert dm.seq_len == 9 and dm.vocab_size == len(vocab)
    (batch,) = next(iter(dm.train_dataloader()))
    assert batch.shape == (4, 9) and batch.dtype == torch.long
    for row in dm.train_set.tensors[0].tolist():
        end = row.index(vocab.eos_id)
        assert all(i == vocab.pad_id for i in row[end + 1 :])
        assert vocab.decode(row) in CORPUS  # every sentence round-trips (all its words are in the vocabulary)


def test_split_is_disjoint_complete_and_fixed_by_its_seed(tmp_path):
    path = write_corpus(tmp_path / "c.txt", [f"sentence number {i}" for i in range(100)], repeat=1)
    dm = _dm(path, valid_fraction=0.1, test_fraction=0.2)
    texts = [{" ".join(sentence) for sentence in split} for split in dm.split_sentences()]
    assert [len(t) for t in texts] == [70, 10, 20]
    assert set.union(*texts) == {f"sentence number {i}" for i in range(100)}
    torch.manual_seed(123)  # the global seed does not move the split
    again = _dm(path, valid_fraction=0.1, test_fraction=0.2)
    assert again.split_sentences() == dm.split_sentences()
    assert torch.equal(again.test_set.tensors[0], dm.test_set.tensors[0])
    other = _dm(path, valid_fraction=0.1, test_fraction=0.2, split_seed=1)
    assert other.split_sentences()[2] != dm.split_sentences()[2]


def test_vocabulary_comes_from_the_training_split_with_min_freq(tmp_path):
    lines = ["common word"] * 20 + [f"rare{i} word" for i in range(20)]
    dm = _dm(write_corpus(tmp_path / "c.txt", lines, repeat=1), min_freq=2)
    assert set(dm.vocabulary.tokens[4:]) == {"common", "word"}
    train_tokens = {t for row in dm.train_set.tensors[0].tolist() for t in row}
    assert dm.vocabulary.unk_id in train_tokens  # the rare words became <unk>


def test_character_level(tmp_path):
    dm = _dm(write_corpus(tmp_path / "c.txt"), level="char", max_length=40)
    assert " " in dm.vocabulary.tokens and "the" not in dm.vocabulary.tokens
    assert dm.vocabulary.decode(dm.val_set.tensors[0][0].tolist()) in CORPUS


def test_long_lines_are_truncated_with_a_warning(tmp_path):
    lines = ["one two three four five six seven"] * 10 + ["short line"] * 10
    path = write_corpus(tmp_path / "c.txt", lines, repeat=1)
    with pytest.warns(UserWarning, match="10 of 20 sentences were longer than max_length=4"):
        dm = _dm(path, max_length=4)
    decoded = {dm.vocabulary.decode(row) for row in dm.train_set.tensors[0].tolist()}
    assert decoded == {"one two three four", "short line"}


def test_invalid_utf8_is_replaced_counted_and_warned(tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes(("\n".join(CORPUS * 2) + "\n").encode() + b"bad \xff\xfe bytes\nalso \xc3 bad\n")
    corpus = read_corpus(path, "word", 32)
    assert corpus.invalid_utf8 == 2 and len(corpus.sentences) == 18  # nothing dropped
    assert ["bad", "\ufffd\ufffd", "bytes"] in corpus.sentences
    with pytest.warns(UserWarning, match="2 of 18 lines had invalid UTF-8"):
        _dm(path)


def test_blank_lines_and_a_byte_order_mark_are_ignored(tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes(b"\xef\xbb\xbffirst line\n\n   \nsecond line\r\n")
    assert read_corpus(path, "word", 32).sentences == [["first", "line"], ["second", "line"]]


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        (None, {}, "corpus not found"),
        (b"", {}, "the corpus is empty"),
        (b"\n  \n\t\n", {}, "the corpus is empty"),
        (b"one\ntwo\n", {}, "too few for a train/valid/test split"),
        (b"a b\n" * 20, {"batch_size": 64}, "fewer than one batch"),
    ],
)
def test_bad_corpus_is_a_usage_error(tmp_path, content, kwargs, message):
    path = tmp_path / "c.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UsageError, match=message):
        _dm(path, **kwargs)


def test_prepare_data_saves_the_vocabulary_with_the_run_and_refuses_another(tmp_path):
    path = write_corpus(tmp_path / "c.txt")
    run = tmp_path / "run"

    def prepare(dm):
        trainer = L.Trainer(default_root_dir=str(run), logger=False, accelerator="cpu")
        trainer.state.fn = "fit"
        dm.trainer = trainer
        dm.prepare_data()

    dm = TextDataModule(str(path), batch_size=4)
    prepare(dm)
    assert Vocabulary.load(run / "vocab.json") == dm.vocabulary
    prepare(TextDataModule(str(path), batch_size=4))  # same data: fine
    path.write_text("entirely different words here\n" * 40)
    with pytest.raises(UsageError, match="vocabulary mismatch"):
        prepare(TextDataModule(str(path), batch_size=4))
    assert Vocabulary.load(run / "vocab.json") == dm.vocabulary  # the run's vocabulary is kept


def test_rejects_bad_arguments(tmp_path):
    path = write_corpus(tmp_path / "c.txt")
    for kwargs in (dict(max_length=0), dict(valid_fraction=0.6, test_fraction=0.5), dict(batch_size=0)):
        with pytest.raises(ValueError):
            TextDataModule(str(path), **kwargs)
