"""Ingest: read raw corpora, validate every row, write examples and rejects."""
