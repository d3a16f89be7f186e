"""The exceptions retrainer raises.

Every error derives from :class:`RetrainerError` and from the builtin it resembles, so callers
can catch either. Messages say what is wrong, what was expected, what was received and, where
it helps, how to fix it. Only the interfaces (CLI, server) translate errors into exit codes or
HTTP statuses.
"""

from __future__ import annotations


class RetrainerError(Exception):
    """Root of every error raised by retrainer."""


class ConfigError(RetrainerError, ValueError):
    """A configuration file or value is invalid.

    ``problems`` holds one line per problem (key path, bad value, what is expected).
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class DataError(RetrainerError, ValueError):
    """The data loaded for a run cannot be used (missing column, NaN target, empty window...)."""


class SourceError(RetrainerError, OSError):
    """A data source could not be read."""


class StorageError(RetrainerError, OSError):
    """A store (metadata database, artifacts) could not be opened or reached."""


class ModelNotFoundError(RetrainerError, LookupError):
    """A model version, alias or pipeline does not exist."""


class ArtifactIntegrityError(RetrainerError, ValueError):
    """An artifact's content does not match its recorded sha256 (tampered or truncated)."""


class UntrustedArtifactError(RetrainerError, ValueError):
    """A serialized model contains types that are not trusted for loading."""


class SchemaVersionError(RetrainerError, RuntimeError):
    """The metadata database schema is out of date or newer than this version of retrainer."""


class ConcurrencyError(RetrainerError, RuntimeError):
    """A write lost a race with another process (e.g. the database stayed locked)."""


class TrainingError(RetrainerError, RuntimeError):
    """The user's training code raised, or produced something that is not a model."""


class NotifierError(RetrainerError, OSError):
    """A notifier could not deliver an alert (refused, unreachable, timed out...).

    Examples
    --------
    >>> issubclass(NotifierError, OSError)
    True
    """
