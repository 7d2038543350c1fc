"""Schemathesis against the desk's own /openapi.json: no server error, no answer that breaks the schema.

The desk runs the way an operator runs it (uvicorn, its own process) on SQLite and on PostgreSQL, where an
id past the INTEGER range or text PostgreSQL cannot hold used to end in a 500.  Schemathesis' CLI drives it
as a signed-in admin: every phase (examples, coverage, fuzzing, stateful), positive and negative data, a
fixed seed and a bounded number of examples per operation, so a run repeats exactly and takes seconds.

The two operations that revoke the caller's own tokens run on their own afterwards, with another agent's
token: run with the others, the first call would sign the fuzzer out and leave every later request a 401
(which `missing_auth` below would report as a failure rather than let pass as a vacuous success).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.desk import (
    DeskServer,
    MakeAgent,
    MakeTicket,
    api_login,
    start_desk_server,
    stop_desk_server,
)

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"
MAX_EXAMPLES = 25
SEED = 17
# The live feed is a server-sent-event stream that stays open for minutes by design: a fuzzer that reads
# whole bodies would wait on it.  It takes no input but the token (tests/test_desk_api.py covers it).
NOT_FUZZED = {"GET /live"}
SIGN_OUT = {"DELETE /api/token", "POST /api/tokens/revoke-all"}
# Warnings that mean the run tested much less than it seems (a token that stopped working, a filter that
# matched nothing) fail it.  "Missing test data" (most ids generated name no row: 404) does not: that is
# what fuzzing ids looks like, and the examples phase sends the seeded ticket 1 anyway.
FAIL_ON_WARNINGS = ["missing_auth", "unmatched_filter"]


@pytest.fixture
async def fuzzed_desk(db, database_url: str, tmp_path: Path, make_agent: MakeAgent, make_ticket: MakeTicket):
    admin = await make_agent("fuzz@example.com", "Fuzz", admin=True)
    other = await make_agent("other@example.com", "Other")
    for n in range(3):
        await make_ticket(f"order {n} never arrived")
    server = await start_desk_server(database_url, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            tokens = {"admin": await api_login(client, admin.email)}
            tokens["other"] = await api_login(client, other.email)
        yield server, tokens
    finally:
        stop_desk_server(server)


def _operation_ids(server: DeskServer) -> dict[str, str]:
    """"METHOD /path" -> operationId, from the schema the server serves."""
    schema = httpx.get(f"{server.base_url}/openapi.json").json()
    return {
        f"{method.upper()} {path}": operation["operationId"]
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    }


def _schemathesis(server: DeskServer, headers: dict[str, str], workdir: Path, name: str, *filters: str,
                  fail_on: list[str]) -> dict[str, Any]:
    config = workdir / f"{name}.toml"
    config.write_text(f"[warnings]\nfail-on = {json.dumps(fail_on)}\n")
    report = workdir / f"{name}.json"
    command = [
        str(SCHEMATHESIS), "--config-file", str(config), "--no-color",
        "run", f"{server.base_url}/openapi.json",
        "--header", f"Authorization: {headers['Authorization']}",
        "--checks", CHECKS,
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--generation-deterministic",
        "--workers", "1",
        "--request-timeout", "20",
        "--report", "json", "--report-json-path", str(report),
        *filters,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=workdir)
    output = result.stdout + result.stderr
    server_log = server.log_path.read_text(errors="replace")[-8000:]
    assert result.returncode == 0, (
        f"schemathesis ({name}) found problems:\n{output[-20000:]}\n\nthe desk's log:\n{server_log}"
    )
    summary = json.loads(report.read_text())
    return {"output": output, "summary": summary}


def _tested(output: str) -> int:
    """The operations the run says it tested (its summary's `Tested: N`)."""
    for line in output.splitlines():
        if line.strip().startswith("Tested:"):
            return int(line.split(":")[1])
    raise AssertionError(f"no 'Tested:' line in the schemathesis output:\n{output[-3000:]}")


def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(fuzzed_desk, tmp_path: Path) -> None:
    server, tokens = fuzzed_desk
    operations = _operation_ids(server)
    assert NOT_FUZZED | SIGN_OUT <= operations.keys(), "an operation left out is gone: update this test"
    fuzzed = operations.keys() - NOT_FUZZED - SIGN_OUT
    left_out = [a for op in sorted(NOT_FUZZED | SIGN_OUT) for a in ("--exclude-operation-id", operations[op])]

    everything = _schemathesis(server, tokens["admin"], tmp_path, "api", *left_out, fail_on=FAIL_ON_WARNINGS)
    assert _tested(everything["output"]) == len(fuzzed), everything["output"][-3000:]

    only_sign_out = [arg for op in sorted(SIGN_OUT) for arg in ("--include-operation-id", operations[op])]
    # Signing out makes the rest of this run 401s, as it should: `missing_auth` is no failure here.
    sign_out = _schemathesis(server, tokens["other"], tmp_path, "sign-out", *only_sign_out,
                             fail_on=["unmatched_filter"])
    assert _tested(sign_out["output"]) == len(SIGN_OUT), sign_out["output"][-3000:]
