"""The one exception type that means "the user asked for something that cannot work"."""


class UsageError(Exception):
    """A configuration, path or input the user can fix; the CLI prints it as one line and exits 2."""
