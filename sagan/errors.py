"""Exception types that end a `sagan` command with one line on stderr instead of a traceback."""


class UsageError(Exception):
    """A configuration, path or input the user can fix; the CLI prints it as one line and exits 2."""


class TrainingStopped(Exception):
    """Training ended early on purpose after saving a checkpoint: a signal arrived, or the losses stayed
    non-finite. The CLI prints the message as one line and exits with `exit_code`.

    Args:
        message: what happened and where the checkpoint is.
        exit_code: 128 + the signal number for signals (the shell's convention), 3 for non-finite losses.
    """

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
