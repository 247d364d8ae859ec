"""The error classes Doppel raises for bad input. The CLI prints them as one red line."""


class DoppelError(Exception):
    """Base of Doppel's own errors: a user-facing message that names the file and what is wrong."""


class MissingDependencyError(DoppelError):
    """An optional dependency is needed for this operation; the message carries the install command."""


class ManifestError(DoppelError):
    """A stage folder's manifest.json is missing, unreadable or of an unknown schema version."""
