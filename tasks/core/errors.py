"""The one exception users see: a one-line message that names the problem and the fix."""


class UserError(Exception):
    """Bad input from the user (config, path, checkpoint). The CLI prints it and exits 2."""


class Interrupted(Exception):
    """Training stopped by Ctrl-C or SIGTERM after writing a checkpoint; the message says how to resume.

    The CLI prints it and exits 130 (the shell's code for an interrupt).
    """
