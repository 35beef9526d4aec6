"""daphne support: the close-code fix (:mod:`.close`) and the push fast path (:mod:`.transport`), whose reads below
the public interfaces of daphne, Twisted and autobahn all sit in one checked seam (:mod:`.seam`).

Nothing here imports daphne, Twisted or autobahn until a daphne connection (or :func:`install`) needs them.
"""

from __future__ import annotations

from .close import install
from .transport import DaphneTransport

__all__ = ["DaphneTransport", "install"]
