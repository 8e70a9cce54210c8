"""Moving digits: two scikit-learn digits bouncing in a square frame, the offline cousin of Moving MNIST.

Each clip shows two handwritten digits (8x8 originals scaled to 7/16 of the frame side, as Moving MNIST
puts 28x28 digits in 64x64 frames) that start at random places and move in straight lines at random
directions and speeds, bouncing off the edges; where they overlap the brighter pixel wins. Clips are
described by a few numbers per digit (which image, start, velocity) drawn once from a fixed seed and
rendered on access, so a data set of any size costs almost no memory and is the same in every run.

Training clips use only the training digits and validation clips only the held-out ones (the split of
`DigitsDataModule`: a fixed, stratified 10% of each class), so no digit image appears in both splits.
"""

import torch
from torch.utils.data import Dataset

from datamodules.image.digits import digits_tensors, held_out_split
from datamodules.image.base import ImageDataModule

DIGITS_PER_CLIP = 2


def bounce(start: torch.Tensor, velocity: torch.Tensor, steps: torch.Tensor, limit: float) -> torch.Tensor:
    """Positions of points moving at `velocity` from `start` inside [0, limit], reflected at both ends.

    start, velocity: [...], steps: [T] -> [..., T]. The unfolded path `start + velocity * t` folded into
    [0, limit] is a triangle wave of period 2 * limit.
    """
    path = (start[..., None] + velocity[..., None] * steps) % (2 * limit)
    return torch.where(path > limit, 2 * limit - path, path)


class MovingDigits(Dataset):
    """Clips `[T, C, size, size]` in [-1, 1] rendered from digit images and per-clip motion.

    Args:
        images: digit images `[M, 1, s, s]` in [-1, 1] (already at the size they move at).
        labels: their classes `[M]`.
        digits: indices into `images`, `[N, 2]`.
        start: top-left corners at frame 0, `[N, 2, 2]` as (row, column) pixels.
        velocity: pixels per frame, `[N, 2, 2]` as (row, column).
        size: frame side.
        num_frames: frames per clip.
        channels: 1, or 3 (the gray value repeated).
    """

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, digits: torch.Tensor, start: torch.Tensor,
        velocity: torch.Tensor, size: int, num_frames: int, channels: int,
    ):
        self.images, self.labels, self.digits = images[:, 0].add(1).div(2), labels, digits  # [M, s, s] in [0, 1]
        self.start, self.velocity = start, velocity
        self.size, self.num_frames, self.channels = size, num_frames, channels
        self.limit = float(size - images.shape[-1])

    def __len__(self) -> int:
        return len(self.digits)

    def positions(self, i: int | slice | torch.Tensor) -> torch.Tensor:
        """Top-left corners of the digits of clip(s) `i` in every frame, `[..., 2, T, 2]` (float pixels)."""
        steps = torch.arange(self.num_frames, dtype=torch.float32)
        return bounce(self.start[i], self.velocity[i], steps, self.limit).transpose(-1, -2)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        corners = self.positions(i).round().long()  # [2, T, 2]
        s = self.images.shape[-1]
        offsets = torch.arange(s)
        frames = torch.zeros(self.num_frames, self.size, self.size)
        t = torch.arange(self.num_frames)[:, None, None]
        for k in range(DIGITS_PER_CLIP):
            rows = (corners[k, :, 0, None] + offsets)[:, :, None]  # [T, s, 1]
            cols = (corners[k, :, 1, None] + offsets)[:, None, :]  # [T, 1, s]
            layer = torch.zeros_like(frames)
            layer[t, rows, cols] = self.images[self.digits[i, k]]
            frames = torch.maximum(frames, layer)
        clip = (frames * 2 - 1).unsqueeze(1).expand(-1, self.channels, -1, -1).contiguous()
        return clip, torch.tensor(0)


