"""Text identity: one normalisation, k-gram hashes, winnowing and MinHash, used by every matcher."""
