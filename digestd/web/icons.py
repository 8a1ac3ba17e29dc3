"""The site's icon (feeds' icon and logo, JSON Feed icon) and favicon, drawn here as PNG.

Drawn in code rather than shipped as binary files: a blue rounded square with a white "d".
"""

from __future__ import annotations

import struct
import zlib
from functools import cache

BLUE = (11, 87, 208, 255)
WHITE = (255, 255, 255, 255)
CLEAR = (0, 0, 0, 0)


def _pixel(x: float, y: float) -> tuple[int, int, int, int]:
    """Colour at (x, y) in the unit square."""
    radius = 0.18  # rounded corners
    cx, cy = min(max(x, radius), 1 - radius), min(max(y, radius), 1 - radius)
    if (x - cx) ** 2 + (y - cy) ** 2 > radius**2:
        return CLEAR
    # the letter: a ring (the bowl) and a stem on its right
    ring = 0.04 < (x - 0.45) ** 2 + (y - 0.6) ** 2 < 0.09
    stem = 0.63 <= x <= 0.75 and 0.18 <= y <= 0.9
    return WHITE if ring or stem else BLUE


def _png(size: int) -> bytes:
    rows = []
    for j in range(size):
        row = bytearray(b"\x00")  # filter: none
        for i in range(size):
            row += bytes(_pixel((i + 0.5) / size, (j + 0.5) / size))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b"")
    )


@cache
def icon_png() -> bytes:
    """256×256: big enough for readers' feed lists, small enough to serve from memory."""
    return _png(256)


@cache
def favicon_ico() -> bytes:
    """An ICO file holding one 32×32 PNG (ICO has carried PNG images since Windows Vista)."""
    image = _png(32)
    header = struct.pack("<HHH", 0, 1, 1)
    entry = struct.pack("<BBBBHHII", 32, 32, 0, 0, 1, 32, len(image), 6 + 16)
    return header + entry + image
