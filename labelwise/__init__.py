"""labelwise: zero-shot text classification on a message queue."""

__version__ = "0.1.0"
