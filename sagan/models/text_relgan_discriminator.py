"""RelGAN's multi-representation CNN discriminator for (soft) one-hot token sequences (Nie et al., ICLR 2019).

One one-hot (or Gumbel-softmax) sequence `[N, T, V]` is embedded `num_representations` times, by as many
independent embedding matrices (one linear map to `num_representations * embed_dim` features, split).
Each representation `[T, embed_dim]` goes through the same small text CNN: convolutions spanning
`filter_sizes` consecutive tokens and the whole embedding, ReLU, max over positions, a highway layer,
dropout and a linear score. The sequence's logit is the mean of its representations' scores. Several
embeddings give the discriminator several views of the input, which RelGAN found steadier to train
against than one (and a better, more diverse generator).
"""

import torch
import torch.nn.functional as F
from torch import nn

from sagan.errors import check_ranges


class RelGANDiscriminator(nn.Module):
    """CNN discriminator over several learned embeddings of the same token sequence.

    Args:
        vocab_size: size of the one-hot vectors (filled in from the data).
        seq_len: length of the sequences (filled in from the data).
        embed_dim: width of each representation.
        num_representations: independent embeddings of the input (RelGAN: 64).
        filter_sizes: tokens each convolution spans, one convolution per entry.
        num_filters: output channels of each convolution.
        dropout: dropout before the score (training only).
    """

    def __init__(
        self,
        vocab_size: int = 5000,
        seq_len: int = 20,
        embed_dim: int = 32,
        num_representations: int = 16,
        filter_sizes: tuple[int, ...] = (2, 3, 4, 5),
        num_filters: int = 64,
        dropout: float = 0.25,
    ):
        super().__init__()
        check_ranges(
            type(self).__name__, vocab_size=(vocab_size, "[1, inf)"), seq_len=(seq_len, "[1, inf)"),
            embed_dim=(embed_dim, "[1, inf)"), num_representations=(num_representations, "[1, inf)"),
            filter_sizes=(tuple(filter_sizes), "[1, inf)"), num_filters=(num_filters, "[1, inf)"),
            dropout=(dropout, "[0, 1)"),
        )
        if not filter_sizes or max(filter_sizes) > seq_len:
            raise ValueError(f"RelGANDiscriminator: filter_sizes {tuple(filter_sizes)} must be non-empty and at "
                             f"most seq_len ({seq_len})")
        self.vocab_size, self.seq_len = vocab_size, seq_len
        self.embed_dim, self.num_representations = embed_dim, num_representations
        self.embed = nn.Linear(vocab_size, embed_dim * num_representations, bias=False)
        self.convs = nn.ModuleList(nn.Conv2d(1, num_filters, (k, embed_dim)) for k in filter_sizes)
        features = num_filters * len(filter_sizes)
        self.highway = nn.Linear(features, 2 * features)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Sequential(nn.Linear(features, 100), nn.ReLU(), nn.Linear(100, 1))
        nn.init.normal_(self.embed.weight, std=1.0 / embed_dim**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [N, T, V] (soft) one-hot vectors, or [N, T] token ids (= their one-hot vectors) -> [N] logits
        if x.dtype == torch.long:
            h = F.embedding(x, self.embed.weight.t())  # one_hot(x) @ W^T without the one-hot tensor
        else:
            h = self.embed(x)
        n, t = h.shape[:2]
        r, e = self.num_representations, self.embed_dim
        h = h.view(n, t, r, e).permute(0, 2, 1, 3).reshape(n * r, 1, t, e)  # one image [T, E] per representation
        pooled = torch.cat([F.relu(conv(h)).squeeze(3).amax(dim=2) for conv in self.convs], dim=1)  # [N*R, F]
        gate, value = self.highway(pooled).chunk(2, dim=1)
        gate = torch.sigmoid(gate)
        h = gate * F.relu(value) + (1 - gate) * pooled
        return self.head(self.dropout(h)).view(n, r).mean(dim=1)


_TINY = dict(vocab_size=11, seq_len=6, embed_dim=8, num_representations=3, filter_sizes=(2, 3), num_filters=4, dropout=0.0)
TINY = {"relgan-discriminator": (RelGANDiscriminator, _TINY)}
