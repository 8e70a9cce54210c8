"""A transformer GAN for token sequences, trained with the Gumbel-softmax relaxation (as RelGAN).

Generator: a decoder-only transformer (GPT-style: token and learned position embeddings, pre-norm
causal blocks, a linear head over the vocabulary). `forward(tokens)` gives next-token logits with
teacher forcing (maximum-likelihood training, NLL). `sample(n, temperature)` draws sequences token by
token with the Gumbel-max trick, y_t = argmax(o_t + g_t), which samples exactly from softmax(o_t), and
returns with them the relaxed one-hot vectors softmax((o_t + g_t) / temperature) that the
discriminator sees. Those carry gradient from the discriminator back to the generator's logits; as
the temperature falls they approach the one-hot vectors of the sampled tokens.

Discriminator: a bidirectional transformer encoder over (soft) one-hot vectors `[N, T, V]`, embedded by
a linear map (for hard one-hot vectors, a row lookup), mean-pooled over positions to one logit.
"""

import torch
import torch.nn.functional as F
from torch import nn

from sagan.errors import check_ranges
from sagan.layers.causal import KVCache, TransformerBlock


def _init_weights(module: nn.Module) -> None:
    """GPT-2's initialisation: N(0, 0.02) weights, zero biases, unit layer norms."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def _check(who: str, vocab_size, seq_len, dim, depth, num_heads, mlp_ratio, dropout) -> None:
    check_ranges(
        who, vocab_size=(vocab_size, "[1, inf)"), seq_len=(seq_len, "[1, inf)"), dim=(dim, "[1, inf)"),
        depth=(depth, "[0, inf)"), num_heads=(num_heads, "[1, inf)"), mlp_ratio=(mlp_ratio, "(0, inf)"),
        dropout=(dropout, "[0, 1)"),
    )


def gumbel_noise(shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard Gumbel noise -log(-log(u)), u ~ U(0, 1)."""
    u = torch.rand(shape, device=device, generator=generator).clamp_(min=torch.finfo(torch.float32).tiny)
    return -torch.log(-torch.log(u))


