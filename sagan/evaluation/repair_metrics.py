"""Quality of repaired images: PSNR, SSIM, L1 over the holes, LPIPS, and FID / KID of completed images,
each per hole-size bucket.

Conventions (the same in validation, `make eval` and `sagan bench-quality --only repair`):

- Images are [N, C, H, W] in [-1, 1]; masks [N, 1, H, W] with 1 = hole. Inpainting outputs are
  composited before they are scored (`composite`: known pixels are the damaged input's, bit for bit);
  outputs are clamped to [-1, 1].
- PSNR (dB) and SSIM (Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03) are torchmetrics' with a data
  range of 2, which equals the usual definitions on images in [0, 1]; PSNR is per image, capped at
  100 dB (an exact image), then averaged. `l1_hole` is the mean absolute error over hole pixels and
  channels in [0, 1] units (per image, then averaged; images without holes are left out).
- Buckets by hole ratio r (`datamodules.repair.masks.BUCKETS`): small 0 < r <= 0.3, large 0.3 < r <= 0.6.
  Keys: `<prefix><metric>_<bucket>` (`val/psnr_small`, `val/ssim_large`, `val/l1_hole_small`,
  `val/lpips_large`, `val/digits_fid_large`, `val/kid_small`, ...) and, over all images, `<prefix><metric>`
  (`val/psnr`, ...). FID / KID carry the extractor's prefix (`digits_` for the digits classifier, none
  for Inception) and compare the completed images with the training set's cached statistics, the same
  statistics the image GAN's `val/fid` uses.
- LPIPS (torchmetrics' networks) needs its ImageNet backbone weights on disk (torchvision's file in torch
  hub's `checkpoints/` folder, e.g. alexnet-owt-7be5be79.pth); they are never downloaded.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from datamodules.repair.masks import BUCKETS
from sagan.errors import UsageError
from sagan.evaluation.features import FeatureExtractor
from sagan.evaluation.metrics import SampleMetrics, SampleQuality, _gather
from sagan.evaluation.recipe import Recipe, make_recipe

PSNR_CAP = 100.0
LPIPS_BACKBONES = {"alex": ("alexnet", "AlexNet_Weights"), "vgg": ("vgg16", "VGG16_Weights"),
                   "squeeze": ("squeezenet1_1", "SqueezeNet1_1_Weights")}


def composite(damaged: torch.Tensor, prediction: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The repaired image: the prediction in the holes (mask != 0), the damaged input's pixels, unchanged
    bit for bit, elsewhere. damaged, prediction: [N, C, H, W]; mask: [N, 1, H, W]."""
    return torch.where(mask != 0, prediction.to(damaged.dtype), damaged)


