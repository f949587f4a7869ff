"""Before and after in one run: the same benchmark against another checkout's server code.

`--before DIR` (a checkout of an earlier commit, e.g. `git worktree add --detach DIR <commit>`)
runs that checkout's `server` package beside this one's, with this `bench` package driving both.
A before side older than the reply parser `hiredis` runs without it, so each side has the
dependencies of its own code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def before_path(before: Path, without_hiredis: bool | None = None) -> str:
    """A PYTHONPATH on which `server` is `before`'s, `bench` is this one, and hiredis is absent
    if the before side did not depend on it yet (its pyproject.toml says; or `without_hiredis`)."""
    if not (before / "server" / "__init__.py").exists():
        raise SystemExit(f"--before: {before} has no server package")
    if without_hiredis is None:
        project = before / "pyproject.toml"
        without_hiredis = not project.exists() or "hiredis" not in project.read_text()
    shim = Path(tempfile.mkdtemp(prefix="plbench-before-"))
    (shim / "server").symlink_to(before.resolve() / "server")
    (shim / "bench").symlink_to(ROOT / "bench")
    if without_hiredis:
        (shim / "hiredis").mkdir()
        (shim / "hiredis" / "__init__.py").write_text('raise ImportError("not a dependency of the before side")\n')
    return str(shim)


def side_env(pythonpath: str | None) -> dict[str, str]:
    """The environment of a process of one side (None: this checkout, as installed)."""
    env = dict(os.environ)
    if pythonpath is None:
        env["PYTHONPATH"] = str(ROOT)
    else:
        env["PYTHONPATH"] = pythonpath
    return env


def ratio(after: float, before: float) -> str:
    return f"{after / before:.2f}" if before and after == after and before == before else "n/a"
