"""A crafted Redis RDB whose values are LZF back-reference runs: a few KB per 100 MB once loaded.

Valid as far as Redis's loader is concerned (a zero checksum means "not checked"); built byte by byte here
because no tool writes such a file on purpose (found by a hostile-bucket review: 2.3 MB loaded to 218 MB).
"""

from __future__ import annotations

import struct


def _length(n: int) -> bytes:
    if n < 64:
        return bytes([n])
    if n < 16384:
        return bytes([0x40 | (n >> 8), n & 0xFF])
    return b"\x80" + struct.pack(">I", n)


def _lzf_run(total: int) -> bytes:
    """LZF data that expands to ``total`` bytes of ``A``: one literal, then back-references of 264 bytes."""
    out = bytearray(b"\x00A")
    produced = 1
    while produced < total:
        chunk = min(264, total - produced)
        if chunk < 3:
            out += bytes([chunk - 1]) + b"A" * chunk
        elif chunk >= 9:
            out += bytes([0xE0, chunk - 9, 0x00])
        else:
            out += bytes([(chunk - 2) << 5, 0x00])
        produced += chunk
    return bytes(out)


def rdb_bomb(keys: int, value_bytes: int) -> bytes:
    """An RDB (version 9) of ``keys`` string keys, each an LZF-compressed value of ``value_bytes`` bytes."""
    compressed = _lzf_run(value_bytes)
    body = bytearray(b"REDIS0009\xfe\x00")
    for index in range(keys):
        key = f"k{index}".encode()
        body += b"\x00" + _length(len(key)) + key + b"\xc3" + _length(len(compressed)) + _length(value_bytes)
        body += compressed
    return bytes(body + b"\xff" + b"\x00" * 8)
