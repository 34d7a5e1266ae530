"""Block-sparse weights: ``BSRMatrix`` and ``to_bsr(w, block)``.

A weight ``W`` (k x n) of a product ``Y = X @ W`` is cut into blocks of
``br`` rows (along k) by ``bc`` columns (along n); blocks that hold only
zeros are dropped.  The kept blocks are grouped by *column panel* (the
``bc`` columns a block covers), i.e. this is BSR of the block rows of W's
transpose.  That is the order the kernel walks: one panel of Y stays in
registers while the panel's stored blocks stream past, and panels are
independent, so threads split them without sharing an output
(csrc/pi_sparse.c, ``pi_f32_bsr_gemm`` in csrc/pyinfer.h).

Arrays (all C-contiguous; int32 indices, half the bytes of int64 where the
index stream is a real share of the traffic, e.g. 1x8 blocks):

* ``indptr`` (panels + 1,): panel ``p`` owns entries ``indptr[p]:indptr[p+1]``
* ``indices`` (nnzb,): the block row of each entry (rows ``indices[e]*br ..``)
* ``data`` (nnzb, br, bc): the block values, row-major

``k`` and ``n`` need not be multiples of the block: the last blocks are
padded with zeros, which the kernels never multiply into a row past ``k`` nor
store into a column past ``n``.  Block widths of 8 and 16 (one or two AVX2
vectors; 16 and 32 on AVX-512) have vector kernels; others run portable C.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ..errors import ShapeError, dtype_error, shape_error


def check_block(block, what: str = "to_bsr") -> tuple:
    """``block`` as a pair of positive ints (br, bc), or a ShapeError."""
    ok = (isinstance(block, (tuple, list)) and len(block) == 2
          and all(isinstance(b, numbers.Integral) and not isinstance(b, bool) and b >= 1
                  for b in block))
    if not ok:
        raise shape_error("block", "a pair of positive ints (rows along k, columns along n)",
                          repr(block), what)
    return int(block[0]), int(block[1])


@dataclass(frozen=True, eq=False)
class BSRMatrix:
    """A (k, n) float32/float64 matrix stored as column-panel-grouped blocks
    (module docstring).  Build one with ``to_bsr``."""
    shape: tuple
    block: tuple
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def panels(self) -> int:
        return len(self.indptr) - 1

    @property
    def block_rows(self) -> int:
        return -(-self.shape[0] // self.block[0])

    @property
    def nnzb(self) -> int:
        """Stored blocks."""
        return len(self.indices)

    @property
    def density(self) -> float:
        """Stored blocks over all blocks (1 - block sparsity)."""
        total = self.block_rows * self.panels
        return self.nnzb / total if total else 0.0

    def astype(self, dtype) -> "BSRMatrix":
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        return BSRMatrix(self.shape, self.block, self.indptr, self.indices,
                         np.ascontiguousarray(self.data.astype(dtype)))

    def to_dense(self) -> np.ndarray:
        """The (k, n) matrix, dropped blocks as zeros."""
        k, n = self.shape
        br, bc = self.block
        full = np.zeros((self.panels, self.block_rows, br, bc), self.dtype)
        panel = np.repeat(np.arange(self.panels), np.diff(self.indptr))
        full[panel, self.indices] = self.data
        dense = full.transpose(1, 2, 0, 3).reshape(self.block_rows * br, self.panels * bc)
        return np.ascontiguousarray(dense[:k, :n])

    def __repr__(self):
        k, n = self.shape
        return (f"BSRMatrix({k}x{n}, block={self.block[0]}x{self.block[1]}, "
                f"{self.nnzb} of {self.block_rows * self.panels} blocks stored, {self.dtype})")


def to_bsr(w, block=(1, 16)) -> BSRMatrix:
    """Store the 2-d float32/float64 array ``w`` (k, n) block-sparse, keeping
    every (br, bc) block that holds a nonzero (or NaN).  ``block`` defaults to
    1x16: two AVX2 vectors wide, one row deep, so the blocks pruning leaves
    whole are small."""
    op = "to_bsr"
    arr = np.asarray(w)
    if arr.dtype.kind != "f" or arr.dtype.itemsize not in (4, 8):
        raise dtype_error("w", "float32 or float64", arr.dtype, op)
    if arr.ndim != 2:
        raise shape_error("w", "a 2-d array (k, n)", arr.shape, op)
    br, bc = check_block(block, op)
    k, n = arr.shape
    kb, panels = -(-k // br), -(-n // bc)
    padded = np.zeros((kb * br, panels * bc), arr.dtype)
    padded[:k, :n] = arr
    # (panel, block row, br, bc): the storage order.
    blocks = padded.reshape(kb, br, panels, bc).transpose(2, 0, 1, 3)
    keep = (blocks != 0).any(axis=(2, 3))
    panel_idx, row_idx = np.nonzero(keep)  # row-major: sorted by panel, then block row
    indptr = np.zeros(panels + 1, np.int32)
    np.cumsum(keep.sum(axis=1), out=indptr[1:])
    if kb * panels >= 2**31:
        raise ShapeError(f"{op}: argument 'w' {arr.shape} has too many blocks for int32 indices")
    return BSRMatrix((k, n), (br, bc), indptr, np.ascontiguousarray(row_idx, np.int32),
                     np.ascontiguousarray(blocks[panel_idx, row_idx]))
