"""Token-id input read straight from a body's bytes (pure).

A body of token lists is mostly digits and commas, and parsing it as JSON makes a Python integer
of every id (600,000 ids: 0.12 s of CPU) only to pack them into an array again. This reads the
value of "input" in a third of that, for the plain shapes clients send (a list of non-negative
integers, or a list of such lists); anything else is left to the JSON parser.

It is exact or it declines. The grammar is checked on pairs of neighbouring bytes: each byte's
kind and each pair's code come from `bytes.translate` (a table lookup at memory speed), so no
step loops in Python over the ids. The rest of the body is then parsed as JSON with a random
stand-in for the lists, and must give that stand-in back as its top-level "input": the lists
read are the value a JSON parser would have given "input" (the last of duplicate keys, as
orjson keeps).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

# Larger bodies are mostly something other than token ids: parsed as JSON, they cost little.
MAX_SCANNED_BYTES = 8 * 1024 * 1024
INPUT_KEY = b'"input"'
INPUT_VALUE = re.compile(rb'"input"[ \t\r\n]*:[ \t\r\n]*\[')
SPACES = b" \t\r\n"
BRACKETS_TO_SPACES = bytes.maketrans(b"[]", b"  ")
SATURATED = np.iinfo(np.int64).max  # what np.fromstring reads a number too big for int64 as

OTHER, ZERO, DIGIT, COMMA, OPEN, CLOSE = range(6)  # DIGIT: 1 to 9
KIND_OF = {ord(","): COMMA, ord("["): OPEN, ord("]"): CLOSE, ord("0"): ZERO}
KIND_OF |= dict.fromkeys(b"123456789", DIGIT)
KINDS = bytes(KIND_OF.get(byte, OTHER) for byte in range(256))


def _pair(first: int, then: int) -> int:
    return first * 6 + then


NUMERAL = (ZERO, DIGIT)
ALLOWED = {
    *(_pair(first, then) for first in NUMERAL for then in (*NUMERAL, COMMA, CLOSE)),
    *(_pair(first, then) for first in (COMMA, OPEN) for then in (*NUMERAL, OPEN)),
    _pair(CLOSE, COMMA),
    _pair(CLOSE, CLOSE),
}
# The pairs that mark where lists meet, where a number starts with 0, and any other pair.
LISTS_OPEN, LISTS_CLOSE, NEXT_LIST, AFTER_LIST, ZERO_FIRST, NEVER = range(1, 7)
MARKED = {
    _pair(OPEN, OPEN): LISTS_OPEN,
    _pair(CLOSE, CLOSE): LISTS_CLOSE,
    _pair(COMMA, OPEN): NEXT_LIST,
    _pair(CLOSE, COMMA): AFTER_LIST,
    _pair(COMMA, ZERO): ZERO_FIRST,
    _pair(OPEN, ZERO): ZERO_FIRST,
}
MARKS = bytes(
    MARKED.get(code, 0) if code in ALLOWED else NEVER for code in range(256)
)  # the 36 codes of pairs, then bytes no pair makes


@dataclass(frozen=True, slots=True)
class ScannedTokens:
    """The body's other top-level fields, parsed; every list's ids in order, and each list's
    length; `single`: "input" was one list of ids."""

    fields: dict[str, Any]
    ids: np.ndarray
    lengths: np.ndarray
    single: bool


def scan(body: bytes) -> ScannedTokens | None:
    """The token lists of "input" and the other fields, or None: let the JSON parser decide."""
    start = _input_start(body)
    if start is None:
        return None
    end = _lists_end(body, start)
    if end is None:
        return None
    lists = _read_lists(body[start:end])
    if lists is None:
        return None
    fields = _other_fields(body, start, end)
    if fields is None:
        return None
    return ScannedTokens(fields, *lists)


def _input_start(body: bytes) -> int | None:
    if len(body) > MAX_SCANNED_BYTES:
        return None
    at = body.find(INPUT_KEY)
    if at < 0 or body.find(INPUT_KEY, at + 1) >= 0:
        return None
    found = INPUT_VALUE.match(body, at)
    return found.end() - 1 if found else None


def _lists_end(body: bytes, start: int) -> int | None:
    """Just past the last "]" before the next quote or brace (in JSON, the next key's, or the
    closing one): the end of the lists, if they are well formed (`_read_lists` checks)."""
    stops = [at for at in (body.find(b'"', start), body.find(b"}", start)) if at >= 0]
    end = body.rfind(b"]", start, min(stops, default=len(body)))
    return end + 1 if end >= 0 else None


def _read_lists(span: bytes) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """A list of ids, or a list of lists of ids."""
    compact = _without_spaces(span)
    if compact is None or len(compact) < 3:
        return None
    kinds = np.frombuffer(compact.translate(KINDS), np.uint8)
    marks = np.frombuffer((kinds[:-1] * 6 + kinds[1:]).tobytes().translate(MARKS), np.uint8)
    marked = np.flatnonzero(marks)  # the few pairs where lists meet, unless it is no list
    found = marks[marked]
    single = bool(kinds[1] != OPEN)
    if (found == NEVER).any() or not _plain_numbers(kinds, marked[found == ZERO_FIRST]):
        return None
    shaped = _one_list(compact) if single else _lists_of_lists(len(marks), marked, found)
    if not shaped:
        return None
    ids = np.fromstring(compact.translate(BRACKETS_TO_SPACES), dtype=np.int64, sep=",")
    if ids.size != compact.count(b",") + 1:  # in both shapes, a comma between each two ids
        return None
    if (ids == SATURATED).any():  # too big for int64: the JSON parser reads it
        return None
    if single:
        return ids, np.array([ids.size], np.int64), True
    return ids, _list_lengths(kinds, marked[found == AFTER_LIST]), False


def _without_spaces(span: bytes) -> bytes | None:
    """`span` without its spaces; None if a space split a number ("12 34")."""
    if not any(space in span for space in SPACES):
        return span
    raw = np.frombuffer(span, np.uint8)
    kept = np.flatnonzero(~np.isin(raw, np.frombuffer(SPACES, np.uint8)))
    digit = raw[kept] - ord("0") < 10
    if (digit[:-1] & digit[1:] & (np.diff(kept) > 1)).any():
        return None
    return span.translate(None, SPACES)


def _plain_numbers(kinds: np.ndarray, zero_first: np.ndarray) -> bool:
    """No number starts with 0 unless it is 0 (JSON has no leading zeros)."""
    after_zero = zero_first + 2
    return not np.isin(kinds[after_zero[after_zero < len(kinds)]], NUMERAL).any()


def _one_list(compact: bytes) -> bool:
    """Its only brackets are its first and last bytes."""
    return compact.count(b"[") == 1 == compact.count(b"]")


def _lists_of_lists(pairs: int, marked: np.ndarray, found: np.ndarray) -> bool:
    """ "[[" first, "]]" last and nowhere else, and every "]," followed by "[", so "," then "["
    only there: with the pairs `ALLOWED`, no list holds another and no id stands outside one."""
    if marked[found == LISTS_OPEN].tolist() != [0]:
        return False
    if marked[found == LISTS_CLOSE].tolist() != [pairs - 1]:
        return False
    return np.array_equal(marked[found == AFTER_LIST] + 1, marked[found == NEXT_LIST])


def _list_lengths(kinds: np.ndarray, after_list: np.ndarray) -> np.ndarray:
    """Each inner list's ids: the commas before its "]", less those before the list and the
    one that separates it from the list before, plus one."""
    ends = np.append(after_list, len(kinds) - 2)
    commas = np.searchsorted(np.flatnonzero(kinds == COMMA), ends)
    separators = np.arange(len(ends)) > 0
    return (np.diff(commas, prepend=0) - separators + 1).astype(np.int64)


def _other_fields(body: bytes, start: int, end: int) -> dict[str, Any] | None:
    stand_in = f"token-lists-{secrets.token_hex(16)}"
    rest = body[:start] + orjson.dumps(stand_in) + body[end:]
    try:
        data = orjson.loads(rest)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("input") != stand_in:
        return None
    del data["input"]
    return data
