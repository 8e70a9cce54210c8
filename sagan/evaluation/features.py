"""Feature extractors that FID, IS and KID are computed in.

An extractor maps images in [-1, 1] to `(features [N, D], logits [N, K])`: features for FID and KID,
class logits for the Inception Score and mode counts. Each one names its metrics (`metric_prefix`) so
that numbers measured in different feature spaces are never confused, and describes itself
(`fingerprint`) for the on-disk cache of real-data statistics.

- `InceptionFeatures`: the standard FID Inception (torch-fidelity's TensorFlow-compatible InceptionV3,
  `torch_fidelity.FeatureExtractorInceptionV3`, as torchmetrics uses it), 2048 pool features and 1008
  unbiased logits. Its weights file is looked up in torch hub's folder and, when missing, fetched at
  start-up (rank 0 of each machine, hash-checked); without a network, a missing or broken file is a
  one-line start-up error that says which file to place where.
- `DigitsFeatures`: a small CNN trained on the digits training split (seconds on CPU, deterministic,
  cached), for offline "digits FID / IS / KID".
- `StackedDigitsFeatures`: the digits classifier applied to each channel of three stacked digits,
  giving 1,000 joint classes for the Stacked-MNIST mode-collapse benchmark.
"""

import hashlib
import os
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sagan.errors import UsageError

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
# torch-fidelity downloads the same weights (same content hash) under this name into the same folder.
INCEPTION_FILE_ALIASES = (INCEPTION_FILE, "weights-inception-2015-12-05-6726825d.pth")
INCEPTION_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{INCEPTION_FILE}"
# The file name's hash: the first hex digits of the file's sha256 (torch hub's convention), checked on fetching.
INCEPTION_SHA256_PREFIX = "6726825d"
FETCH_WAIT_S = 600  # how long other processes of a machine wait for rank 0's fetch


def inception_url() -> str:
    """Where the weights are fetched from: `$SAGAN_INCEPTION_URL` (a mirror, or a `file://` URL on an
    air-gapped cluster), else the pytorch-fid release that torchmetrics users get."""
    return os.environ.get("SAGAN_INCEPTION_URL") or INCEPTION_URL


