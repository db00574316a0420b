"""The exception every failing call raises."""

from . import _native
from .enums import Result


class FluxError(Exception):
    """A call into the engine failed: ``code`` is the ``Result``, ``message`` the library's
    sentence (``flux_last_error_message``)."""

    def __init__(self, code, message):
        self.code = Result(code)
        self.message = message
        super().__init__(f"{self.code.name}: {message}")


def check(code):
    """Raises ``FluxError`` for a non-OK result code, with this thread's last error message."""
    if code != Result.OK:
        raw = _native.lib().flux_last_error_message()
        raise FluxError(code, raw.decode("utf-8", "replace") if raw else "")
