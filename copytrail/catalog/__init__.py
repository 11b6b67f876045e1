"""Domain tables and records: what the library holds, indexed from the log."""
