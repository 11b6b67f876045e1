"""Evidence bundles: records, events and proofs in one file anyone can check offline."""
