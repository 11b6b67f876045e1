"""A witness: an independent party that remembers the last checkpoint it saw of a log and
cosigns a new one only after a consistency proof shows the log was only appended to."""

from copytrail.witness.state import Refused, Witness, fetch_from_url

__all__ = ["Refused", "Witness", "fetch_from_url"]
