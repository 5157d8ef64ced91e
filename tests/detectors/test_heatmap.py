from pathlib import Path

import numpy as np
from PIL import Image

from scanner.detectors.heatmap import file_stem, write_heatmap


def test_file_stem_keeps_a_name_readable_and_safe():
    assert file_stem("fraud-cnn") == "fraud-cnn"
    assert file_stem("../../etc/passwd") == "etc_passwd"
    assert file_stem("a b\nc/é") == "a_b_c"
    assert file_stem("...") == "model" and len(file_stem("x" * 500)) == 60


def test_a_sample_image_goes_under_the_map_with_the_marker(tmp_path: Path):
    values = np.zeros((8, 8))
    values[2, 5] = 1.0
    red = np.zeros((8, 8, 3))
    red[..., 0] = 1.0
    plain = write_heatmap(values, tmp_path / "plain.png", caption=("model m",), marker=(2, 5))
    with_sample = write_heatmap(values, tmp_path / "sample.png", caption=("model m",), marker=(2, 5), sample=red)
    with Image.open(plain) as a, Image.open(with_sample) as b:
        assert b.width == a.width and b.height > a.height + 300
        lower = np.asarray(b.convert("RGB"))[a.height :]
    reds = np.all(lower == (255, 0, 0), axis=-1).sum()
    cyan = np.all(lower == (0, 255, 255), axis=-1).sum()
    assert reds > 300 * 300 * 0.9 and cyan > 0  # the sample, scaled to the map, and the peak's cell outlined on it


def test_without_clean_data_the_sample_is_a_base_with_texture_not_a_flat_one():
    """The synthetic bases are black, grey, white and one smooth random image: only the last shows anything."""
    from scanner.detectors.interface import DetectionContext
    from scanner.detectors.one_pixel.detector import sample_image
    from scanner.findings import InputSpec, Layout

    spec = InputSpec("x", "y", Layout.NCHW, 3, 16, 16, 10)
    image = sample_image(spec, DetectionContext())

    assert image.shape == (16, 16, 3) and float(image.std()) > 0.05
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
