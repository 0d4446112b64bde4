"""Errors that convscope reports to users: each message names the problem and the fix."""


class ConvscopeError(Exception):
    """Base class for errors shown to the user as one clear message (no traceback)."""


class WriteError(ConvscopeError):
    """A file that cannot be written (a full disk, read-only storage); names the path and fix."""


class SpecError(ConvscopeError):
    """A network spec that cannot be built (names the layer index and type)."""


class DataError(ConvscopeError):
    """A dataset file that is missing, corrupt or inconsistent (names the file)."""


class RunError(ConvscopeError):
    """A run directory or model file that cannot be used."""


class ImageError(ConvscopeError):
    """A picture that cannot be decoded or fitted; ``status``: the HTTP status the explorer
    answers it with (400, or 413 for one too large)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
