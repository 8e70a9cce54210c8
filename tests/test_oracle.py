"""The synthetic oracle benchmark: a seeded LSTM oracle and the sequences it generates."""

import torch
from torch.testing import assert_close

from datamodules.text.oracle import LSTMOracle, OracleDataModule

SMALL = dict(num_train=64, num_valid=16, num_test=16, seq_len=8, vocab_size=50, batch_size=8)


def test_same_seed_gives_identical_data_and_oracle():
    a, b = OracleDataModule(**SMALL, seed=3), OracleDataModule(**SMALL, seed=3)
    torch.manual_seed(0)
    a.setup()
    torch.manual_seed(1)  # the global seed plays no part
    b.setup()
    for split in ("train_set", "val_set", "test_set"):
        assert torch.equal(getattr(a, split).tensors[0], getattr(b, split).tensors[0])
    for p, q in zip(a.oracle.parameters(), b.oracle.parameters()):
        assert torch.equal(p, q)
    c = OracleDataModule(**SMALL, seed=4)
    c.setup()
    assert not torch.equal(a.train_set.tensors[0], c.train_set.tensors[0])


def test_shapes_splits_and_facts():
    dm = OracleDataModule(**SMALL)
    dm.setup()
    assert [len(s) for s in (dm.train_set, dm.val_set, dm.test_set)] == [64, 16, 16]
    (batch,) = next(iter(dm.train_dataloader()))
    assert batch.shape == (8, 8) and batch.dtype == torch.long
    assert 0 <= batch.min() and batch.max() < 50
    assert dm.vocab_size == 50 and dm.seq_len == 8 and not dm.vocabulary.has_specials
    assert dm.vocabulary.decode([3, 14, 15]) == "3 14 15"


def test_default_is_the_literature_setting():
    dm = OracleDataModule()
    assert (dm.num_train, dm.seq_len, dm.vocab_size) == (10_000, 20, 5000)
    assert dm.oracle.embed.embedding_dim == 32 and dm.oracle.w_hidden.shape == (4 * 32, 32)
    # every weight is drawn from N(0, 1)
    weights = torch.cat([p.flatten() for p in dm.oracle.parameters()])
    assert abs(weights.mean()) < 0.01 and abs(weights.std() - 1) < 0.01


def test_nll_is_the_mean_per_token_cross_entropy_of_the_step_by_step_model():
    oracle = LSTMOracle(vocab_size=20, embed_dim=4, hidden_dim=5, seed=0)
    tokens = torch.randint(0, 20, (3, 6))
    x, state, expected = oracle.start.expand(3, -1), None, torch.zeros(3)
    for t in range(6):
        logits, state = oracle.step(x, state)
        expected -= torch.log_softmax(logits, dim=-1).gather(1, tokens[:, t : t + 1]).squeeze(1) / 6
        x = oracle.embed(tokens[:, t])
    assert_close(oracle.nll(tokens), expected)


def test_oracle_prefers_its_own_samples_to_uniform_tokens():
    oracle = LSTMOracle(vocab_size=200, seed=0)
    own = oracle.sample(256, 10, torch.Generator().manual_seed(0))
    uniform = torch.randint(0, 200, (256, 10), generator=torch.Generator().manual_seed(0))
    # its samples' NLL is the oracle's entropy rate, well below log(200) = 5.3, and below random tokens'
    assert oracle.nll(own).mean() < 4.5 < oracle.nll(uniform).mean()


def test_sampling_matches_the_model_distribution():
    oracle = LSTMOracle(vocab_size=5, embed_dim=4, hidden_dim=4, seed=0)
    first = oracle.sample(20_000, 1, torch.Generator().manual_seed(0))[:, 0]
    expected = torch.softmax(oracle(torch.zeros(1, 1, dtype=torch.long))[0, 0], dim=-1)
    assert_close(torch.bincount(first, minlength=5) / 20_000, expected, atol=0.015, rtol=0)
