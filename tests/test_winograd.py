"""The Winograd 3x3 convolution (csrc/pi_winograd.c via pyinfer/backends/winograd.py)
against a direct convolution in float64, on every ISA this CPU runs.

Shapes come from hypothesis (small): odd H/W, images smaller than one tile,
asymmetric padding, batch 1 and > 1, channel counts that are not multiples of
the micro-kernel's 6 output channels or the 8 tile lanes, bias / residual /
every activation / clip; outputs are poisoned with NaN first.  Fixed cases add
several tile blocks (threads share the work) and an in-place residual.

Tolerance (normwise, as the task sets it): Winograd's error is not elementwise
small -- the transforms mix a whole tile, so an output near zero can carry the
rounding of its larger neighbours -- hence
    max|y - y_ref| <= 1e-4 * max|z_ref| * 1.2 + 16 eps (1 + |y_ref|)
where z_ref is the pre-activation result (conv + bias + residual): the
activations' slope is below 1.13 (hence 1.2), and the last term is the vector
activations' own approximation error (pi_vmath.h: < 7 ulp).  F(4)'s transform
entries (up to 8 and 1/24) amplify float32 rounding ~10x over F(2); measured
errors are ~1e-6 (F(2)) and ~1e-5 (F(4)) of max|z_ref|, well inside 1e-4.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st
from numpy.lib.stride_tricks import sliding_window_view

import pyinfer
from pyinfer.backends import _native, winograd
from pyinfer.errors import DTypeError, ShapeError

ISAS = _native.isas_available()
ACTS = [None, "relu", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh", "relu6", "clip"]
EPS32 = float(np.finfo(np.float32).eps)
_erf = np.vectorize(math.erf)


def direct_conv(x, w, pads):
    """float64 direct 3x3 convolution, stride 1, zero padding (top, left, bottom, right)."""
    pt, pl, pb, pr = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    win = sliding_window_view(xp, (3, 3), axis=(2, 3))  # N, C, Ho, Wo, 3, 3
    return np.einsum("nchwij,kcij->nkhw", win, w.astype(np.float64), optimize=True)


def ref_act(z, act, lo=None, hi=None):
    if act is None:
        return z
    if act == "relu":
        return np.maximum(z, 0)
    if act == "gelu":
        return 0.5 * z * (1 + _erf(z / math.sqrt(2)))
    if act == "gelu_tanh":
        return 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3)))
    if act == "silu":
        return z / (1 + np.exp(-z))
    if act == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if act == "tanh":
        return np.tanh(z)
    if act == "relu6":
        return np.clip(z, 0, 6)
    if act == "clip":
        return np.clip(z, lo, hi)
    raise AssertionError(act)


def check(tile, x, w, pads, *, bias=None, residual=None, act=None, lo=None, hi=None, isa=None):
    wt = winograd.transform_weights(w, tile)
    n, _, h, wd = x.shape
    ho, wo = h + pads[0] + pads[2] - 2, wd + pads[1] + pads[3] - 2
    z = direct_conv(x, w, pads)
    if bias is not None:
        z = z + bias.astype(np.float64)[None, :, None, None]
    if residual is not None:
        z = z + residual
    want = ref_act(z, act, lo, hi)
    for level in ([isa] if isa is not None else ISAS):
        out = np.full((n, w.shape[0], ho, wo), np.nan, np.float32)
        with _native.force_isa(level):
            got = winograd.conv3x3(x, wt, tile, pads, bias=bias, activation=act,
                                   residual=residual, out=out, clip_min=lo, clip_max=hi)
        assert got is out
        assert not np.isnan(out).any(), f"F({tile}) isa {level}: unwritten (NaN) outputs"
        err = np.abs(out - want)
        tol = 1e-4 * np.abs(z).max() * 1.2 + 16 * EPS32 * (1 + np.abs(want))
        bad = err > tol
        assert not bad.any(), (f"F({tile}) isa {_native.ISA_NAMES[level]} pads {pads} act {act}: "
                               f"{int(bad.sum())} of {bad.size} outside tolerance, max err "
                               f"{err.max():.3g}, max|z| {np.abs(z).max():.3g}")
    return out


@settings(deadline=None, max_examples=60)
@given(tile=st.sampled_from([2, 4]), n=st.integers(1, 3), c=st.integers(1, 11),
       k=st.integers(1, 14), h=st.integers(1, 11), w=st.integers(1, 11),
       pads=st.tuples(*[st.integers(0, 2)] * 4), use_bias=st.booleans(),
       use_res=st.booleans(), act=st.sampled_from(ACTS), seed=st.integers(0, 2 ** 16))
def test_matches_direct(tile, n, c, k, h, w, pads, use_bias, use_res, act, seed):
    ho, wo = h + pads[0] + pads[2] - 2, w + pads[1] + pads[3] - 2
    assume(ho >= 1 and wo >= 1)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wgt = rng.standard_normal((k, c, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(k).astype(np.float32) if use_bias else None
    res = rng.standard_normal((n, k, ho, wo)).astype(np.float32) if use_res else None
    check(tile, x, wgt, pads, bias=bias, residual=res, act=act, lo=-0.5, hi=0.8)


@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize("threads", [1, 2])
def test_many_blocks(tile, threads):
    """Enough tiles for several blocks per thread, the last block partial;
    C = 19, K = 20 (not multiples of 6 or 8)."""
    rng = np.random.default_rng(tile * 10 + threads)
    x = rng.standard_normal((2, 19, 29, 27)).astype(np.float32)
    w = rng.standard_normal((20, 19, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(20).astype(np.float32)
    before = pyinfer.get_num_threads()
    pyinfer.set_num_threads(threads)
    try:
        check(tile, x, w, (1, 1, 1, 1), bias=bias, act="relu")
    finally:
        pyinfer.set_num_threads(before)


@pytest.mark.parametrize("tile", [2, 4])
def test_resnet_block_shape(tile):
    """The benchmark's shape (64 -> 64, 56 x 56, pad 1), with bias, residual, relu."""
    rng = np.random.default_rng(tile)
    x = rng.standard_normal((1, 64, 56, 56)).astype(np.float32)
    w = (rng.standard_normal((64, 64, 3, 3)) / 24).astype(np.float32)
    bias = rng.standard_normal(64).astype(np.float32)
    res = rng.standard_normal((1, 64, 56, 56)).astype(np.float32)
    check(tile, x, w, (1, 1, 1, 1), bias=bias, residual=res, act="relu", isa=ISAS[-1])


