"""C identifiers checked before they are emitted; arrays and float literals written as C source (and read back)."""

from __future__ import annotations

import math
import re

import numpy as np

from edgeclust.errors import CodegenError

# C11 and C++17 keywords and alternative tokens: none may name an array or a constant.
KEYWORDS = frozenset(
    """
    alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t char16_t char32_t class
    compl concept const consteval constexpr constinit const_cast continue co_await co_return co_yield decltype
    default delete do double dynamic_cast else enum explicit export extern false float for friend goto if
    inline int long mutable namespace new noexcept not not_eq nullptr operator or or_eq private protected
    public register reinterpret_cast requires restrict return short signed sizeof static static_assert
    static_cast struct switch template this thread_local throw true try typedef typeid typename union unsigned
    using virtual void volatile wchar_t while xor xor_eq
    _Alignas _Alignof _Atomic _Bool _Complex _Generic _Imaginary _Noreturn _Static_assert _Thread_local
""".split()
)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEX = [f"0x{b:02x}" for b in range(256)]
BYTES_PER_LINE = 12


def check_identifier(name: str) -> str:
    """Return `name` if it can name a C/C++ object; otherwise raise CodegenError saying why."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise CodegenError(
            f"{name!r} is not a valid C identifier: use letters, digits and '_', not starting with a digit"
        )
    if name in KEYWORDS:
        raise CodegenError(f"{name!r} is a C/C++ keyword and cannot name an array; choose another name")
    if name.startswith("__") or re.match(r"^_[A-Z]", name):
        raise CodegenError(
            f"{name!r} is reserved for the compiler (leading '__' or '_' + capital); choose another name"
        )
    return name


def c_array_body(data: bytes) -> str:
    """The initialiser lines of a byte array: `  0x1c, 0x00, ...,` with BYTES_PER_LINE bytes per line."""
    return c_values(np.frombuffer(bytes(data), np.uint8), per_line=BYTES_PER_LINE)


def c_values(values, *, per_line: int | None = None, indent: str = "    ") -> str:
    """The initialiser lines of a numeric array, each `indent` + items + ",": uint8 as hex (12 a line), other
    integers in decimal (16 a line up to 16 bits, 8 a line wider), floats as exact literals (6 a line)."""
    flat = np.asarray(values).reshape(-1)
    kind, itemsize = flat.dtype.kind, flat.dtype.itemsize
    if kind == "u" and itemsize == 1:
        items = [_HEX[b] for b in flat.tolist()]
        per_line = per_line or BYTES_PER_LINE
    elif kind in "iub":
        items = [str(int(v)) for v in flat.tolist()]
        per_line = per_line or (16 if itemsize <= 2 else 8)
    elif kind == "f":
        items = [c_float(v) for v in flat.tolist()]
        per_line = per_line or 6
    else:
        raise CodegenError(f"no C literal for a {flat.dtype} array")
    lines = (", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line))
    return "\n".join(f"{indent}{line}," for line in lines)


def c_float(value: float) -> str:
    """A float32 as a C float literal that reads back to the same bits (INFINITY / NAN from <math.h>)."""
    value = float(np.float32(value))
    if math.isnan(value):
        return "NAN"
    if math.isinf(value):
        return "INFINITY" if value > 0 else "(-INFINITY)"
    text = f"{value:.9g}"
    if not any(ch in text for ch in ".e"):
        text += ".0"
    return text + "f"


def c_array(symbol: str, data: bytes, *, alignment: int = 16, ctype: str = "unsigned char") -> str:
    """A definition `alignas(N) const <ctype> <symbol>[] = {...};` followed by `const unsigned int <symbol>_len`."""
    check_identifier(symbol)
    check_identifier(f"{symbol}_len")
    if alignment & (alignment - 1) or alignment <= 0:
        raise CodegenError(f"alignment must be a power of two. Received: {alignment}")
    body = c_array_body(data)
    return (
        f"alignas({alignment}) const {ctype} {symbol}[] = {{\n{body}\n}};\n"
        f"const unsigned int {symbol}_len = {len(data)};\n"
    )


def bytes_from_c_array(text: str, symbol: str | None = None) -> bytes:
    """Read back the bytes of the first (or the named) `... symbol[] = {...};` array in C source text."""
    name = re.escape(symbol) if symbol else r"[A-Za-z_]\w*"
    match = re.search(name + r"\s*\[\s*\d*\s*\]\s*=\s*\{(.*?)\}\s*;", text, re.S)
    if match is None:
        raise CodegenError(f"no array {symbol or ''} found in the C source".replace("  ", " "))
    items = [item.strip() for item in match.group(1).split(",")]
    try:
        return bytes(int(item, 0) for item in items if item)
    except ValueError as exc:
        raise CodegenError(f"the array holds something other than byte literals ({exc})") from None


def c_string(text: str) -> str:
    """A C string literal for `text` (UTF-8; quotes, backslashes and non-printable bytes escaped as octal)."""
    out = []
    for byte in str(text).encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= byte < 0x7F and ch != "?":  # '?' escaped too: no trigraphs
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'
