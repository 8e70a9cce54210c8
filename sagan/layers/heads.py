"""Output heads shared by the discriminators."""

import torch
from torch import nn


class ClassProjection(nn.Embedding):
    """The class term of a projection discriminator (Miyato & Koyama, 2018): one embedding row per class, and
    `project(y, features)`, the inner product of a sample's features with its class's row, added to the
    unconditional logit. An `nn.Embedding` (its weight is spectrally normed like any other)."""

    def project(self, y: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        # y: [N] class indices, features: [N, D] -> [N]
        return (self(y) * features).sum(dim=1)
