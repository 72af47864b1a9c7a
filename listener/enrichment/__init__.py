"""Enrichment: language detection and sentiment scoring.

One module per scorer, each with a version string that is stored with what it produced.
"""
