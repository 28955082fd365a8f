"""The one exception type that reaches the user as a single line (exit code 2 on the CLI)."""


class HardpromptError(Exception):
    """A problem with the user's input or environment, phrased for the user."""