def per_image(output: torch.Tensor, clean: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """{psnr, ssim, l1_hole, hole_ratio}, each [N], of outputs against clean images (see the module docstring)."""
    output, clean = output.float().clamp(-1, 1), clean.float()
    holes = (mask != 0).float()
    psnr = peak_signal_noise_ratio(output, clean, data_range=2.0, reduction="none", dim=(1, 2, 3))
    ssim = structural_similarity_index_measure(output, clean, data_range=2.0, reduction="none")
    hole_pixels = holes.sum((1, 2, 3)) * output.shape[1]
    l1 = ((output - clean).abs() * holes).sum((1, 2, 3)) / 2
    return {
        "psnr": psnr.clamp(max=PSNR_CAP),
        "ssim": ssim,
        "l1_hole": torch.where(hole_pixels > 0, l1 / hole_pixels.clamp(min=1), torch.nan),
        "hole_ratio": holes.mean((1, 2, 3)),
    }


def bucket_of(ratio: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Which images have a hole ratio in (low, high]."""
    return (ratio > low) & (ratio <= high)


def _means(
    values: dict[str, torch.Tensor], prefix: str, buckets: dict[str, tuple[float, float]]
) -> dict[str, torch.Tensor]:
    out = {}
    groups = {"": torch.ones_like(values["hole_ratio"], dtype=torch.bool)}
    groups |= {f"_{name}": bucket_of(values["hole_ratio"], *bounds) for name, bounds in buckets.items()}
    for suffix, chosen in groups.items():
        if not chosen.any():
            continue
        for name, value in values.items():
            if name == "hole_ratio":
                continue
            picked = value[chosen]
            picked = picked[~picked.isnan()]
            if len(picked):
                out[f"{prefix}{name}{suffix}"] = picked.mean()
    return out


def repair_metrics(
    output: torch.Tensor, clean: torch.Tensor, mask: torch.Tensor, prefix: str = "val/",
    buckets: dict[str, tuple[float, float]] = BUCKETS,
) -> dict[str, torch.Tensor]:
    """PSNR, SSIM and hole L1 of a batch, over all images and per bucket (buckets without images are left out).

    Args:
        output: [N, C, H, W] in [-1, 1], the composited repair.
        clean: [N, C, H, W] in [-1, 1], the originals.
        mask: [N, 1, H, W], nonzero = hole (for restoration: the damage map).
        prefix: prepended to every key.
        buckets: {name: (low, high)} hole-ratio buckets; {} for overall numbers only.

    Returns:
        {"val/psnr": ..., "val/psnr_small": ..., "val/ssim_large": ..., "val/l1_hole_small": ..., ...}
    """
    return _means(per_image(output, clean, mask), prefix, buckets)


# ----------------------------------------------------------------------------------------- LPIPS
def find_lpips_weights(net: str = "alex", weights_path: str | None = None, required: bool = True) -> Path | None:
    """The ImageNet backbone weights of LPIPS: `weights_path`, else torchvision's file in torch hub's
    checkpoint folder. Missing: a one-line UsageError saying what to put where (None when not `required`)."""
    import torchvision

    name = Path(getattr(torchvision.models, LPIPS_BACKBONES[net][1]).DEFAULT.url).name
    url = getattr(torchvision.models, LPIPS_BACKBONES[net][1]).DEFAULT.url
    path = Path(weights_path).expanduser() if weights_path else Path(torch.hub.get_dir()) / "checkpoints" / name
    if path.is_file():
        return path
    if not required:
        return None
    raise UsageError(
        f"LPIPS backbone weights not found at {path}: place {name} ({url}) there, or turn LPIPS off with lpips=false"
    )


def load_lpips(net: str, weights: Path) -> torch.nn.Module:
    """torchmetrics' LPIPS network (its linear heads ship with torchmetrics) with the backbone read from
    the local torchvision file `weights`; nothing is downloaded."""
    from torchmetrics.functional.image.lpips import _NoTrainLpips

    with torch.random.fork_rng(devices=[]):  # its random backbone (no download) is not drawn from training's
        model = _NoTrainLpips(pretrained=True, net=net, pnet_rand=True)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    features = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    for part in model.net.children():
        for index, layer in part.named_children():
            layer.load_state_dict({k[len(index) + 1 :]: v for k, v in features.items() if k.startswith(f"{index}.")})
    return model.eval().requires_grad_(False)


# ----------------------------------------------------------------------------- accumulated metrics
class RepairEvaluation:
    """The metrics of an evaluation pass (validation, `make eval`, the repair benchmark), accumulated over
    batches and ranks: `prepare` once, then `reset`, `update` per batch, `compute`.

    Per-image metrics are gathered over ranks (a rank's padded duplicates count too); FID / KID are
    computed per bucket from the gathered features of the completed images.

    Args:
        features: FID / KID extractor: "data" (the data module's `metric_features`), an extractor, or
            None (no FID / KID).
        num_real: training images for the real statistics (cached); None: all.
        batch_size: images per extractor batch when computing the real statistics.
        kid_subsets: KID subsets.
        kid_subset_size: samples per KID subset (lowered to the bucket's size when it has fewer).
        kid_real: real feature vectors kept for KID.
        seed: seed of the real subset and the KID subsets.
        cache_dir: cache of real statistics; default `$SAGAN_CACHE` or `~/.cache/sagan`.
        lpips: True: LPIPS, its backbone weights required at start-up; None: LPIPS when the weights are
            on disk; False: no LPIPS.
        lpips_net: LPIPS backbone: "alex" (the usual), "vgg" or "squeeze".
        lpips_weights: the backbone's torchvision weights file; default: torch hub's checkpoints folder.
        buckets: report per hole-ratio bucket (inpainting); False: over all images only (restoration).
    """

    def __init__(
        self,
        features: FeatureExtractor | Literal["data"] | None = "data",
        num_real: int | None = 50_000,
        batch_size: int = 250,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        kid_real: int = 10_000,
        seed: int = 0,
        cache_dir: str | None = None,
        lpips: bool | None = None,
        lpips_net: Literal["alex", "vgg", "squeeze"] = "alex",
        lpips_weights: str | None = None,
        buckets: bool = True,
    ):
        if lpips_net not in LPIPS_BACKBONES:
            raise ValueError(f"lpips_net must be one of {', '.join(LPIPS_BACKBONES)}, got {lpips_net!r}")
        if num_real is not None and num_real < 2 or kid_real < 2:
            raise ValueError(f"num_real (or None) and kid_real must be >= 2, got {num_real} and {kid_real}")
        if kid_subsets < 1 or kid_subset_size < 2:
            raise ValueError(
                f"kid_subsets must be >= 1 and kid_subset_size >= 2, got {kid_subsets} and {kid_subset_size}"
            )
        # SampleQuality finds the extractor and loads or computes the cached real statistics (the same
        # cache entry as the image GAN's); the metrics themselves are computed per bucket in `compute`
        self.quality = SampleQuality(
            features, num_samples=2, num_real=num_real, batch_size=batch_size, fid=True, inception_score=False,
            kid=False, kid_real=kid_real, seed=seed, cache_dir=cache_dir,
        )
        self.kid_subsets, self.kid_subset_size, self.seed = kid_subsets, kid_subset_size, seed
        self.lpips_net = lpips_net
        # checked now, at start-up: LPIPS asked for (True) without its weights file is a one-line error
        self.lpips_weights = None if lpips is False else find_lpips_weights(lpips_net, lpips_weights, bool(lpips))
        self.lpips: torch.nn.Module | None = None
        self.buckets = BUCKETS if buckets else {}
        self.scored = 0  # repairs the last `compute` scored
        self.reset()

    @property
    def features(self) -> FeatureExtractor | None:
        return self.quality.features if self.quality.enabled else None

    def resolve(self, datamodule) -> None:
        """Builds the extractor the data module names (at start-up: missing Inception weights stop the run here)."""
        self.quality.resolve(datamodule)

    def prepare(
        self, datamodule, device: torch.device, broadcast: Callable = lambda x: x, num_real: int | None = None
    ) -> None:
        """Loads the extractor, the real statistics of `datamodule.train_set` (cached) and LPIPS.
        `num_real` lowers the number of real images (e.g. 64 under fast_dev_run); KID subsets shrink
        to the images there are."""
        if num_real is not None:
            self.quality.num_real = min(self.quality.num_real or num_real, num_real)
            self.quality.kid_real = min(self.quality.kid_real, num_real)
        self.quality.prepare(datamodule, device, broadcast)
        if self.lpips_weights is not None and self.lpips is None:
            self.lpips = load_lpips(self.lpips_net, self.lpips_weights)
        if self.lpips is not None:
            self.lpips.to(device)

    def recipe(self, datamodule, scored: int | None = None) -> Recipe:
        """The recipe of these numbers: `scored` repairs (default: those the last `compute` saw) of the validation
        split; the real side of FID / KID is the cached training statistics, that of PSNR / SSIM the originals."""
        scored = self.scored if scored is None else scored
        real = int(self.quality.real["n"]) if self.features is not None and self.quality.real is not None else scored
        return make_recipe(self.features, datamodule, "val", real, scored, self.seed, None, ema=True)

    def reset(self) -> None:
        self._values: dict[str, list[torch.Tensor]] = {}
        self._features: list[torch.Tensor] = []

    @torch.no_grad()
    def update(self, output: torch.Tensor, clean: torch.Tensor, mask: torch.Tensor) -> None:
        """One batch: output (composited for inpainting), clean [N, C, H, W] in [-1, 1]; mask [N, 1, H, W]."""
        values = per_image(output, clean, mask)
        if self.lpips is not None:
            a, b = output.float().clamp(-1, 1), clean.float()
            if a.shape[1] == 1:
                a, b = a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1)
            values["lpips"] = self.lpips(a, b).reshape(-1)
        for name, value in values.items():
            self._values.setdefault(name, []).append(value.detach())
        if self.features is not None:
            self._features.append(self.features(output.float().clamp(-1, 1))[0].float())

    @torch.no_grad()
    def compute(self, prefix: str = "val/") -> dict[str, torch.Tensor]:
        """The metrics of everything `update` saw on every rank (every rank gets the same numbers)."""
        values = {name: _gather(torch.cat(parts)) for name, parts in self._values.items()}
        if not values:
            return {}
        self.scored = len(values["psnr"])
        out = _means(values, prefix, self.buckets)
        if self.features is None:
            return out
        features = _gather(torch.cat(self._features))
        ratio = values["hole_ratio"].to(features.device)
        groups = {"": torch.ones_like(ratio, dtype=torch.bool)} if not self.buckets else {}
        groups |= {f"_{name}": bucket_of(ratio, *bounds) for name, bounds in self.buckets.items()}
        real_kid = len(self.quality.real["kid_features"])
        tag = self.features.metric_prefix
        for suffix, chosen in groups.items():
            n = int(chosen.sum())
            if n < 2:
                continue
            metrics = SampleMetrics(fid=True, inception_score=False, kid=True, kid_subsets=self.kid_subsets,
                                    kid_subset_size=min(self.kid_subset_size, n, real_kid), seed=self.seed)
            found = features[chosen]
            results = metrics(found, found.new_zeros(n, 1), self.quality.real)
            out[f"{prefix}{tag}fid{suffix}"] = results["fid"]
            out[f"{prefix}{tag}kid{suffix}"] = results["kid"]
        return out


@torch.no_grad()
def evaluate_repair(
    repair: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor] | None, data, evaluation: RepairEvaluation,
    device: torch.device | str = "cpu", prefix: str = "", limit: int | None = None,
) -> dict[str, float]:
    """Scores a repair function on the validation split of a `datamodules.repair.damaged.RepairDataModule` with
    its fixed masks / damage (what `make eval` and the repair benchmark report).

    Args:
        repair: `repair(damaged, mask) -> prediction` ([N, C, H, W], [N, 1, H, W] -> [N, C, H, W]); the
            mask is None for blind restoration; inpainting predictions are composited. None scores the
            original images themselves (the floor).
        data: the data module.
        evaluation: a prepared `RepairEvaluation`.
        device: where the images go.
        prefix: prepended to every key.
        limit: the first `limit` validation images only.

    Returns:
        {key: value} (see the module docstring) and `images`, `images_small`, `images_large`: how many
        images each number is over.
    """
    if data.val_repair is None:
        data.setup("fit")
    dataset = data.val_repair
    if limit is not None:
        dataset = torch.utils.data.Subset(dataset, range(min(limit, len(dataset))))
    loader = torch.utils.data.DataLoader(dataset, batch_size=data.batch_size, num_workers=data.num_workers)
    evaluation.reset()
    ratios = []
    for damaged, mask, clean, _ in loader:
        damaged, mask, clean = damaged.to(device), mask.to(device), clean.to(device)
        if repair is None:
            output = clean
        elif data.task == "inpaint":
            output = composite(damaged, repair(damaged, mask), mask)
        else:
            output = repair(damaged, None)
        evaluation.update(output, clean, mask)
        ratios.append((mask != 0).float().mean((1, 2, 3)).cpu())
    results = {key: float(value) for key, value in evaluation.compute(prefix).items()}
    ratio = torch.cat(ratios)
    results[f"{prefix}images"] = len(ratio)
    for name, bounds in evaluation.buckets.items():
        results[f"{prefix}images_{name}"] = int(bucket_of(ratio, *bounds).sum())
    return results
