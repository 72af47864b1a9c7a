"""Enrichment: language detection and sentiment scoring; one module per scorer, a version string each."""
