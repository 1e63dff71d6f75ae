"""orjson's reading of JSON text wherever it is the one ``json.loads`` gives.

orjson reads a Nova notification several times faster than ``json``, but not
every document the same way:

- it refuses NaN and Infinity, numbers too large for a double (``1e400``),
  escapes of lone surrogates (``"\\ud800"``) and a UTF-8 byte order mark,
  all of which ``json`` takes;
- it reads an integer beyond 64 bits as a float, where ``json`` keeps it exact;
- it nests up to 1024 levels, where ``json`` stops at the interpreter's
  recursion limit (about 990 levels, less the caller's stack).

:func:`read` answers only where orjson accepts the text and cannot read it
otherwise: never for text with a run of 19 digits (every integer orjson could
turn into a float has one) or with more opening brackets than
:data:`_MAX_OPENERS` (the deepest it could nest). Elsewhere the caller asks
``json``, which gives the result or the error message it always gave.
"""

from typing import Any, Final

import orjson

# Far below json's limit even under a deep call stack; Nova's messages hold a few dozen.
_MAX_OPENERS = 256
# orjson keeps integers from -2**63 to 2**64 - 1 exact; every integer outside has 19 digits or more.
_LONG_NUMBER = b"0" * 19
# Every digit becomes a "0" and every "{" a "[": then one search finds a long number
# and one count the opening brackets, each at C speed.
_CLASSES = bytes.maketrans(b"123456789{", b"000000000[")
UNSURE: Final = object()


def read(raw: bytes) -> Any:
    """The document in UTF-8 ``raw``, as ``json.loads(raw.decode())`` has it; ``UNSURE``
    where orjson refuses it or could read it otherwise (ask ``json`` then)."""
    classes = raw.translate(_CLASSES)
    if _LONG_NUMBER in classes or classes.count(b"[") > _MAX_OPENERS:
        return UNSURE
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return UNSURE
