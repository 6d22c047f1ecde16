"""lib/vis.py: grid layout, and saved images scaled as scipy.misc.imsave did (min-max bytescale)."""
import numpy as np
import pytest
from PIL import Image

from lib.vis import bytescale, color_grid_vis, grayscale_grid_vis, grayscale_weight_grid_vis


def _scipy_bytescale(data):
    """scipy.misc.bytescale (SciPy <= 1.1) with its defaults, as imsave called it."""
    cmin, cmax = data.min(), data.max()
    cscale = (cmax - cmin) or 1
    scale = 255. / cscale
    return (np.clip((data - cmin) * scale, 0, 255) + 0.5).astype(np.uint8)


def test_bytescale_matches_scipy():
    r = np.random.RandomState(0)
    for data in (r.uniform(-1, 1, (5, 7)), r.uniform(0, 1, (4, 4, 3)), np.full((2, 2), 3.)):
        np.testing.assert_array_equal(bytescale(data), _scipy_bytescale(data))
    u8 = np.arange(6, dtype=np.uint8)
    assert bytescale(u8) is u8
    assert bytescale(np.float32(2.)) == _scipy_bytescale(np.float32(2.))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bytescale_in_pieces_matches_scipy_on_a_grid(dtype):
    """A 14x14 grid of 64 px images (4.8 MB of rows per MiB piece and a partial last piece): the
    same bytes as the whole-array computation, in float64 (the grids) and float32."""
    r = np.random.RandomState(2)
    data = r.normal(0.5, 0.4, (899, 896, 3)).astype(dtype)
    np.testing.assert_array_equal(bytescale(data), _scipy_bytescale(data))


def test_bytescale_holds_no_full_size_temporary():
    """The scaled grid is written in pieces: the peak above the input is the uint8 output and
    one piece, not the original's float64 temporaries (4 x 19 MB for a 14x14 grid of 64 px)."""
    import tracemalloc
    data = np.random.RandomState(3).uniform(0, 1, (896, 896, 3))
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    bytescale(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak - base < data.size + 2 * 2**20


def test_unit_range_images_save_as_255x():
    x = np.linspace(0, 1, 16).reshape(4, 4)
    np.testing.assert_array_equal(bytescale(x), np.floor(255 * x + 0.5).astype(np.uint8))


@pytest.mark.parametrize("n", [6, 5], ids=["full", "partial"])
def test_grayscale_grid_layout_and_png(tmp_path, n):
    r = np.random.RandomState(1)
    X = r.uniform(0, 1, (n, 3, 4))
    path = tmp_path / "g.png"
    img = grayscale_grid_vis(X, (2, 3), save_path=path)
    assert img.shape == (6, 12)
    for k in range(6):
        j, i = divmod(k, 3)
        expected = X[k] if k < n else 0
        np.testing.assert_array_equal(img[j * 3:j * 3 + 3, i * 4:i * 4 + 4], expected)
    saved = np.asarray(Image.open(path))
    assert saved.dtype == np.uint8 and saved.shape == (6, 12)
    np.testing.assert_array_equal(saved, _scipy_bytescale(img))
    assert [p.name for p in tmp_path.iterdir()] == ["g.png"]  # no temporary file left


def test_color_grid_layout_and_png(tmp_path):
    r = np.random.RandomState(2)
    X = r.uniform(0, 1, (4, 5, 3, 3))
    img = color_grid_vis(X, (2, 2), save_path=tmp_path / "c.png")
    assert img.shape == (10, 6, 3)
    np.testing.assert_array_equal(img[5:10, 3:6], X[3])
    saved = Image.open(tmp_path / "c.png")
    assert saved.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(saved), _scipy_bytescale(img))


def test_no_save_without_path(tmp_path):
    grayscale_grid_vis(np.zeros((1, 2, 2)), (1, 1))
    assert list(tmp_path.iterdir()) == []


def test_weight_grid_keeps_the_original_formula(tmp_path):
    w = np.random.RandomState(3).randn(4, 3, 3)
    img = grayscale_weight_grid_vis(w, (2, 2), save_path=tmp_path / "w.png")
    scaled = (w + w.min()) / (w.max() - w.min())
    np.testing.assert_array_equal(img[:3, :3], scaled[0])
    # the saved image is the min-max scaling of the raw weights' grid (an affine map of it)
    raw = grayscale_grid_vis(w, (2, 2))
    saved = np.asarray(Image.open(tmp_path / "w.png")).astype(int)
    assert np.abs(saved - _scipy_bytescale(raw).astype(int)).max() <= 1


def test_unknown_extension_is_refused(tmp_path):
    with pytest.raises(ValueError, match="extension"):
        grayscale_grid_vis(np.zeros((1, 2, 2)), (1, 1), save_path=tmp_path / "x.unknown")
    assert list(tmp_path.iterdir()) == []


def test_saving_the_same_image_again_leaves_the_file_untouched(tmp_path):
    """A resumed or refused run redraws its data grid: the same bytes keep the file (and its
    modification time); different ones replace it."""
    import os
    path = tmp_path / "g.png"
    x = np.linspace(0, 1, 48).reshape(4, 4, 3)
    color_grid_vis(x[None], (1, 1), save_path=path)
    os.utime(path, ns=(1, 1))
    color_grid_vis(x[None], (1, 1), save_path=path)
    assert os.stat(path).st_mtime_ns == 1
    color_grid_vis(1 - x[None] ** 2, (1, 1), save_path=path)
    assert os.stat(path).st_mtime_ns != 1
    np.testing.assert_array_equal(np.asarray(Image.open(path)),
                                  np.floor(255 * (1 - x ** 2) + 0.5).astype(np.uint8))
