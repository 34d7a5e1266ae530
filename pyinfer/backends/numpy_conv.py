"""The ``numpy`` backend's ``conv2d``: the reference every conv kernel is
tested against, written to be obviously right rather than fast.

``y = act(conv(x, w) + bias + residual)`` on NCHW: the input is zero-padded
once, then for each group and each kernel tap (ky, kx) the strided window of the
padded input that tap sees is multiplied by that tap's ``(K_g, C_g)`` weight
matrix and accumulated.  Kernel signature: docs/kernel-contract.md (conv2d).
"""
from __future__ import annotations

import numpy as np

from ..registry import register
from .numpy_ref import apply_activation


def conv2d_ref(x, w, bias=None, residual=None, *, stride=(1, 1), pads=(0, 0, 0, 0),
               dilation=(1, 1), groups=1, activation=None, clip=None) -> np.ndarray:
    """The convolution of ``x`` (N, C, H, W) with ``w`` (K, C/groups, KH, KW),
    ONNX semantics; pads ``(top, left, bottom, right)``; ``activation`` None,
    one of numpy_ref.ACTIVATIONS, or "clip" with ``clip = (lo, hi)``."""
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    sh, sw = stride
    dh, dw = dilation
    top, left, bottom, right = pads
    oh = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + left + right - dw * (kw - 1) - 1) // sw + 1
    dtype = np.result_type(x.dtype, w.dtype)
    xp = np.zeros((n, c, h + top + bottom, wd + left + right), dtype)
    xp[:, :, top:top + h, left:left + wd] = x
    kg = k // groups
    y = np.zeros((n, k, oh, ow), dtype)
    for g in range(groups):
        xg = xp[:, g * cg:(g + 1) * cg]
        wg = w[g * kg:(g + 1) * kg]
        for i in range(kh):
            for j in range(kw):
                window = xg[:, :, i * dh:i * dh + (oh - 1) * sh + 1:sh,
                            j * dw:j * dw + (ow - 1) * sw + 1:sw]
                y[:, g * kg:(g + 1) * kg] += np.einsum("nchw,kc->nkhw", window, wg[:, :, i, j])
    if bias is not None:
        y += np.asarray(bias, dtype).reshape(1, k, 1, 1)
    if residual is not None:
        y += residual
    with np.errstate(all="ignore"):
        if activation == "clip":
            y = np.clip(y, clip[0], clip[1])  # NaN stays NaN
        else:
            y = apply_activation(y, activation)
    return y


@register("conv2d", "numpy")
def conv2d(x, w, bias, residual, *, stride, pads, dilation, groups, activation, clip, out):
    np.copyto(out, conv2d_ref(x, w, bias, residual, stride=stride, pads=pads,
                              dilation=dilation, groups=groups, activation=activation,
                              clip=clip), casting="unsafe")
