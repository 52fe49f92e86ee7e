"""Training-time augmentation: every output sample is the input mirrored or not and moved by at most
``shift`` pixels with zeros brought in, checked against a brute-force search over all such moves."""
from __future__ import annotations

import numpy as np
import pytest

from spikeport.data.augment import augment
from spikeport.train.config import TrainConfig


def _moved(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """img [..., H, W] with content moved by (-dy, -dx): out[y, x] = img[y + dy, x + dx], zero outside."""
    h, w = img.shape[-2:]
    out = np.zeros_like(img)
    ys, xs = np.arange(h), np.arange(w)
    for y in ys:
        for x in xs:
            if 0 <= y + dy < h and 0 <= x + dx < w:
                out[..., y, x] = img[..., y + dy, x + dx]
    return out


def _explanations(src: np.ndarray, got: np.ndarray, flip: bool, shift: int) -> list[tuple[bool, int, int]]:
    cands = [src, src[..., ::-1]] if flip else [src]
    return [(bool(m), dy, dx) for m, c in enumerate(cands) for dy in range(-shift, shift + 1)
            for dx in range(-shift, shift + 1) if np.array_equal(_moved(c, dy, dx), got)]


@pytest.mark.parametrize("shape", [(40, 1, 6, 7), (30, 3, 2, 5, 5)])  # images; event bins [B, T, C, H, W]
@pytest.mark.parametrize("flip, shift", [(True, 0), (False, 2), (True, 1)])
def test_each_sample_is_a_mirror_and_a_bounded_move(shape, flip, shift):
    rng = np.random.default_rng(1)
    x = rng.random(shape).astype(np.float32) + 0.5  # no zeros: a move is visible
    out = augment(x, flip=flip, shift=shift, rng=np.random.default_rng(7))
    assert out.shape == x.shape and out.dtype == x.dtype
    seen = set()
    for src, got in zip(x, out):
        found = _explanations(src, got, flip, shift)
        assert found, "an output sample is not a flip/shift of its input"
        seen.update(found)
    assert {m for m, _, _ in seen} == ({False, True} if flip else {False})  # both happen across 30-40 samples
    if shift:
        assert {dy for _, dy, _ in seen} == set(range(-shift, shift + 1))
    assert np.array_equal(out, augment(x, flip=flip, shift=shift, rng=np.random.default_rng(7)))  # seeded


def test_off_is_a_copy_and_input_is_untouched():
    x = np.random.default_rng(2).random((5, 1, 4, 4)).astype(np.float32)
    x.setflags(write=False)  # cached datasets are read-only
    out = augment(x, flip=False, shift=0, rng=np.random.default_rng(0))
    assert np.array_equal(out, x) and out is not x


def test_config_checks_augmentation():
    TrainConfig(augment_flip=True, augment_shift=2).validate()
    with pytest.raises(Exception, match="augment_shift"):
        TrainConfig(augment_shift=-1).validate()
    with pytest.raises(Exception, match="augment_flip"):
        TrainConfig(augment_flip="yes").validate()


def test_training_with_augmentation_runs_and_learns(tmp_path):
    from spikeport.train.loop import train

    metrics = train(TrainConfig(data="digits", epochs=3, hidden=[32], time_steps=6, limit=400, augment_shift=1,
                                augment_flip=True, lr=5e-3).validate(), tmp_path)
    losses = [h["loss"] for h in metrics["history"]]
    assert losses[-1] < losses[0]  # it trains on the augmented batches
