"""Prediction ids: time-ordered (version 7) UUIDs, made in bulk.

Version 7 starts with the Unix time in milliseconds, so the ids a server hands out sort by time:
each insert into the prediction log's primary-key index lands at its right edge instead of on a
random page (SQLite and PostgreSQL both write fewer pages per batch). A batch's ids follow its rows.
`str(uuid.uuid4())` costs about 4 µs; a batch takes its random bits from one call to the OS's random
source and writes every id's text with numpy, as one string split at newlines: no Python per id,
where formatting them one by one cost a 1,000-row batch about a millisecond. One id (`/predict`)
is one 128-bit integer formatted once: the bulk path's set-up cost more than the id itself.
"""

import os
import time

import numpy as np

HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
DASHES = [8, 13, 18, 23]
DIGIT_POSITIONS = [i for i in range(36) if i not in DASHES]  # the 32 hex digits in the 36-character text


def prediction_ids(count: int) -> list[str]:
    raw = np.frombuffer(os.urandom(16 * count), dtype=np.uint8).reshape(count, 16).copy()
    millis = time.time_ns() // 1_000_000
    raw[:, :6] = np.frombuffer(millis.to_bytes(6, "big"), dtype=np.uint8)  # RFC 9562: unix_ts_ms, 48 bits
    # The version nibble is 7, the variant bits are 10. Between them, an 18-bit counter (RFC 9562's
    # method 1) keeps a batch's ids, which share one millisecond, in the order of its rows: a window
    # cut at equal times then takes the same rows every time (the other 56 bits stay random).
    counter = np.arange(count, dtype=np.uint32) & 0x3FFFF
    raw[:, 6] = 0x70 | (counter >> 14).astype(np.uint8)
    raw[:, 7] = (counter >> 6 & 0xFF).astype(np.uint8)
    raw[:, 8] = 0x80 | (counter & 0x3F).astype(np.uint8)
    digits = np.empty((count, 32), dtype=np.uint8)
    digits[:, 0::2], digits[:, 1::2] = raw >> 4, raw & 0x0F
    text = np.empty((count, 37), dtype=np.uint8)  # each id's text, then a newline
    text[:, DIGIT_POSITIONS] = HEX_DIGITS[digits]
    text[:, DASHES] = ord("-")
    text[:, 36] = ord("\n")
    return text.tobytes().decode("ascii").splitlines()


# RFC 9562 version 7: the version nibble (bits 76-79) is 7, the variant (bits 62-63) is 0b10.
VERSION_AND_VARIANT = 0x7 << 76 | 0x2 << 62
RANDOM_BITS = ((1 << 80) - 1) & ~(0xF << 76) & ~(0x3 << 62)


def prediction_id() -> str:
    millis = time.time_ns() // 1_000_000
    h = f"{millis << 80 | int.from_bytes(os.urandom(10)) & RANDOM_BITS | VERSION_AND_VARIANT:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
