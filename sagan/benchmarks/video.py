"""`sagan bench-quality --only video`: the moving-digits video GAN against the real floor and no-motion baselines.

1. Trains `experiments/videohybrid_moving_digits.yaml` (what `make train DATA=moving_digits` trains) for
   `--video_iters` generator iterations (default its `g_iters`), with a checkpoint every `--video_eval_every`
   (default a quarter of them).
2. Measures each checkpoint: moving-digits FD and KD (`MovingDigitsFeatures`, not FVD) of `--video_samples`
   EMA clips against the statistics of all training clips.
   Beside it, for the same clips: the digits FID of single frames (`FRAMES_PER_CLIP` evenly spaced
   frames of each clip scored as images by the digits classifier, `DigitsFeatures`, against the frames
   of `--frame_real` training clips), and the flicker figure (`sagan.evaluation.flicker`: the mean
   absolute change between consecutive frames, and what is left of it after shifting each frame by
   the clip's estimated motion).
3. Reference rows, each from as many held-out clips (made of the held-out digits): the clips themselves
   (the real-vs-real floor), the clips with one of their frames repeated over all frames (the digits are
   perfect but do not move), and the clips with their frames in random order (every frame perfect,
   the motion incoherent). The distance of the last two above the floor is what the metric charges for
   missing or wrong motion.

Prints a markdown table and writes it, with the numbers as JSON, to `<run_root>/video_table.md` and
`video_results.json`.

    sagan bench-quality --only video [--video_iters 1500] [--video_eval_every 375] [--video_samples 2000]
"""

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from sagan.benchmarks.harness import experiment_g_iters, train, write_table
from sagan.evaluation.checkpoint import build_data_and_metrics, load_gan
from sagan.errors import UsageError
from sagan.evaluation.features import DigitsFeatures
from sagan.evaluation.flicker import flicker
from sagan.evaluation.metrics import SampleMetrics, extract, generated_batches, real_statistics
from sagan.training.checkpoints import upgrade_config

EXPERIMENT = "videohybrid_moving_digits"  # what `make train DATA=moving_digits` trains
FEATURES = "sagan.evaluation.video_features.MovingDigitsFeatures"
FRAMES_PER_CLIP = 4  # frames of each clip scored as images (evenly spaced, first and last included)


def prepare(run_dir: Path, num_samples: int, device: str, classifier_steps: int = 800, num_real: int | None = None):
    """The run's data module (with `num_samples` validation clips) and a `SampleQuality` in moving-digits
    features (FD and KD), its statistics of `num_real` training clips (None: all) loaded or computed."""
    config = upgrade_config(yaml.safe_load((run_dir / "config.yaml").read_text()))
    config["data"]["init_args"]["num_val"] = num_samples  # a floor with as many clips as the samples
    features = {"class_path": FEATURES, "init_args": {"train_steps": classifier_steps}}
    overrides = {"features": features, "num_samples": num_samples, "num_real": num_real,
                 "inception_score": False, "modes": False, "kid_subsets": 100, "kid_subset_size": min(1000, num_samples)}
    data, quality = build_data_and_metrics(config, overrides)
    quality.prepare(data, torch.device(device))
    return data, quality


