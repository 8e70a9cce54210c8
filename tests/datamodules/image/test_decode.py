"""Decoding: every image mode becomes 8-bit RGB or gray, the crop is centered, broken files are named."""

import numpy as np
import pytest
import torch
from datafixtures import BROKEN, ODD_MODES, make_odd_folder
from PIL import Image
from torch.testing import assert_close

from datamodules.image.decode import CropResize, check_image, load_image, to_channels


def as_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image)).to(torch.int64)


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    return make_odd_folder(tmp_path_factory.mktemp("odd"))


@pytest.mark.parametrize("name", ODD_MODES)
@pytest.mark.parametrize("channels", [1, 3])
def test_every_mode_loads_as_uint8_rgb_or_gray(odd, name, channels):
    array = load_image(odd / name, CropResize(16), channels)
    assert array.shape == (channels, 16, 16) and array.dtype == np.uint8
    assert check_image(odd / name) is None


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_files_are_named_with_their_reason(odd, name):
    assert check_image(odd / name) == BROKEN[name]
    with pytest.raises(Exception):
        load_image(odd / name, CropResize(16), 3)


def test_missing_file_reason(tmp_path):
    assert check_image(tmp_path / "gone.jpg") == "missing"


@pytest.mark.parametrize("mode", ["I;16", "I"])
def test_16_and_32_bit_gray_are_scaled_not_clipped(mode):
    values = np.arange(0, 65536, 257, dtype=np.int64)[:256].reshape(16, 16)  # 0, 257, ..., 65535
    image = Image.fromarray(values.astype(np.uint16 if mode == "I;16" else np.int32))
    assert image.mode == mode
    gray = to_channels(image, 1)
    assert gray.mode == "L"
    assert_close(as_tensor(gray), torch.arange(256).reshape(16, 16))
    rgb = as_tensor(to_channels(image, 3))
    assert_close(rgb, torch.arange(256).reshape(16, 16, 1).expand(16, 16, 3))


def test_sixteen_bit_png_from_disk(odd):
    with Image.open(odd / "gray16.png") as image:
        assert image.mode == "I;16"
        expected = torch.from_numpy(np.rint(np.asarray(image, dtype=np.float64) / 257).astype(np.int64))
        assert_close(as_tensor(to_channels(image, 1)), expected)
    assert expected.max() == 252  # the ramp reaches 64,746: clipping at 255 would have made most of it white


def test_transparency_is_composited_over_white():
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[:, :3, 3] = 0  # left half fully transparent
    rgba[:, 3:, 3] = 255
    out = as_tensor(to_channels(Image.fromarray(rgba, "RGBA"), 3))
    assert_close(out[:, :3], torch.full((4, 3, 3), 255))
    assert_close(out[:, 3:], torch.tensor([10, 20, 30]).expand(4, 3, 3))
    indices = np.zeros((4, 6), np.uint8)
    indices[:, :3] = 1  # palette entry 1 is the transparent one
    palette = Image.fromarray(indices, "P")
    palette.putpalette([10, 20, 30, 0, 0, 0])
    palette.info["transparency"] = 1
    out = as_tensor(to_channels(palette, 3))
    assert_close(out[:, :3], torch.full((4, 3, 3), 255))
    assert_close(out[:, 3:], torch.tensor([10, 20, 30]).expand(4, 3, 3))


def test_center_crop_keeps_the_middle_square_exactly():
    rows = np.arange(218, dtype=np.uint8).reshape(218, 1, 1).repeat(178, axis=1).repeat(3, axis=2)
    cropped = CropResize(178, crop=178)(Image.fromarray(rows))  # no resize: the exact pixels
    assert cropped.size == (178, 178)
    assert_close(as_tensor(cropped), torch.from_numpy(rows[20:198]).to(torch.int64))
    cropped = CropResize(100, crop=100)(Image.fromarray(rows))
    assert_close(as_tensor(cropped), torch.from_numpy(rows[59:159, 39:139]).to(torch.int64))


def test_crop_larger_than_the_image_takes_the_largest_square_then_resizes():
    image = Image.new("RGB", (30, 50), (200, 100, 50))
    out = CropResize(8, crop=178)(image)
    assert out.size == (8, 8)
    assert_close(as_tensor(out), torch.tensor([200, 100, 50]).expand(8, 8, 3))


def test_transform_description_names_crop_filter_and_size():
    assert CropResize(64, crop=178).describe() == "crop178-bicubic64"
    assert CropResize(128, resample="bilinear").describe() == "cropsquare-bilinear128"
    with pytest.raises(ValueError):
        CropResize(64, resample="nearest")


def test_a_non_square_size_keeps_a_photo_of_its_shape_whole():
    photo = np.random.default_rng(0).integers(0, 256, (100, 150, 3), dtype=np.uint8)  # 3:2, landscape
    out = CropResize((64, 96), resample="bilinear")(Image.fromarray(photo))
    assert out.size == (96, 64)  # PIL: (width, height)
    whole = Image.fromarray(photo).resize((96, 64), Image.Resampling.BILINEAR)
    assert_close(as_tensor(out), as_tensor(whole))  # nothing cut: the same as resizing the whole photo


def test_a_non_square_size_crops_the_middle_of_another_shape_exactly():
    cells = np.arange(120 * 100, dtype=np.int64).reshape(120, 100)
    image = Image.fromarray((cells % 251).astype(np.uint8))
    tall = CropResize((60, 100))(image)  # a 100-wide box of aspect 3:5: 60 rows from the middle, no resize
    assert tall.size == (100, 60)
    assert_close(as_tensor(tall), torch.from_numpy(cells[30:90] % 251))
    wide = CropResize((100, 50))(image)  # 2:1 tall box, 120 high: 60 middle columns, then resized
    assert wide.size == (50, 100)
    assert_close(as_tensor(CropResize((120, 60))(image)), torch.from_numpy(cells[:, 20:80] % 251))


def test_a_non_square_size_is_named_and_refuses_a_square_crop():
    assert CropResize((64, 96)).describe() == "cropaspect-bicubic64x96"
    assert CropResize([64, 64]) == CropResize(64)  # a square pair is the square
    with pytest.raises(ValueError, match="crop cuts a square"):
        CropResize((64, 96), crop=178)
