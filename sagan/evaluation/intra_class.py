"""Intra-class FID (IFID): the Frechet distance computed class by class, then averaged.

A conditional generator can reach a good FID while drawing each class with little variety (the other
classes fill the feature distribution in); IFID compares the samples of class c only with the real
images of class c (Miyato & Koyama, 2018; StudioGAN's "IFID"), so missing variety within a class shows.
Here the generated side is the same seeded sample set as FID's (its labels drawn uniformly), and the
real side is the same subset of training images as FID's, grouped by label: per class, FID's moment sums.
A class with fewer than two generated or two real images is left out of the mean.
"""

import warnings

import torch

from sagan.evaluation.features import FeatureExtractor, PrecomputedFeatures

#: Largest per-class real statistics kept (K classes x D x D float64 sums): 1,000 ImageNet classes in
#: Inception's 2048-d features would need 34 GB; 10 CIFAR-10 classes need 0.34 GB.
MAX_CLASS_STATISTICS_BYTES = 2 << 30


def class_statistics_bytes(num_classes: int, extractor: FeatureExtractor) -> int:
    """Bytes of the per-class covariance sums of `num_classes` classes in the extractor's features."""
    return num_classes * extractor.num_features**2 * 8


def class_statistics(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, torch.Tensor]:
    """features: [N, D], labels: [N] -> per class FID's moment sums (float64): `class_sum` [K, D],
    `class_cov_sum` [K, D, D], `class_n` [K]."""
    f = features.double()
    one_hot = torch.nn.functional.one_hot(labels.long(), num_classes).double()  # [N, K]
    return {
        "class_sum": one_hot.T @ f,
        "class_cov_sum": torch.einsum("nk,nd,ne->kde", one_hot, f, f),
        "class_n": one_hot.sum(0).long(),
    }


@torch.no_grad()
def intra_class_fid(features: torch.Tensor, labels: torch.Tensor, real: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean over classes of FID(generated images of class c, real images of class c) (torchmetrics' FID).

    features: [N, D] and labels: [N] of generated images; `real`: `class_statistics` of real images.
    """
    from torchmetrics.image import FrechetInceptionDistance

    distances = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        for c in range(len(real["class_n"])):
            mine = features[labels == c]
            if len(mine) < 2 or real["class_n"][c] < 2:
                continue
            fid = FrechetInceptionDistance(PrecomputedFeatures(features.shape[1]), reset_real_features=False,
                                           sync_on_compute=False).to(features.device)
            fid.real_features_sum = real["class_sum"][c].to(features.device)
            fid.real_features_cov_sum = real["class_cov_sum"][c].to(features.device)
            fid.real_features_num_samples = real["class_n"][c].to(features.device)
            fid.update(mine, real=False)
            distances.append(fid.compute())
    if not distances:
        return torch.tensor(float("nan"), device=features.device)
    return torch.stack(distances).mean()
