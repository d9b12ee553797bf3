"""The platform's exception tree.

Data errors (a record that can never be processed: dead-letter it) are kept apart from
transient ones (a dependency is down: retry, don't commit), the split quix-streams and
clickhouse-connect make.
"""


class VdpError(Exception):
    """Base of every error the platform raises on purpose."""


class ConfigurationError(VdpError):
    """A setting is missing or inconsistent; raised at start-up."""


class TransientError(VdpError):
    """A dependency is unavailable for now; the operation may be retried."""


class DataError(VdpError):
    """A record or request is invalid and will stay invalid; never retried."""


class StackError(VdpError):
    """The local stack (broker, embedded ClickHouse) could not be started or stopped."""
