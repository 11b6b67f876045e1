"""Models: a reference trainer that records exactly which tokens it read, a memorization probe
per work, and a decoding-time guard. PyTorch and `transformers` are imported only here."""
