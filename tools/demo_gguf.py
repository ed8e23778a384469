"""GGUF v3 reading and writing for the demo model (tools/train_demo.py).

read_kv(path) returns the metadata of a GGUF file as a dict (arrays as lists);
GGUFWriter collects metadata and F32 / Q8_0 tensors and writes a GGUF v3 file
with 32-byte aligned tensor data.  Written for ponder from the format
description; standard library only (numpy optional for quantizing).
"""
import struct

ALIGN = 32

# metadata value types
T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
_FMT = {T_U8: "<B", T_I8: "<b", T_U16: "<H", T_I16: "<h", T_U32: "<I", T_I32: "<i",
        T_F32: "<f", T_BOOL: "<?", T_U64: "<Q", T_I64: "<q", T_F64: "<d"}

# tensor types
GGML_F32 = 0
GGML_Q8_0 = 8
QK8_0 = 32


def read_kv(path):
    """The metadata key/value pairs of a GGUF v2/v3 file, in file order."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"GGUF":
        raise ValueError("%s: not a GGUF file" % path)
    version, _n_tensors, n_kv = struct.unpack_from("<IQQ", data, 4)
    if version not in (2, 3):
        raise ValueError("%s: GGUF version %d" % (path, version))
    off = 24

    def string(o):
        (n,) = struct.unpack_from("<Q", data, o)
        o += 8
        if o + n > len(data):
            raise ValueError("string past the end of the file")
        return data[o:o + n].decode("utf-8"), o + n

    def value(t, o):
        if t == T_STR:
            return string(o)
        if t == T_ARR:
            et, n = struct.unpack_from("<IQ", data, o)
            o += 12
            out = []
            for _ in range(n):
                v, o = value(et, o)
                out.append(v)
            return out, o
        if t not in _FMT:
            raise ValueError("unknown metadata type %d" % t)
        (v,) = struct.unpack_from(_FMT[t], data, o)
        return v, o + struct.calcsize(_FMT[t])

    kv = {}
    for _ in range(n_kv):
        key, off = string(off)
        (t,) = struct.unpack_from("<I", data, off)
        kv[key], off = value(t, off + 4)
    return kv


def _str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _value(t, v):
    if t == T_STR:
        return _str(v)
    return struct.pack(_FMT[t], v)


def f16_bits(x):
    """IEEE half bits of a float (round to nearest even), via struct's 'e'."""
    return struct.unpack("<H", struct.pack("<e", x))[0]


def quantize_q8_0(rows):
    """Q8_0 bytes of a 2-D float32 numpy array whose row length is a
    multiple of 32: per block, d = amax/127 stored as fp16, q = round(x/d)
    (half away from zero), as ggml's reference quantizer does."""
    import numpy as np
    a = np.ascontiguousarray(rows, dtype=np.float32)
    if a.shape[-1] % QK8_0:
        raise ValueError("row length %d is not a multiple of 32" % a.shape[-1])
    blocks = a.reshape(-1, QK8_0)
    amax = np.abs(blocks).max(axis=1)
    d = (amax / 127.0).astype(np.float32)
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1), 0).astype(np.float32)
    x = blocks * inv[:, None]
    q = (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int8)
    out = np.zeros(len(blocks), dtype=[("d", "<f2"), ("q", "i1", (QK8_0,))])
    out["d"] = d.astype(np.float16)
    out["q"] = q
    return out.tobytes()


def dequantize_q8_0(raw, shape):
    """float32 numpy array of Q8_0 bytes (the inverse of quantize_q8_0)."""
    import numpy as np
    blk = np.frombuffer(raw, dtype=[("d", "<f2"), ("q", "i1", (QK8_0,))])
    vals = blk["q"].astype(np.float32) * blk["d"].astype(np.float32)[:, None]
    return vals.reshape(shape)


class GGUFWriter:
    """Metadata and tensors in insertion order; write(path) emits the file."""

    def __init__(self):
        self.kv = []        # (key, type, value, element type for arrays)
        self.tensors = []   # (name, ggml dims (ne0 first), type, bytes)

    def add(self, key, t, value, elem=None):
        self.kv.append((key, t, value, elem))

    def add_tensor(self, name, array, ggml_type=GGML_F32):
        """array: numpy array in row-major (PyTorch) order; the GGUF shape is
        its reversed shape (ne0 = last dimension)."""
        import numpy as np
        a = np.ascontiguousarray(array, dtype=np.float32)
        dims = list(reversed(a.shape))
        if ggml_type == GGML_F32:
            raw = a.astype("<f4").tobytes()
        elif ggml_type == GGML_Q8_0:
            raw = quantize_q8_0(a.reshape(-1, a.shape[-1]))
        else:
            raise ValueError("unsupported tensor type %d" % ggml_type)
        self.tensors.append((name, dims, ggml_type, raw))

    def write(self, path):
        head = bytearray(b"GGUF")
        head += struct.pack("<IQQ", 3, len(self.tensors), len(self.kv))
        for key, t, v, elem in self.kv:
            head += _str(key) + struct.pack("<I", t)
            if t == T_ARR:
                head += struct.pack("<IQ", elem, len(v))
                for x in v:
                    head += _value(elem, x)
            else:
                head += _value(t, v)
        off = 0
        offsets = []
        for name, dims, gt, raw in self.tensors:
            offsets.append(off)
            head += _str(name) + struct.pack("<I", len(dims))
            for d in dims:
                head += struct.pack("<Q", d)
            head += struct.pack("<IQ", gt, off)
            off += (len(raw) + ALIGN - 1) // ALIGN * ALIGN
        head += b"\0" * (-len(head) % ALIGN)
        with open(path, "wb") as f:
            f.write(head)
            for (_, _, _, raw), o in zip(self.tensors, offsets):
                f.write(raw)
                f.write(b"\0" * (-len(raw) % ALIGN))
