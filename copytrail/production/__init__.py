"""Productions for discovery: manifests, Bates numbers, Concordance load files."""
