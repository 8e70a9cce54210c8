"""Feature extractors for clips `[N, T, C, H, W]` in [-1, 1]: what video Frechet distances are computed in.

- `MovingDigitsFeatures`: a small 3-D CNN trained on moving-digits clips (seeded, about a minute on one CPU
  core, cached) to tell which two digits a clip shows and where and how fast each one moves. Its
  penultimate features therefore describe appearance and motion: a clip whose digits stand still, jump
  or change shape lands far from real clips. Numbers in its space are logged as `val/moving_digits_fd`
  and `val/moving_digits_kd`: a Frechet (kernel) distance on moving digits, not FVD.
- `I3DFeatures`: the I3D network of the standard Frechet Video Distance (Unterthiner et al., 2018), the
  TorchScript port of its TensorFlow-Hub model that StyleGAN-V and later work use (`i3d_torchscript.pt`,
  400-d features). Read from a local file only; a missing file is a start-up error that says which file
  to place where. Logged as `val/fvd` and `val/kvd`.
"""

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sagan.errors import UsageError
from sagan.evaluation.features import CachedClassifierFeatures, FeatureExtractor, file_digest

DIGIT_SLOTS = 2  # digits per moving-digits clip


def to_gray_32(x: torch.Tensor) -> torch.Tensor:
    """[N, T, C, H, W] in [-1, 1] -> [N, 1, T, 32, 32]: gray (channel mean), frames resized to 32x32."""
    n, t, _, h, w = x.shape
    x = x.float().mean(2)  # [N, T, H, W]
    if (h, w) != (32, 32):
        x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=h > 32)
    return x.clamp(-1, 1).unsqueeze(1)


