"""Data: sources -> splits -> tokens -> vocabulary -> id arrays -> batches."""
