"""The orchestration: the one layer that hands one stage's output to the next.

In the order a mention travels: ``poll`` (fetch -> ``parse`` -> store, per source), ``detect``
(stored history -> detectors), ``alert`` (detections -> episodes and outbox rows), ``deliver``
(outbox -> channels), ``retention`` (old mentions go); ``cycle`` is the one composition of
poll, detect/alert and deliver that the daemon, ``poll --once`` and the demo run.
"""
