"""Tiny audio data written by tests into tmp_path: folders of short clips in WAV and FLAC, in class
subfolders, with broken files beside them."""

from pathlib import Path

import numpy as np
from scipy.io import wavfile

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def tone(frequency: float, seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    """A sine at half scale, float32 `[frames]` (or `[frames, channels]`, every channel the same)."""
    t = np.arange(round(seconds * rate)) / rate
    x = (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
    return x if channels == 1 else np.repeat(x[:, None], channels, axis=1)


def make_audio_folder(root: Path, per_class: int = 3, broken: bool = True) -> Path:
    """`<root>/sc09/<digit>/<i>.wav|.flac` for the ten digit words (class c: a tone of 200 + 100 c Hz, 16 kHz
    WAVs and one 22.05 kHz stereo FLAC), a `<root>/sc09/other/` word to leave out, and (with `broken`) an
    empty and a non-audio file; returns `<root>/sc09`."""
    import soundfile

    folder = root / "sc09"
    for c, word in enumerate(DIGITS):
        (folder / word).mkdir(parents=True)
        for i in range(per_class - 1):
            wavfile.write(folder / word / f"{i}.wav", 16000, tone(200.0 + 100.0 * c, 0.5 + 0.1 * i, 16000))
        soundfile.write(str(folder / word / "stereo.flac"), tone(200.0 + 100.0 * c, 0.6, 22050, 2), 22050)
    (folder / "other").mkdir()
    wavfile.write(folder / "other" / "0.wav", 16000, tone(1500.0, 0.5, 16000))
    if broken:
        (folder / "one" / "empty.wav").write_bytes(b"")
        (folder / "two" / "notes.wav").write_text("not audio")
    return folder
