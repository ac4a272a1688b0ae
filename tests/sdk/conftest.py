"""Fixtures shared by the SDK-driven tests: one `cfsetup emulator --port 0` per test module.

The emulator is the real binary (built by `cargo test` before this runs). Its first stdout lines are
`export NAME=value`; they are parsed into a dict, so a test reads e.g. ``emu["CLOUDFLARE_ACCOUNT_ID"]``.
"""

import os
import subprocess
import time
import urllib.request
import json

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cfsetup_bin():
    explicit = os.environ.get("CFSETUP_BIN")
    if explicit:
        return explicit
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "debug", "cfsetup")


class Emu(dict):
    """The emulator's exports, plus helpers."""

    @property
    def base_url(self):
        return self["CLOUDFLARE_API_BASE_URL"]

    @property
    def origin(self):
        # http://127.0.0.1:PORT, without /client/v4
        return self.base_url.rsplit("/client/v4", 1)[0]

    def api(self, method, path, body=None, token=None):
        """A raw REST call with the Global API Key (or a token): (status, parsed JSON)."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        else:
            headers["X-Auth-Email"] = self["CLOUDFLARE_EMAIL"]
            headers["X-Auth-Key"] = self["CLOUDFLARE_GLOBAL_KEY"]
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def permission_group(self, name, scope):
        status, body = self.api("GET", "/user/tokens/permission_groups")
        assert status == 200, body
        for g in body["result"]:
            if g["name"] == name and scope in g["scopes"]:
                return g["id"]
        raise KeyError(name)

    def mint_token(self, name, policies, condition=None):
        """Creates a user token through the REST API with the Global API Key: (id, value)."""
        body = {"name": name, "policies": policies}
        if condition is not None:
            body["condition"] = condition
        status, resp = self.api("POST", "/user/tokens", body)
        assert status == 200, resp
        return resp["result"]["id"], resp["result"]["value"]


def start_emulator(*flags):
    """Starts `cfsetup emulator --port 0 [flags…]`: (process, exports)."""
    binary = cfsetup_bin()
    if not os.path.exists(binary):
        pytest.fail(f"{binary} is missing: run `cargo build` first (scripts/test.sh does)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
    env["NO_COLOR"] = "1"
    proc = subprocess.Popen(
        [binary, "emulator", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
        text=True,
    )
    exports = Emu()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith("export "):
            break
        name, _, value = line[len("export "):].partition("=")
        exports[name] = value
        if name == "CLOUDFLARE_ZONE_ID":
            break
    if "CLOUDFLARE_API_BASE_URL" not in exports:
        proc.kill()
        raise RuntimeError("the emulator printed no exports: " + proc.stderr.read())
    return proc, exports


def stop_emulator(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def emu():
    proc, exports = start_emulator()
    try:
        yield exports
    finally:
        stop_emulator(proc)


@pytest.fixture
def emu_with():
    """A factory: ``emu_with("--s3-conflict-409")`` starts another emulator with those flags,
    stopped after the test."""
    started = []

    def start(*flags):
        proc, exports = start_emulator(*flags)
        started.append(proc)
        return exports

    try:
        yield start
    finally:
        for proc in started:
            stop_emulator(proc)
