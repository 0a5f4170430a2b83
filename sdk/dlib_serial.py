"""Pure-Python, bounds-checked readers for dlib's binary serialisation format.

dlib (``dlib/serialize.h``) writes its objects as a stream of small records:

* **integers** are variable length: one control byte whose low four bits give the number
  ``n`` (1..8) of value bytes that follow (little-endian magnitude) and whose top bit
  ``0x80`` marks a negative value of a signed type. Unsigned values never set the sign bit.
* **float / double** values are ``float_details``: a signed 64-bit ``mantissa`` followed by
  a signed 16-bit ``exponent`` (both variable-length integers); the value is
  ``mantissa * 2**exponent``, except exponents 32000 / 32001 / 32002, which mean +inf /
  -inf / NaN. (A control byte with any of the bits ``0x70`` set marks dlib's pre-2012
  ASCII float format, which no model we read uses; it is reported as unsupported.)
* **bool** is one ASCII byte ``'0'`` or ``'1'``.
* **std::string** is an unsigned length then the raw bytes; **std::vector<T>** an unsigned
  length then each element.
* **dlib::matrix** is ``-nr``, ``-nc`` (negative in the current format, positive in the old
  one) as signed integers, then the elements in row-major order, each in its own encoding.
* **dlib::resizable_tensor** (DNN parameters) is an ``int`` version (2) then ``num_samples``,
  ``k``, ``nr``, ``nc`` as signed integers, then ``num_samples*k*nr*nc`` little-endian
  IEEE float32 values, raw.

Every read checks that the bytes it needs are there and that what it decodes is well formed;
otherwise it raises :class:`~edgeship.errors.ModelFormatError` naming the offset, what was
expected and what was found. Counts are checked against the bytes left before any memory is
allocated, so a corrupted length can never make the reader allocate gigabytes or loop for long.

This module imports only numpy.

Example:
    >>> r = DlibReader(bytes([0x01, 0x05, 0x81, 0x05, 0x01, 0x03]) + b"abc")
    >>> r.read_int(), r.read_int(), r.read_string()
    (5, -5, 'abc')
    >>> r.at_end()
    True
    >>> DlibReader(bytes([0x01, 0x03, 0x81, 0x02])).read_float()  # 3 * 2**-2
    0.75
    >>> DlibReader(bytes([0x02, 0x05])).read_int()
    Traceback (most recent call last):
    ...
    edgeship.errors.ModelFormatError: dlib data: truncated at byte 1 of 2: expected 2 byte(s) of an integer, only 1 left; the file is cut short or corrupted (re-download it)
"""
from __future__ import annotations

import math
import os
from typing import Optional, Tuple, Union

import numpy as np

from .errors import ModelFormatError

_INF_EXP, _NINF_EXP, _NAN_EXP = 32000, 32001, 32002

__all__ = ["DlibReader", "read_dlib_file"]


