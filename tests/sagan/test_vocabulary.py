import pytest

from sagan.errors import UsageError
from sagan.vocabulary import EOS, PAD, SPECIALS, UNK, Vocabulary, check_vocabulary, detokenize, tokenize


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("the cat sat on the mat", "word"),
        ("naïve café — 東京 ok", "word"),
        ("the cat, sat  twice\tdone", "char"),  # characters keep every space and tab
        ("émoji 🙂 and ümlauts", "char"),
    ],
)
def test_tokenizer_round_trip(text, level):
    vocab = Vocabulary.build([tokenize(text, level)], level)
    ids = vocab.encode(tokenize(text, level)) + [vocab.eos_id, vocab.pad_id, vocab.pad_id]
    assert vocab.decode(ids) == text


def test_word_level_normalizes_whitespace():
    assert tokenize("  a  b\tc ", "word") == ["a", "b", "c"]
    assert detokenize(["a", "b", "c"], "word") == "a b c"


def test_build_orders_by_frequency_and_applies_min_freq_and_max_size():
    sentences = [["b", "a", "c"], ["a", "b"], ["a", "d"]]
    vocab = Vocabulary.build(sentences, min_freq=2)
    assert vocab.tokens == [*SPECIALS, "a", "b"]  # a: 3, b: 2; c and d (1) dropped
    assert vocab.encode(["a", "c", "b"]) == [4, vocab.unk_id, 5]
    assert vocab.tokens[vocab.unk_id] == UNK
    assert Vocabulary.build(sentences, max_size=5).tokens == [*SPECIALS, "a"]
    # the order of the sentences does not matter
    assert Vocabulary.build(sentences[::-1], min_freq=1) == Vocabulary.build(sentences, min_freq=1)


def test_decode_stops_at_eos_and_skips_padding():
    vocab = Vocabulary([*SPECIALS, "x", "y"])
    x, y = vocab.index["x"], vocab.index["y"]
    assert vocab.decode([x, vocab.pad_id, y, vocab.eos_id, x, x]) == "x y"
    assert vocab.strip([vocab.eos_id, x]) == []
    assert vocab.tokens[vocab.pad_id] == PAD and vocab.tokens[vocab.eos_id] == EOS


def test_vocabulary_without_specials_decodes_every_id():
    vocab = Vocabulary(["0", "1", "2"])
    assert not vocab.has_specials and vocab.eos_id is None
    assert vocab.decode([2, 0, 1]) == "2 0 1"
    with pytest.raises(KeyError):
        vocab.encode(["7"])


def test_save_and_load_keep_unusual_tokens(tmp_path):
    vocab = Vocabulary([*SPECIALS, " ", "\t", "\u2028", "\"q\"", "é"], "char")
    vocab.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json") == vocab


def test_mismatch_is_a_usage_error_naming_the_difference():
    a = Vocabulary([*SPECIALS, "x", "y"])
    check_vocabulary(a, Vocabulary([*SPECIALS, "x", "y"]), "the run")
    with pytest.raises(UsageError, match="token 5 is 'y' vs 'z'"):
        check_vocabulary(a, Vocabulary([*SPECIALS, "x", "z"]), "the run")
    with pytest.raises(UsageError, match="6 tokens vs 5 tokens"):
        check_vocabulary(a, Vocabulary([*SPECIALS, "x"]), "the run")
    with pytest.raises(UsageError, match="word-level tokens vs char-level"):
        check_vocabulary(a, Vocabulary([*SPECIALS, "x", "y"], "char"), "the run")


def test_rejects_duplicate_tokens_and_bad_arguments():
    with pytest.raises(ValueError):
        Vocabulary(["a", "a"])
    with pytest.raises(ValueError):
        Vocabulary(["a"], "byte")
    with pytest.raises(ValueError):
        Vocabulary.build([["a"]], min_freq=0)
