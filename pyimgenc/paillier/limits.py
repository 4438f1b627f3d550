"""Key sizes: what key generation accepts and what the binary format loads.

A leaf module (no imports) so that :mod:`.keys` and :mod:`.serialize` share one
definition of each limit.
"""
from __future__ import annotations

DEFAULT_KEY_BITS = 2048  # ~112-bit security (NIST SP 800-57), the library default
LARGE_KEY_BITS = 3072  # ~128-bit security
MIN_SECURE_KEY_BITS = 2048  # below this keygen refuses unless insecure=True
MIN_INSECURE_KEY_BITS = 128  # tests only: factorable in seconds, never for real data
MAX_KEY_BITS = 8192  # n**2 must fit the 16384-bit limit of pyimgenc.math
