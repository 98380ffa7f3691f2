"""``email.policy.default`` with parsed headers memoised (``MEMO_POLICY``).

The default policy parses a header again on every access: a part's Content-Type is read
a dozen times per scan, and most mail carries the same few header values, so this was
over half of a small mail's scan. Parsed headers are immutable and the same (name,
value) always parses the same, so sharing them changes nothing but the time.
"""

from __future__ import annotations

import functools
from email.policy import EmailPolicy
from email.policy import default as default_policy
from typing import Any


class MemoPolicy(EmailPolicy):
    def header_fetch_parse(self, name: str, value: str) -> Any:
        if hasattr(value, "name"):
            return value
        return _parsed_header(name, value)


@functools.lru_cache(maxsize=4096)
def _parsed_header(name: str, value: str) -> Any:
    return default_policy.header_fetch_parse(name, value)


MEMO_POLICY = MemoPolicy()
