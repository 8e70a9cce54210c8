"""The hybrid video GAN: attention across time only, frames drawn alike, a frame logit beside the clip logit."""

import pytest
import torch
from torch.testing import assert_close

from sagan.models.video_hybrid import TINY, TemporalAttention, VideoHybridDiscriminator, VideoHybridGenerator


def test_temporal_attention_mixes_frames_at_one_place_only():
    torch.manual_seed(0)
    attention = TemporalAttention(8, frames=4, num_heads=2)
    x = torch.randn(2 * 4, 8, 3, 3)
    changed = x.clone()
    changed[1, :, 2, 0] += torch.randn(8)  # clip 0, frame 1, place (2, 0)
    delta = (attention(changed) - attention(x)).abs().sum(1)  # [N*T, H, W]
    moved = delta > 1e-6
    assert moved[:4, 2, 0].all()  # every frame of that clip, at that place
    assert moved.sum() == 4  # nowhere else: no other place, no other clip


def test_frames_differ_only_through_motion_and_time_codes():
    torch.manual_seed(0)
    g = VideoHybridGenerator(**TINY["hybrid-generator-16"][1]).eval()
    z = torch.randn(3, g.z_dim)
    with torch.no_grad():
        clips = g(z)
        assert (clips[:, 0] - clips[:, 1]).abs().max() > 1e-4
        z[:, -g.motion_dim :] = 0  # no velocity
        g.time.zero_()
        for module in g.temporal.values():
            module.time.zero_()
        still = g(z)
    for t in range(1, g.num_frames):  # equal codes: the same convolutions draw the same frame
        assert_close(still[:, t], still[:, 0])


def test_motion_code_moves_the_clip_and_content_code_reaches_every_frame():
    torch.manual_seed(0)
    g = VideoHybridGenerator(**TINY["hybrid-generator-16"][1]).eval()
    z = torch.randn(2, g.z_dim)
    other_motion = z.clone()
    other_motion[:, -g.motion_dim :] = torch.randn(2, g.motion_dim)
    with torch.no_grad():
        a, b = g(z), g(other_motion)
    assert ((a - b).abs().amax(dim=(2, 3, 4)) > 1e-4).all()  # every frame of every clip changes


def test_discriminator_adds_the_mean_frame_logit_to_the_clip_logit():
    kwargs = TINY["hybrid-discriminator-16"][1]
    torch.manual_seed(0)
    d0 = VideoHybridDiscriminator(**kwargs, frame_weight=0.0).eval()
    d2 = VideoHybridDiscriminator(**kwargs, frame_weight=2.0).eval()
    d2.load_state_dict(d0.state_dict())
    x = torch.rand(3, 4, 1, 16, 16) * 2 - 1
    shuffled = x[:, [2, 0, 3, 1]]
    with torch.no_grad():
        frame_mean = (d2(x) - d0(x)) / 2
        assert_close(frame_mean, (d2(shuffled) - d0(shuffled)) / 2)  # frames judged one by one: order-free
        maps = d0.stem(x.flatten(0, 1))
        assert_close(frame_mean, d0.frame_head(maps).view(3, 4).mean(1))
        assert (d0(x) - d0(shuffled)).abs().max() > 1e-5  # the clip logit sees the order


def test_batch_std_lets_the_frame_logits_see_how_alike_the_clips_are():
    torch.manual_seed(0)
    kwargs = dict(TINY["hybrid-discriminator-16"][1], depth=0)
    x = torch.rand(4, 4, 1, 16, 16) * 2 - 1
    alike = x[:1].expand_as(x)  # the first clip four times
    for batch_std in (False, True):
        torch.manual_seed(0)
        d = VideoHybridDiscriminator(**kwargs, frame_weight=1.0, batch_std=batch_std).eval()
        with torch.no_grad():
            first_varied, first_alike = d(x)[0], d(alike)[0]
        if batch_std:  # the same first clip, scored differently beside copies of itself
            assert (first_varied - first_alike).abs() > 1e-5
        else:
            assert_close(first_varied, first_alike)


@pytest.mark.parametrize("cls, kwargs, match", [
    (VideoHybridGenerator, dict(z_dim=16, motion_dim=16), "motion_dim"),
    (VideoHybridGenerator, dict(latent_depth=-1), "latent_depth"),
    (VideoHybridGenerator, dict(temporal_resolutions=(3,)), "temporal_resolutions"),
    (VideoHybridGenerator, dict(bottom_size=8), "32px"),
    (VideoHybridDiscriminator, dict(frame_weight=-1.0), "frame_weight"),
    (VideoHybridDiscriminator, dict(num_frames=5), "even"),
    (VideoHybridDiscriminator, dict(image_size=8), "image_size"),
])
def test_bad_options_are_refused_in_one_line(cls, kwargs, match):
    with pytest.raises(ValueError, match=match) as error:
        cls(**kwargs)
    assert "\n" not in str(error.value)


def test_clip_head_sees_frame_differences_where_a_still_clip_has_none():
    torch.manual_seed(0)
    d = VideoHybridDiscriminator(**TINY["hybrid-discriminator-16"][1] | {"frame_weight": 0.0}).eval()  # differences on
    features = d.stem[0].out_channels
    assert d.clip_conv.in_channels == 2 * features
    with torch.no_grad():
        d.clip_conv.parametrizations.weight.original[:, :features] = 0  # the clip head sees changes only
    x = torch.rand(3, 4, 1, 16, 16) * 2 - 1
    still_a, still_b = x[:1, :1].expand(1, 4, -1, -1, -1), x[1:2, :1].expand(1, 4, -1, -1, -1)
    with torch.no_grad():
        assert_close(d(still_a), d(still_b))  # no change in either: the same clip logit
        assert (d(x[:1]) - d(still_a)).abs().max() > 1e-5  # a changing clip is told apart
