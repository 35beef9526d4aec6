"""The benchmark report: medians and ratios per cell, and --write-docs keeping the sections it did not run."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench import loadgen, rabbitmq, scale_fleet, storm
from bench.harness import RunResult
from bench.report import Table, rate
from bench.run import leave_out_unavailable, parse_args, read_sections, render_page, render_section
from bench.scenarios import scale
from bench.scenarios.connect_storm import FULL, StormTables
from bench.servers import ASGI_SERVERS


def fanout_table() -> Table:
    table = Table(
        title="Fan-out",
        metric="deliveries/s",
        fmt=rate,
        row_header="subscribers",
        columns={"textbook": "textbook", "ours": "ours"},
        baselines=["textbook"],
    )
    for value in (1_000, 800, 900):
        table.cell("1,000", "textbook").add(value)
    for value in (30_000, 27_000, 36_000):
        table.cell("1,000", "ours").add(value)
    return table


def test_cells_show_the_median_and_its_ratio_to_the_baseline_of_the_same_run():
    rendered = fanout_table().render()
    assert "| 1,000 | 900 | 30k (33x textbook) |" in rendered


def test_a_failed_repeat_is_reported_next_to_the_median():
    table = fanout_table()
    table.cell("1,000", "ours").fail("ServerFailed: exited with 1")
    assert "30k (33x textbook) [1 of 4 runs failed]" in table.render()
    assert "failed: ServerFailed: exited with 1" in table.render_details()


def test_writing_the_page_replaces_the_sections_that_ran_and_keeps_the_others():
    old = render_page(
        {
            "fanout": render_section("fanout", [fanout_table()], "Run 1", 0),
            "latency": render_section("latency", [], "Run 1", 0),
        },
        ["- Machine: test"],
        2,
    )
    newer = fanout_table()
    newer.cell("1,000", "ours").add(60_000)
    newer.cell("1,000", "ours").add(61_000)
    page = render_page({**read_sections(old), "fanout": render_section("fanout", [newer], "Run 2", 0)}, [], 2)
    sections = read_sections(page)
    assert list(sections) == ["fanout", "latency"]  # registry order
    assert "Run 2" in sections["fanout"] and "Run 1" not in sections["fanout"]
    assert "36k (40x textbook)" in sections["fanout"]
    assert "Run 1" in sections["latency"]
    assert page.count("<!-- bench:fanout -->") == 1


# -- connect storms: failures by kind, the tables of one session database ------------------------------------
@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("ECONNRESET", "TCP reset"),
        ("ECONNREFUSED", "TCP connection refused"),
        ("socket hang up", "closed before the HTTP response"),
        ("Opening handshake has timed out", "handshake timeout"),
        ("timeout waiting for the WebSocket handshake", "handshake timeout"),
        ("HTTP 503 on WebSocket upgrade", "HTTP 503"),
        ("ERROR frame: server busy", "ERROR server busy"),
        ("closed 1013 before subscribed", "close 1013"),
        ("timeout waiting for RECEIPT", "no RECEIPT in time"),
        ("ramp timeout", "not started (ramp timeout)"),
        ("EMFILE", "EMFILE"),
    ],
)
def test_a_failed_client_is_counted_under_what_happened_to_it(reason, kind):
    assert storm.failure_kind(reason) == kind


def test_failures_are_described_by_kind_most_frequent_first():
    errors = {"Opening handshake has timed out": 10, "ECONNRESET": 2_400, "socket hang up": 5}
    described = storm.describe_failures(2_415, 3_000, errors)
    assert (
        described
        == "2,415 of 3,000 failed: TCP reset x2,400, handshake timeout x10, closed before the HTTP response x5"
    )


def storm_result(connected: int, failed: int, errors=None, sentinel=None, ramp_s: float = 12.5) -> RunResult:
    return RunResult(
        mode="storm",
        ready={"connected": connected, "failed": failed, "errors": errors or {}, "ramp_s": ramp_s},
        measured={"connects_per_s": connected / ramp_s, "p50_ms": 800.0, "p99_ms": 9_000.0, "sentinel": sentinel},
        server_cpu_pct=95.0,
        loadgen_cpu_pct=40.0,
    )


def test_a_storm_in_which_every_client_got_in_has_a_time_and_a_silent_sentinel_is_no_news():
    sentinel = {"closed": None, "error": None, "max_silence_ms": 1_400, "server_heartbeat_ms": 1_000}
    outcome = storm.Outcome.of(storm_result(1_000, 0, sentinel=sentinel), 1_000)
    assert outcome.all_subscribed and outcome.notes() == []
    assert outcome.extras(storm_result(1_000, 0))["sentinel's longest silence"] == 1_400


def test_the_sentinels_silence_is_left_out_where_the_server_heart_beats_at_another_period():
    sentinel = {"closed": None, "error": None, "max_silence_ms": 9_000, "server_heartbeat_ms": 10_000}
    assert storm.Outcome.of(storm_result(30, 0, sentinel=sentinel), 30).sentinel_silence_ms is None


def test_a_closed_sentinel_is_noted_with_its_code_and_error():
    sentinel = {"closed": 1011, "error": "heart-beat timeout", "max_silence_ms": 2_100, "server_heartbeat_ms": 1_000}
    notes = storm.Outcome.of(storm_result(2_000, 0, sentinel=sentinel), 2_000).notes()
    assert notes == ["the client heart-beating every 1000 ms was closed: 1011 (heart-beat timeout)"]


def storm_columns(targets=("websockets", "rabbitmq", "ours"), servers=("daphne", "uvicorn")) -> list[storm.Column]:
    return storm.columns(SimpleNamespace(targets=list(targets), asgi_servers=list(servers)))


def test_the_storm_runs_django_stomp_push_under_every_chosen_asgi_server_after_the_baselines():
    columns = storm_columns()
    assert [c.key for c in columns] == ["websockets", "rabbitmq", "ours@daphne", "ours@uvicorn"]
    assert [c.signed_in for c in columns] == [False, False, True, True]
    assert columns[3].server == "uvicorn" and columns[3].app == storm.SIGNED_IN_APP
    assert columns[2].label == "django-stomp-push, daphne"


def test_a_storm_load_opens_every_client_at_once_each_with_its_own_cookie():
    load = storm.load(3, 3, ["sessionid=a", "sessionid=b", "sessionid=c"], "sessionid=s")
    assert load["mode"] == "storm" and load["subscribers"] == load["connect_concurrency"] == 3
    assert load["cookies"] == ["sessionid=a", "sessionid=b", "sessionid=c"]
    assert load["sentinel_cookie"] == "sessionid=s" and load["sentinel_heartbeat_ms"] == 1_000
    assert storm.timeout(load) > load["deadline_s"] > storm.CONNECT_TIMEOUT_S


def test_a_storm_with_failures_has_no_time_and_counts_them_by_kind():
    tables = StormTables("sqlite", storm_columns(), "memory", FULL)
    clean = storm.Outcome.of(storm_result(3_000, 0, ramp_s=3.5), 3_000)
    tables.record("3,000", "rabbitmq", True, clean, storm_result(3_000, 0))
    errors = {"ECONNRESET": 2_415, "Opening handshake has timed out": 2}
    broken = storm_result(583, 2_417, errors, ramp_s=31.0)
    tables.record("3,000", "ours@daphne", True, storm.Outcome.of(broken, 3_000), broken)
    time_table = tables.time.render()
    assert "| 3,000 | — | 3.5 s | failed | — |" in time_table
    assert "failed: 2,417 of 3,000 failed: TCP reset x2,415, handshake timeout x2" in tables.time.render_details()
    assert "| 3,000 | — | 0 | 2,417 | — |" in tables.failures.render()
    assert "2,417 of 3,000 failed: TCP reset x2,415" in tables.failures.render_details()


def test_connects_per_second_are_recorded_even_when_some_clients_failed():
    tables = StormTables("sqlite", storm_columns(), "memory", FULL)
    result = storm_result(1_990, 10, {"ECONNRESET": 10}, ramp_s=10.0)
    tables.record("2,000, 100 in flight", "ours@uvicorn", False, storm.Outcome.of(result, 2_000), result)
    assert "| 2,000, 100 in flight | — | — | — | 199 |" in tables.rate.render()
    assert "10 of 2,000 failed: TCP reset x10" in tables.rate.render_details()


def test_the_second_databases_tables_show_the_sessionless_servers_of_the_first_for_reference():
    columns = storm_columns()
    sqlite, postgresql = (StormTables(db, columns, "redis", FULL) for db in ("sqlite", "postgresql"))
    broker, mine = storm_result(1_000, 0, ramp_s=2.0), storm_result(1_000, 0, ramp_s=4.0)
    sqlite.record("1,000", "rabbitmq", True, storm.Outcome.of(broker, 1_000), broker)
    postgresql.record("1,000", "ours@daphne", True, storm.Outcome.of(mine, 1_000), mine)
    postgresql.borrow(sqlite, ["websockets", "rabbitmq"])
    assert "| 1,000 | — | 2 s | 4 s (2x rabbitmq) | — |" in postgresql.time.render()
    assert "RabbitMQ" not in postgresql.time.render_details()  # detailed where it was measured


# -- servers, RabbitMQ, targets ------------------------------------------------------------------------------
def test_daphne_listens_with_a_backlog_through_its_endpoint_string():
    daphne = ASGI_SERVERS["daphne-backlog"].argv("app:application", 8123)
    assert daphne[-3:] == ["-e", "tcp:port=8123:interface=127.0.0.1:backlog=1024", "app:application"]
    uvicorn = ASGI_SERVERS["uvicorn"].argv("app:application", 8123)
    assert uvicorn[1:8] == ["-m", "uvicorn", "app:application", "--host", "127.0.0.1", "--port", "8123"]


def test_a_private_rabbitmq_node_has_its_own_name_ports_files_and_web_stomp_on_localhost(tmp_path):
    ports = {"amqp": 1, "dist": 2, "epmd": 3, "web_stomp": 4}
    env = rabbitmq.node_env(tmp_path, "bench-1-1@localhost", ports)
    assert env["RABBITMQ_NODENAME"] == "bench-1-1@localhost"
    assert (env["RABBITMQ_NODE_PORT"], env["RABBITMQ_DIST_PORT"], env["ERL_EPMD_PORT"]) == ("1", "2", "3")
    for name in (
        "RABBITMQ_MNESIA_BASE",
        "RABBITMQ_LOG_BASE",
        "RABBITMQ_ENABLED_PLUGINS_FILE",
        "RABBITMQ_CONF_ENV_FILE",
    ):
        assert env[name].startswith(str(tmp_path))
    conf = rabbitmq.config_text(4)
    assert "web_stomp.tcp.port = 4\n" in conf and "web_stomp.tcp.ip = 127.0.0.1\n" in conf
    assert rabbitmq.CONNECT_HEADERS["host"] == "/"  # the host header names the virtual host


def test_rabbitmq_is_left_out_with_its_reason_when_it_is_not_installed(monkeypatch):
    monkeypatch.setattr(rabbitmq, "server_script", lambda: None)
    targets = ["websockets", "rabbitmq", "ours"]
    assert leave_out_unavailable(targets) == ["RabbitMQ Web-STOMP skipped: rabbitmq-server is not installed"]
    assert targets == ["websockets", "ours"]


def test_smoke_runs_leave_rabbitmq_out_unless_it_is_named():
    assert "rabbitmq" not in parse_args(["--smoke"]).targets
    assert "rabbitmq" in parse_args([]).targets
    assert parse_args(["--smoke", "--targets", "rabbitmq,ours"]).targets == ["rabbitmq", "ours"]


@pytest.mark.skipif(
    shutil.which("node") is None or not Path("node_modules/ws").is_dir(), reason="node and npm ci are needed"
)
def test_a_config_too_long_for_one_argument_goes_through_a_file_and_refused_clients_are_counted(tmp_path):
    config = {"mode": "storm", "subscribers": 3, "connect_concurrency": 3, "urls": ["ws://127.0.0.1:9/ws"]}
    config["cookies"] = ["sessionid=" + "x" * 40_000] * 3  # 120 KB: over what one argv string may hold
    events = loadgen.run(config, {}, tmp_path / "loadgen.log", timeout=60)
    assert (tmp_path / "loadgen.config.json").exists()
    assert events["ready"].data["failed"] == 3
    assert events["result"].data["errors"] == {"ECONNREFUSED": 3}


# -- scale-out: hub stand-ins on the core and pub/sub layers -------------------------------------------------
def scale_phase(received: list[int], expected: int = 100, errors: int = 0) -> scale_fleet.PhaseResult:
    hubs = [
        {"expected": expected, "received": n, "duplicates": 0, "last_at": 5.0, "latencies_ms": [], "layer_errors": 0}
        for n in received
    ]
    usage = scale_fleet.Snapshot(at=0.0, redis_s=0.0, hubs_s=0.0, pusher_s=0.0, machine_s=0.0)
    pushed = {"errors": errors, "error": "TimeoutError: push(): LAYER_TIMEOUT" if errors else ""}
    late = [f"hub {i + 1}" for i, n in enumerate(received) if n < expected]
    return scale_fleet.PhaseResult(pushed, hubs, usage, usage, late)


def test_a_scale_phase_in_which_a_hub_missed_pushes_is_a_failure_that_says_how_many():
    assert scale_phase([100, 100, 100]).problems() == []
    assert scale_phase([100, 97, 100, 0]).problems() == ["lost 103 of 400 deliveries (2 of 4 hubs short)"]
    assert scale_phase([100], errors=2).problems() == ["2 pushes failed (TimeoutError: push(): LAYER_TIMEOUT)"]


def test_scale_tables_compare_the_pubsub_layer_with_the_core_layer_per_k_and_show_losses():
    tables = scale.ScaleTables(scale.SMOKE, [1, 32])
    headline = scale.row(32, scale.HEADLINE)
    tables.redis_cpu.cell(headline, "core").add(4_310.0)
    tables.redis_cpu.cell(headline, "pubsub").add(12.0)
    tables.fail(1, "pubsub", scale.LATENCY, "lost 3 of 200 deliveries (1 of 2 hubs short)")
    rendered = tables.redis_cpu.render()
    assert rendered.index("| 1, apush, 16 coroutines |") < rendered.index("| 32, apush, 16 coroutines |")
    assert "| 32, apush, 16 coroutines | 4.31 ms | 12 µs (0.0028x core) |" in rendered
    assert "| 1 | — | failed |" in tables.p99.render()
    assert "failed: lost 3 of 200 deliveries (1 of 2 hubs short)" in tables.p50.render_details()


def test_scale_takes_its_hub_counts_from_sizes_up_to_its_limit():
    bench = SimpleNamespace(sizes=None, log=print)
    assert scale.hub_counts(bench, scale.FULL) == [1, 4, 16, 32]
    bench.sizes = [32, 1000]  # 1,000 is a fan-out size of the same run
    assert scale.hub_counts(bench, scale.FULL) == [32]
    assert scale.quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 3.0 and scale.quantile([1.0, 2.0], 0.99) == 2.0


@pytest.mark.redis
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_every_hub_stand_in_joins_the_group_and_receives_every_push_of_both_senders(redis_layer, tmp_path):
    with scale_fleet.fleet(redis_layer, 2, tmp_path) as running:
        for command in (
            {"mode": "async", "concurrency": 4, "latency": 1},
            {"mode": "threads", "concurrency": 2},
            {"mode": "async", "rate": 200, "latency": 1},
        ):
            result = running.phase({"cmd": "push", "count": 40, **command}, push_timeout=60, stall_s=5)
            assert result.problems() == [] and result.late == []
            assert (result.received, result.expected) == (80, 80)
            assert len(result.latencies_ms()) == (80 if command.get("latency") else 0)
            assert result.last_delivery >= result.pushed["t0"] and result.pushed["cpu_s"] > 0
            assert result.after.redis_s > result.before.redis_s
