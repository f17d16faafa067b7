"""Dataset readers on the real files in $ANALOGEBL_DATA, and on CIFAR-100 / SVHN files that
these tests write themselves in the exact official formats (those two datasets are not in
../shared/data)."""

from __future__ import annotations

import gzip
import hashlib
import shutil

import numpy as np
import pytest
from scipy.io import savemat

from analogebl.cli import main
from analogebl.data import load_dataset, verify_checksums
from analogebl.errors import DataError
from tests.datafiles import write_cifar100


def test_mnist_real_files(data_dir):
    ds = load_dataset("mnist", data_dir)
    assert ds.train_x.shape == (60000, 1, 28, 28) and ds.test_x.shape == (10000, 1, 28, 28)
    assert ds.train_x.dtype == np.uint8 and ds.train_y.dtype == np.int64
    assert list(ds.train_y[:5]) == [5, 0, 4, 1, 9]  # the famous first five MNIST labels
    assert list(np.bincount(ds.test_y)) == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    # the reference's normalisation constants are the training-set statistics
    x = ds.train_x / 255.0
    assert abs(x.mean() - ds.mean[0]) < 1e-3 and abs(x.std() - ds.std[0]) < 1e-3


def test_fashion_mnist_real_files(data_dir):
    ds = load_dataset("fmnist", data_dir)
    assert ds.train_x.shape == (60000, 1, 28, 28)
    assert np.all(np.bincount(ds.train_y) == 6000) and np.all(np.bincount(ds.test_y) == 1000)
    x = ds.train_x / 255.0
    assert abs(x.mean() - ds.mean[0]) < 1e-3 and abs(x.std() - ds.std[0]) < 1e-3


def test_cifar10_real_files(data_dir):
    ds = load_dataset("cifar10", data_dir)
    assert ds.train_x.shape == (50000, 3, 32, 32) and ds.test_x.shape == (10000, 3, 32, 32)
    assert ds.num_classes == 10 and np.all(np.bincount(ds.train_y) == 5000)
    assert list(ds.train_y[:3]) == [6, 9, 9]  # frog, truck, truck
    means = (ds.train_x / 255.0).mean(axis=(0, 2, 3))
    np.testing.assert_allclose(means, ds.mean, atol=1e-3)  # channel order R, G, B
    # the reference divides CIFAR-10 by an extra factor 3
    np.testing.assert_allclose(ds.std, (0.6069, 0.5982, 0.6030), atol=1e-4)


def test_subsets_are_seeded_sorted_and_sized(data_dir):
    a = load_dataset("mnist", data_dir, train_subset=500, test_subset=100, subset_seed=3)
    b = load_dataset("mnist", data_dir, train_subset=500, test_subset=100, subset_seed=3)
    c = load_dataset("mnist", data_dir, train_subset=500, test_subset=100, subset_seed=4)
    assert len(a.train_y) == 500 and len(a.test_y) == 100
    assert np.array_equal(a.train_x, b.train_x) and np.array_equal(a.test_y, b.test_y)
    assert not np.array_equal(a.train_y, c.train_y)
    full = load_dataset("mnist", data_dir)
    # a subset is a set of real rows of the full split
    rows = {full.train_x[i].tobytes() for i in range(60000)}
    assert all(x.tobytes() in rows for x in a.train_x[:50])


def test_checksums_of_shared_data(data_dir):
    results = dict(verify_checksums(data_dir))
    assert results and all(results.values()), results


# --- CIFAR-100 and SVHN: official formats written here -----------------------------------


def test_cifar100_official_binary_format(tmp_path):
    truth = write_cifar100(tmp_path, 40, np.random.default_rng(0))
    ds = load_dataset("cifar100", tmp_path)
    img, coarse, fine = truth["train"]
    assert ds.num_classes == 100 and ds.in_channels == 3 and ds.image_size == 32
    assert np.array_equal(ds.train_x, img) and np.array_equal(ds.train_y, fine)
    assert np.array_equal(ds.test_y, truth["test"][2])
    ds20 = load_dataset("cifar100", tmp_path, label_mode="coarse")
    assert ds20.num_classes == 20 and np.array_equal(ds20.train_y, coarse)
    np.testing.assert_allclose(ds.std, (0.2675, 0.2565, 0.2761))