class DlibReader:
    """A cursor over the bytes of a dlib-serialised object.

    Args:
        data: the serialised bytes (a ``bytes``, ``bytearray`` or ``memoryview``).
        name: what the bytes are (a file name), used in error messages.

    Attributes:
        pos: the offset of the next byte to read.
    """

    def __init__(self, data: Union[bytes, bytearray, memoryview], name: str = "dlib data"):
        self.data = bytes(data)
        self.name = name
        self.pos = 0

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self.data)

    def remaining(self) -> int:
        """Bytes not read yet."""
        return len(self.data) - self.pos

    def at_end(self) -> bool:
        """True when every byte has been read."""
        return self.pos >= len(self.data)

    def error(self, what: str, at: Optional[int] = None) -> ModelFormatError:
        """A :class:`ModelFormatError` for malformed data at ``at`` (default: the cursor)."""
        at = self.pos if at is None else at
        return ModelFormatError(f"{self.name}: malformed at byte {at} of {len(self.data)}: {what}; "
                                f"the file is corrupted or not the dlib model expected (re-download it)")

    def _need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > len(self.data):
            raise ModelFormatError(
                f"{self.name}: truncated at byte {self.pos} of {len(self.data)}: expected {n} byte(s) "
                f"of {what}, only {self.remaining()} left; the file is cut short or corrupted "
                f"(re-download it)")

    def read_bytes(self, n: int, what: str = "raw data") -> bytes:
        """The next ``n`` raw bytes."""
        self._need(n, what)
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    # ------------------------------------------------------------------ integers
    def read_int(self, signed: bool = True, nbytes: int = 8, what: str = "an integer") -> int:
        """A dlib variable-length integer.

        Args:
            signed: whether the C++ type is signed (an unsigned one must not carry a sign bit).
            nbytes: ``sizeof`` the C++ type (1..8): more value bytes than this is an error,
                as in dlib.
            what: a description for error messages.
        """
        start = self.pos
        self._need(1, what)
        ctrl = self.data[self.pos]
        if signed:
            size, neg = ctrl & 0x0F, bool(ctrl & 0x80)
            bad = ctrl & 0x70
        else:
            size, neg = ctrl & 0x8F, False
            bad = ctrl & 0x70  # dlib masks these reserved bits out; a float-stream byte has them
        if bad or size == 0 or size > nbytes:
            raise self.error(f"expected {what} (control byte with 1..{nbytes} value bytes"
                             f"{'' if signed else ', no sign'}), found control byte 0x{ctrl:02x}", start)
        self.pos += 1
        self._need(size, what)
        v = int.from_bytes(self.data[self.pos:self.pos + size], "little")
        self.pos += size
        return -v if neg else v

    def read_uint(self, nbytes: int = 8, what: str = "an unsigned integer") -> int:
        """A dlib variable-length unsigned integer (``unsigned long``: 8 bytes)."""
        return self.read_int(signed=False, nbytes=nbytes, what=what)

    def read_size(self, min_bytes_each: int = 1, what: str = "a length") -> int:
        """A ``std::vector``/``std::string`` length, checked against the bytes left.

        Args:
            min_bytes_each: the fewest bytes one element can take (so a corrupted, huge
                length is caught before anything is allocated).
            what: a description for error messages.
        """
        start = self.pos
        n = self.read_uint(what=what)
        if n * max(min_bytes_each, 0) > self.remaining():
            raise self.error(f"{what} of {n} needs at least {n * min_bytes_each} more byte(s) but only "
                             f"{self.remaining()} remain", start)
        return n

    def read_bool(self, what: str = "a bool") -> bool:
        """A dlib bool: the ASCII byte ``'1'`` or ``'0'``."""
        self._need(1, what)
        ch = self.data[self.pos]
        if ch not in (0x30, 0x31):
            raise self.error(f"expected {what} (byte '0' or '1'), found 0x{ch:02x}")
        self.pos += 1
        return ch == 0x31

    # ------------------------------------------------------------------ floats
    def read_float(self, what: str = "a floating point number") -> float:
        """A dlib ``float``/``double`` (``float_details``: mantissa, exponent)."""
        start = self.pos
        self._need(1, what)
        if self.data[self.pos] & 0x70:
            raise self.error(f"expected {what} in dlib's binary format, found byte "
                             f"0x{self.data[self.pos]:02x} (dlib's old ASCII float format is not supported)")
        m = self.read_int(True, 8, what + " (mantissa)")
        e = self.read_int(True, 2, what + " (exponent)")
        if e == _INF_EXP:
            return math.inf
        if e == _NINF_EXP:
            return -math.inf
        if e == _NAN_EXP:
            return math.nan
        if e > _INF_EXP:
            raise self.error(f"{what}: exponent {e} is out of range", start)
        try:
            return math.ldexp(float(m), e)
        except OverflowError:
            return math.inf if m > 0 else -math.inf

    def read_floats(self, n: int, what: str = "floating point numbers") -> np.ndarray:
        """``n`` consecutive dlib floats as a float64 array (bounds checked first)."""
        if n * 2 > self.remaining():  # each float takes at least two bytes
            raise self.error(f"{n} {what} need at least {2 * n} byte(s) but only {self.remaining()} remain")
        out = np.empty(n, dtype=np.float64)
        data, pos, end = self.data, self.pos, len(self.data)
        ldexp = math.ldexp
        for i in range(n):
            # fast path of read_float for the common case; falls back for anything unusual
            if pos + 1 < end:
                c = data[pos]
                sm = c & 0x0F
                if not (c & 0x70) and 0 < sm <= 8 and pos + 1 + sm < end:
                    m = int.from_bytes(data[pos + 1:pos + 1 + sm], "little")
                    if c & 0x80:
                        m = -m
                    p2 = pos + 1 + sm
                    c2 = data[p2]
                    se = c2 & 0x0F
                    if not (c2 & 0x70) and 0 < se <= 2 and p2 + 1 + se <= end:
                        e = int.from_bytes(data[p2 + 1:p2 + 1 + se], "little")
                        if c2 & 0x80:
                            e = -e
                        if e < _INF_EXP:
                            out[i] = ldexp(float(m), e)
                            pos = p2 + 1 + se
                            continue
            self.pos = pos
            out[i] = self.read_float(what)
            pos = self.pos
        self.pos = pos
        return out

    # ------------------------------------------------------------------ strings and containers
    def read_string(self, what: str = "a string", encoding: str = "utf-8") -> str:
        """A ``std::string`` (unsigned length, raw bytes), decoded."""
        start = self.pos
        n = self.read_size(1, what + " length")
        raw = self.read_bytes(n, what)
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            raise self.error(f"{what} is not valid {encoding} text: {raw[:40]!r}", start) from None

    def expect_string(self, expected: Union[str, Tuple[str, ...]], what: str = "a record tag") -> str:
        """Read a string and check it is ``expected`` (or one of them); return it."""
        start = self.pos
        options = (expected,) if isinstance(expected, str) else tuple(expected)
        try:
            s = self.read_string(what)
        except ModelFormatError as exc:
            raise self.error(f"expected {what} {' or '.join(map(repr, options))}, found no valid "
                             f"string ({exc})", start) from None
        if s not in options:
            raise self.error(f"expected {what} {' or '.join(map(repr, options))}, found {s!r}", start)
        return s

    def peek_string(self) -> Optional[str]:
        """The string at the cursor without consuming it, or None if none is readable there."""
        pos = self.pos
        try:
            return self.read_string()
        except ModelFormatError:
            return None
        finally:
            self.pos = pos

    def read_version(self, expected: Union[int, Tuple[int, ...]], what: str = "a format version") -> int:
        """An ``int`` version number that must be one of ``expected``."""
        start = self.pos
        options = (expected,) if isinstance(expected, int) else tuple(expected)
        v = self.read_int(True, 4, what)
        if v not in options:
            raise self.error(f"expected {what} {' or '.join(map(str, options))}, found {v}", start)
        return v

    def read_uint_vector(self, what: str = "a vector of unsigned integers") -> np.ndarray:
        """A ``std::vector<unsigned long>`` as an int64 array."""
        n = self.read_size(2, what + " length")
        return np.array([self.read_uint(what=what) for _ in range(n)], dtype=np.int64)

    def read_float_vector(self, what: str = "a vector of floats") -> np.ndarray:
        """A ``std::vector<float>`` / ``std::vector<double>`` as a float64 array."""
        n = self.read_size(2, what + " length")
        return self.read_floats(n, what)

    # ------------------------------------------------------------------ dlib::matrix and tensors
    def read_matrix_shape(self, what: str = "a dlib::matrix") -> Tuple[int, int]:
        """The ``(nr, nc)`` header of a dlib::matrix (either sign convention)."""
        start = self.pos
        nr = self.read_int(True, 8, what + " row count")
        nc = self.read_int(True, 8, what + " column count")
        if (nr < 0) != (nc < 0) and nr != 0 and nc != 0:
            raise self.error(f"{what} has rows {nr} and columns {nc} of different signs", start)
        return abs(nr), abs(nc)

    def read_matrix(self, what: str = "a dlib::matrix", elem: str = "float",
                    shape: Optional[Tuple[Optional[int], Optional[int]]] = None) -> np.ndarray:
        """A ``dlib::matrix`` as a 2-D numpy array.

        Args:
            what: a description for error messages.
            elem: the element type: ``"float"`` (float/double, float64 result), ``"int"``
                (signed integers) or ``"uint"`` (unsigned integers; int64 results).
            shape: the expected ``(rows, cols)``; ``None`` in a place means any.
        """
        start = self.pos
        nr, nc = self.read_matrix_shape(what)
        if shape is not None:
            er, ec = shape
            if (er is not None and nr != er) or (ec is not None and nc != ec):
                raise self.error(f"{what}: expected shape {shape}, found ({nr}, {nc})", start)
        n = nr * nc
        if elem == "float":
            if 2 * n > self.remaining():
                raise self.error(f"{what} of {nr}x{nc} needs at least {2 * n} more bytes but only "
                                 f"{self.remaining()} remain", start)
            return self.read_floats(n, what + " elements").reshape(nr, nc)
        if elem in ("int", "uint"):
            if 2 * n > self.remaining():
                raise self.error(f"{what} of {nr}x{nc} needs at least {2 * n} more bytes but only "
                                 f"{self.remaining()} remain", start)
            vals = [self.read_int(elem == "int", 8, what + " element") for _ in range(n)]
            return np.array(vals, dtype=np.int64).reshape(nr, nc)
        raise ValueError(f"elem must be 'float', 'int' or 'uint', not {elem!r}")

    def read_tensor(self, what: str = "a dlib tensor") -> np.ndarray:
        """A ``dlib::resizable_tensor`` as a float32 array of shape ``(n, k, nr, nc)``.

        Empty tensors (any dimension 0) come back with that shape and no data.
        """
        start = self.pos
        self.read_version(2, what + " version")
        dims = [self.read_int(True, 8, what + " dimension") for _ in range(4)]
        if any(d < 0 for d in dims):
            raise self.error(f"{what} has a negative dimension: {dims}", start)
        count = dims[0] * dims[1] * dims[2] * dims[3]
        if 4 * count > self.remaining():
            raise self.error(f"{what} of shape {tuple(dims)} needs {4 * count} bytes of float32 data but "
                             f"only {self.remaining()} remain", start)
        arr = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos).astype(np.float32)
        self.pos += 4 * count
        return arr.reshape(dims)


