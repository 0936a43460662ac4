"""open_image: high-bit-depth files scaled (not clipped), every other mode kept working, and a
corrupt file named in one line, also from a DataLoader worker and through pretrain/run.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from common.datasets import DataError, image_folder
from common.errors import clean_message
from common.images import ImageError, open_image

ROOT = Path(__file__).resolve().parents[1]

# a 16-bit ramp over the whole range: 0, 257, ..., 65535 -> 0, 1, ..., 255 after scaling
RAMP16 = (np.arange(256, dtype=np.uint32) * 257).astype(np.uint16).reshape(16, 16)
EXPECTED = np.arange(256, dtype=np.uint8).reshape(16, 16)


def gray(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L"))


def test_16_bit_png_is_scaled_by_the_full_range(tmp_path):
    path = tmp_path / "ramp16.png"
    Image.fromarray(RAMP16).save(path)
    assert Image.open(path).mode == "I;16"  # the file really is 16-bit
    rgb = open_image(path)
    assert rgb.mode == "RGB"
    channels = np.asarray(rgb)
    for c in range(3):
        assert np.array_equal(channels[..., c], EXPECTED)
    assert np.array_equal(np.asarray(open_image(path, "L")), EXPECTED)


def test_16_bit_tiff_little_and_big_endian(tmp_path):
    little, big = tmp_path / "le.tif", tmp_path / "be.tif"
    Image.fromarray(RAMP16).save(little)
    Image.fromarray(RAMP16.astype(">u2")).save(big)
    assert Image.open(little).mode == "I;16" and Image.open(big).mode == "I;16B"
    for path in (little, big):
        assert np.array_equal(gray(open_image(path)), EXPECTED)


def test_a_dark_16_bit_image_stays_dark(tmp_path):
    """Was: convert("RGB") clipped every value above 255 to white."""
    values = np.full((8, 8), 1000, np.uint16)  # 1.5% of the 16-bit range
    path = tmp_path / "dark.png"
    Image.fromarray(values).save(path)
    assert np.all(gray(open_image(path)) == 4)  # round(1000 / 257)


def test_32_bit_integer_and_float_tiffs(tmp_path):
    ints = tmp_path / "i32.tif"
    Image.fromarray(RAMP16.astype(np.int32)).save(ints)
    assert Image.open(ints).mode == "I"
    assert np.array_equal(gray(open_image(ints)), EXPECTED)

    unit = tmp_path / "unit.tif"
    Image.fromarray((EXPECTED / 255.0).astype(np.float32)).save(unit)
    assert Image.open(unit).mode == "F"
    assert np.array_equal(gray(open_image(unit)), EXPECTED)  # [0, 1] -> [0, 255]

    wide = tmp_path / "wide.tif"
    Image.fromarray(EXPECTED.astype(np.float32) * 4.0 - 100.0).save(wide)
    assert np.array_equal(gray(open_image(wide)), EXPECTED)  # its own min..max -> 0..255


def test_other_modes_keep_working(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    cases = {
        "rgb.png": Image.fromarray(rgb),
        "l.png": Image.fromarray(rgb[..., 0]),
        "one.png": Image.fromarray(rgb[..., 0] > 127),
        "p.png": Image.fromarray(rgb).convert("P"),
        "cmyk.jpg": Image.fromarray(rgb).convert("CMYK"),
    }
    for name, img in cases.items():
        img.save(tmp_path / name)
        out = open_image(tmp_path / name)
        assert out.mode == "RGB" and out.size == (12, 12), name
        assert np.array_equal(
            np.asarray(out), np.asarray(Image.open(tmp_path / name).convert("RGB"))
        )
    assert open_image(tmp_path / "l.png", "L").mode == "L"


def test_transparency_is_composited_over_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[:2] = (255, 0, 0, 255)  # opaque red top half, transparent black bottom half
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    out = np.asarray(open_image(tmp_path / "rgba.png"))
    assert (out[:2] == (255, 0, 0)).all() and (out[2:] == 255).all()

    la = np.zeros((4, 4, 2), np.uint8)
    la[:2] = (50, 255)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    out = np.asarray(open_image(tmp_path / "la.png", "L"))
    assert (out[:2] == 50).all() and (out[2:] == 255).all()

    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    palette.putpixel((0, 0), 1)
    palette.info["transparency"] = 0  # palette entry 0 (black) is transparent
    palette.save(tmp_path / "p_transparent.png", transparency=0)
    out = np.asarray(open_image(tmp_path / "p_transparent.png"))
    assert tuple(out[0, 0]) == (0, 0, 255) and (out[1:] == 255).all()


def test_corrupt_and_missing_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ImageError, match=r"corrupt or truncated image .*bad\.png"):
        open_image(bad)
    truncated = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(ImageError, match=r"cut\.png"):
        open_image(truncated)
    with pytest.raises(ImageError, match=r"image .*nowhere\.png not found"):
        open_image(tmp_path / "nowhere.png")


def test_pretraining_folder_and_detection_reader_scale_16_bit(tmp_path):
    from transfer.detection.engine_torchvision import load_image

    (tmp_path / "a").mkdir()
    Image.fromarray(RAMP16).save(tmp_path / "a" / "ramp.png")
    image, _ = image_folder(tmp_path)[0]
    assert np.array_equal(gray(image), EXPECTED)
    tensor = load_image(str(tmp_path / "a" / "ramp.png"), channels=1)
    assert torch.equal((tensor[0] * 255).round().to(torch.uint8), torch.from_numpy(EXPECTED))


def _tree_with_a_corrupt_file(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("val", 4)):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 255, (40, 40, 3), np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f"{i}.png")
    bad = root / "train" / "b" / "3.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return bad


def test_data_error_survives_the_dataloader_worker(tmp_path):
    bad = _tree_with_a_corrupt_file(tmp_path)
    folder = image_folder(tmp_path / "train")
    loader = torch.utils.data.DataLoader(folder, batch_size=None, num_workers=1)
    with pytest.raises(DataError) as e:
        list(loader)
    assert "DataLoader worker" in str(e.value)  # re-raised by torch, same type
    message = clean_message(e.value)
    assert message.startswith(f"corrupt or truncated image {bad}") and "\n" not in message


def test_cli_with_a_worker_names_the_corrupt_file_in_one_line(tmp_path):
    bad = _tree_with_a_corrupt_file(tmp_path)
    cmd = [sys.executable, "pretrain/run.py", "--recipe", "simsiam_resnet50_in1k"]
    cmd += ["--run-dir", str(tmp_path / "run"), f"data.root='{tmp_path / 'train'}'"]
    cmd += [f"data.val_root='{tmp_path / 'val'}'", "data.num_workers=1", "data.img_size=32"]
    cmd += ["model.name='resnet18'", "model.width=8", "train.batch_size=8", "train.epochs=1"]
    cmd += ["train.precision='fp32'", "monitor.knn_bank=16", "monitor.knn_queries=8"]
    cmd += ["method.proj_dim=16", "method.proj_hidden_dim=16", "method.pred_hidden_dim=8"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [proc.stderr.strip().splitlines()[-1]], proc.stderr[-3000:]
    assert len(errors) == 1 and f"corrupt or truncated image {bad}" in errors[0]
    assert "Traceback" not in proc.stderr
