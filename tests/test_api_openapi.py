"""Acceptance: the OpenAPI document tells the truth — schemathesis against the live app finds nothing —
and it is generated: every schema in it is a model's own, and every operation's answer is the model
its handler declares (and returns).

Every built-in check runs (no 5xx, answers match their schemas, status codes and content
types are declared, invalid input is refused, auth is not ignored, unsupported methods
get 405 with Allow), except where JSON Schema cannot say what valid is:

* a stop-list phone must be a real number (``phonenumbers``), which no schema pattern
  captures, so a schema-valid ``"0"`` is rightly refused: no positive-data check there;
* an upload body is text; its lines are judged one by one by the intake, and a CSV
  without a ``task_id`` header is refused whole: no data-acceptance checks on it (nor on a
  stop-list import, whose lines are judged one by one too).

The seed is fixed so the run is repeatable; change it locally to explore further.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from pydantic import BaseModel

from engine.api import openapi
from engine.api.app import ApiOptions, make_app
from engine.api.auth import create_token
from engine.api.http import answers
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
include-operation-id = "importStoplist"
checks.positive_data_acceptance.enabled = false
checks.negative_data_rejection.enabled = false

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
    assert "31 selected" in report, "every operation was tested"
    assert "Authentication failed" not in report, "the run kept a valid token throughout"


# ---- the document is generated ----------------------------------------------------------------------


def _own_schemas(model: type[BaseModel], mode: str) -> dict[str, Any]:
    """The model's ``model_json_schema()`` as the document holds it: itself and its ``$defs`` by name."""
    own = model.model_json_schema(ref_template=openapi.REF_TEMPLATE, mode=mode)  # type: ignore[arg-type]
    defs = own.pop("$defs", {})
    return {model.__name__: own, **defs}


def _json_schemas(doc: dict[str, Any]) -> list[tuple[str, Any]]:
    """(where, schema) of every JSON body the paths and responses name."""
    out = []
    bodies = [("components/responses/" + name, r) for name, r in doc["components"]["responses"].items()]
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            bodies += [(f"{method} {path} body", op.get("requestBody", {}))]
            bodies += [(f"{method} {path} {status}", r) for status, r in op["responses"].items()]
    for where, body in bodies:
        if "application/json" in body.get("content", {}):
            out.append((where, body["content"]["application/json"]["schema"]))
    return out


def test_every_schema_in_the_document_is_a_models_own() -> None:
    """No schema is written by hand: ``components/schemas`` is exactly what the request and answer
    models generate, and every JSON body in the paths is a reference to one of those models."""
    doc = openapi.document()
    expected: dict[str, Any] = {}
    for models, mode in ((openapi.REQUEST_MODELS, "validation"), (openapi.ANSWER_MODELS, "serialization")):
        for model in models:
            for name, schema in _own_schemas(model, mode).items():
                assert expected.setdefault(name, schema) == schema, f"{name} differs between its uses"
    assert doc["components"]["schemas"] == expected
    named = {m.__name__ for m in (*openapi.REQUEST_MODELS, *openapi.ANSWER_MODELS)}
    for where, schema in _json_schemas(doc):
        assert set(schema) == {"$ref"}, f"{where}: an inline schema"
        assert schema["$ref"].rsplit("/", 1)[1] in named, f"{where}: not a model of the API"
    assert doc["openapi"].startswith("3.1")


async def test_each_handler_answers_with_the_model_the_document_names(redis: aioredis.Redis, redis_url: str
                                                                      ) -> None:
    """Every operation of the document, resolved through the live app's router, reaches a handler
    that declares (and, mypy-checked, returns) the very model the document names for its answer;
    and every route of the API is in the document."""
    app = make_app(context(make_settings(redis_url), ScaledClock(NOON_MSK), redis))
    doc = openapi.document()
    reached = set()
    for path, methods in doc["paths"].items():
        concrete = path.replace("{", "x").replace("}", "")  # every path parameter takes "x…"
        for method, op in methods.items():
            match = await app.router.resolve(make_mocked_request(method.upper(), concrete, app=app))
            assert match.http_exception is None, f"{method} {path} is not served"
            reached.add((method.upper(), match.route.resource.canonical if match.route.resource else ""))
            documented = {s: r for s, r in op["responses"].items() if s.startswith("2")}
            if "text/event-stream" in next(iter(documented.values()))["content"]:
                continue
            status, model = match.handler.volna_answer  # type: ignore[attr-defined]
            assert {s: r["content"]["application/json"]["schema"] for s, r in documented.items()} == {
                str(status): {"$ref": f"#/components/schemas/{model.__name__}"}}, f"{method} {path}"
    served = {(r.method, r.resource.canonical) for r in app.router.routes()
              if r.resource is not None and r.method != "HEAD"
              and (r.resource.canonical.startswith("/api/") or r.resource.canonical in ("/healthz", "/readyz"))
              and r.resource.canonical != "/api/v1/openapi.json"}
    assert served == reached


async def test_a_handler_that_answers_another_model_fails_loudly() -> None:
    """The declared model is the one answered, not one that happens to fit: anything else is a 500
    (which schemathesis reports), never a silently different body."""
    class Declared(BaseModel):
        n: int

    class Other(BaseModel):
        n: int

    @answers(Declared)
    async def wrong(request: web.Request) -> Declared:
        return Other(n=1)  # type: ignore[return-value]

    with pytest.raises(TypeError, match="answered a Other, not its Declared"):
        await wrong(make_mocked_request("GET", "/"))
