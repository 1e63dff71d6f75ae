"""Errors the pipeline tells apart: poison (set aside) versus transient (retried)."""


class TrackerError(Exception):
    """Base class for the tracker's own errors."""


class PoisonMessage(TrackerError):
    """A message that can never be applied; it is dead-lettered with this reason.

    Retrying cannot help, so the consumer acknowledges the original once the
    dead letter is safely published, and keeps consuming.
    """


class DecodeError(PoisonMessage):
    """The bytes are not an oslo.messaging notification (envelope v1 or v2)."""


class InvalidPayload(PoisonMessage):
    """A Nova payload misses a required field or holds an impossible value."""


class ConcurrentUpdate(TrackerError):
    """A node's generation changed under us; the transaction is retried."""


class RefusedEvent(PoisonMessage):
    """The database refused an event for what it carries (a value too long, out of range)."""
