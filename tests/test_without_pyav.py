"""The serving process leaves PyAV out (server/media/without_pyav.py): aiortc still imports, with
every name it takes from PyAV standing in, and decoding or encoding would fail loudly.

Run in fresh interpreters: this test process has PyAV loaded (its peers decode). A room with real
peers against real `porchlight serve` processes that have not loaded PyAV: tests/test_scale_out.py."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import aiortc

from server.media import without_pyav


def run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_stand_in_names_all_that_aiortcs_modules_import_from_pyav() -> None:
    imported: dict[str, set[str]] = {}
    for path in Path(aiortc.__file__).parent.rglob("*.py"):
        if "contrib" in path.parts:  # aiortc.contrib (media files, players, recorders) is not imported
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "av":
                imported.setdefault(node.module, set()).update(alias.name for alias in node.names)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "av":
                        imported.setdefault(alias.name, set())
    assert imported, "aiortc no longer imports PyAV: server/media/without_pyav.py can go"
    for module, names in imported.items():
        assert module in without_pyav.IMPORTED, module
        assert names <= set(without_pyav.IMPORTED[module]), (module, names)


def test_the_application_imports_without_pyav_and_decoding_would_fail_loudly() -> None:
    printed = run(
        "import sys, pkgutil, importlib\n"
        "from server.media import without_pyav\n"
        "assert without_pyav.leave_out()\n"
        "import aiortc, aiortc.codecs, server.app\n"
        "for module in pkgutil.walk_packages(aiortc.__path__, 'aiortc.'):\n"
        "    if '.contrib' not in module.name:\n"
        "        importlib.import_module(module.name)\n"
        "assert 'av.libs' not in open('/proc/self/maps').read()  # no FFmpeg library mapped\n"
        "from aiortc.codecs import get_decoder, get_encoder\n"
        "from aiortc.rtcrtpparameters import RTCRtpCodecParameters\n"
        "vp8 = RTCRtpCodecParameters(mimeType='video/VP8', clockRate=90000, payloadType=96)\n"
        "import av\n"
        "get_encoder(vp8)  # made lazily; it could only encode a frame, and none can be made:\n"
        "for make in (lambda: get_decoder(vp8), lambda: av.VideoFrame(640, 360, 'yuv420p')):\n"
        "    try:\n"
        "        make()\n"
        "    except without_pyav.NotLoaded as exc:\n"
        "        print(type(exc).__name__)\n"
        "print(isinstance(av, without_pyav.StandIn), hasattr(av, 'open'))\n")
    assert printed.splitlines() == ["NotLoaded", "NotLoaded", "True False"]


def test_pyav_already_imported_stays() -> None:
    assert run("import av\nfrom server.media import without_pyav\n"
               "print(without_pyav.leave_out(), type(av.AudioFrame).__module__)") == "False builtins"
