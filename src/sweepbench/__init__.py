"""sweepbench: how batch size, learning rate and optimizer change convergence and speed."""

__version__ = "0.1.0"


class SweepbenchError(Exception):
    """Bad input: the message is one line naming the bad value and what is allowed."""


def __getattr__(name: str):
    """`from sweepbench import Workload`: the contract of a user workload (sweepbench.workloads),
    imported on first use so that `import sweepbench` stays cheap."""
    if name == "Workload":
        from sweepbench.workloads import Workload

        return Workload
    raise AttributeError(f"module 'sweepbench' has no attribute {name!r}")
