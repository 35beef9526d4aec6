"""One Redis subscription per machine, shared by its server processes (``manage.py stomp_push_relay``).

:mod:`.server` is the relay, :mod:`.client` a hub's side of it (``STOMP_PUSH["RELAY"]``), :mod:`.wire` what they
say to each other.
"""
