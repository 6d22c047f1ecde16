"""lib/params.py: our .npz format, the original's .jl files, and hostile files refused safely.

Every hostile file below would, if unpickled normally, run a command that creates a sentinel
file; each must be refused with a one-line ParamsFileError naming the file, and the sentinel
must not exist afterwards.
"""
import os
import pickle

import numpy as np
import pytest

import golden
from lib.params import ParamsFileError, load_params, save_params, save_params_jl
from lib.theano_utils import sharedX

SVHN = "svhn_unsup_all_conv_dcgan_100z_gaussian_lr_0.0005_64mb"
SVHN_SHAPES = {  # the SVHN DCGAN of svhn_pretrained.npz (see the golden README)
    "200_gen_params.jl": [(100, 4096), (4096,), (4096,), (256, 128, 5, 5), (128,), (128,),
                          (128, 64, 5, 5), (64,), (64,), (64, 3, 5, 5)],
    "200_discrim_params.jl": [(64, 3, 5, 5), (128, 64, 5, 5), (128,), (128,),
                              (256, 128, 5, 5), (256,), (256,), (4096, 1)],
}


@pytest.mark.parametrize("name", list(SVHN_SHAPES))
def test_loads_the_original_svhn_files(name):
    path = golden.require(golden.MODELS_DIR / SVHN / name)
    arrays = load_params(path)
    assert [a.shape for a in arrays] == SVHN_SHAPES[name]
    assert all(a.dtype == np.float32 for a in arrays)
    # the side files, read directly, are the same arrays
    first = np.load(f"{path}_01.npy", allow_pickle=False)
    np.testing.assert_array_equal(arrays[0], first)
    assert all(np.isfinite(a).all() for a in arrays)


def _arrays():
    r = np.random.RandomState(0)
    return [r.randn(3, 4).astype(np.float32), r.randn(5).astype(np.float32),
            r.randn(2, 3, 2, 2).astype(np.float32)]


def test_npz_round_trip_from_shared_variables_and_arrays(tmp_path):
    arrays = _arrays()
    path = tmp_path / "10_gen_params.npz"
    save_params([sharedX(arrays[0]), arrays[1], sharedX(arrays[2])], path)
    loaded = load_params(path)
    assert len(loaded) == 3
    for a, b in zip(arrays, loaded):
        assert b.dtype == np.float32
        np.testing.assert_array_equal(a, b)
    with np.load(path, allow_pickle=False) as f:  # the documented layout
        assert sorted(f.files) == ["arr_0", "arr_1", "arr_2"]
    assert [p.name for p in tmp_path.iterdir()] == ["10_gen_params.npz"]


