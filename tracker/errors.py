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


class OperatorError(TrackerError):
    """Something an operator must fix in the world around the tracker (a database
    unreachable or without schema, a file missing): console scripts print its
    message as one line and exit with ``exit_code``."""

    exit_code = 1


class ConfigError(OperatorError):
    """Something an operator must fix in the configuration or on the command line
    (a value, a driver to install)."""

    exit_code = 2
