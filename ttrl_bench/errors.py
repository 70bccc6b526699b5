"""Errors a user can fix: the CLI prints them as one line and exits with code 2."""


class UsageError(Exception):
    """Bad input: names the file, field or flag and what was expected."""


class BackendError(RuntimeError):
    """A sampling server failed after its retry budget: the CLI prints one line and exits with code 3
    (finished samples are stored; re-running the same command resumes)."""