@pytest.mark.parametrize("tile", [2, 4])
def test_residual_in_place(tile):
    """residual may be out itself: every element is read before it is written."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 10, 9)).astype(np.float32)
    w = rng.standard_normal((7, 5, 3, 3)).astype(np.float32)
    res = rng.standard_normal((2, 7, 10, 9)).astype(np.float32)
    want = np.maximum(direct_conv(x, w, (1, 1, 1, 1)) + res, 0)
    out = res.copy()
    winograd.conv3x3(x, winograd.transform_weights(w, tile), tile, (1, 1, 1, 1),
                     residual=out, activation="relu", out=out)
    assert np.abs(out - want).max() <= 1e-4 * np.abs(want).max()


def test_activation_codes_and_alloc():
    """An int PI_ACT_* code works like its name; out=None allocates."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    wt = winograd.transform_weights(rng.standard_normal((4, 3, 3, 3)), 4)
    a = winograd.conv3x3(x, wt, 4, (1, 1, 1, 1), activation=_native.lib.PI_ACT_SILU)
    b = winograd.conv3x3(x, wt, 4, (1, 1, 1, 1), activation="silu")
    assert a.shape == (1, 4, 6, 6) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)


def test_supports():
    f32 = np.float32
    assert winograd.supports((1, 8, 9, 9), (4, 8, 3, 3), 1, 1, 1, f32) is None
    assert winograd.supports((1, 8, 9, 9), (4, 8, 3, 3), (1, 1), (1, 1), 1, f32) is None
    assert "stride" in winograd.supports((1, 8, 9, 9), (4, 8, 3, 3), 2, 1, 1, f32)
    assert "dilation" in winograd.supports((1, 8, 9, 9), (4, 8, 3, 3), 1, (2, 2), 1, f32)
    assert "groups" in winograd.supports((1, 8, 9, 9), (4, 4, 3, 3), 1, 1, 2, f32)
    assert "3x3" in winograd.supports((1, 8, 9, 9), (4, 8, 5, 5), 1, 1, 1, f32)
    assert "float32" in winograd.supports((1, 8, 9, 9), (4, 8, 3, 3), 1, 1, 1, np.float64)
    assert "trailing pads" in winograd.supports((1, 8, 9, 9), (4, 8, 3, 3), 1, 1, 1, f32, (1, 1, 3, 1))


