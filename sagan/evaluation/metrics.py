"""FID, Inception Score, KID and mode coverage of generated images, at validation time and after training.

Thin wrappers over torchmetrics' `FrechetInceptionDistance` and `KernelInceptionDistance`, and the
original code's Inception Score (`inception_score`: equal splits, population std): images go through a
feature extractor once (`sagan.evaluation.features`), and the three metrics are fed its features and logits. The real side is the training set's statistics, computed once
and cached on disk under a key made of the data module's `fingerprint`, the extractor's, and the number
of real images; every later validation and run reuses them.

Distributed runs: each rank generates its contiguous share of one fixed, seeded set of noise vectors,
the features of all shares are gathered (in rank order) onto every rank, and every rank computes the
metrics from the same full set with the same seed. The result equals a single-process evaluation of the
same samples, and nothing depends on how many validation batches a rank holds.
"""

import hashlib
import importlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from sagan.errors import UsageError, check_ranges
from sagan.evaluation.features import FeatureExtractor, PrecomputedFeatures, atomic_save, default_cache_dir
from sagan.evaluation.intra_class import (
    MAX_CLASS_STATISTICS_BYTES,
    class_statistics,
    class_statistics_bytes,
    intra_class_fid,
)
from sagan.evaluation.recipe import Recipe, make_recipe, real_set_fingerprint, record_recipe

CACHE_VERSION = 1
FAST_DEV_RUN_IMAGES = 64  # generated and real images per evaluation under `trainer.fast_dev_run`


def _rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _gather(x: torch.Tensor) -> torch.Tensor:
    """All ranks' `x` (first dimensions may differ) concatenated in rank order, on every rank."""
    if _rank_world()[1] == 1:
        return x
    from torchmetrics.utilities.distributed import gather_all_tensors

    return torch.cat(gather_all_tensors(x))


