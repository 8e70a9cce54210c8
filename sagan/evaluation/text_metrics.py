"""Metrics of generated token sequences: BLEU against references and Self-BLEU (diversity).

BLEU-n here is the text-GAN literature's (Texygen, RelGAN): the mean over generated sequences of
sentence-level BLEU against *all* reference sentences, with uniform weights over 1..n-grams,
modified (clipped) n-gram precisions, the brevity penalty of the closest reference length, and
smoothing "method 1" of Chen & Cherry (2014) as in NLTK (a precision with no match counts as
0.1 / its denominator). Self-BLEU-n scores every sample against all *other* samples: high Self-BLEU
means samples that repeat each other (low diversity).

The references are indexed once: for every n-gram, its two largest counts over the references. The
clip count of an n-gram is the largest; with the hypothesis's own sentence left out (Self-BLEU), it
is the second largest when the sentence itself holds the largest. So scoring costs one dictionary
lookup per n-gram, whatever the number of references.
"""

import math
from collections import Counter
from collections.abc import Sequence

SMOOTHING_EPSILON = 0.1

Sentence = Sequence[int] | Sequence[str]


def ngram_counts(sentence: Sentence, n: int) -> Counter:
    """Counts of the n-grams (as tuples) of one sentence."""
    return Counter(tuple(sentence[i : i + n]) for i in range(len(sentence) - n + 1))


class BLEU:
    """Sentence BLEU against a fixed set of references.

    Args:
        references: the reference sentences (token lists or id lists).
        max_n: the largest n-gram order that will be asked for.
    """

    def __init__(self, references: Sequence[Sentence], max_n: int = 5):
        if not references:
            raise ValueError("BLEU needs at least one reference sentence")
        self.max_n = max_n
        self.lengths = Counter(len(r) for r in references)
        self.top2: list[dict[tuple, tuple[int, int]]] = []  # per order: n-gram -> (largest, second largest)
        for n in range(1, max_n + 1):
            top: dict[tuple, tuple[int, int]] = {}
            for reference in references:
                for gram, count in ngram_counts(reference, n).items():
                    first, second = top.get(gram, (0, 0))
                    if count > first:
                        top[gram] = (count, first)
                    elif count > second:
                        top[gram] = (first, count)
            self.top2.append(top)

    def _closest_reference_length(self, length: int, exclude_self: bool) -> int:
        lengths = [r for r, c in self.lengths.items() if c > (1 if exclude_self and r == length else 0)]
        return min(lengths, key=lambda r: (abs(r - length), r))

    def sentence(self, hypothesis: Sentence, n: int, exclude_self: bool = False) -> float:
        """BLEU-n of one hypothesis; `exclude_self`: the hypothesis is one of the references, left out."""
        if not 1 <= n <= self.max_n:
            raise ValueError(f"n must be in 1..{self.max_n}, got {n}")
        c = len(hypothesis)
        if c == 0:
            return 0.0
        log_precisions = []
        for k in range(1, n + 1):
            top = self.top2[k - 1]
            matches, total = 0, 0
            for gram, count in ngram_counts(hypothesis, k).items():
                first, second = top.get(gram, (0, 0))
                clip = second if exclude_self and count == first else first
                matches += min(count, clip)
                total += count
            if k == 1 and matches == 0:
                return 0.0  # NLTK: no unigram in common scores 0 whatever the smoothing
            denominator = max(1, total)
            log_precisions.append(math.log((matches or SMOOTHING_EPSILON) / denominator))
        r = self._closest_reference_length(c, exclude_self)
        brevity = 1.0 if c > r else math.exp(1.0 - r / c)
        return brevity * math.exp(sum(log_precisions) / n)

    def score(self, hypotheses: Sequence[Sentence], n: int) -> float:
        """Mean sentence BLEU-n of the hypotheses."""
        return sum(self.sentence(h, n) for h in hypotheses) / len(hypotheses)


def self_bleu(samples: Sequence[Sentence], n: int) -> float:
    """Mean BLEU-n of each sample against all the other samples (needs at least two)."""
    if len(samples) < 2:
        raise ValueError("Self-BLEU needs at least two samples")
    table = BLEU(samples, max_n=n)
    return sum(table.sentence(s, n, exclude_self=True) for s in samples) / len(samples)


def text_metrics(
    samples: Sequence[Sentence], references: Sequence[Sentence], orders: Sequence[int] = (2, 3, 4, 5)
) -> dict[str, float]:
    """`bleu<n>` of the samples against the references and `self_bleu<n>` among the samples."""
    bleu = BLEU(references, max_n=max(orders))
    self_table = BLEU(samples, max_n=max(orders))
    metrics = {}
    for n in orders:
        metrics[f"bleu{n}"] = bleu.score(samples, n)
        metrics[f"self_bleu{n}"] = sum(self_table.sentence(s, n, exclude_self=True) for s in samples) / len(samples)
    return metrics
