"""Audio data: `base.AudioDataModule` (the base of every audio data module: clips, sample rate, length);
the embedded spoken digits and folders of WAV / FLAC clips (SC09)."""