class TextTransformerGenerator(nn.Module):
    """Decoder-only transformer generator of token sequences.

    Args:
        vocab_size: tokens it can emit (filled in from the data).
        seq_len: length of the sequences it generates (filled in from the data).
        dim: model width.
        depth: transformer blocks.
        num_heads: attention heads per block.
        mlp_ratio: hidden width of each block's MLP as a multiple of `dim`.
        dropout: dropout in attention and MLPs (training only).
    """

    def __init__(
        self,
        vocab_size: int = 5000,
        seq_len: int = 20,
        dim: int = 64,
        depth: int = 2,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
    ):
        super().__init__()
        _check(type(self).__name__, vocab_size, seq_len, dim, depth, num_heads, mlp_ratio, dropout)
        self.vocab_size, self.seq_len = vocab_size, seq_len
        self.embed = nn.Embedding(vocab_size, dim)
        self.start = nn.Parameter(torch.zeros(dim))  # the input before the first token
        self.pos = nn.Parameter(torch.zeros(seq_len, dim))
        self.blocks = nn.ModuleList(TransformerBlock(dim, num_heads, True, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size)
        self.apply(_init_weights)
        nn.init.normal_(self.start, std=0.02)
        nn.init.normal_(self.pos, std=0.02)

    def _logits(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, cache)
        return self.head(self.norm(x))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        # tokens: [N, T] (T <= seq_len) -> logits [N, T, V]; position t predicts tokens[:, t] from tokens[:, :t]
        n, t = tokens.shape
        x = torch.cat([self.start.expand(n, 1, -1), self.embed(tokens[:, :-1])], dim=1)
        return self._logits(x + self.pos[:t])

    def sample(
        self,
        n: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        softmax_temperature: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`n` sequences: tokens `[n, seq_len]` and their relaxed one-hot vectors `[n, seq_len, V]`.

        `temperature` is the Gumbel-softmax relaxation's (what the discriminator sees);
        `softmax_temperature` divides the logits before drawing, so tokens are drawn from
        softmax(logits / softmax_temperature) (below 1: sharper, less diverse; the quality-diversity sweep).

        Tokens are drawn one at a time (with a key/value cache) without gradient. When gradients are
        enabled, one teacher-forced pass over the drawn tokens recomputes the same logits with a graph,
        so that the relaxed vectors are differentiable in every parameter. Sampling runs without
        dropout (which would give the two passes different logits).
        """
        training = self.training
        self.eval()
        try:
            return self._sample(n, temperature, generator, softmax_temperature)
        finally:
            self.train(training)

    def _sample(
        self, n: int, temperature: float, generator: torch.Generator | None, softmax_temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if softmax_temperature <= 0:
            raise ValueError(f"softmax_temperature must be positive, got {softmax_temperature}")
        device = self.head.weight.device
        gumbel = gumbel_noise((n, self.seq_len, self.vocab_size), device, generator)
        tokens, step_logits = [], []
        with torch.no_grad():
            cache = KVCache()
            x = (self.start + self.pos[0]).expand(n, 1, -1)
            for t in range(self.seq_len):
                logits = self._logits(x, cache)[:, -1] / softmax_temperature  # [n, V]
                token = (logits + gumbel[:, t]).argmax(dim=-1)  # Gumbel-max: a sample of softmax(logits)
                tokens.append(token)
                step_logits.append(logits)
                if t + 1 < self.seq_len:
                    x = (self.embed(token) + self.pos[t + 1]).unsqueeze(1)
        tokens = torch.stack(tokens, dim=1)
        logits = self(tokens) / softmax_temperature if torch.is_grad_enabled() else torch.stack(step_logits, dim=1)
        return tokens, torch.softmax((logits + gumbel) / temperature, dim=-1)


class TextTransformerDiscriminator(nn.Module):
    """Transformer encoder scoring (soft) one-hot token sequences.

    Args:
        vocab_size: size of the one-hot vectors (filled in from the data).
        seq_len: length of the sequences (filled in from the data).
        dim: model width.
        depth: transformer blocks.
        num_heads: attention heads per block.
        mlp_ratio: hidden width of each block's MLP as a multiple of `dim`.
        dropout: dropout in attention and MLPs (training only).
    """

    def __init__(
        self,
        vocab_size: int = 5000,
        seq_len: int = 20,
        dim: int = 64,
        depth: int = 2,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
    ):
        super().__init__()
        _check(type(self).__name__, vocab_size, seq_len, dim, depth, num_heads, mlp_ratio, dropout)
        self.vocab_size, self.seq_len = vocab_size, seq_len
        self.embed = nn.Linear(vocab_size, dim, bias=False)
        self.pos = nn.Parameter(torch.zeros(seq_len, dim))
        self.blocks = nn.ModuleList(TransformerBlock(dim, num_heads, False, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 1)
        self.apply(_init_weights)
        nn.init.normal_(self.pos, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [N, T, V] (soft) one-hot vectors, or [N, T] token ids (= their one-hot vectors) -> [N] logits
        if x.dtype == torch.long:
            h = F.embedding(x, self.embed.weight.t())  # one_hot(x) @ W^T, without building the one-hot tensor
        else:
            h = self.embed(x)
        h = h + self.pos[: h.shape[1]]
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h).mean(dim=1)).squeeze(1)


_TINY = dict(vocab_size=11, seq_len=6, dim=16, depth=1, num_heads=2, mlp_ratio=2.0)
TINY = {
    "text-generator": (TextTransformerGenerator, _TINY),
    "text-discriminator": (TextTransformerDiscriminator, _TINY),
    "text-generator-2-layers": (TextTransformerGenerator, {**_TINY, "depth": 2}),
    "text-discriminator-2-layers": (TextTransformerDiscriminator, {**_TINY, "depth": 2}),
}
