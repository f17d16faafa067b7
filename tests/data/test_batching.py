"""Batching, augmentation and normalisation against slow per-sample definitions."""

from __future__ import annotations

import numpy as np
import pytest

from analogebl.data import Augmentation, iterate_batches, num_batches


def _images(n=24, c=3, s=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, c, s, s), dtype=np.uint8), rng.integers(0, 10, size=n)


MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _normalise(img):
    return (img / 255.0 - np.reshape(MEAN, (-1, 1, 1))) / np.reshape(STD, (-1, 1, 1))


def _candidates(img, pad):
    """Every crop window of the edge-padded image, flipped and not (slow reference)."""
    p = np.pad(img / 255.0, ((0, 0), (pad, pad), (pad, pad)), mode="edge")
    s = img.shape[-1]
    out = []
    for i in range(2 * pad + 1):
        for j in range(2 * pad + 1):
            w = p[:, i : i + s, j : j + s]
            out += [w, w[..., ::-1]]
    return out


def test_evaluation_batches_are_the_plain_normalisation_in_file_order():
    x, y = _images()
    got = list(iterate_batches(x, y, 10, rng=None, mean=MEAN, std=STD, dtype=np.float64))
    assert [len(b[1]) for b in got] == [10, 10, 4] == [10] * 2 + [4]
    xs = np.concatenate([b[0] for b in got])
    np.testing.assert_allclose(xs, np.stack([_normalise(im) for im in x]), atol=1e-12)
    assert np.array_equal(np.concatenate([b[1] for b in got]), y)
    assert num_batches(24, 10) == 3 and num_batches(24, 10, drop_last=True) == 2


def test_every_augmented_image_is_a_crop_window_of_its_source():
    x, y = _images(n=16)
    aug = Augmentation(crop_padding=2, horizontal_flip=True)
    # labels identify the source image
    ids = np.arange(16)
    for xb, ib in iterate_batches(
        x,
        ids,
        5,
        rng=np.random.default_rng(7),
        mean=MEAN,
        std=STD,
        augmentation=aug,
        dtype=np.float64,
    ):
        for img, i in zip(xb, ib, strict=True):
            raw = img * np.reshape(STD, (-1, 1, 1)) + np.reshape(MEAN, (-1, 1, 1))
            best = min(np.max(np.abs(raw - c)) for c in _candidates(x[i], 2))
            assert best < 1e-12


def test_crop_offsets_and_flips_are_uniform():
    # one bright pixel in the centre column: where it lands shows offset and flip
    n, s, pad = 4000, 7, 2
    x = np.zeros((n, 1, s, s), dtype=np.uint8)
    x[:, 0, 3, 1] = 255  # left of centre so a flip is visible
    aug = Augmentation(crop_padding=pad, horizontal_flip=True)
    xb, _ = next(
        iterate_batches(
            x,
            np.zeros(n, int),
            n,
            rng=np.random.default_rng(0),
            mean=(0.0,),
            std=(1.0,),
            augmentation=aug,
            dtype=np.float64,
        )
    )
    cols = np.array([np.argwhere(im[0] > 0.5)[0][1] if im.max() > 0.5 else -1 for im in xb])
    # unflipped column 1 - dx, flipped column 5 + dx, dx uniform in -2..2; visible only
    # when it stays inside the 7-wide window
    flipped = np.mean(cols >= 3)
    assert abs(flipped - 0.5) < 0.03
    counts = np.bincount(cols[cols >= 0], minlength=s)
    # column 0 (dx = +1) and column 1 (dx = 0) unflipped: each 1/5 of 1/2
    assert abs(counts[1] / n - 0.1) < 0.02 and abs(counts[0] / n - 0.1) < 0.02


def test_zero_padding_happens_before_normalisation():
    x = np.full((3, 1, 28, 28), 255, dtype=np.uint8)
    xb, _ = next(
        iterate_batches(
            x,
            np.zeros(3, int),
            3,
            rng=None,
            mean=(0.1307,),
            std=(0.3081,),
            pad_to=32,
            dtype=np.float64,
        )
    )
    assert xb.shape == (3, 1, 32, 32)
    np.testing.assert_allclose(xb[:, :, :2, :], -0.1307 / 0.3081)
    np.testing.assert_allclose(xb[:, :, 2:30, 2:30], (1 - 0.1307) / 0.3081)


def test_seeded_order_is_reproducible_and_resumable():
    x, y = _images(n=50)
    aug = Augmentation(crop_padding=1, horizontal_flip=True)

    def run(seed, start=0):
        return list(
            iterate_batches(
                x,
                y,
                8,
                rng=np.random.default_rng(seed),
                mean=MEAN,
                std=STD,
                augmentation=aug,
                start_batch=start,
            )
        )

    a, b, c = run(3), run(3), run(4)
    assert all(np.array_equal(p[0], q[0]) for p, q in zip(a, b, strict=True))
    assert not np.array_equal(a[0][1], c[0][1])
    tail = run(3, start=4)
    assert len(tail) == len(a) - 4
    assert all(
        np.array_equal(p[0], q[0]) and np.array_equal(p[1], q[1])
        for p, q in zip(a[4:], tail, strict=True)
    )
    # one epoch visits every sample exactly once
    assert sorted(np.concatenate([p[1] for p in a])) == sorted(y)


def test_bad_arguments_are_rejected():
    x, y = _images()
    with pytest.raises(ValueError, match="augmentation needs an rng"):
        next(
            iterate_batches(
                x, y, 4, rng=None, mean=MEAN, std=STD, augmentation=Augmentation(crop_padding=2)
            )
        )
    with pytest.raises(ValueError, match="channels"):
        next(iterate_batches(x, y, 4, rng=None, mean=(0.1,), std=(0.2,)))
    with pytest.raises(ValueError, match="cannot pad"):
        next(iterate_batches(x, y, 4, rng=None, mean=MEAN, std=STD, pad_to=4))
