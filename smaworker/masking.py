"""Masking: every secret a job holds is written as `***` wherever it appears in its records.

A secret is masked whole, and each line of a multi-line secret (a PEM key) on its own, since
output is cut into lines before it is stored. Each is also masked as JSON text shows it
(with escapes, ASCII-only or not), for records that carry JSON as text. Anything shorter
than MIN_MASK characters (a whole secret, or a line of one once stripped) is left alone: it
would mask ordinary text.

All forms are matched with one compiled alternation, longest first; text holding none pays
one regex search. Typed values are masked structurally (see `value`), never as JSON text.
"""

from __future__ import annotations

import json
import re
from typing import Any

MIN_MASK = 4
MASK = "***"
_BMASK = MASK.encode()


class Masker:
    """The secrets of one job, and the masking of text, bytes and typed values with them."""

    def __init__(self) -> None:
        self.forms: set[str] = set()
        self._text: re.Pattern[str] | None = None
        self._bytes: re.Pattern[bytes] | None = None
        self._text_all: re.Pattern[str] | None = None
        self._bytes_all: re.Pattern[bytes] | None = None
        self.longest = 0  # bytes of the longest form: the context a cut piece needs

    def __bool__(self) -> bool:
        return self._text is not None

    def add(self, secret: str) -> None:
        """Mask `secret` from now on."""
        parts = [secret] if len(secret) >= MIN_MASK else []
        if "\n" in secret or "\r" in secret:
            parts += [line.strip() for line in secret.splitlines()
                      if len(line.strip()) >= MIN_MASK]
        forms = set()
        for part in parts:
            forms.add(part)
            forms.add(json.dumps(part)[1:-1])
            forms.add(json.dumps(part, ensure_ascii=False)[1:-1])
        if forms <= self.forms:
            return
        self.forms |= forms
        texts = sorted(self.forms, key=len, reverse=True)
        raw = sorted({f.encode("utf-8", "surrogatepass") for f in self.forms},
                     key=len, reverse=True)
        text_alt = "|".join(map(re.escape, texts))
        bytes_alt = b"|".join(map(re.escape, raw))
        self._text = re.compile(text_alt)
        self._bytes = re.compile(bytes_alt)
        # at every position, the longest form starting there: overlapping secrets all count
        self._text_all = re.compile(f"(?=({text_alt}))")
        self._bytes_all = re.compile(b"(?=(" + bytes_alt + b"))")
        self.longest = len(raw[0])

    def text(self, text: str) -> str:
        """`text` with every secret in it written as ***."""
        if self._text is None or self._text.search(text) is None:
            return text
        return _cover(text, _spans(self._text_all, text), MASK)

    def bytes(self, data: bytes) -> bytes:
        """The same for raw output (UTF-8), before it is decoded."""
        if self._bytes is None or self._bytes.search(data) is None:
            return data
        return _cover(data, _spans(self._bytes_all, data), _BMASK)

    def piece(self, before: bytes, piece: bytes, after: bytes) -> bytes:
        """One piece of a line cut in several: what of a secret lies in it is masked, also
        when the secret begins in the piece `before` it or ends in the one `after` it."""
        if self._bytes is None:
            return piece
        window = before + piece + after
        if self._bytes.search(window) is None:
            return piece
        start, end = len(before), len(before) + len(piece)
        spans = [(max(a, start) - start, min(b, end) - start)
                 for a, b in _spans(self._bytes_all, window) if a < end and b > start]
        return _cover(piece, spans, _BMASK) if spans else piece

    def value(self, value: Any) -> Any:
        """A typed value with every secret masked in its strings, keys and numbers.

        A number whose JSON text holds a secret (12345 while "1234" is one) becomes the
        masked text ("***5"), a string: keeping the number would keep the secret. Booleans
        and null carry no text of their own and stay as they are.
        """
        if not self:
            return value
        if isinstance(value, str):
            return self.text(value)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            text = json.dumps(value)
            masked = self.text(text)
            return value if masked is text else masked
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        if isinstance(value, dict):
            result: dict[Any, Any] = {}
            for key, item in value.items():
                key = self.text(key) if isinstance(key, str) else key
                while key in result:  # two keys masked alike stay two entries
                    key = f"{key}*"
                result[key] = self.value(item)
            return result
        return self.text(str(value))


def secrets_of(value: Any) -> list[str]:
    """The texts to mask for a secret value of any JSON shape (its strings, and the JSON
    text of its numbers)."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, dict):
        return [s for item in value.values() for s in secrets_of(item)]
    if isinstance(value, list):
        return [s for item in value for s in secrets_of(item)]
    if value is None or isinstance(value, bool):
        return []
    return [json.dumps(value, default=str)]


def _spans(pattern: re.Pattern, text: Any) -> list[tuple[int, int]]:
    """Where secrets are in `text`, overlapping occurrences merged."""
    spans: list[tuple[int, int]] = []
    for match in pattern.finditer(text):
        start, end = match.start(), match.end(1)
        if spans and start <= spans[-1][1]:
            if end > spans[-1][1]:
                spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


def _cover(text: Any, spans: list[tuple[int, int]], mask: Any) -> Any:
    parts, at = [], 0
    for start, end in spans:
        parts += [text[at:start], mask]
        at = end
    parts.append(text[at:])
    return text[:0].join(parts)
