"""`sagan bench-quality --only speech`: the speech GAN on the embedded spoken digits, measured.

1. Trains `experiments/speechgan_spoken_digits.yaml` for `--speech_iters` generator iterations (default its
   `g_iters`; a checkpoint every `--speech_eval_every`).
2. Scores each checkpoint's EMA generator in the spoken-digit classifier (`SpokenDigitsFeatures`): Inception
   Score, Frechet distance to the training clips' features, and digit accuracy (the share of clips the
   classifier hears as the digit they were generated for: IS and FD cannot tell a "three" asked for a
   "seven").
3. Puts beside them, with as many clips as the held-out split has (330, so every row has the same
   estimator bias): the held-out real clips (the floor), the same clips each labelled with the next digit
   (perfect sound, wrong digit), noise with the training clips' average spectrum, and one real clip
   repeated (total collapse), and, when the generator has a fixed inverse from magnitudes (`SpecGANGenerator`),
   the held-out clips' own spectrograms through it (the best that inverse allows).
4. For every row, where the sound is: the share of a clip's energy in its quietest half (32 ms frames; real
   clips are silent around the word, so theirs is near 0) and the word's centre (energy-weighted mean time
   of the frames), its mean and spread over clips (real words sit at random offsets).

Prints a markdown table and writes it, with the numbers as JSON, to `<run_root>/speech_table.md` and
`speech_results.json`.
"""

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from sagan.benchmarks.harness import experiment_g_iters, prepare, train, write_table
from sagan.evaluation.checkpoint import load_gan
from sagan.errors import UsageError

EXPERIMENT = "speechgan_spoken_digits"
FEATURES = "sagan.evaluation.speech_features.SpokenDigitsFeatures"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This bench's options, on `sagan bench-quality`'s parser."""
    parser.add_argument("--speech_iters", type=int, default=None,
                        help="generator iterations on the spoken digits (default: the experiment's g_iters)")
    parser.add_argument("--speech_eval_every", type=int, default=250, help="spoken-digits evaluation interval")
    parser.add_argument("--speech_run", default=None,
                        help="score the checkpoints of this existing run directory of the experiment instead of training")


@torch.no_grad()
def score(quality, clips: torch.Tensor, labels: torch.Tensor, device: str) -> dict[str, float]:
    """IS (one split), Frechet distance and digit accuracy of `[N, 1, L]` clips meant to be `labels`."""
    features, logits = [], []
    for start in range(0, len(clips), 250):
        f, lg = quality.features(clips[start : start + 250].to(device))
        features.append(f.float())
        logits.append(lg.float())
    features, logits = torch.cat(features), torch.cat(logits)
    m = quality.metrics
    m.is_splits, m.kid, m.modes = 1, False, False
    values = {k: float(v) for k, v in m(features, logits, quality.real).items() if not k.endswith("_std")}
    accuracy = (logits.argmax(1).cpu() == labels.cpu()).float().mean().item()
    return values | {"accuracy": accuracy, "samples": len(clips)}


@torch.no_grad()
def generated(ckpt: Path, n: int, device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, int]:
    """`n` clips of a checkpoint's EMA generator for seeded noise and uniformly drawn digits; its iterations."""
    model = load_gan(ckpt, map_location=device)
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.generator.z_dim, generator=rng)
    y = torch.randint(0, model.num_classes, (n,), generator=rng)
    clips = torch.cat([model(z[s : s + 250].to(device), y[s : s + 250].to(device)).cpu() for s in range(0, n, 250)])
    g_iters = torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"] // (model.n_critic + 1)
    return clips, y, g_iters


