"""BLEU and Self-BLEU: exact values, against torchmetrics, and the identities they must satisfy."""

import math

import pytest
import torch
from torchmetrics.text import BLEUScore

from sagan.evaluation.text_metrics import BLEU, self_bleu, text_metrics

REFERENCES = [
    "the cat sat on the mat today".split(),
    "a dog ran in the park with a ball".split(),
    "the bird sang a song in the tree".split(),
    "my cat likes to sit on the warm mat".split(),
]


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_bleu_of_the_references_against_themselves_is_one(n):
    assert BLEU(REFERENCES).score(REFERENCES, n) == 1.0


@pytest.mark.parametrize("n", [2, 3, 4])
def test_sentence_bleu_equals_torchmetrics_when_every_precision_is_positive(n):
    hypothesis = "the cat sat on the warm mat in the park".split()
    expected = BLEUScore(n_gram=n)([" ".join(hypothesis)], [[" ".join(r) for r in REFERENCES]])
    assert BLEU(REFERENCES, max_n=n).sentence(hypothesis, n) == pytest.approx(expected.item(), rel=1e-5)


def test_exact_value_with_smoothing_and_brevity_penalty():
    references = [["a", "b", "c", "d", "e"]]
    hypothesis = ["a", "b", "x"]  # 2/3 unigrams, 1/2 bigrams, 0/1 trigrams (smoothed to 0.1/1)
    expected = math.exp(1 - 5 / 3) * math.exp((math.log(2 / 3) + math.log(1 / 2) + math.log(0.1)) / 3)
    assert BLEU(references, max_n=3).sentence(hypothesis, 3) == pytest.approx(expected, rel=1e-12)


def test_clipping_uses_the_largest_count_in_any_one_reference():
    references = [["a", "a", "b"], ["a", "c", "c"]]
    table = BLEU(references, max_n=1)
    # 'a' x4 clipped to 2 (first reference), 'c' x1 matches: 3/5; closest reference length 3 < 5: no penalty
    assert table.sentence(["a", "a", "a", "a", "c"], 1) == pytest.approx(3 / 5)
    assert table.sentence(["z", "z", "z"], 1) == 0.0  # no unigram in common
    assert table.sentence([], 1) == 0.0


def test_self_bleu_leaves_each_sample_out():
    same = [["a", "b", "c", "d"]] * 3
    assert self_bleu(same, 4) == 1.0  # every sample has identical company
    distinct = [["a", "b", "c", "d"], ["e", "f", "g", "h"], ["i", "j", "k", "l"]]
    assert self_bleu(distinct, 2) == 0.0  # a sample matching only itself scores 0
    # leaving one out equals scoring against an explicit table of the others
    samples = [s[:] for s in REFERENCES]
    for i, s in enumerate(samples):
        others = BLEU(samples[:i] + samples[i + 1 :], max_n=3)
        assert BLEU(samples, max_n=3).sentence(s, 3, exclude_self=True) == pytest.approx(others.sentence(s, 3))


def test_text_metrics_on_token_ids():
    torch.manual_seed(0)
    references = torch.randint(0, 50, (40, 12)).tolist()
    metrics = text_metrics(references[:10], references)
    assert set(metrics) == {f"{m}{n}" for m in ("bleu", "self_bleu") for n in (2, 3, 4, 5)}
    assert metrics["bleu5"] == 1.0  # the samples are references
    assert 0 <= metrics["self_bleu2"] < 0.5  # random sequences barely repeat each other
    with pytest.raises(ValueError):
        BLEU([])
