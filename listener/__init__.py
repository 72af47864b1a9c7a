"""listener: social listening and crisis-alert daemon.

A mention travels one way: source -> item -> match -> enrich -> store -> detect -> alert -> deliver.
"""

__version__ = "0.1.0"
