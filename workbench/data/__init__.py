"""Labelled inputs and the on-disk activation store: datasets -> collect -> store (locked, checksummed)."""
