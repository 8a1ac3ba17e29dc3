"""The one exception tree of digestd.

    DigestdError                   anything digestd raises on purpose
    ├── ConfigError                a configuration key, file or directory is wrong (exit status 2)
    ├── UsageError                 command-line arguments name nothing or make no sense (exit 2)
    ├── DumpError                  one dump cannot be ingested; the others go on
    │   ├── DumpReadError          unreadable, binary or undecodable file
    │   └── DumpFormatError        empty, or no known layout, or a malformed block
    ├── QueryError                 a topic query does not parse; carries the position (exit 2)
    ├── SubscriberError            an invalid address, unknown topic or time zone (exit 2)
    │   └── OptedOutError          the address unsubscribed: not re-subscribed unless asked
    ├── StoreError                 the database refused or could not be reached
    └── DeliveryError              a message could not be handed over
        ├── TemporaryDeliveryError worth retrying later (a 4xx about the recipient)
        │   └── TransportError     the server cannot take mail from digestd now (down, dropped,
        │                          timeout, TLS or login failure, 421, refusing digestd itself)
        └── PermanentDeliveryError not worth retrying (a 5xx about the recipient)

Every message is one line a user can act on; third-party errors are wrapped with
``raise ... from exc`` so the cause stays in the traceback.
"""

from __future__ import annotations


class DigestdError(Exception):
    """Base class of every error digestd raises on purpose."""

    #: process exit status when this error ends a command
    exit_status = 1


class ConfigError(DigestdError):
    """A configuration value is unknown, of the wrong type, or points nowhere."""

    exit_status = 2


class UsageError(DigestdError):
    """What was typed on the command line names nothing or makes no sense."""

    exit_status = 2


class DumpError(DigestdError):
    """A dump cannot be ingested. ``path`` names it when known."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        where = ""
        if path:
            where = f"dump {path}"
            if line:
                where += f" line {line}"
            where += ": "
        super().__init__(f"{where}{message}")
        self.reason = message


class DumpReadError(DumpError):
    """The file cannot be read or decoded as text (binary, unreadable, bad encoding)."""


class DumpFormatError(DumpError):
    """The text is empty or follows no known listing layout."""


class QueryError(DigestdError):
    """A topic query has a syntax error at ``position`` (0-based character offset)."""

    # Queries come from what a person typed: on the command line that is a usage error.
    exit_status = 2

    def __init__(self, message: str, *, query: str, position: int):
        self.query = query
        self.position = position
        self.reason = message
        super().__init__(f"query error at position {position + 1}: {message}")


class SubscriberError(DigestdError):
    """A subscriber cannot be added or changed: bad address, unknown topic or time zone."""

    exit_status = 2


class OptedOutError(SubscriberError):
    """The address unsubscribed; it is not subscribed again unless that is asked for."""

    exit_status = 1


class StoreError(DigestdError):
    """The database refused an operation or could not be reached."""


class DeliveryError(DigestdError):
    """A message could not be handed to its transport."""


class TemporaryDeliveryError(DeliveryError):
    """A failure worth retrying later: a 4xx reply, a dropped connection, a timeout."""


class TransportError(TemporaryDeliveryError):
    """The transport, not the recipient, is the problem: nothing more can be sent for now.

    Connection failures, drops, timeouts, TLS or login failures and 421 replies, and also
    permanent replies about digestd itself (``refused``: 5.7.x client or relay refusals,
    authentication required). No delivery is charged an attempt or a bounce for it.
    """

    def __init__(self, message: str, *, refused: bool = False):
        super().__init__(message)
        #: a permanent refusal of digestd (a setting to fix), not an outage (wait it out)
        self.refused = refused


class PermanentDeliveryError(DeliveryError):
    """A failure not worth retrying: a 5xx reply, a refused recipient."""
