"""Raw typed pointers for Numba kernels.

Kernels take (address, element strides) instead of arrays: Numba types an
array argument by its layout (C, F or A), so passing views would compile one
specialization per layout combination; an address is always an int, so each
kernel compiles once per dtype (the dtype comes from a ``tag`` scalar)."""
from __future__ import annotations

from numba import types
from numba.extending import intrinsic


@intrinsic
def ptr(typingctx, addr, tag):
    """A ``CPointer`` of ``tag``'s type at integer address ``addr``."""
    ptrty = types.CPointer(tag)
    sig = ptrty(types.intp, tag)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(ptrty))
    return sig, codegen


@intrinsic
def ptr_u8(typingctx, addr):
    """A ``uint8*`` at ``addr`` (bool arrays are bytes)."""
    ptrty = types.CPointer(types.uint8)
    sig = ptrty(types.intp)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(ptrty))
    return sig, codegen


@intrinsic
def ptr_i64(typingctx, addr):
    ptrty = types.CPointer(types.int64)
    sig = ptrty(types.intp)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(ptrty))
    return sig, codegen
