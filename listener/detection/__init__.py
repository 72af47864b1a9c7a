"""Crisis detection: pure detectors over per-brand count series.

``series`` holds the buckets, ``stats`` the robust statistics and tail probabilities, ``storm`` and
``smoulder`` the two detectors, ``episodes`` the firing/resolved state machine with hysteresis, and
``monitor`` runs them bucket by bucket, strictly causally. Nothing here reads the clock or the
database: ``now`` is a bucket index, and the series is handed in.
"""