def draw_motion(n: int, pool: torch.Tensor, size: int, digit: int, speed: tuple[float, float], rng: torch.Generator):
    """Digit indices `[n, 2]` from `pool`, start corners `[n, 2, 2]` and velocities `[n, 2, 2]` (pixels)."""
    digits = pool[torch.randint(0, len(pool), (n, DIGITS_PER_CLIP), generator=rng)]
    start = torch.rand(n, DIGITS_PER_CLIP, 2, generator=rng) * (size - digit)
    angle = torch.rand(n, DIGITS_PER_CLIP, generator=rng) * 2 * torch.pi
    low, high = speed
    magnitude = (low + (high - low) * torch.rand(n, DIGITS_PER_CLIP, generator=rng)) * size
    velocity = torch.stack([angle.sin(), angle.cos()], dim=-1) * magnitude[..., None]
    return digits, start, velocity


class MovingDigitsDataModule(ImageDataModule):
    """Two bouncing scikit-learn digits per clip; unconditional; no download.

    Args:
        batch_size: clips per batch and per device.
        image_size: frame height and width (e.g. 32 or 64); the digits are scaled to 7/16 of it.
        num_frames: frames per clip.
        channels: 1 (gray) or 3 (the gray value repeated).
        num_train: training clips (made of training digits).
        num_val: validation clips (made of held-out digits).
        speed: lowest and highest speed of a digit, as a fraction of the frame side per frame.
        seed: seed of the clips' digits and motion.
        val_fraction: fraction of each digit class held out for validation clips.
        split_seed: seed of the held-out digits.
        num_workers: DataLoader worker processes (rendering is cheap: 0 is fine).
    """

    metric_features = "sagan.evaluation.video_features.MovingDigitsFeatures"

    def __init__(
        self,
        batch_size: int = 32,
        image_size: int = 32,
        num_frames: int = 16,
        channels: int = 1,
        num_train: int = 10_000,
        num_val: int = 1_000,
        speed: tuple[float, float] = (0.03, 0.06),
        seed: int = 0,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        num_workers: int = 0,
    ):
        super().__init__(batch_size, image_size, channels, False, num_workers)
        if image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {image_size}")
        if num_frames < 2:
            raise ValueError(f"num_frames must be >= 2, got {num_frames}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if num_train < 1 or num_val < 1:
            raise ValueError(f"num_train and num_val must be >= 1, got {num_train} and {num_val}")
        if not 0.0 <= speed[0] <= speed[1] <= 1.0:
            raise ValueError(f"speed must be (low, high) with 0 <= low <= high <= 1, got {tuple(speed)}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.num_frames, self.num_train, self.num_val = num_frames, num_train, num_val
        self.speed, self.seed = (float(speed[0]), float(speed[1])), seed
        self.val_fraction, self.split_seed = val_fraction, split_seed
        self.digit_size = round(image_size * 7 / 16)

    @property
    def fingerprint(self) -> str:
        return (
            f"moving-sklearn-digits:train(n={self.num_train},seed={self.seed},val_fraction={self.val_fraction},"
            f"split_seed={self.split_seed})|{self.num_frames}x{self.image_size}x{self.image_size}|"
            f"digit={self.digit_size}|speed={self.speed[0]:g}-{self.speed[1]:g}|channels={self.channels}|[-1,1]"
        )

    def make_split(self, split: str, n: int, seed: int) -> MovingDigits:
        """`n` clips of the "train" or "val" digits, drawn from `seed` (the data module's splits use its own)."""
        images, labels = digits_tensors(self.digit_size, 1)
        train, held = held_out_split(labels, self.val_fraction, self.split_seed)
        rng = torch.Generator().manual_seed(seed + (0 if split == "train" else 1))
        pool = train if split == "train" else held
        motion = draw_motion(n, pool, self.image_size, self.digit_size, self.speed, rng)
        return MovingDigits(images, labels, *motion, self.image_size, self.num_frames, self.channels)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.train_set = self.make_split("train", self.num_train, self.seed)
        self.val_set = self.make_split("val", self.num_val, self.seed)