def read_dlib_file(path: Union[str, "os.PathLike[str]"], what: str = "a dlib model file") -> DlibReader:
    """Open a dlib-serialised file as a :class:`DlibReader` (``ModelFormatError`` if unreadable).

    Args:
        path: the ``.dat`` file.
        what: what the file should be, for the error message.
    """
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise ModelFormatError(f"expected {what}, got {p!r} (not a file)")
    try:
        with open(p, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ModelFormatError(f"cannot read {what} {p!r}: {exc}") from exc
    if not data:
        raise ModelFormatError(f"expected {what}, got {p!r}: the file is empty")
    return DlibReader(data, name=os.path.basename(p))


def encode_int(value: int, signed: bool = True) -> bytes:
    """dlib's encoding of an integer (for tests and for writing small records).

    Example:
        >>> encode_int(-5), encode_int(300, signed=False)
        (b'\\x81\\x05', b'\\x02,\\x01')
    """
    if not signed and value < 0:
        raise ValueError("an unsigned value cannot be negative")
    neg = value < 0
    mag = -value if neg else value
    body = mag.to_bytes(max(1, (mag.bit_length() + 7) // 8), "little")
    if len(body) > 8:
        raise ValueError(f"{value} does not fit in 8 bytes")
    return bytes([len(body) | (0x80 if neg else 0)]) + body


def encode_float(value: float) -> bytes:
    """dlib's ``float_details`` encoding of a float (for tests).

    Example:
        >>> DlibReader(encode_float(-1.5) + encode_float(float("inf"))).read_floats(2).tolist()
        [-1.5, inf]
    """
    if math.isnan(value):
        return encode_int(0) + encode_int(_NAN_EXP)
    if math.isinf(value):
        return encode_int(0) + encode_int(_INF_EXP if value > 0 else _NINF_EXP)
    if value == 0:
        return encode_int(0) + encode_int(0)
    frac, exp = math.frexp(value)
    digits = 53
    m = int(frac * (1 << digits))
    e = exp - digits
    for _ in range(8):
        if m & 0xFF:
            break
        m >>= 8
        e += 8
    return encode_int(m) + encode_int(e)


def encode_string(s: str) -> bytes:
    """dlib's encoding of a ``std::string``."""
    raw = s.encode("utf-8")
    return encode_int(len(raw), signed=False) + raw


def encode_tensor(arr: np.ndarray) -> bytes:
    """dlib's encoding of a resizable_tensor (4-D, or padded to 4-D on the right with ones)."""
    a = np.asarray(arr, dtype="<f4")
    shape = list(a.shape) + [1] * (4 - a.ndim)
    return encode_int(2) + b"".join(encode_int(d) for d in shape) + a.tobytes()


__all__ += ["encode_int", "encode_float", "encode_string", "encode_tensor"]