def shard(n: int, rank: int, world: int) -> range:
    """The contiguous part of `range(n)` that `rank` of `world` handles (the last ones may be short or empty)."""
    per = -(-n // world)
    return range(min(rank * per, n), min((rank + 1) * per, n))


@torch.no_grad()
def extract(extractor: FeatureExtractor, batches, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and logits of image batches (each [N, C, H, W] in [-1, 1]), gathered over ranks."""
    features, logits = [], []
    for images in batches:
        f, lg = extractor(images.to(device, non_blocking=True))
        features.append(f.float())
        logits.append(lg.float())
    if not features:  # this rank's share is empty: it still takes part in the gather
        features = [torch.zeros(0, extractor.num_features, device=device)]
        logits = [torch.zeros(0, extractor.num_classes, device=device)]
    return _gather(torch.cat(features)), _gather(torch.cat(logits))


def generated_noise(z_dim: int, num_classes: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The `n` noise vectors and (for a conditional generator) labels of an evaluation, drawn from `seed`."""
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(n, z_dim, generator=rng)
    y = torch.randint(0, num_classes, (n,), generator=rng) if num_classes else None
    return z, y


def generated_batches(
    sample: Callable, z_dim: int, num_classes: int, n: int, batch_size: int, seed: int, device: torch.device
):
    """This rank's share of `n` images from `sample(z, y)`; the noise of sample i depends only on (seed, i)."""
    z, y = generated_noise(z_dim, num_classes, n, seed)
    mine = shard(n, *_rank_world())
    for start in range(mine.start, mine.stop, batch_size):
        end = min(start + batch_size, mine.stop)
        yield sample(z[start:end].to(device), None if y is None else y[start:end].to(device))


def real_batches(
    dataset: Dataset, n: int | None, batch_size: int, num_workers: int = 0, seed: int = 0,
    labels: list[torch.Tensor] | None = None,
):
    """This rank's share of a fixed random subset of `n` images of `dataset` (all of it when n is None);
    the batches' labels are appended to `labels` when a list is given."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    order = order[: n if n is not None else len(order)]
    mine = order[list(shard(len(order), *_rank_world()))]
    # its own generator: the loader's base seed is not drawn from the global one, so computing the statistics
    # (the first run) or loading them (later runs) leaves the training stream the same
    loader = DataLoader(
        Subset(dataset, mine.tolist()), batch_size=batch_size, num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
    )
    for batch in loader:
        if labels is not None:
            labels.append(batch[1])
        yield batch[0] if isinstance(batch, (list, tuple)) else batch


def real_statistics(features: torch.Tensor, kid_real: int) -> dict[str, torch.Tensor]:
    """What the metrics need of the real side: FID's moment sums (float64, as torchmetrics keeps them)
    and up to `kid_real` feature vectors for KID."""
    f = features.double()
    return {
        "sum": f.sum(0), "cov_sum": f.T @ f, "n": torch.tensor(len(f)),
        "kid_features": features[:kid_real].float().clone(),
    }


class RealStatisticsCache:
    """Real-data statistics on disk, one file per (data fingerprint, extractor fingerprint, number of images).

    Args:
        folder: where the files go (`<cache_dir>/real/`).
    """

    def __init__(self, folder: Path):
        self.folder = folder

    @staticmethod
    def key(data_fingerprint: str, extractor_fingerprint: str, num_real: int | None, kid_real: int, seed: int) -> str:
        return (
            f"v{CACHE_VERSION}|data={data_fingerprint}|features={extractor_fingerprint}"
            f"|n={num_real}|kid={kid_real}|seed={seed}"
        )

    def path(self, key: str) -> Path:
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.pt"

    def load(self, key: str) -> dict[str, torch.Tensor] | None:
        path = self.path(key)
        if not path.is_file():
            return None
        saved = torch.load(path, map_location="cpu", weights_only=True)
        return saved["stats"] if saved.get("key") == key else None

    def save(self, key: str, stats: dict[str, torch.Tensor]) -> None:
        atomic_save({"key": key, "stats": {k: v.cpu() for k, v in stats.items()}}, self.path(key))
        self.path(key).with_suffix(".json").write_text(json.dumps({"key": key, "images": int(stats["n"])}) + "\n")


def inception_score(logits: torch.Tensor, splits: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inception Score of class logits `[N, K]` as the original code computes it (Salimans et al., 2016):
    the samples (in a seeded random order) are cut into `splits` consecutive parts at i * N // splits, so
    parts differ in size by at most one; each part scores exp(mean KL(p(y|x) || p(y))) with p(y) the part's
    mean prediction; the result is the mean over parts and their population standard deviation (NumPy's
    `np.std`, as the original and torch-fidelity; torchmetrics uses the sample standard deviation and
    leaves the remainder in a short last part). Computed in float64.

    Returns:
        (mean, std) as 0-dim float32 tensors.
    """
    n = logits.shape[0]
    if not 1 <= splits <= n:
        raise ValueError(f"inception_score: splits must be in [1, {n}] for {n} samples, got {splits}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(logits.device)
    logits = logits[order].double()
    p, log_p = logits.softmax(dim=1), logits.log_softmax(dim=1)
    scores = []
    for i in range(splits):
        part, log_part = p[i * n // splits : (i + 1) * n // splits], log_p[i * n // splits : (i + 1) * n // splits]
        kl = (part * (log_part - part.mean(dim=0, keepdim=True).log())).sum(dim=1).mean()
        scores.append(kl.exp())
    scores = torch.stack(scores)
    return scores.mean().float(), scores.std(correction=0).float()


class SampleMetrics:
    """FID, IS, KID (torchmetrics) and mode coverage of generated features against real statistics.

    Args:
        fid: compute the Frechet distance.
        inception_score: compute the Inception Score (over the extractor's classes).
        kid: compute the kernel distance (polynomial kernel, unbiased MMD over random subsets).
        modes: count the classes hit by at least one sample, and KL(histogram || uniform).
        is_splits: IS splits (consecutive parts of N // is_splits or N // is_splits + 1 samples).
        kid_subsets: KID subsets.
        kid_subset_size: samples per KID subset (at most the number of real and of generated samples).
        seed: seed of the random subsets of IS and KID, so that every rank and every run draws the same.
    """

    def __init__(
        self, fid: bool = True, inception_score: bool = True, kid: bool = True, modes: bool = False,
        is_splits: int = 10, kid_subsets: int = 100, kid_subset_size: int = 1000, seed: int = 0,
    ):
        check_ranges(
            "SampleMetrics", is_splits=(is_splits, "[1, inf)"), kid_subsets=(kid_subsets, "[1, inf)"),
            kid_subset_size=(kid_subset_size, "[1, inf)"),
        )
        self.fid, self.inception_score, self.kid, self.modes = fid, inception_score, kid, modes
        self.is_splits, self.kid_subsets, self.kid_subset_size = is_splits, kid_subsets, kid_subset_size
        self.seed = seed

    @torch.no_grad()
    def __call__(
        self, features: torch.Tensor, logits: torch.Tensor, real: dict[str, torch.Tensor] | None
    ) -> dict[str, torch.Tensor]:
        """features: [N, D], logits: [N, K] of generated images -> {fid, is, is_std, kid, kid_std, modes, kl}."""
        from torchmetrics.image import FrechetInceptionDistance, KernelInceptionDistance

        out: dict[str, torch.Tensor] = {}
        device = features.device
        extractor = PrecomputedFeatures(features.shape[1])
        with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
            warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
            torch.manual_seed(self.seed)
            if self.fid:
                fid = FrechetInceptionDistance(extractor, reset_real_features=False, sync_on_compute=False).to(device)
                fid.real_features_sum = real["sum"].to(device)
                fid.real_features_cov_sum = real["cov_sum"].to(device)
                fid.real_features_num_samples = real["n"].to(device)
                fid.update(features, real=False)
                out["fid"] = fid.compute()
            if self.inception_score:
                out["is"], out["is_std"] = inception_score(logits, self.is_splits, self.seed)
            if self.kid:
                kid = KernelInceptionDistance(extractor, self.kid_subsets, self.kid_subset_size, sync_on_compute=False)
                kid.update(real["kid_features"].to(device), real=True)
                kid.update(features, real=False)
                out["kid"], out["kid_std"] = kid.compute()
            if self.modes:
                hist = torch.bincount(logits.argmax(1), minlength=logits.shape[1]).double()
                q = hist / hist.sum()
                out["modes"] = (hist > 0).sum()
                out["kl"] = torch.where(q > 0, q * (q * len(q)).log(), torch.zeros_like(q)).sum()
        return out


class SampleQuality(L.Callback):
    """FID / IS / KID of the EMA generator at every validation, logged as `val/<prefix>fid`, `val/<prefix>is`,
    `val/<prefix>kid` (and `val/<prefix>modes`, `val/<prefix>kl` with `modes`), where the prefix is the
    extractor's: "" for Inception (`val/fid`), "digits_" for the digits classifier (`val/digits_fid`). An
    extractor may rename a metric (`metric_names`): video extractors log `val/fvd`, `val/moving_digits_fd`.

    By default the data module picks the extractor (its `metric_features` import path): the digits
    classifier for the digits, Inception for real image data sets, none (metrics off) for data modules
    that name none. It is built when the CLI sets the run up, so missing Inception weights stop the run
    before anything starts.

    The training set's statistics are loaded from the cache (or computed, sharded over ranks, and cached)
    when fitting or validating starts. A `ModelCheckpoint(monitor="val/fid", mode="min")` keeps the best.
    Under `trainer.fast_dev_run` every evaluation uses 64 generated and 64 real images.

    Args:
        features: the feature extractor; "data": the one the data module names (`metric_features`); None
            turns these metrics off (and needs no Inception weights).
        num_samples: generated images per evaluation (shared out over ranks).
        num_real: training images for the real statistics (a fixed random subset); None: all of them.
        batch_size: images per generator / extractor batch.
        fid: log the Frechet distance.
        inception_score: log the Inception Score.
        kid: log the kernel distance.
        modes: log the number of classes hit and KL(class histogram || uniform) (Stacked-MNIST protocol).
        is_splits: IS splits (consecutive parts of N // is_splits or N // is_splits + 1 samples).
        kid_subsets: KID subsets.
        kid_subset_size: samples per KID subset.
        kid_real: real feature vectors kept in the cache for KID.
        seed: seed of the noise (the same samples at every evaluation) and of the IS / KID subsets.
        cache_dir: cache folder; default `$SAGAN_CACHE` or `~/.cache/sagan`.
        intra_class_fid: also log the intra-class FID (`val/<prefix>ifid`, the mean over classes of the FID
            between a class's samples and its real images) of a class-conditional model; needs the real
            statistics per class (`sagan.evaluation.intra_class`), refused at start-up where they would
            exceed 2 GiB (e.g. 1,000 classes in Inception features).
    """

    def __init__(
        self,
        features: FeatureExtractor | Literal["data"] | None = "data",
        num_samples: int = 10_000,
        num_real: int | None = 50_000,
        batch_size: int = 250,
        fid: bool = True,
        inception_score: bool = True,
        kid: bool = True,
        modes: bool = False,
        is_splits: int = 10,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        kid_real: int = 10_000,
        seed: int = 0,
        cache_dir: str | None = None,
        intra_class_fid: bool = False,
    ):
        check_ranges(
            "SampleQuality", num_samples=(num_samples, "[2, inf)"), num_real=(num_real, "[1, inf)"),
            batch_size=(batch_size, "[1, inf)"), is_splits=(is_splits, "[1, inf)"), kid_subsets=(kid_subsets, "[1, inf)"),
            kid_subset_size=(kid_subset_size, "[1, inf)"), kid_real=(kid_real, "[1, inf)"),
        )
        if kid and kid_subset_size > min(num_samples, kid_real):
            raise ValueError(f"kid_subset_size ({kid_subset_size}) must be <= num_samples and kid_real")
        if inception_score and num_samples < is_splits:
            raise ValueError(f"num_samples ({num_samples}) must be >= is_splits ({is_splits})")
        self.features = features
        self.num_samples, self.num_real, self.batch_size = num_samples, num_real, batch_size
        self.kid_real, self.seed = kid_real, seed
        self.cache = RealStatisticsCache(Path(cache_dir or default_cache_dir()) / "real")
        self.metrics = SampleMetrics(fid, inception_score, kid, modes, is_splits, kid_subsets, kid_subset_size, seed)
        self.intra_class_fid = intra_class_fid
        self.real: dict[str, torch.Tensor] | None = None
        self.real_computed = 0  # real images put through the extractor by this process (0 when cached)
        self.recipe_recorded = False
        self.real_set: str | None = None  # the real side's fingerprint (`sagan.evaluation.recipe`), set by `prepare`

    @property
    def enabled(self) -> bool:
        return self.features is not None

    def resolve(self, datamodule) -> None:
        """Builds the extractor the data module names when `features` is "data" (None if it names none)."""
        if self.features != "data":
            return
        path = getattr(datamodule, "metric_features", None)
        if path is None:
            self.features = None
            return
        module, _, name = path.rpartition(".")
        self.features = getattr(importlib.import_module(module), name)()

    def prepare(self, datamodule, device: torch.device, broadcast: Callable = lambda x: x) -> None:
        """Loads the extractor and the real statistics (from the cache, or computed and cached)."""
        self.resolve(datamodule)
        if not self.enabled:
            return
        self.features.load().to(device)
        fingerprint = getattr(datamodule, "fingerprint", None)
        if fingerprint is None:
            raise UsageError("sample metrics need a data module with a `fingerprint` (see datamodules/image/base.py)")
        self.real_set = real_set_fingerprint(datamodule, "train")  # for the recipe of every score
        key = self.cache.key(fingerprint, self.features.fingerprint, self.num_real, self.kid_real, self.seed)
        classes = self._intra_class_classes(datamodule)
        key += f"|classes={classes}" if classes else ""  # per-class sums as well
        # rank 0 reads the cache and hands it to the others: one decision, and no shared file system needed
        self.real = broadcast(self.cache.load(key) if _rank_world()[0] == 0 else None)
        if self.real is None:
            if datamodule.train_set is None:
                datamodule.setup("fit")
            labels: list[torch.Tensor] | None = [] if classes else None
            batches = real_batches(
                datamodule.train_set, self.num_real, self.batch_size, datamodule.num_workers, self.seed, labels
            )
            features, _ = extract(self.features, batches, device)
            self.real_computed += len(features)
            self.real = real_statistics(features, self.kid_real)
            if classes:
                labels = _gather(torch.cat(labels).to(device)) if labels else torch.zeros(0, dtype=torch.long)
                self.real |= class_statistics(features, labels, classes)
            if _rank_world()[0] == 0:
                self.cache.save(key, self.real)
        self.real = {k: v.to(device) for k, v in self.real.items()}
        kid_real = len(self.real["kid_features"])
        if self.metrics.kid and kid_real < self.metrics.kid_subset_size:
            raise UsageError(f"metrics.kid_subset_size {self.metrics.kid_subset_size} > the {kid_real} real images")

    def _intra_class_classes(self, datamodule) -> int:
        """Classes to keep real statistics of for the intra-class FID (0: off, or the data has no labels)."""
        classes = getattr(datamodule, "num_classes", 0) if self.intra_class_fid else 0
        if classes and class_statistics_bytes(classes, self.features) > MAX_CLASS_STATISTICS_BYTES:
            need = class_statistics_bytes(classes, self.features) / 2**30
            raise UsageError(f"metrics.intra_class_fid over {classes} classes in {self.features.num_features}-d "
                             f"features needs {need:.0f} GiB of class statistics; set --metrics.intra_class_fid=false")
        return classes

    @torch.no_grad()
    def evaluate(self, sample: Callable, z_dim: int, num_classes: int, device: torch.device) -> dict[str, torch.Tensor]:
        """Metrics of `num_samples` images from `sample(z, y)`; every rank returns the same numbers."""
        batches = generated_batches(sample, z_dim, num_classes, self.num_samples, self.batch_size, self.seed, device)
        features, logits = extract(self.features, batches, device)
        results = self.metrics(features, logits, self.real)
        if num_classes and "class_n" in self.real:
            labels = generated_noise(z_dim, num_classes, self.num_samples, self.seed)[1].to(device)
            results["ifid"] = intra_class_fid(features, labels, self.real)
        return results

    def recipe(self, truncation: float | None = None, ema: bool = True, generated: int | None = None) -> Recipe:
        """What these metrics' numbers are comparable by (`sagan.evaluation.recipe`), after `prepare`:
        `generated` samples (default `num_samples`) against the real statistics of the training split."""
        return make_recipe(self.features, None, "train", int(self.real["n"]), generated or self.num_samples, self.seed,
                           truncation, ema, real_set=self.real_set)

    # ------------------------------------------------------------------------- Lightning hooks
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.fast_dev_run and self.enabled:  # a smoke run: the whole path, on a few images
            self.num_samples = min(self.num_samples, FAST_DEV_RUN_IMAGES)
            self.num_real = min(self.num_real or FAST_DEV_RUN_IMAGES, FAST_DEV_RUN_IMAGES)
            self.metrics.kid_subset_size = min(self.metrics.kid_subset_size, FAST_DEV_RUN_IMAGES)
        self.resolve(trainer.datamodule)
        if stage == "fit" and trainer.limit_val_batches == 0:
            return  # no validation in this fit
        if self.enabled and stage in ("fit", "validate") and self.real is None:
            self.prepare(trainer.datamodule, trainer.strategy.root_device, trainer.strategy.broadcast)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.enabled or trainer.sanity_checking:
            return
        generator = pl_module.generator_ema
        results = self.evaluate(pl_module, generator.z_dim, pl_module.num_classes, pl_module.device)
        for name, value in results.items():
            if not name.endswith("_std"):
                pl_module.log(f"val/{self.features.metric_key(name)}", value.float(), sync_dist=True)
        if not self.recipe_recorded:  # once per run: the run's config, not a column per step
            record_recipe(trainer, "val_recipe", self.recipe())
            self.recipe_recorded = True
