"""`sagan bench-quality --only speech`: its baselines, and (slow) the whole bench on a budget of one iteration."""

import json

import pytest
import torch
from torch.testing import assert_close

from sagan.benchmarks import speech as bench_speech
from sagan.commands import main


def test_shaped_noise_has_the_references_mean_spectrum_and_loudness():
    torch.manual_seed(0)
    t = torch.arange(1024) / 8000
    reference = (0.3 * torch.sin(2 * torch.pi * 500 * t) + 0.05 * torch.randn(64, 1024))[:, None]  # a tone in noise
    noise = bench_speech.shaped_noise(reference, 256)
    assert noise.shape == (256, 1, 1024) and noise.abs().max() <= 1
    assert_close(noise.square().mean().sqrt(), reference.square().mean().sqrt(), rtol=1e-3, atol=0)
    power = torch.fft.rfft(noise[:, 0].double()).abs().square().mean(0)
    assert int(power.argmax()) == 64  # 500 Hz at 7.8 Hz per bin: the tone's bin
    assert not torch.equal(noise[0], noise[1])  # noise, not one clip repeated


def test_placement_measures_the_quiet_around_a_word_and_where_it_sits():
    torch.manual_seed(0)
    clips = torch.zeros(2, 1, 8192)
    clips[0, 0, 1024:2048] = 0.5 * torch.randn(1024)  # a burst at 0.128-0.256 s
    clips[1, 0, 6144:7168] = 0.5 * torch.randn(1024)  # a burst at 0.768-0.896 s
    words = bench_speech.placement(clips, 8000)
    assert words["quiet_half"] == 0.0
    assert_close(words["centre_mean"], (0.192 + 0.832) / 2, atol=5e-3, rtol=0)
    assert_close(words["centre_std"], 0.64 / 2**0.5, atol=5e-3, rtol=0)  # two clips, 0.64 s apart
    steady = bench_speech.placement(0.1 * torch.randn(64, 1, 8192), 8000)
    assert 0.4 < steady["quiet_half"] < 0.5  # steady noise: the quieter half holds nearly half the energy
    assert_close(steady["centre_mean"], 0.512, atol=0.01, rtol=0)


@pytest.mark.slow  # trains the full experiment for one iteration and scores five rows of 330 clips
def test_speech_bench_prints_its_table_with_floor_and_baselines(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench_speech, "FEATURES", "probes.UntrainedSpokenDigits")
    main(["bench-quality", "--only", "speech", "--speech_iters", "1", "--speech_eval_every", "1",
          "--run_root", str(tmp_path)])
    out = capsys.readouterr().out
    assert "| SpeechGAN (EMA generator), digit asked for | 1 | 330 |" in out
    records = {r["run"]: r for r in json.loads((tmp_path / "speech_results.json").read_text())}
    floor, wrong = records["real held-out clips (floor)"], records["real held-out clips, labelled with the next digit"]
    assert floor["is"] == wrong["is"] and floor["fid"] == wrong["fid"]  # IS and FD cannot see the label
    assert floor["fid"] < records["one real clip repeated"]["fid"]
    assert records["one real clip repeated"]["is"] == pytest.approx(1.0)
