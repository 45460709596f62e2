"""Acceptance: the OpenAPI document tells the truth — schemathesis against the live app finds nothing.

Every built-in check runs (no 5xx, answers match their schemas, status codes and content
types are declared, invalid input is refused, auth is not ignored, unsupported methods
get 405 with Allow), except where JSON Schema cannot say what valid is:

* a stop-list phone must be a real number (``phonenumbers``), which no schema pattern
  captures, so a schema-valid ``"0"`` is rightly refused: no positive-data check there;
* an upload body is text; its lines are judged one by one by the intake, and a CSV
  without a ``task_id`` header is refused whole: no data-acceptance checks on it.

The seed is fixed so the run is repeatable; change it locally to explore further.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from engine.api.app import ApiOptions, make_app
from engine.api.auth import create_token
from engine.calendar.clock import ScaledClock
from engine.context import Context
from engine.domain.outcomes import Channel
from tests.fakes import RecordingConnector
from tests.harness import context, final_count, load_wave, make_settings, running, task, wait_until
from tests.test_api_helpers import serving

DAY = date(2026, 12, 1)
NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)
MAX_EXAMPLES = 10
SEED = 20261201

CONFIG = """
# Read every SSE stream only this far (it never ends by itself).
max-stream-events = 2
request-timeout = 10

[[operations]]
include-path-regex = "^/api/v1/stoplist"
include-method = ["GET", "DELETE", "POST"]
checks.positive_data_acceptance.enabled = false

[[operations]]
include-operation-id = "uploadTasks"
checks.positive_data_acceptance.enabled = false
checks.negative_data_rejection.enabled = false
"""


async def _final(ctx: Context, n: int) -> bool:
    return await final_count(ctx, "w1") >= n


@pytest.mark.timeout(180)
async def test_schemathesis_finds_nothing(redis: aioredis.Redis, redis_url: str, tmp_path: Path) -> None:
    st = Path(sys.executable).parent / "st"
    if not st.exists():
        pytest.skip("schemathesis is not installed (pip install schemathesis)")
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    await load_wave(ctx, "w1", DAY, [task(n) for n in range(5)])
    async with running(ctx, [RecordingConnector(channel=Channel.SMS)]):
        await wait_until(lambda: _final(ctx, 5))
    admin = await create_token(redis, "admin", "schemathesis")
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    options = ApiOptions(heartbeat_s=0.5, feed_block_ms=200)
    async with serving(make_app(ctx, options=options)) as base:
        proc = await asyncio.create_subprocess_exec(
            str(st), "--config-file", str(tmp_path / "schemathesis.toml"), "run", f"{base}/api/v1/openapi.json",
            "-H", f"Authorization: Bearer {admin}", "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
            "--workers", "2", "--no-color",
            cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SCHEMATHESIS_HOOKS": ""},
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 150)
    report = out.decode(errors="replace")
    print(report[report.find("WARNINGS") if "WARNINGS" in report else report.find("SUMMARY"):])
    assert proc.returncode == 0, report[-6000:]
    assert "24 selected" in report, "every operation was tested"
    assert "Authentication failed" not in report, "the run kept a valid token throughout"
