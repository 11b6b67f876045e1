"""Custody facts in other tools' formats: Croissant, OpenLineage, Hugging Face datasets."""
