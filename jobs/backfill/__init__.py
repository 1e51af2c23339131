"""Backfill: the feature SQL over archived files, only the windows the input covers completely."""