def fetch_inception_weights(folder: Path, url: str | None = None, timeout_s: float = 60.0) -> Path:
    """Downloads the FID Inception weights into `folder` as `INCEPTION_FILE`: to a temporary file, whose
    sha256 must start with `INCEPTION_SHA256_PREFIX`, then renamed (an interrupted or corrupt download
    never looks complete).

    Raises:
        OSError, urllib.error.URLError: the download or the write failed.
        ValueError: the content does not match the hash.
    """
    url = url or inception_url()
    target = folder / INCEPTION_FILE
    folder.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, open(tmp, "wb") as out:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
        if not digest.hexdigest().startswith(INCEPTION_SHA256_PREFIX):
            raise ValueError(f"the download's sha256 starts {digest.hexdigest()[:8]}, expected {INCEPTION_SHA256_PREFIX}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _local_rank() -> int:
    for name in ("LOCAL_RANK", "SLURM_LOCALID"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def default_cache_dir() -> Path:
    """Where classifiers and real-data statistics are cached: `$SAGAN_CACHE` or `~/.cache/sagan`."""
    if os.environ.get("SAGAN_CACHE"):
        return Path(os.environ["SAGAN_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sagan"


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary file beside `path`, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def file_digest(path: Path) -> str:
    """First 16 hex digits of a file's sha256."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


class PrecomputedFeatures(nn.Identity):
    """The "feature extractor" handed to torchmetrics' metrics: the features are computed before `update`."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features


class FeatureExtractor(nn.Module, ABC):
    """Base class: `forward(x) -> (features, logits)` for images in [-1, 1]; `load()` before use.

    Subclasses set `num_features`, `num_classes`, `metric_prefix` and `fingerprint`, and may rename
    metrics in `metric_names` (a video extractor logs "fid" as "fvd").
    """

    num_features: int = 0
    num_classes: int = 0
    metric_prefix: str = ""
    metric_names: dict[str, str] = {}

    def metric_key(self, name: str) -> str:
        """The logged name of metric `name` ("fid", "is", "kid", "modes", "kl") in this feature space."""
        return self.metric_prefix + self.metric_names.get(name, name)

    @property
    @abstractmethod
    def fingerprint(self) -> str:
        """What the extractor is (weights and preprocessing), for caches of features computed with it."""

    def load(self) -> "FeatureExtractor":
        """Builds or loads the network (idempotent); called once before the first forward."""
        return self


# --------------------------------------------------------------------------------------- Inception
def find_inception_weights(weights_path: str | None = None, download: bool = True) -> Path:
    """The FID Inception weights file: `weights_path`, else torch hub's checkpoint folder, where a missing
    file is fetched (`download`; rank 0 of each machine, the other processes wait for it).

    Raises:
        UsageError: (one line) the file is not there and cannot be fetched, saying which file to place where.
    """
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if path.is_file():
            return path
        raise UsageError(
            f"Inception weights not found at {path}: place {INCEPTION_FILE} ({INCEPTION_URL}) there, "
            "or turn these metrics off with --metrics.features=null"
        )
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    found = [folder / name for name in INCEPTION_FILE_ALIASES if (folder / name).is_file()]
    if found:
        return found[0]
    failed = ""
    if download and _local_rank() == 0:
        try:
            return fetch_inception_weights(folder)
        except (OSError, ValueError, urllib.error.URLError) as error:
            reason = getattr(error, "reason", None) or getattr(error, "strerror", None) or error
            failed = f"; fetching {inception_url()} failed ({' '.join(str(reason).split())})"
    elif download:  # rank 0 of this machine fetches it
        deadline = time.monotonic() + FETCH_WAIT_S
        while time.monotonic() < deadline and not (folder / INCEPTION_FILE).is_file():
            time.sleep(1.0)
        if (folder / INCEPTION_FILE).is_file():
            return folder / INCEPTION_FILE
    raise UsageError(
        f"Inception weights not found: place {INCEPTION_FILE} ({INCEPTION_URL}) in {folder}/ "
        "or pass --metrics.features.init_args.weights_path=FILE, or turn these metrics off with "
        f"--metrics.features=null{failed}"
    )


class InceptionFeatures(FeatureExtractor):
    """The standard FID Inception-v3 (2015-12-05 TensorFlow graph): torch-fidelity's public
    `FeatureExtractorInceptionV3`, the network torchmetrics' FID uses.

    Images are quantized to 8 bits like saved PNGs, gray images repeated to RGB, and resized to 299x299
    inside the network. Features: the 2048-d pool layer (FID, KID); logits: the 1008 unbiased logits (IS).
    The network is built when the extractor is, at start-up: a missing, truncated or corrupt weights file
    stops the run before anything starts, in one line.

    Args:
        weights_path: the weights file; default: `pt_inception-2015-12-05-6726825d.pth` (or torch-fidelity's
            `weights-inception-2015-12-05-6726825d.pth`) in torch hub's `checkpoints/` folder
            (`$TORCH_HOME/hub/checkpoints`, by default `~/.cache/torch/hub/checkpoints`).
        download: fetch a missing default file at start-up (from `$SAGAN_INCEPTION_URL` if set, else the
            pytorch-fid release), checking its hash; False: never reach the network.
    """

    num_features = 2048
    num_classes = 1008
    metric_prefix = ""

    def __init__(self, weights_path: str | None = None, download: bool = True):
        super().__init__()
        self.weights_path = find_inception_weights(weights_path, download)  # at start-up, not at the first validation
        self.net: nn.Module | None = None
        self.load()

    @property
    def fingerprint(self) -> str:
        weights = f"{self.weights_path.name}:{self.weights_path.stat().st_size}"
        return f"inception-v3-compat:{weights}:uint8:2048+logits_unbiased"

    def load(self) -> "InceptionFeatures":
        if self.net is not None:
            return self
        from torch_fidelity import FeatureExtractorInceptionV3

        try:
            # weights-only first: a file that would run code when unpickled is refused, not loaded
            torch.load(self.weights_path, map_location="cpu", weights_only=True, mmap=True)
            with torch.random.fork_rng(devices=[]):  # its initial weights: not from the training stream
                self.net = FeatureExtractorInceptionV3(
                    "inception-v3-compat", ["2048", "logits_unbiased"],
                    feature_extractor_weights_path=str(self.weights_path),
                )
        except Exception as error:
            reason = " ".join(str(error).split())[:200] or type(error).__name__
            raise UsageError(
                f"Inception weights file {self.weights_path} cannot be used ({reason}): delete it (a missing file "
                f"is fetched again) or place a good copy of {INCEPTION_FILE} ({INCEPTION_URL}) there"
            ) from error
        return self

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: [N, C, H, W] in [-1, 1] -> ([N, 2048], [N, 1008])
        x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        features, logits = self.net(x)
        return features.float(), logits.float()


# ------------------------------------------------------------------------------ digits classifier
class DigitsCNN(nn.Module):
    """A small CNN for 32x32 gray digits: 128 penultimate features and 10 logits."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.AvgPool2d(2),  # the digits are 8x8 upsampled: 16x16 loses nothing
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 4 * 4, 128), nn.ReLU(),
        )
        self.head = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: [N, 1, 32, 32] in [-1, 1] -> ([N, 128], [N, 10])
        features = self.body(x)
        return features, self.head(features)


def _shifted(x: torch.Tensor, rng: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Each image translated by a random whole number of pixels in [-max_shift, max_shift] (background fill)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n), generator=rng)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(n, 1, h, w + 2 * max_shift)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(n, 1, h, w)
    return padded.gather(2, rows).gather(3, cols)


def train_digits_classifier(epochs: int = 20, seed: int = 0) -> tuple[DigitsCNN, float]:
    """Trains `DigitsCNN` on the digits training split (the default 90%, split seed 0) with small random
    shifts, deterministically; returns it (eval mode) and its accuracy on the held-out 10%."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: one thread is as fast, never oversubscribed, and reproducible
    try:
        return _train_digits_classifier(epochs, seed)
    finally:
        torch.set_num_threads(threads)


def _train_digits_classifier(epochs: int, seed: int) -> tuple[DigitsCNN, float]:
    from datamodules.image.digits import digits_tensors, held_out_split

    images, labels = digits_tensors(32, 1)
    train, held = held_out_split(labels, 0.1, 0)
    x, y = images[train], labels[train]
    rng = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = DigitsCNN()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * -(-len(x) // 64))
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=rng)
        for start in range(0, len(x), 64):
            idx = order[start : start + 64]
            loss = F.cross_entropy(net(_shifted(x[idx], rng))[1], y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    with torch.no_grad():
        accuracy = (net(images[held])[1].argmax(1) == labels[held]).float().mean().item()
    return net, accuracy


class CachedClassifierFeatures(FeatureExtractor):
    """Features of a small classifier of the embedded data, trained on first use (seeded) and cached as
    `<cache_dir>/<cache_name>.pt` with what it measured on held-out data (entries `held_out_<name>`,
    attributes `<name>` here, e.g. `accuracy`). A fixed measuring instrument: it never trains in `train()`.

    Subclasses give `version`, `build()` (the untrained network) and `fit()` (the trained network and the
    held-out measurements), and may adapt the loaded network in `adapt()`.
    """

    version: str

    def __init__(self, cache_dir: str | None = None):
        super().__init__()
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.net: nn.Module | None = None
        self.accuracy: float | None = None

    @property
    def cache_name(self) -> str:
        return self.version

    @property
    def path(self) -> Path:
        return self.cache_dir / f"{self.cache_name}.pt"

    @property
    def fingerprint(self) -> str:
        return f"{self.version}:{file_digest(self.path)}"

    @abstractmethod
    def build(self) -> nn.Module:
        """The classifier, untrained (the cached weights are loaded into it)."""

    @abstractmethod
    def fit(self) -> tuple[nn.Module, dict[str, float]]:
        """Trains the classifier: (network, {"held_out_accuracy": ..., ...})."""

    def adapt(self, net: nn.Module) -> nn.Module:
        """The loaded network as this extractor uses it (default: unchanged)."""
        return net

    def load(self) -> "CachedClassifierFeatures":
        if self.net is not None:
            return self
        if self.path.is_file():
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
            with torch.random.fork_rng(devices=[]):  # its throwaway initial weights: not from the training stream
                net = self.build()
            net.load_state_dict(saved.pop("state_dict"))
            measured = saved
        else:
            net, measured = self.fit()
            atomic_save({"state_dict": net.state_dict(), **measured}, self.path)
        for key, value in measured.items():
            setattr(self, key.removeprefix("held_out_"), value)
        self.net = self.adapt(net).requires_grad_(False).eval()
        return self

    def train(self, mode: bool = True) -> "CachedClassifierFeatures":
        return super().train(False)  # a fixed measuring instrument


class DigitsFeatures(CachedClassifierFeatures):
    """The digits classifier's 128-d features and 10 logits: offline "digits FID / IS / KID".

    Trained on first use on the digits training split (seconds on CPU, seeded) and cached as
    `<cache_dir>/digits_cnn_v2.pt`. Color images are averaged to gray; other sizes are resized to 32x32.
    Numbers in this feature space are logged as `val/digits_*`: they are not comparable with Inception FIDs.

    Args:
        cache_dir: folder of the cached classifier; default `$SAGAN_CACHE` or `~/.cache/sagan`.
    """

    num_features = 128
    num_classes = 10
    metric_prefix = "digits_"
    version = "digits_cnn_v2"  # v2: trained on one thread, the same weights whatever the machine

    def build(self) -> DigitsCNN:
        return DigitsCNN()

    def fit(self) -> tuple[DigitsCNN, dict[str, float]]:
        net, accuracy = train_digits_classifier()
        return net, {"held_out_accuracy": accuracy}

    @staticmethod
    def to_digit_input(x: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] in [-1, 1] -> [N * C, 1, 32, 32]: every channel as a gray 32x32 image."""
        n, c, h, w = x.shape
        x = x.float().reshape(n * c, 1, h, w)
        if (h, w) != (32, 32):
            x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=max(h, w) > 32)
        return x.clamp(-1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: [N, C, H, W] in [-1, 1] -> ([N, 128], [N, 10])
        return self.net(self.to_digit_input(x.float().mean(1, keepdim=True)))


class StackedDigitsFeatures(DigitsFeatures):
    """The digits classifier on each channel of three stacked digits (Stacked MNIST protocol).

    Features: the three channels' 128-d features side by side (384-d). Logits: joint log-probabilities
    of the 1,000 classes `100 * d_R + 10 * d_G + d_B`, so the argmax is the triple of per-channel
    predictions and the IS and mode counts run over 1,000 modes.

    Args:
        cache_dir: folder of the cached classifier; default `$SAGAN_CACHE` or `~/.cache/sagan`.
    """

    num_features = 3 * 128
    num_classes = 1000
    metric_prefix = "stacked_digits_"

    @property
    def fingerprint(self) -> str:
        return "stacked:" + super().fingerprint

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: [N, 3, H, W] in [-1, 1] -> ([N, 384], [N, 1000])
        n = x.shape[0]
        if x.shape[1] != 3:
            raise ValueError(f"StackedDigitsFeatures expects 3-channel images, got {x.shape[1]} channels")
        features, logits = self.net(self.to_digit_input(x))
        logp = logits.log_softmax(1).reshape(n, 3, 10)
        joint = logp[:, 0, :, None, None] + logp[:, 1, None, :, None] + logp[:, 2, None, None, :]
        return features.reshape(n, 3 * 128), joint.reshape(n, 1000)
