"""Sources: fetching only; one configured source -> Items."""
