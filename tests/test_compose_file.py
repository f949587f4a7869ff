"""docker/compose.yaml, checked without Docker: its settings are ones the server accepts, the
nodes drain before Docker kills them, coturn checks the credentials the nodes mint, Caddy's file
is valid (`caddy validate`, when Caddy is installed), and the Redis and Sentinel start scripts
make configurations on which real redis-servers fail over and keep the new roles on disk."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
import yaml

from server.settings import Settings
from tests.conftest import free_port, redis_server_for_tests

DOCKER = Path(__file__).resolve().parent.parent / "docker"
EXAMPLE_ENV = {"SITE_ADDRESS": "clinic.example.org", "ACME_EMAIL": "ops@example.org", "TURN_HOST": "turn.example.org",
               "TURN_EXTERNAL_IP": "203.0.113.7", "TURN_SECRET": "a1b2c3d4e5f6a7b8c9d0e1f2",
               "PORCHLIGHT_SECRET_KEY": "k" * 64}


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, and $$ for a literal $."""
    def one(match: re.Match[str]) -> str:
        name, op, rest = match.group(1), match.group(2), match.group(3) or ""
        if env.get(name):
            return env[name]
        if op == ":?":
            raise AssertionError(f"{name} is required: {rest}")
        return rest if op == ":-" else ""
    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, value).replace("$$", "$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DOCKER / "compose.yaml").read_text()))


def test_both_nodes_start_with_settings_the_server_accepts(compose: dict[str, Any], tmp_path: Path) -> None:
    nodes = {name: s for name, s in compose["services"].items() if name.startswith("porchlight-")}
    assert len(nodes) == 2
    media = set()
    for service in nodes.values():
        env = {k: _interpolate(str(v), EXAMPLE_ENV) for k, v in service["environment"].items()}
        settings = Settings.from_env({**env, "PORCHLIGHT_DATA_DIR": str(tmp_path)})
        assert settings.redis_url is not None and settings.redis_url.startswith("redis+sentinel://")
        assert settings.turn_secret == EXAMPLE_ENV["TURN_SECRET"] and len(settings.turn_urls) == 2
        assert settings.public_url == "https://clinic.example.org"
        media.add(settings.media_address)
        # Docker sends SIGKILL after stop_grace_period: the drain must be over by then.
        grace = int(str(service["stop_grace_period"]).removesuffix("s"))
        assert grace >= settings.drain_seconds + 10
        assert "/readyz" in " ".join(service["healthcheck"]["test"])
    coturn = [_interpolate(arg, EXAMPLE_ENV) for arg in compose["services"]["coturn"]["command"]]
    assert "--use-auth-secret" in coturn and f"--static-auth-secret={EXAMPLE_ENV['TURN_SECRET']}" in coturn
    assert {arg.split("=", 1)[1] for arg in coturn if arg.startswith("--allowed-peer-ip=")} == media


def test_the_caddyfile_is_valid_and_sends_to_both_nodes_by_readiness() -> None:
    caddyfile = (DOCKER / "Caddyfile").read_text()
    assert "porchlight-1:8080 porchlight-2:8080" in caddyfile and "health_uri /readyz" in caddyfile
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed (apt-get install caddy) to validate the Caddyfile")
    result = subprocess.run([caddy, "validate", "--config", str(DOCKER / "Caddyfile"), "--adapter", "caddyfile"],
                            env={**os.environ, "SITE_ADDRESS": "clinic.example.org", "ACME_EMAIL": "ops@example.org"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "Valid configuration" in result.stdout + result.stderr, result.stderr


def _until(check: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except sync_redis.RedisError:
            pass
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_redis_and_sentinel_scripts_fail_over_and_the_new_roles_survive_a_restart(
        compose: dict[str, Any], tmp_path: Path) -> None:
    services = compose["services"]
    ports = {"redis-1": free_port(), "redis-2": free_port(), "sentinel-1": free_port()}

    def script(name: str) -> str:
        # Service names resolve only inside Docker: here they are "localhost", which Sentinel's
        # resolve-hostnames must still resolve; the ports are this test's.
        text = str(services[name]["command"][2]).replace("$$", "$")
        # One Sentinel here instead of three: its quorum is 1.
        text = text.replace("redis-1 6379 2", f"localhost {ports['redis-1']} 1")
        text = text.replace("redis-1 6379", f"localhost {ports['redis-1']}").replace("port 26379", "port 0")
        text = re.sub(r"replica-announce-ip redis-\d", "replica-announce-ip localhost", text)
        # A failover that Sentinel aborts (it saw the replica too early) is retried after twice
        # this: 4 s here rather than two minutes.
        text = text.replace("failover-timeout porchlight 60000", "failover-timeout porchlight 2000")
        return text.replace("sentinel announce-ip ${SENTINEL_NAME}\n", "")

    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str) -> subprocess.Popen[bytes]:
        data = tmp_path / name
        data.mkdir(exist_ok=True)
        text = script(name).replace("/data", str(data))
        text = text.replace("exec redis-server", f"exec {redis_server_for_tests()}").rstrip("\n")
        text += f" --port {ports[name]} --bind 127.0.0.1 {' '.join(args)}"
        env = {"SENTINEL_DOWN_AFTER_MS": "300", "SENTINEL_NAME": name}
        process = subprocess.Popen(["sh", "-ec", text], env={**os.environ, **env},
                                   stdout=(data / "out.log").open("wb"), stderr=subprocess.STDOUT)
        processes.append(process)
        return process

    def client(name: str) -> sync_redis.Redis:
        return sync_redis.Redis(port=ports[name], decode_responses=True, socket_timeout=1)

    try:
        first = start("redis-1")
        start("redis-2")
        start("sentinel-1")
        with client("redis-1") as r1:
            _until(lambda: r1.set("pl:check", "before") and True)
        with client("sentinel-1") as sentinel:
            _until(lambda: any(r.get("master-link-status") == "ok" and not r["is_sdown"]
                               for r in sentinel.sentinel_slaves("porchlight")))
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            _until(lambda: int(sentinel.sentinel_get_master_addr_by_name("porchlight")[1]) == ports["redis-2"])
        with client("redis-2") as r2:
            _until(lambda: r2.info("replication")["role"] == "master")
            assert r2.get("pl:check") == "before"
        # The promoted server wrote its new role into its own file: restarted, it stays master.
        assert "replicaof" not in (tmp_path / "redis-2" / "redis.conf").read_text().lower()
        assert "sentinel monitor porchlight" in (tmp_path / "sentinel-1" / "sentinel.conf").read_text()
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(10)


def test_every_variable_compose_reads_is_explained_in_the_example_env() -> None:
    lines = [line.split(" #", 1)[0] for line in (DOCKER / "compose.yaml").read_text().splitlines()
             if not line.lstrip().startswith("#")]
    used = set(re.findall(r"(?<!\$)\$\{(\w+)", "\n".join(lines)))
    explained = set(re.findall(r"^(\w+)=", (DOCKER / ".env.example").read_text(), re.M))
    assert used == explained
