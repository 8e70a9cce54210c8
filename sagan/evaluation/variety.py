"""Within-class variety of a conditional generator: how much its samples of one class differ.

`class_pixel_std` is the per-pixel standard deviation across the images of each class, averaged over
pixels and channels: a generator that draws every "7" alike scores near 0, real digits of one class
about 0.2-0.33 (in [-1, 1] units). `intra_class_fid` (in `sagan.evaluation.metrics`) measures the same
thing in a feature space; this one needs no extractor and reads directly off the images.
"""

from collections.abc import Callable

import torch


def class_pixel_std(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """images: [N, C, H, W], labels: [N] -> [num_classes]: per class, the mean over pixels of the
    standard deviation (unbiased) across that class's images; NaN for a class with fewer than 2 images."""
    out = torch.full((num_classes,), float("nan"), dtype=torch.float64)
    for c in range(num_classes):
        group = images[labels == c].double()
        if len(group) > 1:
            out[c] = group.std(dim=0).mean()
    return out


@torch.no_grad()
def generated_class_pixel_std(
    sample: Callable, z_dim: int, num_classes: int, per_class: int = 100, seed: int = 0, device: str = "cpu"
) -> torch.Tensor:
    """`class_pixel_std` of `per_class` samples of each class from `sample(z, y)` (seeded noise) -> [num_classes]."""
    rng = torch.Generator().manual_seed(seed)
    stds = []
    for c in range(num_classes):
        z = torch.randn(per_class, z_dim, generator=rng).to(device)
        y = torch.full((per_class,), c, dtype=torch.long, device=device)
        images = sample(z, y).cpu()
        stds.append(class_pixel_std(images, torch.zeros(per_class, dtype=torch.long), 1)[0])
    return torch.stack(stds)


def real_class_pixel_std(dataset, num_classes: int, per_class: int = 100) -> torch.Tensor:
    """`class_pixel_std` of the first `per_class` images of each class of a dataset of (image, label) pairs."""
    groups: dict[int, list[torch.Tensor]] = {c: [] for c in range(num_classes)}
    for i in range(len(dataset)):
        image, label = dataset[i]
        label = int(label)
        if len(groups[label]) < per_class:
            groups[label].append(image)
        if all(len(g) >= per_class for g in groups.values()):
            break
    images = torch.cat([torch.stack(g) for g in groups.values() if g])
    labels = torch.cat([torch.full((len(g),), c) for c, g in groups.items() if g])
    return class_pixel_std(images, labels, num_classes)
