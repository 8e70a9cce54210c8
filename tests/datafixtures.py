"""Tiny stand-ins of real data sets, written by tests into tmp_path: the exact layouts and file formats
of CelebA (torchvision's tree) and CIFAR-10 (the python-pickle batches), and folders of images in odd
modes and of broken files."""

import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
CELEBA_LANDMARKS = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
# 8 train, 3 valid, 2 test: the official partitions of the fixture
CELEBA_PARTITIONS = (0, 0, 0, 1, 0, 0, 2, 0, 1, 0, 0, 1, 2)


def face(seed: int, width: int = 178, height: int = 218, band: int = 20) -> Image.Image:
    """A 178x218 RGB image: a pure red band of `band` rows at the top and bottom (outside CelebA's
    centered 178x178 crop) around smooth random content with little red."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    coarse[..., 0] //= 4
    middle = np.asarray(Image.fromarray(coarse).resize((width, height - 2 * band), Image.Resampling.BICUBIC))
    red = np.zeros((band, width, 3), np.uint8)
    red[..., 0] = 255
    return Image.fromarray(np.concatenate([red, middle, red]))


def make_celeba(root: Path, partitions: tuple[int, ...] = CELEBA_PARTITIONS) -> Path:
    """`<root>/celeba/` with img_align_celeba/000001.jpg... and the five annotation files; returns root."""
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    names = [f"{i:06d}.jpg" for i in range(1, len(partitions) + 1)]
    rng = np.random.default_rng(0)
    for i, name in enumerate(names):
        face(i).save(folder / "img_align_celeba" / name, quality=95)
    n = len(names)
    (folder / "list_eval_partition.txt").write_text("".join(f"{name} {p}\n" for name, p in zip(names, partitions)))
    attributes = rng.choice([-1, 1], size=(n, len(CELEBA_ATTRIBUTES)))
    (folder / "list_attr_celeba.txt").write_text(
        f"{n}\n{' '.join(CELEBA_ATTRIBUTES)} \n"
        + "".join(f"{name} " + " ".join(f"{a:2d}" for a in row) + "\n" for name, row in zip(names, attributes))
    )
    (folder / "identity_CelebA.txt").write_text("".join(f"{name} {1 + i % 5}\n" for i, name in enumerate(names)))
    (folder / "list_bbox_celeba.txt").write_text(
        f"{n}\nimage_id x_1 y_1 width height\n" + "".join(f"{name}    95  71 226 313\n" for name in names)
    )
    (folder / "list_landmarks_align_celeba.txt").write_text(
        f"{n}\n{CELEBA_LANDMARKS}\n"
        + "".join(f"{name}    69  109  106  113   77  142   73  152  108  154\n" for name in names)
    )
    return root


def cifar_arrays(count: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """`count` random CIFAR-style rows (uint8 [count, 3072]) and labels 0-9."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 3072), dtype=np.uint8), [int(x) for x in rng.integers(0, 10, count)]


class Python2Pickler(pickle._Pickler):
    """Writes byte strings as Python 2 `str` (the BINSTRING opcodes), as the cPickle of the original
    CIFAR-10 files did: Python 3 reads them back as bytes with encoding="bytes" (the data set's own
    recipe) and as str with encoding="latin1" (what torchvision uses)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_python2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_python2_str


def dump_python2(obj, path: Path) -> None:
    with open(path, "wb") as file:
        Python2Pickler(file, protocol=2).dump(obj)


def make_cifar10(root: Path, per_batch: int = 4) -> Path:
    """`<root>/cifar-10-batches-py/` with data_batch_1..5, test_batch and batches.meta in the original
    format (Python 2 pickles of dicts with str keys, b"data" a uint8 [N, 3072] array); returns root."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for seed, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        data, labels = cifar_arrays(per_batch, seed)
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(per_batch)]}
        dump_python2(batch, folder / name)
    classes = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    dump_python2({b"num_cases_per_batch": per_batch, b"label_names": classes, b"num_vis": 3072}, folder / "batches.meta")
    return root


def _rgb(seed: int, size: tuple[int, int] = (40, 30)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


# name -> what the file is; BROKEN files must be skipped with the given reason
ODD_MODES = ("gray.png", "rgba.png", "palette.png", "palette_alpha.png", "gray16.png", "photo.jpg",
             "cmyk.jpg", "picture.webp", "picture.BMP", "bilevel.png")
BROKEN = {
    "truncated.jpg": "truncated or corrupt",
    "empty.png": "empty file",
    "notes.jpg": "not an image",
    "corrupt.png": "truncated or corrupt",
}


def make_odd_folder(folder: Path) -> Path:
    """A flat folder with one good image per odd mode (ODD_MODES), the broken files of BROKEN, and a
    text file that is not read at all; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = _rgb(1)
    Image.fromarray(rgb).convert("L").save(folder / "gray.png")
    rgba = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.uint8)], axis=2)
    rgba[:, :10, 3] = 0  # a transparent stripe
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(folder / "palette.png")
    transparent = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    transparent.info["transparency"] = 0
    transparent.save(folder / "palette_alpha.png", transparency=0)
    ramp = (np.arange(30 * 40, dtype=np.uint32).reshape(30, 40) * 54).astype(np.uint16)  # up to 64,746
    Image.fromarray(ramp).save(folder / "gray16.png")
    Image.fromarray(rgb).save(folder / "photo.jpg", quality=95)
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    Image.fromarray(rgb).save(folder / "picture.webp", lossless=True)
    Image.fromarray(rgb).save(folder / "picture.BMP")
    Image.fromarray(rgb).convert("1").save(folder / "bilevel.png")
    whole = (folder / "photo.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.jpg").write_text("not a picture\n")
    png = (folder / "gray.png").read_bytes()
    data = png.index(b"IDAT") + 8  # garble the compressed pixels, keep the header intact
    (folder / "corrupt.png").write_bytes(png[:data] + bytes(range(200, 256)) * 4 + png[data + 224 :])
    (folder / "README.txt").write_text("ignored: not an image extension\n")
    return folder


def make_class_folder(folder: Path, classes: dict[str, int] | None = None, size: tuple[int, int] = (48, 40)) -> Path:
    """One subfolder per class (each with a nested subfolder holding one of its images) of JPEGs;
    returns the folder."""
    classes = classes or {"cats": 4, "dogs": 3}
    seed = 0
    for name, count in classes.items():
        for i in range(count):
            path = folder / name / ("nested" if i == 0 else "") / f"{name}_{i}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_rgb(seed, size)).save(path, quality=95)
            seed += 1
    return folder


IMAGENET_CLASSES = ("n01440764", "n01443537", "n15075141")


def make_imagenet(root: Path, train_per_class: int = 3, val_per_class: int = 1, with_val: bool = True) -> Path:
    """`<root>/imagenet/train/<wnid>/<wnid>_<i>.JPEG` (and `val/<wnid>/ILSVRC2012_val_<i>.JPEG`) for three
    WordNet ids, non-square JPEGs as in ILSVRC-2012; returns root."""
    seed = 0
    for wnid in IMAGENET_CLASSES:
        for split, count in (("train", train_per_class), ("val", val_per_class if with_val else 0)):
            for i in range(count):
                name = f"{wnid}_{i}.JPEG" if split == "train" else f"ILSVRC2012_val_{seed:08d}.JPEG"
                path = root / "imagenet" / split / wnid / name
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(_rgb(seed, (50, 38))).save(path, quality=90)
                seed += 1
    return root
