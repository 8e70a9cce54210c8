"""`sagan predict` writes an image GAN's EMA samples as PNGs; `sagan test` is refused in one line."""

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from sagan.commands import main
from sagan.evaluation.checkpoint import build_data_and_metrics
from sagan.evaluation.checkpoint import load_gan


def test_predict_writes_one_sample_per_held_out_image_with_its_class(trained_run, tmp_path):
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    main([
        "predict", "--config", str(trained_run / "config.yaml"), "--ckpt_path", str(ckpt),
        "--trainer.limit_predict_batches=2", "--predictions.output_dir", str(tmp_path),
    ])
    files = sorted(tmp_path.glob("*.png"))
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(16)]  # two batches of 8
    files = files[:8]
    # the first batch's samples: the noise of batch 0 on rank 0, the labels of the first held-out images
    data, _ = build_data_and_metrics(yaml.safe_load((trained_run / "config.yaml").read_text()), {"features": None})
    data.setup("predict")
    labels = torch.stack([data.val_set[i][1] for i in range(8)])
    z = torch.randn(8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = load_gan(ckpt)(z, labels).add(1).div(2).squeeze(1).numpy()
    written = np.stack([np.asarray(Image.open(f), dtype=np.float64)[..., 0] / 255 for f in files])  # gray as RGB
    assert written.shape == (8, 32, 32) and np.abs(written - expected).max() <= 0.5 / 255 + 1e-6


def test_test_is_refused_in_one_line(trained_run, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([
            "test", "--config", str(trained_run / "config.yaml"),
            "--ckpt_path", str(trained_run / "checkpoints" / "last.ckpt"),
        ])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no test_step" in err and "sagan eval" in err
