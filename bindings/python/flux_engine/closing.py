"""How every handle (engine, job, request, image) is freed: ``close()``, called by ``with`` and,
as a last resort, by the finaliser."""


class Closeable:
    """Context manager and finaliser around the subclass's idempotent ``close()``."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            # Nothing is left to free (the engine went first), or a callback dropped an engine's
            # last reference (WRONG_THREAD): a finaliser cannot report either.
            pass