def static(clips: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Each clip [N, T, C, H, W] replaced by one of its frames (drawn at random) repeated T times."""
    pick = torch.randint(0, clips.shape[1], (clips.shape[0],), generator=rng)
    return clips[torch.arange(clips.shape[0]), pick][:, None].expand_as(clips)


def shuffled(clips: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Each clip's frames in a random order of its own."""
    order = torch.stack([torch.randperm(clips.shape[1], generator=rng) for _ in range(clips.shape[0])])
    return clips[torch.arange(clips.shape[0])[:, None], order]


def frames_of(clips: torch.Tensor, per_clip: int = FRAMES_PER_CLIP) -> torch.Tensor:
    """[N, T, C, H, W] -> [N * per_clip, C, H, W]: `per_clip` evenly spaced frames of every clip."""
    pick = torch.linspace(0, clips.shape[1] - 1, min(per_clip, clips.shape[1])).round().long()
    return clips[:, pick].flatten(0, 1)


class FrameFID:
    """The digits FID of single frames: `DigitsFeatures` of `frames_of(clips)` against the frames of real clips."""

    def __init__(self, real_clips, device: str):
        self.features = DigitsFeatures().load().to(device).eval()
        self.device = torch.device(device)
        features, _ = extract(self.features, (frames_of(c) for c in real_clips), self.device)
        self.real = real_statistics(features, 0)
        self.metrics = SampleMetrics(fid=True, inception_score=False, kid=False)

    def __call__(self, clips: torch.Tensor) -> float:
        features, logits = extract(self.features, (frames_of(c) for c in clips.split(250)), self.device)
        return float(self.metrics(features, logits, self.real)["fid"])


def clip_batches(dataset, n: int, size: int = 250):
    """The first `n` clips of `dataset` in batches `[<=size, T, C, H, W]`."""
    for s in range(0, n, size):
        yield torch.stack([dataset[i][0] for i in range(s, min(s + size, n))])


def score(clips: torch.Tensor, quality, frame_fid: FrameFID, device: str) -> dict[str, float]:
    """Moving-digits FD and KD, frame digits FID and the flicker figure of `clips` [N, T, C, H, W]."""
    features, logits = extract(quality.features, clips.split(250), torch.device(device))
    m = quality.metrics
    n = len(clips)
    metrics = SampleMetrics(m.fid, False, m.kid, False, 1, m.kid_subsets, min(m.kid_subset_size, n), m.seed)
    values = {k: float(v) for k, v in metrics(features, logits, quality.real).items()}
    moves = flicker(clips)
    return values | {"frame_fid": frame_fid(clips), "change": moves["change"], "compensated": moves["compensated"],
                     "samples": n}


@torch.no_grad()
def generate(ckpt: Path, n: int, device: str, seed: int = 0) -> tuple[int, torch.Tensor]:
    """Generator iterations of a checkpoint and `n` clips of its EMA generator (the evaluation's noise)."""
    model = load_gan(ckpt, map_location=device).eval()
    batches = generated_batches(model, model.generator.z_dim, model.num_classes, n, 100, seed, torch.device(device))
    clips = torch.cat([b.float().cpu() for b in batches])
    g_iters = torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"] // (model.n_critic + 1)
    return g_iters, clips


def reference(data, change: Callable | None, seed: int = 0) -> torch.Tensor:
    """The held-out clips, changed by `change(clips, rng)`."""
    if data.val_set is None:
        data.setup("fit")
    rng = torch.Generator().manual_seed(seed)
    batches = clip_batches(data.val_set, len(data.val_set))
    return torch.cat([change(clips, rng) if change is not None else clips for clips in batches])


HEADER = ("| run | generator iterations | clips | moving-digits FD | moving-digits KD | frame digits FID "
          "| frame change | after motion compensation |\n|---|---|---|---|---|---|---|---|")


def _row(name: str, iters, values: dict) -> str:
    return (f"| {name} | {iters} | {values['samples']} | {values['fid']:.2f} | {values['kid']:.4f} | "
            f"{values['frame_fid']:.2f} | {values['change']:.4f} | {values['compensated']:.4f} |")


def write_strip(clips: torch.Tensor, root: Path, n: int = 6) -> tuple[Path, Path]:
    """The first `n` clips as a PNG strip (one clip a row, its frames left to right) and a GIF grid."""
    from torchvision.utils import save_image

    from sagan.tasks.video import save_gif, to_gif_frames
    from sagan.training.sample_grid import to_grid

    clips = clips[:n]
    root.mkdir(parents=True, exist_ok=True)
    strip = root / "video_strip.png"
    save_image(to_grid(clips.flatten(0, 1), clips.shape[1]), strip)
    gif = save_gif(to_gif_frames(clips, max(int(len(clips) ** 0.5), 1)), root / "video_samples.gif", 8)
    return strip, gif


def main(argv: list[str], run_root: str = "runs/bench_quality", device: str = "cpu") -> None:
    parser = argparse.ArgumentParser(prog="sagan bench-quality --only video", description=__doc__.splitlines()[0])
    parser.add_argument("--video_iters", type=int, default=None,
                        help="generator iterations on moving digits (default: the experiment's g_iters)")
    parser.add_argument("--video_eval_every", type=int, default=None,
                        help="measure a checkpoint every this many iterations (default: a quarter of them)")
    parser.add_argument("--video_samples", type=int, default=2000, help="generated and held-out clips per row")
    parser.add_argument("--run_dir", default=None, help="measure this finished run instead of training one")
    parser.add_argument("--video_real", type=int, default=None, help="training clips for the statistics (default all)")
    parser.add_argument("--frame_real", type=int, default=5000,
                        help="training clips whose frames make the frame digits FID's statistics")
    parser.add_argument("--classifier_steps", type=int, default=800, help="training batches of the moving-digits CNN")
    args = parser.parse_args(argv)
    iters = args.video_iters or experiment_g_iters(EXPERIMENT)
    every = args.video_eval_every or max(iters // 4, 1)
    if min(iters, every, args.classifier_steps, args.frame_real) < 1 or min(args.video_samples,
                                                                            args.video_real or 2) < 2:
        raise UsageError("--video_iters, --video_eval_every, --frame_real and --classifier_steps must be >= 1, "
                         "--video_samples and --video_real >= 2")
    root = Path(run_root)
    start, cpu = time.perf_counter(), time.process_time()
    run_dir = Path(args.run_dir) if args.run_dir else train(EXPERIMENT, iters, root, every)
    trained, trained_cpu = time.perf_counter() - start, time.process_time() - cpu
    data, quality = prepare(run_dir, args.video_samples, device, args.classifier_steps, args.video_real)
    if data.train_set is None:  # the statistics came from the cache: the data was never loaded
        data.setup("fit")
    frame_fid = FrameFID(clip_batches(data.train_set, min(args.frame_real, len(data.train_set))), device)
    rows, records = [HEADER], []
    print(HEADER, flush=True)
    checkpoints = sorted((run_dir / "checkpoints").glob("epoch=*.ckpt"), key=lambda p: p.stat().st_mtime)
    for ckpt in checkpoints or [run_dir / "checkpoints" / "last.ckpt"]:
        g_iters, clips = generate(ckpt, args.video_samples, device, quality.seed)
        values = score(clips, quality, frame_fid, device)
        recipe = quality.recipe(generated=values["samples"]).to_dict()
        records.append({"run": "video GAN", "checkpoint": ckpt.name, "g_iters": g_iters, **values,
                        "score_recipe": recipe})
        rows.append(_row(f"Video GAN ({model_name(run_dir)}), moving digits", g_iters, values))
        print(rows[-1], flush=True)
    strip, gif = write_strip(clips, root)  # the last checkpoint's first clips
    for name, change in (("real held-out clips (floor)", None), ("held-out clips, one frame repeated (no motion)", static),
                         ("held-out clips, frames shuffled (incoherent motion)", shuffled)):
        values = score(reference(data, change), quality, frame_fid, device)
        recipe = quality.recipe(ema=False, generated=values["samples"]).to_dict()  # no generator
        records.append({"run": name, **values, "score_recipe": recipe})
        rows.append(_row(name, "-", values))
        print(rows[-1], flush=True)
    table = "\n".join(rows)
    print(f"\n{table}\n\n({trained:.0f} s of training ({trained_cpu:.0f} s of CPU time), "
          f"{time.perf_counter() - start - trained:.0f} s of measuring; distances in the moving-digits CNN's features: "
          f"not FVD; frame digits FID over {FRAMES_PER_CLIP} frames a clip; changes in pixel values of [0, 1])\n"
          f"samples of the last checkpoint: {strip} and {gif}")
    root.mkdir(parents=True, exist_ok=True)
    write_table(root, "video_table", table, records, "video_results.json")



def model_name(run_dir: Path) -> str:
    """The generator's class name in a run's config (the run's architecture)."""
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    return config["model"]["init_args"]["generator"]["class_path"].rsplit(".", 1)[-1]
