"""copytrail: the chain of custody for LLM training data."""

from copytrail.library import Library

__all__ = ["Library"]
__version__ = "0.1.0"
