"""The connection core: one STOMP connection bound to a Django session, independent of the transport it runs on.

A transport (:class:`~.transport.Transport`: a WebSocket through ASGI today, a SockJS session next) hands the
core what the client sent and carries out what the core writes. The core is split into rooms of their own:

- :mod:`.inbound`: what the client sent, parsed as it arrives, carried out one frame at a time, bounded;
- :mod:`.outbound`: what the server writes, buffered per connection, bounded, one writer;
- :mod:`.heartbeats`: heart-beats both ways;
- :mod:`.binding`: the Django session the connection is bound to (expiry, revalidation, activity, notices);
- :mod:`.actions`: what each client frame does (CONNECT, SUBSCRIBE, SEND, ...);
- :mod:`.endpoint`: the connection that puts them together and that the delivery hub delivers to.
"""