def test_transform_weights_layout():
    """Slice xi of the packed weights holds U[xi] = (G g G^T)[xi] in panels of
    PI_WINOGRAD_MR output channels; shape and dtype are the contract's."""
    rng = np.random.default_rng(9)
    w = rng.standard_normal((8, 5, 3, 3))
    mr = _native.lib.PI_WINOGRAD_MR
    for tile in (2, 4):
        g = winograd._G[tile]
        u = np.einsum("ir,kcrs,js->ijkc", g, w, g).reshape((tile + 2) ** 2, 8, 5)
        wt = winograd.transform_weights(w, tile)
        assert wt.shape == ((tile + 2) ** 2, 8, 5) and wt.dtype == np.float32
        assert wt.flags.c_contiguous
        flat = wt.reshape(wt.shape[0], -1)
        first = flat[:, :mr * 5].reshape(-1, 5, mr)   # panel 0: channels 0..5, c-major
        np.testing.assert_allclose(first, u[:, :mr, :].transpose(0, 2, 1), rtol=1e-6)
        last = flat[:, mr * 5:].reshape(-1, 5, 8 - mr)
        np.testing.assert_allclose(last, u[:, mr:, :].transpose(0, 2, 1), rtol=1e-6)


def test_validation():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    wt = winograd.transform_weights(rng.standard_normal((4, 3, 3, 3)), 2)
    ok = dict(tile=2, pads=(1, 1, 1, 1))
    with pytest.raises(DTypeError, match="'x'"):
        winograd.conv3x3(x.astype(np.float64), wt, **ok)
    with pytest.raises(ShapeError, match="'x'"):
        winograd.conv3x3(np.asfortranarray(x), wt, **ok)
    with pytest.raises(ShapeError, match="'x'"):
        winograd.conv3x3(x[0], wt, **ok)
    with pytest.raises(ShapeError, match="'wt'"):
        winograd.conv3x3(x, winograd.transform_weights(np.ones((4, 3, 3, 3)), 4), **ok)
    with pytest.raises(ShapeError, match="'wt'"):
        winograd.conv3x3(x, winograd.transform_weights(np.ones((4, 2, 3, 3)), 2), **ok)
    with pytest.raises(ShapeError, match="'tile'"):
        winograd.conv3x3(x, wt, 3, (1, 1, 1, 1))
    with pytest.raises(ShapeError, match="'pads'"):
        winograd.conv3x3(x, wt, 2, (1, 1, -1, 1))
    with pytest.raises(ShapeError, match="'pads'"):
        winograd.conv3x3(x, wt, 2, (1, 1, 1))
    with pytest.raises(ShapeError, match="'pads'"):
        winograd.conv3x3(x[:, :, :1, :1].copy(), wt, 2, (0, 0, 0, 0))
    with pytest.raises(ShapeError, match="'bias'"):
        winograd.conv3x3(x, wt, bias=np.ones(5, np.float32), **ok)
    with pytest.raises(DTypeError, match="'bias'"):
        winograd.conv3x3(x, wt, bias=np.ones(4), **ok)
    with pytest.raises(ShapeError, match="'residual'"):
        winograd.conv3x3(x, wt, residual=np.ones((1, 4, 5, 6), np.float32), **ok)
    with pytest.raises(ShapeError, match="'out'"):
        winograd.conv3x3(x, wt, out=np.ones((1, 4, 6, 5), np.float32), **ok)
    with pytest.raises(ShapeError, match="'activation'"):
        winograd.conv3x3(x, wt, activation="swish", **ok)
    with pytest.raises(ShapeError, match="clip"):
        winograd.conv3x3(x, wt, activation="clip", clip_min=1.0, clip_max=0.0, **ok)
    big = np.zeros((1, 4, 6, 6), np.float32)
    with pytest.raises(ShapeError, match="'out'"):
        winograd.conv3x3(big[:, :3], wt, out=big, **ok)
    with pytest.raises(ShapeError, match="'w'"):
        winograd.transform_weights(np.ones((4, 3, 5, 5)), 2)
    with pytest.raises(ShapeError, match="'tile'"):
        winograd.transform_weights(np.ones((4, 3, 3, 3)), 6)