class MovingDigitsCNN(nn.Module):
    """A small 3-D CNN for 32x32 gray clips. Features: 128 from the whole space-time map (where things are
    and how they move) and 64 from its maximum over space and time (which strokes occur, wherever they are).
    Heads: which of the 10 digits appear (logits), and per digit 4 kinematics (start row and column scaled
    to [-1, 1], velocity along rows and columns over the top speed)."""

    num_features = 128 + 64

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(1, 16, 3, stride=(1, 2, 2), padding=1), nn.ReLU(),  # [16, T, 16, 16]
            nn.Conv3d(16, 32, 3, stride=2, padding=1), nn.ReLU(),  # [32, T/2, 8, 8]
            nn.Conv3d(32, 64, 3, stride=2, padding=1), nn.ReLU(),  # [64, T/4, 4, 4]
        )
        self.where = nn.Sequential(nn.AdaptiveAvgPool3d(4), nn.Flatten(), nn.Linear(64 * 4 * 4 * 4, 128), nn.ReLU())
        self.digits = nn.Linear(self.num_features, 10)
        self.kinematics = nn.Linear(128, DIGIT_SLOTS * 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # x: [N, 1, T, 32, 32] in [-1, 1] -> ([N, 192], [N, 10], [N, 2, 4])
        maps = self.body(x)
        where = self.where(maps)
        features = torch.cat([where, maps.amax(dim=(2, 3, 4))], dim=1)
        return features, self.digits(features), self.kinematics(where).view(-1, DIGIT_SLOTS, 4)


def clip_loss(digits: torch.Tensor, kinematics: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor):
    """Per clip: binary cross-entropy of the digits that appear, plus the squared error of the kinematics
    under the better of the two ways to match predicted digits with the clip's. -> [N] losses, [N] orders."""
    present = torch.zeros_like(digits).scatter_(1, labels, 1.0)
    bce = F.binary_cross_entropy_with_logits(digits, present, reduction="none").sum(1)
    errors = torch.stack([(kinematics - targets[:, order]).square().sum((1, 2)) for order in ([0, 1], [1, 0])], 1)
    return bce + errors.min(1).values, errors.argmin(1)


def clip_targets(data, index: torch.Tensor, top_speed: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Digit classes `[N, 2]` and kinematics `[N, 2, 4]` (start / limit * 2 - 1, velocity / top speed)."""
    start = data.start[index] / max(data.limit, 1.0) * 2 - 1
    return data.labels[data.digits[index]], torch.cat([start, data.velocity[index] / top_speed], dim=-1)


def train_moving_digits_classifier(steps: int, seed: int = 0, batch_size: int = 64):
    """Trains `MovingDigitsCNN` on `steps` batches of fresh 16-frame 32x32 clips of the training digits, on one
    thread (the same weights on every machine); returns it (eval mode), and on as many clips of the held-out
    digits (at most 512) the fraction whose set of digits it names exactly and its velocity error (pixels
    per frame)."""
    from datamodules.video.moving_digits import MovingDigitsDataModule

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = MovingDigitsDataModule()
        top_speed = data.speed[1] * data.image_size  # pixels per frame
        train = data.make_split("train", steps * batch_size, seed + 1000)  # not the data module's own clips
        held = data.make_split("val", min(512, steps * batch_size), seed + 1000)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = MovingDigitsCNN()
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
        for step in range(steps):
            index = torch.arange(step * batch_size, (step + 1) * batch_size)
            clips = torch.stack([train[i][0] for i in index.tolist()])
            _, digits, kinematics = net(to_gray_32(clips))
            loss = clip_loss(digits, kinematics, *clip_targets(train, index, top_speed))[0].mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        net.eval()
        return (net, *held_out_scores(net, held, top_speed))
    finally:
        torch.set_num_threads(threads)


@torch.no_grad()
def held_out_scores(net: MovingDigitsCNN, held, top_speed: float) -> tuple[float, float]:
    """Fraction of clips whose set of digits is named exactly, and mean velocity error in pixels per frame."""
    index = torch.arange(len(held))
    labels, targets = clip_targets(held, index, top_speed)
    digits, kinematics = [], []
    for batch in index.split(128):
        _, d, k = net(to_gray_32(torch.stack([held[i][0] for i in batch.tolist()])))
        digits.append(d)
        kinematics.append(k)
    digits, kinematics = torch.cat(digits), torch.cat(kinematics)
    present = torch.zeros_like(digits).scatter_(1, labels, 1.0).bool()
    accuracy = ((digits > 0) == present).all(1).float().mean().item()
    errors = torch.stack([(kinematics - targets[:, order])[..., 2:].abs().mean((1, 2)) for order in ([0, 1], [1, 0])])
    return accuracy, (errors.min(0).values * top_speed).mean().item()


class MovingDigitsFeatures(CachedClassifierFeatures):
    """The moving-digits CNN's 192-d features, and its logits of the 10 digits a clip may show.

    Trained on first use (seconds to a minute or two on CPU, seeded) and cached as
    `<cache_dir>/moving_digits_cnn_v1_<train_steps>.pt`. Clips of other sizes are resized to 32x32 frames,
    color is averaged to gray. Logged as `val/moving_digits_fd`, `val/moving_digits_kd` (and `..._is`):
    distances in this network's feature space, not comparable with FVD.

    Args:
        train_steps: training batches of 64 fresh clips (each clip seen once).
        cache_dir: folder of the cached network; default `$SAGAN_CACHE` or `~/.cache/sagan`.
    """

    num_features = MovingDigitsCNN.num_features
    num_classes = 10
    metric_prefix = "moving_digits_"
    metric_names = {"fid": "fd", "kid": "kd", "kid_std": "kd_std"}
    version = "moving_digits_cnn_v1"

    def __init__(self, train_steps: int = 800, cache_dir: str | None = None):
        super().__init__(cache_dir)
        if train_steps < 1:
            raise ValueError(f"train_steps must be >= 1, got {train_steps}")
        self.train_steps = train_steps
        self.velocity_error: float | None = None

    @property
    def cache_name(self) -> str:
        return f"{self.version}_{self.train_steps}"

    def build(self) -> MovingDigitsCNN:
        return MovingDigitsCNN()

    def fit(self) -> tuple[MovingDigitsCNN, dict[str, float]]:
        net, accuracy, velocity_error = train_moving_digits_classifier(self.train_steps)
        return net, {"held_out_accuracy": accuracy, "held_out_velocity_error": velocity_error}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: [N, T, C, H, W] in [-1, 1] -> ([N, 192], [N, 10])
        features, digits, _ = self.net(to_gray_32(x))
        return features, digits


# ----------------------------------------------------------------------------------------------- I3D
I3D_FILE = "i3d_torchscript.pt"
I3D_URL = "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt"


def find_i3d_weights(weights_path: str | None = None) -> Path:
    """The FVD I3D TorchScript file: `weights_path`, else torch hub's checkpoint folder.

    Raises:
        UsageError: (one line) the file is not there, saying which file to place where.
    """
    hint = f"place {I3D_FILE} ({I3D_URL})"
    off = "or turn these metrics off with --metrics.features=null"
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if path.is_file():
            return path
        raise UsageError(f"I3D weights for FVD not found at {path}: {hint} there, {off}")
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    if (folder / I3D_FILE).is_file():
        return folder / I3D_FILE
    raise UsageError(
        f"I3D weights for FVD not found: {hint} in {folder}/ or pass --metrics.features.init_args.weights_path=FILE, {off}"
    )


class I3DFeatures(FeatureExtractor):
    """The Frechet Video Distance's I3D (Kinetics-400), as a TorchScript module: 400-d features.

    Frames are quantized to 8 bits like saved video, gray repeated to RGB, resized to 224x224 inside the
    network (`resize=True`), and kept in [-1, 1] (`rescale=False`), as StyleGAN-V computes FVD. The
    features double as the logits (they are the network's last layer before the softmax).

    Args:
        weights_path: the TorchScript file; default `i3d_torchscript.pt` in torch hub's `checkpoints/`
            folder. Never downloaded: a missing file stops the run at start-up.
    """

    num_features = 400
    num_classes = 400
    metric_prefix = ""
    metric_names = {"fid": "fvd", "kid": "kvd", "kid_std": "kvd_std"}

    def __init__(self, weights_path: str | None = None):
        super().__init__()
        self.weights_path = find_i3d_weights(weights_path)  # at start-up, not at the first validation
        self.net = None

    @property
    def fingerprint(self) -> str:
        return f"i3d-torchscript:{self.weights_path.name}:{file_digest(self.weights_path)}:uint8:resize224"

    def load(self) -> "I3DFeatures":
        if self.net is None:
            self.net = torch.jit.load(str(self.weights_path), map_location="cpu").eval()
        return self

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: [N, T, C, H, W] in [-1, 1] -> ([N, 400], [N, 400])
        x = ((x.float().clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1
        if x.shape[2] == 1:
            x = x.expand(-1, -1, 3, -1, -1)
        features = self.net(x.transpose(1, 2).contiguous(), rescale=False, resize=True, return_features=True)
        return features.float(), features.float()
