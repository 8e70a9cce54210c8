"""Folders of audio files: labels from subfolders, a chosen subset of classes, resampling, lengths, and
broken files left out with one warning."""

import numpy as np
import pytest
import torch
from audiofixtures import DIGITS, make_audio_folder, tone
from scipy.io import wavfile

from datamodules.audio.base import fit_length
from datamodules.audio.folder import AudioFolderDataModule, load_clip
from sagan.errors import UsageError


def _peak_hz(clip: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(clip))
    return float(np.argmax(spectrum) * rate / len(clip))


def test_class_subfolders_give_labels_in_the_order_of_classes(tmp_path):
    root = make_audio_folder(tmp_path, broken=False)
    data = AudioFolderDataModule(str(root), batch_size=2, use_labels=True, classes=list(reversed(DIGITS)), num_workers=0)
    assert data.num_classes == 10 and data.classes[0] == "nine"
    assert not any("other" in path.parts for path in data.files)  # a word not among the classes is left out
    data.setup("fit")
    for clip, label in list(data.train_set) + list(data.val_set):
        assert clip.shape == (1, 16384) and clip.dtype == torch.float32
        word = DIGITS[9 - int(label)]  # reversed order
        assert _peak_hz(clip[0].numpy(), 16000) == pytest.approx(200 + 100 * DIGITS.index(word), abs=2)
    everything = AudioFolderDataModule(str(root), use_labels=True, num_workers=0)
    assert everything.classes == sorted([*DIGITS, "other"])


def test_any_rate_and_channel_count_becomes_mono_at_the_sample_rate(tmp_path):
    root = make_audio_folder(tmp_path, broken=False)
    clip = load_clip(root / "three" / "stereo.flac", 8000, 8192)  # 0.6 s of 500 Hz at 22.05 kHz, stereo
    assert clip.shape == (8192,)
    assert _peak_hz(clip[:4800], 8000) == pytest.approx(500, abs=2)
    assert np.abs(clip[4800 + 16 :]).max() == 0  # silence appended after the 0.6 s
    assert np.abs(clip[100:4700]).max() == pytest.approx(0.5, abs=0.01)


def test_long_clips_are_cut_around_their_middle():
    x = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(fit_length(x, 4), [3, 4, 5, 6])
    np.testing.assert_array_equal(fit_length(x[:2], 4), [0, 1, 0, 0])


def test_broken_files_are_left_out_and_named_in_one_warning(tmp_path):
    root = make_audio_folder(tmp_path)
    data = AudioFolderDataModule(str(root), batch_size=2, classes=list(DIGITS), use_labels=True, num_workers=0)
    with pytest.warns(UserWarning, match="skipped 2 of 32 audio files") as caught:
        data.setup("fit")
    message = str(caught[0].message)
    assert "one/empty.wav (empty file)" in message and "two/notes.wav (not readable audio" in message
    assert len(data.train_set) + len(data.val_set) == 30


def test_unreadable_file_during_training_serves_the_next_clip(tmp_path):
    root = make_audio_folder(tmp_path, broken=False)
    data = AudioFolderDataModule(str(root), batch_size=2, classes=["zero"], use_labels=True, num_workers=0)
    data.setup("fit")
    first = data.train_set.paths[0]
    first.write_text("gone")
    with pytest.warns(UserWarning, match="skipping unreadable audio file"):
        clip, _ = data.train_set[0]
    assert torch.equal(clip, data.train_set[1][0])


def test_folder_mistakes_are_one_line_errors(tmp_path):
    with pytest.raises(UsageError, match="audio folder not found"):
        AudioFolderDataModule(str(tmp_path / "nope"))
    root = make_audio_folder(tmp_path, broken=False)
    with pytest.raises(UsageError, match=r"classes \['ten'\] have no audio files"):
        AudioFolderDataModule(str(root), classes=["zero", "ten"])
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(3):
        wavfile.write(flat / f"{i}.wav", 8000, tone(440.0, 0.2, 8000))
    assert AudioFolderDataModule(str(flat)).num_classes == 0
    with pytest.raises(UsageError, match="use_labels=true needs one subfolder per class"):
        AudioFolderDataModule(str(flat), use_labels=True)
    with pytest.raises(ValueError, match="val_fraction"):
        AudioFolderDataModule(str(flat), val_fraction=1.0)
