"""The stomp-push helper's two shipped files are one source: the plain script is the ES module wrapped to define one
global, ``StompPush``, and nothing else; neither needs a bundler."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess

import pytest

from tests.interop.stomp_push_build import GLOBAL_NAME, MODULE, PLAIN_SCRIPT, exported_names, plain_script
from tests.interop.stompjs import node_binary
from tests.servers import REPO

#: Loads the plain script in a fresh context and the module by import, and reports what each exposes.
COMPARE_BUILDS = """
import fs from 'node:fs';
import vm from 'node:vm';
import { Client } from '@stomp/stompjs';
const [plainPath, modulePath] = process.argv.slice(1);
const context = vm.createContext({ setTimeout, clearTimeout });
const before = new Set(Object.getOwnPropertyNames(context));
vm.runInContext(fs.readFileSync(plainPath, 'utf8'), context);
const globals = Object.getOwnPropertyNames(context).filter((name) => !before.has(name));
const builds = { plain: context.StompPush, module: await import(modulePath) };
const report = { globals };
for (const [name, api] of Object.entries(builds)) {
  const sequence = [0.25, 0.5, 1];
  let i = 0;
  const connection = new api.Connection({ Client, stomp: { brokerURL: 'ws://127.0.0.1:9/' }, backoff: { base: 10 } });
  report[name] = {
    names: Object.keys(api).sort(),
    version: api.VERSION,
    delays: [0, 3, 20].map((attempt) => api.backoffDelay(attempt, api.DEFAULT_BACKOFF, () => sequence[i++])),
    later: api.describeClose({ code: 1013 }, { headers: { reconnect: 'later', 'retry-after': '800' } }),
    lost: api.describeClose({ code: 1006, reason: '' }, null),
    state: connection.state,
    reconnectDelay: connection.client.reconnectDelay,
  };
}
console.log(JSON.stringify(report));
"""


def test_the_plain_script_is_the_module_wrapped_to_define_one_global() -> None:
    expected = plain_script(MODULE.read_text())
    assert PLAIN_SCRIPT.read_text() == expected, (
        "stomp-push.js drifted from stomp-push.mjs: edit the module, then run "
        "`.venv/bin/python -m tests.interop.stomp_push_build`"
    )


def test_the_module_imports_nothing_so_no_bundler_is_needed() -> None:
    source = MODULE.read_text()
    assert not re.findall(r"^\s*import\b|^\s*export\b.*\bfrom\b|\bimport\(", source, re.MULTILINE)
    assert exported_names(source) == [
        "Connection",
        "DEFAULT_BACKOFF",
        "SESSION_END_MESSAGES",
        "VERSION",
        "backoffDelay",
        "describeClose",
    ]


def test_the_wheel_ships_both_files_as_package_data() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["django_stomp_push"]
    package = REPO / "django_stomp_push"
    for path in (MODULE, PLAIN_SCRIPT):
        relative = path.relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), f"{relative} is not in {patterns}"


@pytest.mark.interop
def test_both_builds_expose_the_same_api_and_behave_the_same_in_node() -> None:
    result = subprocess.run(
        [node_binary(), "--input-type=module", "-e", COMPARE_BUILDS, str(PLAIN_SCRIPT), str(MODULE)],
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)

    assert report["globals"] == [GLOBAL_NAME]
    assert report["plain"] == report["module"]
    module = report["module"]
    assert module["names"] == sorted(exported_names(MODULE.read_text()))
    assert module["delays"] == [250, 4000, 30000]  # random * min(cap, base * factor**attempt)
    assert module["later"]["retryAfter"] == 800
    assert module["lost"] == {"code": 1006, "reason": "", "message": "", "reconnect": "now", "retryAfter": None}
    assert module["state"] == {"name": "stopped", "attempt": 0, "kind": "not-started", "reason": ""}
    assert module["reconnectDelay"] == 0  # stompjs never reconnects on its own: the helper does
