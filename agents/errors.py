"""The one exception type for mistakes a user can fix."""


class UserError(Exception):
    """A bad env id, config key, value or file.

    The command-line tools print the message on one line and exit with code 2, without a
    traceback; the message names the problem and the fix. Programming errors stay ordinary
    exceptions so that their tracebacks reach us.
    """
