"""Builds the embedded spoken-digits data set (`datamodules/embedded/spoken_digits_8k.npz`) with eSpeak NG.

Only for rebuilding the file: training, tests and users read the packed file and never need eSpeak.

    apt-get install espeak-ng          # Debian/Ubuntu package of the synthesizer (1.51 made the shipped file)
    python scripts/make_spoken_digits.py [--speakers 200] [--seed 0] [--out datamodules/embedded/spoken_digits_8k.npz]

A "speaker" is an English accent of eSpeak NG (8 of them) with a voice variant (its age, sex, breathiness
and formants; 94 variants) drawn at random. Each speaker says "zero" to "nine" once, each word at its own
random speed (120-220 words a minute; faster where a slow voice would last over 0.9 s) and pitch (base
20-80 of eSpeak's 0-99), so the data varies in accent, voice, tempo and pitch. Every clip is resampled to 8 kHz (polyphase, scipy), cut to where it is
audible (1% of its peak, plus 10 ms either side), scaled to a random peak level in [0.5, 0.95] and stored
as 8-bit mu-law codes. The split is by voice variant: the speakers of 20% of the variants (chosen by the
seed) are the validation set, so validation voices are never heard in training.

The file is an ordinary `.npz` whose members are LZMA-compressed (numpy reads it as it is):
    codes     uint8 [total samples]   all clips' mu-law codes, one after the other
    starts    int64 [clips + 1]       clip i is codes[starts[i]:starts[i + 1]]
    labels    uint8 [clips]           the digit
    speakers  int16 [clips]           index into `accents` / `variants` of the speaker
    val       bool  [clips]           held out for validation
    speed, pitch  int16 [clips]       eSpeak's -s and -p
    accents, variants  str [speakers] the speaker's eSpeak voice is f"{accent}+{variant}"
    sample_rate  int64 []             8000
"""

import argparse
import io
import random
import shutil
import subprocess
import sys
import tempfile
import zipfile
from math import gcd
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = (
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029", "en-us-nyc",
)
# eSpeak NG 1.51's voice variants (`espeak-ng --voices=variant`) less the novelty ones (robot, demon,
# announcer, whispers, a test voice): what is left sounds like people of various ages, sexes and timbres.
SKIPPED_VARIANTS = {"Demonic", "announcer", "UniRobot", "anikaRobot", "fast", "whisper", "whisperf"}
SAMPLE_RATE = 8000
MU = 255
MAX_SAMPLES = 7200  # 0.9 s


def variants() -> list[str]:
    """The voice variants eSpeak NG offers, minus the novelty ones, sorted."""
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    names = [line.split()[-1].removeprefix("!v/") for line in out.splitlines()[1:] if line.strip()]
    return sorted(set(names) - SKIPPED_VARIANTS)


def synthesize(word: str, voice: str, speed: int, pitch: int, folder: Path) -> tuple[int, np.ndarray]:
    """eSpeak NG's rendering of `word` as (sample rate, float waveform in [-1, 1])."""
    path = folder / "word.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path), word], check=True)
    rate, samples = wavfile.read(path)
    return rate, samples.astype(np.float64) / 32768.0


def to_clip(rate: int, x: np.ndarray, peak: float) -> np.ndarray:
    """Resampled to 8 kHz, cut to its audible part, scaled to `peak`."""
    g = gcd(SAMPLE_RATE, rate)
    x = resample_poly(x, SAMPLE_RATE // g, rate // g)
    loud = np.flatnonzero(np.abs(x) > 0.01 * np.abs(x).max())
    margin = SAMPLE_RATE // 100
    x = x[max(loud[0] - margin, 0) : loud[-1] + margin + 1]
    return x * (peak / np.abs(x).max())


def mu_law_encode(x: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] -> 8-bit mu-law codes (mu = 255)."""
    y = np.sign(x) * np.log1p(MU * np.abs(x)) / np.log1p(MU)
    return np.clip(np.round((y + 1) / 2 * MU), 0, MU).astype(np.uint8)


def save_npz_lzma(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An `.npz` file with LZMA-compressed members (np.load reads it like any other)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_LZMA) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buffer.getvalue(),
                             compress_type=zipfile.ZIP_LZMA)  # a fixed date: rebuilding gives the same bytes
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, default=200, help="speakers, each saying the ten digits once")
    parser.add_argument("--val_fraction", type=float, default=0.2, help="fraction of voice variants held out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "datamodules/embedded/spoken_digits_8k.npz"))
    args = parser.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng not found: apt-get install espeak-ng (only needed to rebuild the data set)")
    rng = random.Random(args.seed)
    names = variants()
    held = set(rng.sample(names, round(args.val_fraction * len(names))))
    accents, voices = [], []
    for _ in range(args.speakers):
        accents.append(rng.choice(ACCENTS))
        voices.append(rng.choice(names))
    clips, labels, speakers, speeds, pitches = [], [], [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for s, (accent, variant) in enumerate(zip(accents, voices)):
            for digit, word in enumerate(WORDS):
                speed, pitch, peak = rng.randint(120, 220), rng.randint(20, 80), rng.uniform(0.5, 0.95)
                while True:  # every clip fits in 0.9 s: a voice too slow for that says it faster
                    rate, x = synthesize(word, f"{accent}+{variant}", speed, pitch, Path(folder))
                    clip = to_clip(rate, x, peak)
                    if len(clip) <= MAX_SAMPLES:
                        break
                    speed += 20
                clips.append(mu_law_encode(clip))
                labels.append(digit)
                speakers.append(s)
                speeds.append(speed)
                pitches.append(pitch)
            print(f"\rspeaker {s + 1}/{args.speakers}", end="", flush=True)
    print()
    starts = np.concatenate([[0], np.cumsum([len(c) for c in clips])]).astype(np.int64)
    val = np.array([voices[s] in held for s in speakers])
    save_npz_lzma(Path(args.out), {
        "codes": np.concatenate(clips), "starts": starts, "labels": np.array(labels, np.uint8),
        "speakers": np.array(speakers, np.int16), "val": val, "speed": np.array(speeds, np.int16),
        "pitch": np.array(pitches, np.int16), "accents": np.array(accents), "variants": np.array(voices),
        "sample_rate": np.array(SAMPLE_RATE, np.int64),
    })
    size = Path(args.out).stat().st_size
    print(f"wrote {args.out}: {len(clips)} clips ({int(val.sum())} validation), "
          f"{starts[-1] / SAMPLE_RATE:.0f} s of audio, {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
