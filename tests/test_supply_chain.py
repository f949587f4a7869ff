"""What is installed and shipped: the lock agrees with pyproject, NOTICE names every runtime
dependency, and the tests run against the Redis major version production runs."""

from __future__ import annotations

import os
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from server.store.connection import Redis
from tests.conftest import redis_server_for_tests
from tools.thirdparty import notice_lines, runtime_components

ROOT = Path(__file__).resolve().parent.parent
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def locked() -> dict[str, tuple[str, list[str]]]:
    """requirements.lock as {name: (version, hashes)}."""
    entries: dict[str, tuple[str, list[str]]] = {}
    current: list[str] = []
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if match := _PIN.match(line):
            current = []
            entries[canonicalize_name(match[1])] = (match[2].rstrip(" \\"), current)
        elif line.strip().startswith("--hash="):
            current.append(line.strip().removesuffix("\\").strip())
    return entries


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]


def test_every_declared_dependency_is_locked_at_a_version_it_allows() -> None:
    lock = locked()
    wrong = []
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        if name not in lock:
            wrong.append(f"{requirement}: not in requirements.lock")
        elif not requirement.specifier.contains(lock[name][0], prereleases=True):
            wrong.append(f"{requirement}: locked at {lock[name][0]}")
    assert not wrong, "pyproject.toml and requirements.lock disagree (run `make lock`):\n" + "\n".join(wrong)


def test_every_locked_package_has_hashes() -> None:
    assert all(hashes for _, hashes in locked().values())


def test_the_environment_under_test_is_the_locked_one() -> None:
    different = {}
    for name, (version, _) in locked().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "not installed"
        if installed != version:
            different[name] = f"{installed} (locked: {version})"
    assert not different, f"installed versions differ from requirements.lock (run `make`): {different}"


def test_notice_names_every_runtime_dependency_and_its_licence() -> None:
    notice = (ROOT / "NOTICE").read_text()
    missing = [line.strip() for line in notice_lines(runtime_components()) if line not in notice.splitlines()]
    assert not missing, ("NOTICE lacks these components or their licences changed; run "
                         "`python -m tools.thirdparty notice --update NOTICE` and review:\n" + "\n".join(missing))


def test_the_project_is_apache_2_licensed() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert "Apache License\n                           Version 2.0, January 2004" in (ROOT / "LICENSE").read_text()


async def test_the_tests_run_against_redis_7_or_later_when_required(redis: Redis) -> None:
    version = (await redis.info("server"))["redis_version"]
    where = f"redis-server {version} ({redis_server_for_tests()})"
    if os.environ.get("PORCHLIGHT_REQUIRE_REDIS7") != "1":
        pytest.skip(f"{where}; set PORCHLIGHT_REQUIRE_REDIS7=1 to require 7 or later, as compose runs")
    assert int(version.split(".")[0]) >= 7, f"{where}: compose runs Redis 7; install redis-server 7 on PATH"
