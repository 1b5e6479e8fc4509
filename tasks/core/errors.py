"""The one exception users see: a one-line message that names the problem and the fix."""


class UserError(Exception):
    """Bad input from the user (config, path, checkpoint). The CLI prints it and exits 2."""
