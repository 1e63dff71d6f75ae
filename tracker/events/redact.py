"""What may be kept of a message set aside: everything but its request context.

The oslo envelope carries the caller's request context, auth token included,
as ``_context_*`` keys. A set-aside message keeps its structure (so that a
replay reaches the verdict the worker reached) with the context removed by
construction, in every JSON document it holds:

- the body is parsed as the worker parses it (JSON in UTF-8, -16 or -32);
  every object, at any depth, loses its ``_context_*`` keys, whatever escapes
  spelt them, but a ``_context_request_id`` the worker accepts as one (a
  short printable string): Nova's request id is no secret, and
  the worker matches failures with it, so a replayed letter needs it to reach
  the worker's verdict;
- an ``oslo.message`` string (an envelope inside an envelope, JSON encoded
  twice) is parsed and cleaned the same way, and written back only if
  something was removed, so that every other string, and with it the
  verdict, stays exactly as it was;
- any other string holding a JSON document with context in it would have to
  be rewritten, changing what the message says: the whole body is withheld;
- what must be JSON and is not (the body, an ``oslo.message``) is withheld:
  only its size and SHA-256 are kept. Context that cannot be parsed cannot be
  removed, so nothing of it is stored.
"""

import dataclasses
import hashlib
import json
from typing import Any

from tracker.events.envelope import (
    CONTEXT_PREFIX,
    MESSAGE_KEY,
    REQUEST_ID_KEY,
    parse_json,
    raw_bytes,
    valid_request_id,
)

_DOCUMENT_STARTS = ("{", "[", '"')
_BOM = "\ufeff"
_WHITESPACE = " \t\r\n"  # what JSON allows around a document
_NOT_JSON = object()


@dataclasses.dataclass(frozen=True)
class Redacted:
    """A body fit to store: ``text`` is ASCII JSON; ``withheld`` when the original is not kept."""

    text: str
    withheld: bool
    size: int
    sha256: str


def redact(body: bytes | str, max_bytes: int) -> Redacted:
    """The body without request context; withheld if it is larger than ``max_bytes``,
    so a letter is never much larger than that."""
    raw = raw_bytes(body)
    digest = hashlib.sha256(raw).hexdigest()
    if len(raw) > max_bytes:
        return _withheld(raw, f"larger than {max_bytes} bytes")
    try:
        cleaned, _removed = _clean_document(parse_json(raw))
        text = json.dumps(cleaned)
    except _HiddenContext:
        return _withheld(raw, "request context inside a field")
    except ValueError:
        return _withheld(raw, "not JSON")
    except RecursionError:
        return _withheld(raw, "nested too deeply")
    if len(text) > 2 * max_bytes:  # escapes can grow a body; a letter stays bounded
        return _withheld(raw, "too large once escaped")
    return Redacted(text, withheld=False, size=len(raw), sha256=digest)


def withhold(body: bytes | str, why: str) -> Redacted:
    """Only the size and digest of ``body``, and why."""
    return _withheld(raw_bytes(body), why)


def _withheld(raw: bytes, why: str) -> Redacted:
    digest = hashlib.sha256(raw).hexdigest()
    marker = {"withheld": why, "bytes": len(raw), "sha256": digest}
    return Redacted(json.dumps(marker), withheld=True, size=len(raw), sha256=digest)


def _clean_document(root: Any) -> tuple[Any, int]:
    """A copy of a parsed JSON document without context keys, and how many were removed.

    Iterative, not recursive: a document the parser accepted is never too
    deep to clean.
    """
    removed = 0
    holder: list[Any] = [None]
    pending: list[tuple[Any, Any, Any]] = [(root, holder, 0)]
    while pending:
        value, parent, slot = pending.pop()
        if isinstance(value, dict):
            kept = {key: item for key, item in value.items() if not _is_secret_context(key, item)}
            removed += len(value) - len(kept)
            parent[slot] = cleaned = dict.fromkeys(kept)  # keys in their order, values to come
            pending.extend((item, cleaned, key) for key, item in kept.items())
        elif isinstance(value, list):
            parent[slot] = items = [None] * len(value)
            pending.extend((item, items, index) for index, item in enumerate(value))
        elif isinstance(value, str):
            parent[slot], count = _clean_string(value, required=slot == MESSAGE_KEY)
            removed += count
        else:
            parent[slot] = value
    return holder[0], removed


def _clean_string(value: str, required: bool) -> tuple[str, int]:
    """A string holding a JSON document, cleaned; any other string as it is.

    ``required``: the string must be a JSON document (an ``oslo.message``);
    if the worker could not read it as one, it is withheld. A document hidden
    behind a byte order mark is not read by the worker either: it is kept only
    if it holds no context.
    """
    document = value.lstrip(_WHITESPACE + _BOM)
    parsed = _loads(document) if document.startswith(_DOCUMENT_STARTS) else _NOT_JSON
    if parsed is _NOT_JSON:
        return (_withheld_text(value), 1) if required else (value, 0)
    cleaned, removed = _clean_document(parsed)
    if removed and not required:
        # Rewriting a field would change what the message says, and a replay
        # could then apply what the worker refused: the whole body is withheld.
        raise _HiddenContext()
    if document == value.lstrip(_WHITESPACE):
        return (json.dumps(cleaned) if removed else value), removed
    return (_withheld_text(value), 1) if required else (value, 0)


def _is_secret_context(key: str, value: Any) -> bool:
    """Context keys but a request id the worker would read as one: anything else
    there (a dict, a list, a long string) may hold the token."""
    if not key.startswith(CONTEXT_PREFIX):
        return False
    return key != REQUEST_ID_KEY or valid_request_id(value) is None


class _HiddenContext(Exception):
    """Request context inside a field that is not a message: nothing of the body is kept."""


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _withheld_text(value: str) -> str:
    return _withheld(value.encode("utf-8", "surrogatepass"), "embedded message that is not JSON").text
