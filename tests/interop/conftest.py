"""Real servers for the interop tests: one private Redis, one testproject, two daphne processes sharing both.

Starting them takes seconds, so one cluster serves a whole test module; each test signs in its own session and
uses its own destinations. The servers offer 1 s heart-beats (STOMP_PUSH_HEARTBEAT) so a test can watch
several heart-beat periods pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.interop.stompjs import stompjs  # noqa: F401
from tests.servers import (
    DEMO_PASSWORDS,
    DaphneServer,
    HttpSession,
    Project,
    RedisServer,
    free_port,
    migrated_project,
)

HEARTBEAT_MS = 1000


@dataclass
class Cluster:
    redis: RedisServer
    project: Project
    #: Two servers on the same Redis and database: clients connect to ``a``, users log out on ``b``.
    a: DaphneServer
    b: DaphneServer
    #: The heart-beat interval both servers offer, in milliseconds.
    heartbeat_ms: int = HEARTBEAT_MS

    def login(self, username: str = "alice") -> HttpSession:
        return self.b.login(username, DEMO_PASSWORDS[username])

    def python(self, code: str) -> None:
        """Run ``code`` in another process with Django set up (``from django_stomp_push import push`` ...)."""
        result = self.project.python(code, timeout=60)
        assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    redis = RedisServer(free_port()).start()
    servers: list[DaphneServer] = []
    try:
        project = migrated_project(tmp_path_factory, redis.url)
        env = {"STOMP_PUSH_HEARTBEAT": f"{HEARTBEAT_MS},{HEARTBEAT_MS}"}
        for _ in range(2):
            server = DaphneServer(project, free_port(), env)
            servers.append(server)  # stopped below even if it fails to start
            server.start()
        yield Cluster(redis, project, *servers)
    finally:
        for server in servers:
            server.stop()
        redis.stop()
