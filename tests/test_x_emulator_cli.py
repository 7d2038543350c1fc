"""`frontdesk sandbox` in the foreground, as a person runs it: banner, working control API, clean Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys

from sandbox.x.control_client import XSandboxControl


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_frontdesk_sandbox_runs_in_the_foreground() -> None:
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "frontdesk",
        "sandbox",
        "--port",
        str(port),
        "--brand",
        "acme",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        banner = ""
        async with asyncio.timeout(60):
            while "reset" not in banner:
                line = await process.stdout.readline()  # type: ignore[union-attr]
                assert line, f"frontdesk sandbox exited early:\n{banner}"
                banner += line.decode()
        base_url = f"http://127.0.0.1:{port}"
        assert f"FRONTDESK_X_API_BASE={base_url}" in banner
        assert "sandbox-consumer-secret" in banner
        assert f"{base_url}/_sandbox/mentions" in banner

        async with XSandboxControl(base_url) as control:
            posted = await control.mention("alice", "hello")
        assert posted["text"] == "@acme hello"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            code = await process.wait()
    assert code == 0