def shaped_noise(reference: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """`n` clips of Gaussian noise with the average power spectrum and loudness of the reference clips."""
    rng = torch.Generator().manual_seed(seed)
    length = reference.shape[-1]
    target = torch.fft.rfft(reference[:, 0].double()).abs().square().mean(0).sqrt()  # [bins]
    white = torch.fft.rfft(torch.randn(n, length, generator=rng, dtype=torch.float64))
    shaped = torch.fft.irfft(white / white.abs().mean(0).clamp_min(1e-12) * target, n=length)
    rms = reference.double().square().mean().sqrt()
    return (shaped * (rms / shaped.square().mean().sqrt())).clamp(-1, 1).float()[:, None]


def frame_energy(clips: torch.Tensor, frame: int = 256) -> torch.Tensor:
    """[N, 1, L] clips -> [N, L // frame] energies of consecutive frames (32 ms at 8 kHz)."""
    n, _, length = clips.shape
    return clips[:, 0, : length // frame * frame].double().square().reshape(n, -1, frame).sum(2)


def placement(clips: torch.Tensor, sample_rate: int, frame: int = 256) -> dict[str, float]:
    """Where the sound of `[N, 1, L]` clips is: the mean share of a clip's energy in its quietest half of frames
    (0: silent around the word; 0.5: steady sound), and the mean and standard deviation over clips of the word's
    centre in seconds (the energy-weighted mean time of the frames; a silent clip counts as centred)."""
    energy = frame_energy(clips, frame)
    total = energy.sum(1).clamp_min(1e-20)
    quiet = energy.sort(1).values[:, : energy.shape[1] // 2].sum(1) / total
    times = (torch.arange(energy.shape[1], dtype=torch.float64) + 0.5) * frame / sample_rate
    centre = torch.where(energy.sum(1) > 0, (energy * times).sum(1) / total, times.mean())
    return {"quiet_half": float(quiet.mean()), "centre_mean": float(centre.mean()), "centre_std": float(centre.std())}


def _row(name: str, iters, values: dict) -> str:
    return (f"| {name} | {iters} | {values['samples']} | {values['is']:.2f} | {values['fid']:.2f} | "
            f"{values['accuracy']:.3f} | {values['quiet_half']:.4f} | {values['centre_mean']:.2f} +- "
            f"{values['centre_std']:.2f} |")


@torch.no_grad()
def resynthesized(ckpt: Path, real: torch.Tensor, device: str) -> torch.Tensor | None:
    """The clips' own spectrograms through a checkpoint generator's fixed inverse (Griffin-Lim), or None when
    its generator has none."""
    generator = load_gan(ckpt, map_location=device).generator_ema
    if not hasattr(generator, "inverse") or not hasattr(generator, "spectrogram"):
        return None
    out = []
    for s in range(0, len(real), 250):
        levels = generator.spectrogram(real[s : s + 250].to(device))
        magnitude = F.pad(generator.spectrogram.magnitude(levels), (0, 0, 0, 1))
        out.append(generator.inverse(magnitude).clamp(-1, 1).cpu())
    return torch.cat(out)


def run(args: argparse.Namespace) -> None:
    """Trains, measures and prints the speech table (see the module's docstring)."""
    if args.speech_iters is None:
        args.speech_iters = experiment_g_iters(EXPERIMENT)
    if min(args.speech_iters, args.speech_eval_every) < 1:
        raise UsageError("--speech_iters and --speech_eval_every must be >= 1")
    root = Path(args.run_root)
    start = time.perf_counter()
    if args.speech_run:
        run_dir = Path(args.speech_run)
        if not (run_dir / "config.yaml").is_file():
            raise UsageError(f"--speech_run {run_dir} is not a run directory (no config.yaml in it)")
    else:
        run_dir = train(EXPERIMENT, args.speech_iters, root, args.speech_eval_every)
    trained = time.perf_counter() - start
    data, quality = prepare(run_dir, FEATURES, 330, args.device)
    if data.val_set is None:
        data.setup("fit")
    real, labels = data.val_set.tensors
    n = len(real)
    rate = data.sample_rate
    header = ["| clips | generator iterations | clips scored | IS | FD | digit accuracy | energy share of the quietest "
              "half | word centre, s (mean +- sd) |", "|---|---|---|---|---|---|---|---|"]
    rows, records = [], []
    checkpoints = sorted((run_dir / "checkpoints").glob("epoch=*.ckpt"), key=lambda p: p.stat().st_mtime)
    for ckpt in checkpoints or [run_dir / "checkpoints" / "last.ckpt"]:
        clips, y, g_iters = generated(ckpt, n, args.device)
        values = score(quality, clips, y, args.device) | placement(clips, rate)
        recipe = quality.recipe(generated=values["samples"]).to_dict()
        records.append({"run": "speechgan", "g_iters": g_iters, **values, "score_recipe": recipe})
        rows.append(_row("SpeechGAN (EMA generator), digit asked for", g_iters, values))
        print(rows[-1], flush=True)
    baselines = [
        ("real held-out clips (floor)", real, labels),
        ("real held-out clips, labelled with the next digit", real, (labels + 1) % 10),
        ("noise with the training clips' mean spectrum", shaped_noise(data.train_set.tensors[0], n), labels),
        ("one real clip repeated", real[:1].expand(n, -1, -1), labels),
    ]
    inverse = resynthesized(checkpoints[-1] if checkpoints else run_dir / "checkpoints" / "last.ckpt", real, args.device)
    if inverse is not None:
        baselines.insert(1, ("real held-out clips through the generator's inverse (Griffin-Lim)", inverse, labels))
    for name, clips, y in baselines:
        values = score(quality, clips, y, args.device) | placement(clips, rate)
        recipe = quality.recipe(ema=False, generated=values["samples"]).to_dict()  # no generator
        records.append({"run": name, **values, "score_recipe": recipe})
        rows.append(_row(name, "-", values))
        print(rows[-1], flush=True)
    table = "\n".join(header + rows)
    accuracy = getattr(quality.features, "accuracy", None)
    heard = "unknown" if accuracy is None else f"{accuracy:.3f}"
    print(f"\n{table}\n\n(training {trained:.0f} s, in all {time.perf_counter() - start:.0f} s; IS and FD in the spoken-digit "
          f"classifier's features, held-out voice accuracy {heard}: not comparable with SC09 papers)")
    root.mkdir(parents=True, exist_ok=True)
    write_table(root, "speech_table", table, records, "speech_results.json")