def test_svhn_official_mat_format(tmp_path):
    rng = np.random.default_rng(1)
    d = tmp_path / "svhn"
    d.mkdir()
    truth = {}
    for split, n in (("train", 30), ("test", 12)):
        X = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)  # H, W, C, N
        y = rng.integers(1, 11, size=(n, 1)).astype(np.uint8)  # 1..10, 10 = digit 0
        y[0] = 10
        savemat(d / f"{split}_32x32.mat", {"X": X, "y": y})
        truth[split] = (X, y.ravel())
    ds = load_dataset("svhn", tmp_path)
    X, y = truth["train"]
    assert ds.train_x.shape == (30, 3, 32, 32)
    assert np.array_equal(ds.train_x[5, 2, 7, 11], X[7, 11, 2, 5])
    assert np.array_equal(ds.train_x, X.transpose(3, 2, 0, 1))
    assert ds.train_y[0] == 0 and np.array_equal(ds.train_y, y % 10)
    assert len(ds.test_y) == 12


# --- missing and corrupted files ---------------------------------------------------------


def test_missing_dataset_says_where_to_get_it(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("cifar100", tmp_path)
    msg = str(e.value)
    assert "cifar-100-binary/train.bin" in msg and "03b5dce01913d631647c71ecec9e9cb8" in msg
    with pytest.raises(DataError, match="ufldl.stanford.edu"):
        load_dataset("svhn", tmp_path)


def _copy_mnist(data_dir, tmp_path):
    dst = tmp_path / "mnist"
    shutil.copytree(f"{data_dir}/mnist", dst)
    return dst


def test_truncated_idx_file_names_the_file(data_dir, tmp_path):
    d = _copy_mnist(data_dir, tmp_path)
    f = d / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(f.read_bytes())
    f.write_bytes(gzip.compress(raw[:-1000]))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz.*truncated"):
        load_dataset("mnist", tmp_path)


def test_damaged_gzip_and_bad_magic(data_dir, tmp_path):
    d = _copy_mnist(data_dir, tmp_path)
    f = d / "train-labels-idx1-ubyte.gz"
    data = bytearray(f.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    f.write_bytes(bytes(data))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz"):
        load_dataset("mnist", tmp_path)
    shutil.rmtree(d)
    d = _copy_mnist(data_dir, tmp_path)
    raw = bytearray(gzip.decompress((d / "train-labels-idx1-ubyte.gz").read_bytes()))
    raw[3] = 0x03  # magic 2049 -> 2051
    (d / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match="magic number 2051, expected 2049"):
        load_dataset("mnist", tmp_path)


def test_truncated_cifar_and_garbage_svhn(tmp_path):
    write_cifar100(tmp_path, 10, np.random.default_rng(2))
    f = tmp_path / "cifar100" / "cifar-100-binary" / "train.bin"
    f.write_bytes(f.read_bytes()[:-7])
    with pytest.raises(DataError, match=r"train\.bin.*not a whole number"):
        load_dataset("cifar100", tmp_path)
    (tmp_path / "svhn").mkdir()
    (tmp_path / "svhn" / "train_32x32.mat").write_bytes(b"MATLAB 5.0 MAT-file" + bytes(50))
    with pytest.raises(DataError, match="train_32x32.mat: not a readable MATLAB file"):
        load_dataset("svhn", tmp_path)


def test_checksum_mismatch_is_reported(tmp_path, capsys):
    (tmp_path / "a.bin").write_bytes(b"hello")
    (tmp_path / "b.bin").write_bytes(b"world")
    md5 = hashlib.md5(b"hello").hexdigest()
    (tmp_path / "MD5SUMS").write_text(f"{md5}  ./a.bin\n{md5}  ./b.bin\n{md5}  ./c.bin\n")
    assert dict(verify_checksums(tmp_path)) == {"./a.bin": True, "./b.bin": False, "./c.bin": False}
    assert main(["data", "check", "--root", str(tmp_path)]) == 1
    lines = [line.split()[:3] for line in capsys.readouterr().out.splitlines()]
    assert ["MD5SUMS", "BAD", "./b.bin:"] in lines  # the user's list, checked in addition


def test_unset_data_root_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.delenv("ANALOGEBL_DATA", raising=False)
    with pytest.raises(DataError, match="ANALOGEBL_DATA is not set"):
        load_dataset("mnist")
    assert main(["data", "check"]) == 2
    assert "ANALOGEBL_DATA" in capsys.readouterr().err
