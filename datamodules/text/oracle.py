"""The synthetic oracle benchmark of the text-GAN literature (SeqGAN, Texygen, RelGAN).

A randomly initialised LSTM, the oracle, plays the part of the true distribution of the data: it
generates the training sentences, and because its probabilities are known, the quality of a
generator's samples can be measured exactly as their NLL under the oracle (NLL-oracle). As in SeqGAN
and Texygen the oracle has embedding and hidden size 32, a 5,000-token vocabulary, and every weight
drawn from N(0, 1) (a small initialisation would make it nearly uniform); it generates 10,000
training sequences of 20 tokens. Everything is drawn from one seed, on CPU, in a few seconds.

This oracle is drawn with PyTorch's generator, not loaded from SeqGAN's saved parameters, so its
numbers are comparable to the papers' in setting (same construction and sizes), not digit for digit.
"""

import torch
import torch.nn.functional as F
from torch import nn

from datamodules.text.base import TokenDataModule
from sagan.errors import check_ranges
from sagan.vocabulary import Vocabulary


class LSTMOracle(nn.Module):
    """A one-layer LSTM language model with all weights drawn from N(0, 1) by a seeded generator.

    The cell is written out (one bias per gate, as in SeqGAN's oracle): PyTorch's `nn.LSTM` adds a
    second bias, and its CPU kernel is slow for one step at a time.

    Args:
        vocab_size: tokens of the language.
        embed_dim: size of the token embeddings.
        hidden_dim: size of the LSTM state.
        seed: seed of the weights.
    """

    def __init__(self, vocab_size: int = 5000, embed_dim: int = 32, hidden_dim: int = 32, seed: int = 0):
        super().__init__()
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.start = nn.Parameter(torch.empty(embed_dim))  # the input before the first token
        # the four gates (input, forget, cell, output) of the LSTM, stacked
        self.w_input = nn.Parameter(torch.empty(4 * hidden_dim, embed_dim))
        self.w_hidden = nn.Parameter(torch.empty(4 * hidden_dim, hidden_dim))
        self.bias = nn.Parameter(torch.empty(4 * hidden_dim))
        self.out = nn.Linear(hidden_dim, vocab_size)
        rng = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=rng))
        self.requires_grad_(False)

    def step(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None):
        """One LSTM step: input `[N, E]` and (h, c) -> output logits `[N, V]` and the new (h, c)."""
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.w_hidden.shape[1])
            state = (zeros, zeros)
        h, c = state
        i, f, g, o = (x @ self.w_input.t() + h @ self.w_hidden.t() + self.bias).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return self.out(h), (h, c)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        # tokens: [N, T] -> logits [N, T, V]; position t predicts tokens[:, t] from tokens[:, :t]
        x, state, logits = self.start.expand(tokens.shape[0], -1), None, []
        for t in range(tokens.shape[1]):
            out, state = self.step(x, state)
            logits.append(out)
            x = self.embed(tokens[:, t])
        return torch.stack(logits, dim=1)

    @torch.no_grad()
    def nll(self, tokens: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood per token of each sequence: `[N, T]` -> `[N]` (nats)."""
        logits = self(tokens)
        return F.cross_entropy(logits.transpose(1, 2), tokens, reduction="none").mean(dim=1)

    @torch.no_grad()
    def sample(self, n: int, length: int, generator: torch.Generator, batch_size: int = 1000) -> torch.Tensor:
        """`[n, length]` sequences drawn token by token (in chunks of `batch_size` sequences)."""
        chunks = []
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            x, state, tokens = self.start.expand(m, -1), None, []
            for _ in range(length):
                logits, state = self.step(x, state)
                # inverse-CDF sampling: several times faster than torch.multinomial over 5,000 tokens
                cdf = torch.softmax(logits, dim=-1).cumsum_(dim=-1)  # [m, V]
                u = torch.rand(m, 1, generator=generator) * cdf[:, -1:]
                token = torch.searchsorted(cdf, u).clamp_(max=self.vocab_size - 1)  # [m, 1]
                tokens.append(token)
                x = self.embed(token[:, 0])
            chunks.append(torch.cat(tokens, dim=1))
        return torch.cat(chunks)


class OracleDataModule(TokenDataModule):
    """Sequences drawn from a seeded random LSTM oracle; the embedded default text data set.

    Tokens are the oracle's own ids, named "0" ... "4999"; there are no special tokens, since every
    sequence has exactly `seq_len` tokens. The oracle is exposed as `oracle` for the NLL-oracle metric.

    Args:
        num_train: training sequences (10,000 in the literature).
        num_valid: held-out sequences for validation.
        num_test: held-out sequences for testing (BLEU references, NLL-test).
        seq_len: tokens per sequence (20 in the literature; 40 is the long setting).
        vocab_size: tokens of the oracle's language.
        embed_dim: the oracle's embedding size.
        hidden_dim: the oracle's LSTM state size.
        seed: seed of the oracle's weights and of the sequences it draws.
        batch_size: sequences per batch and per device.
        num_workers: DataLoader worker processes.
    """

    def __init__(
        self,
        num_train: int = 10_000,
        num_valid: int = 1_000,
        num_test: int = 1_000,
        seq_len: int = 20,
        vocab_size: int = 5000,
        embed_dim: int = 32,
        hidden_dim: int = 32,
        seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
    ):
        super().__init__(batch_size, num_workers)
        check_ranges(
            type(self).__name__, num_train=(num_train, "[1, inf)"), num_valid=(num_valid, "[0, inf)"),
            num_test=(num_test, "[0, inf)"), seq_len=(seq_len, "[1, inf)"), vocab_size=(vocab_size, "[1, inf)"),
            embed_dim=(embed_dim, "[1, inf)"), hidden_dim=(hidden_dim, "[1, inf)"),
        )
        self.num_train, self.num_valid, self.num_test = num_train, num_valid, num_test
        self._seq_len = seq_len
        self.seed = seed
        self.oracle = LSTMOracle(vocab_size, embed_dim, hidden_dim, seed)
        self._vocabulary = Vocabulary([str(i) for i in range(vocab_size)], "word")

    @property
    def vocabulary(self) -> Vocabulary:
        return self._vocabulary

    @property
    def seq_len(self) -> int:
        return self._seq_len

    def _splits(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = torch.Generator().manual_seed(self.seed + 1)  # the data's draws, apart from the oracle's weights
        sequences = self.oracle.sample(self.num_train + self.num_valid + self.num_test, self.seq_len, rng)
        return sequences.split([self.num_train, self.num_valid, self.num_test])
