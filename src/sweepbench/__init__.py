"""sweepbench: how batch size, learning rate and optimizer change convergence and speed."""

__version__ = "0.1.0"


class SweepbenchError(Exception):
    """Bad input: the message is one line naming the bad value and what is allowed."""
