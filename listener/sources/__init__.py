"""Sources: fetching only; one configured source -> Items.

httpx imports its command-line tool (``httpx._main``: rich's syntax highlighting and pygments'
lexers, 2.5 MB of the daemon) whenever rich and pygments are installed, as they are with
listener, which never runs that tool: it is made unimportable here (the documented ``None`` in
``sys.modules``) before ``client`` and ``wire`` import httpx, which then has a stub ``main``.
"""

import sys

sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