def test_save_is_atomic(tmp_path, monkeypatch):
    """A failure mid-write leaves the previous file intact and no temporary file behind."""
    path = tmp_path / "p.npz"
    save_params(_arrays(), path)
    before = path.read_bytes()

    def broken_savez(f, *arrays):
        f.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_params([np.zeros(3)], path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["p.npz"]


def test_jl_writer_round_trip_and_layout(tmp_path):
    arrays = _arrays()
    path = tmp_path / "30_gen_params.jl"
    save_params_jl(arrays, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "30_gen_params.jl", "30_gen_params.jl_01.npy", "30_gen_params.jl_02.npy",
        "30_gen_params.jl_03.npy"]
    for a, b in zip(arrays, load_params(path)):
        np.testing.assert_array_equal(a, b)
    # the same opcodes as the original files: protocol 2, the sklearn-bundled joblib's wrapper
    data = path.read_bytes()
    assert data.startswith(b"\x80\x02]") and b"csklearn.externals.joblib.numpy_pickle\n" in data


def test_jl_writer_is_readable_by_joblib(tmp_path):
    joblib = pytest.importorskip("joblib")
    arrays = _arrays()
    path = tmp_path / "p.jl"
    save_params_jl(arrays, path, module="joblib.numpy_pickle")
    with pytest.warns(DeprecationWarning):  # joblib: "generated with a joblib version < 0.10"
        loaded = joblib.load(path)
    for a, b in zip(arrays, loaded):
        np.testing.assert_array_equal(a, b)


# Hostile files. Each one writes SENTINEL if anything in it is executed.
class _System:
    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


class _Eval:
    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        return (eval, (f"open({str(self.sentinel)!r}, 'w')",))


def _write_wrapper_list(path, filenames, module="sklearn.externals.joblib.numpy_pickle"):
    """A .jl whose wrappers name ``filenames`` (no side files written)."""
    out = [b"\x80\x02]("]
    for name in filenames:
        b = name.encode()
        out += [b"c" + module.encode() + b"\nNDArrayWrapper\n)\x81}(U\nallow_mmap\x88",
                b"U\x08subclasscnumpy\nndarray\n", b"U\x08filenameU" + bytes([len(b)]) + b,
                b"ub"]
    out += [b"e."]
    path.write_bytes(b"".join(out))


def _hostile(kind, folder, sentinel):
    """Write the hostile file ``kind`` in ``folder``; return its path and the expected message."""
    path = folder / f"{kind}.jl"
    if kind == "os_system":
        path.write_bytes(pickle.dumps([_System(sentinel)], protocol=2))
        return path, "refused global"
    if kind == "builtins_eval":
        # fix_imports=False: the GLOBAL names Python 3's builtins (not Python 2's __builtin__)
        path.write_bytes(pickle.dumps([_Eval(sentinel)], protocol=2, fix_imports=False))
        assert b"cbuiltins\neval\n" in path.read_bytes()
        return path, "refused global builtins.eval"
    if kind == "system_inside_wrapper_state":
        # an allowed wrapper whose state holds a call to os.system
        good = folder / "good.jl"
        save_params_jl(_arrays()[:1], good)
        payload = pickle.dumps(_System(sentinel), protocol=2)[2:-1]  # without PROTO and STOP
        data = good.read_bytes().replace(b"cnumpy\nndarray\n", payload)
        path.write_bytes(data)
        return path, "refused global"
    if kind == "truncated":
        save_params_jl(_arrays(), path)
        path.write_bytes(path.read_bytes()[:-20])
        return path, "not a joblib<=0.9 list"
    if kind == "object_npy":
        save_params_jl(_arrays(), path)
        np.save(folder / f"{kind}.jl_02.npy", np.array([_System(sentinel)], dtype=object),
                allow_pickle=True)
        return path, "not a plain .npy array"
    if kind == "missing_side_file":
        save_params_jl(_arrays(), path)
        os.unlink(folder / f"{kind}.jl_03.npy")
        return path, "missing side file"
    if kind == "path_traversal":
        _write_wrapper_list(path, ["../outside.npy"])
        return path, "plain side file"
    if kind == "not_a_list":
        path.write_bytes(pickle.dumps({"a": 1}, protocol=2))
        return path, "expected a list"
    if kind == "npz_with_object_array":
        path = folder / f"{kind}.npz"
        np.savez(path, np.array([_System(sentinel)], dtype=object))
        return path, "not a readable .npz"
    if kind == "random_bytes":
        path.write_bytes(b"\x00garbage" * 10)
        return path, "expected an .npz archive or a joblib<=0.9 .jl pickle"
    raise AssertionError(kind)


HOSTILE = ["os_system", "builtins_eval", "system_inside_wrapper_state", "truncated",
           "object_npy", "missing_side_file", "path_traversal", "not_a_list",
           "npz_with_object_array", "random_bytes"]


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_files_are_refused_and_execute_nothing(tmp_path, kind):
    sentinel = tmp_path / "SENTINEL"
    folder = tmp_path / "models"
    folder.mkdir()
    (tmp_path / "outside.npy").write_bytes(b"")
    path, message = _hostile(kind, folder, sentinel)
    with pytest.raises(ParamsFileError) as info:
        load_params(path)
    text = str(info.value)
    assert isinstance(info.value, ValueError)
    assert str(path) in text and message in text and "\n" not in text
    assert not sentinel.exists()


def test_hostile_payloads_do_run_when_unpickled_normally(tmp_path):
    """The sentinel mechanism works: plain pickle.loads of the os.system payload creates it."""
    sentinel = tmp_path / "SENTINEL"
    pickle.loads(pickle.dumps(_System(sentinel), protocol=2))
    assert sentinel.exists()
