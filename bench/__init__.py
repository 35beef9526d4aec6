"""Benchmarks of django-stomp-push against a textbook Channels server and a bare websockets server.

Run ``python -m bench --help`` (or ``python bench/run.py``).
"""
