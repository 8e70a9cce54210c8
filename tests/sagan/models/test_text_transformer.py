"""The text transformer GAN's networks: causality, Gumbel-softmax sampling and its gradients."""

import torch
import torch.nn.functional as F
from torch.testing import assert_close

from sagan.models.text_transformer import TINY, TextTransformerDiscriminator, TextTransformerGenerator, gumbel_noise


def _generator(**overrides) -> TextTransformerGenerator:
    cls, kwargs = TINY["text-generator-2-layers"]
    return cls(**{**kwargs, **overrides})


def test_changing_a_future_token_leaves_earlier_logits_unchanged():
    g = _generator()
    tokens = torch.randint(0, g.vocab_size, (3, g.seq_len))
    changed = tokens.clone()
    changed[:, 3] = (tokens[:, 3] + 1) % g.vocab_size
    a, b = g(tokens), g(changed)
    # logits at position t see tokens[:, :t]: positions 0..3 do not see token 3
    assert_close(a[:, :4], b[:, :4], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, 4:], b[:, 4:])


def test_samples_are_gumbel_max_draws_of_the_teacher_forced_logits():
    g = _generator()
    rng = torch.Generator().manual_seed(0)
    tokens, soft = g.sample(5, temperature=0.5, generator=rng)
    assert tokens.shape == (5, g.seq_len) and soft.shape == (5, g.seq_len, g.vocab_size)
    gumbel = gumbel_noise((5, g.seq_len, g.vocab_size), torch.device("cpu"), torch.Generator().manual_seed(0))
    logits = g(tokens)  # the same logits, in one parallel pass
    assert torch.equal((logits + gumbel).argmax(-1), tokens)
    assert_close(soft, torch.softmax((logits + gumbel) / 0.5, dim=-1))
    # the same seed gives the same samples; without gradients the relaxation comes from the cached steps
    with torch.no_grad():
        again, soft_no_grad = g.sample(5, temperature=0.5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again, tokens)
    assert_close(soft_no_grad, soft.detach(), rtol=1e-4, atol=1e-5)


def test_gumbel_max_samples_follow_the_softmax():
    g = _generator(vocab_size=4, seq_len=1)
    tokens, _ = g.sample(20_000, generator=torch.Generator().manual_seed(1))
    expected = torch.softmax(g(torch.zeros(1, 1, dtype=torch.long))[0, 0], dim=-1)
    assert_close(torch.bincount(tokens[:, 0], minlength=4) / 20_000, expected.detach(), atol=0.015, rtol=0)


def test_low_temperature_relaxation_approaches_the_one_hot_samples():
    g = _generator()
    tokens, soft = g.sample(4, temperature=1e-6)
    assert_close(soft, F.one_hot(tokens, g.vocab_size).float(), atol=1e-3, rtol=0)


def test_gumbel_softmax_samples_carry_gradient_to_every_generator_parameter():
    g = _generator()
    d = TextTransformerDiscriminator(**TINY["text-discriminator"][1])
    _, soft = g.sample(8, temperature=1.0)
    d(soft).mean().backward()  # the discriminator's score of generated sequences, as G's loss sees it
    for name, p in g.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_discriminator_reads_token_ids_as_one_hot_vectors():
    d = TextTransformerDiscriminator(**TINY["text-discriminator"][1])
    tokens = torch.randint(0, d.vocab_size, (4, d.seq_len))
    assert_close(d(tokens), d(F.one_hot(tokens, d.vocab_size).float()))


def test_sampling_runs_without_dropout_and_keeps_the_mode():
    g = _generator(dropout=0.5)
    g.train()
    tokens, soft = g.sample(6, temperature=0.5, generator=torch.Generator().manual_seed(0))
    assert g.training
    gumbel = gumbel_noise((6, g.seq_len, g.vocab_size), torch.device("cpu"), torch.Generator().manual_seed(0))
    g.eval()
    assert_close(soft, torch.softmax((g(tokens) + gumbel) / 0.5, dim=-1))
