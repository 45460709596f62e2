"""Acceptance (issue 17): the manager's day in the console, in Debian's headless Chromium.

A manager creates a wave, uploads a CSV with two bad lines and sees them listed by line number,
starts the wave, watches the charts move, pauses, looks a debtor up, puts them on the stop-list
and, once the wave resumes, sees their next task skipped. A viewer sees the same pages but can
change nothing: every control is disabled, and the API refuses the calls (403) when made anyway.
Screenshots of each page are saved under the test's temporary folder.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from engine.api.app import ApiOptions, make_app
from engine.api.auth import create_token
from engine.calendar.clock import ScaledClock
from engine.context import Context
from engine.domain.outcomes import Channel
from engine.store import keys
from engine.store.keys import WaveKeys
from engine.store.schema import TaskState
from tests.fakes import RecordingConnector
from tests.harness import context, make_settings, running, task, wait_until
from tests.test_api_helpers import serving
from tests.test_console_browser import CHROMIUM_ARGS, NOON_MSK, chromium

WAVE = "w-day"
GOOD = 300
DEBTOR = "D-777"
RATE_PER_S = 15  # 300 tasks: twenty seconds of sending, time enough to pause before the last
COLUMNS = ["task_id", "wave_id", "campaign_id", "debtor_id", "channel", "phone", "tz", "scenario", "priority",
           "var_creditor", "var_account", "var_amount", "var_due_date", "var_pay_url", "var_address",
           "var_phone_back"]


def tasks_csv() -> bytes:
    """300 good lines (the debtor's first task goes first, its second last) and two bad ones: line 6
    (a phone that is no phone) and line 101 (a scenario that does not exist)."""
    rows: list[dict[str, Any]] = []
    for n in range(GOOD):
        row = task(n, wave=WAVE, priority=5)
        if n == 0:
            row.update(task_id="t-777a", debtor_id=DEBTOR, phone="+79161234567", priority=9)
        if n == GOOD - 1:
            row.update(task_id="t-777b", debtor_id=DEBTOR, phone="+79161234567", priority=0)
        rows.append(row)
    rows.insert(4, {**task(9001, wave=WAVE), "phone": "12"})
    rows.insert(99, {**task(9002, wave=WAVE), "scenario": "nope"})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        flat = {k: row.get(k, "") for k in COLUMNS if not k.startswith("var_")}
        flat.update({f"var_{k}": v for k, v in row["vars"].items()})
        writer.writerow(flat)
    return out.getvalue().encode()


async def task_state(ctx: Context, task_id: str) -> TaskState | None:
    raw = await ctx.redis.hget(WaveKeys(WAVE).state, task_id)
    return TaskState.decode(raw) if raw else None


async def _sign_in(page: Any, base: str, token: str) -> None:
    await page.goto(f"{base}/ui/")
    await page.get_by_label("Токен доступа").fill(token)
    await page.get_by_role("button", name="Войти", exact=True).click()


async def _shot(page: Any, folder: Path, name: str) -> None:
    await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


@pytest.mark.timeout(150)
async def test_manager_day_and_a_viewer_who_changes_nothing(redis: aioredis.Redis, redis_url: str,
                                                            tmp_path: Path) -> None:
    playwright_api = pytest.importorskip("playwright.async_api", reason="pip install playwright")
    executable = chromium()
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    manager = await create_token(redis, "manager", "Иванова")
    viewer = await create_token(redis, "viewer", "Петров")
    upload = tmp_path / "tasks.csv"
    upload.write_bytes(tasks_csv())
    conn = RecordingConnector(channel=Channel.SMS, rate_per_s=RATE_PER_S, max_concurrent=10, late_after_s=0.05)
    app = make_app(ctx, options=ApiOptions(heartbeat_s=2.0, feed_block_ms=500))
    async with serving(app) as base, running(ctx, [conn]), playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(locale="ru-RU", timezone_id="Europe/Moscow",
                                          viewport={"width": 1280, "height": 900})
            page.set_default_timeout(20_000)
            expect = playwright_api.expect
            await _sign_in(page, base, manager)
            await expect(page.get_by_text("Иванова · manager")).to_be_visible()

            # Create the wave of the day.
            await page.get_by_text("Новая волна", exact=True).click()
            await page.get_by_label("Идентификатор волны").fill(WAVE)
            await page.get_by_label("Кампания", exact=True).fill("c1")
            await expect(page.get_by_label("День волны")).to_have_value("2026-12-01")
            await page.get_by_role("button", name="Создать волну", exact=True).click()
            await expect(page.locator("#create-result")).to_have_text(f"Волна {WAVE} создана на 2026-12-01.")
            row = page.locator(f"tr[data-wave='{WAVE}']")
            await expect(row).to_contain_text("создана")

            # Upload its tasks: the two bad lines are listed with their numbers and reasons.
            await page.get_by_label("Файл задач (JSONL или CSV)").set_input_files(str(upload))
            await page.get_by_role("button", name="Загрузить", exact=True).click()
            await expect(page.locator("#upload-result")).to_contain_text(f"принято {GOOD}")
            await expect(page.locator("#upload-result")).to_contain_text("отклонено 2")
            await expect(page.locator("#upload-progress")).to_have_attribute("value", "100")
            bad = page.locator("#rejections tbody tr")
            await expect(bad).to_have_count(2)
            await expect(bad.nth(0).locator("td").nth(0)).to_have_text("6")
            await expect(bad.nth(1).locator("td").nth(0)).to_have_text("101")
            await expect(bad.nth(1)).to_contain_text("nope")
            await expect(page.locator("#progress-live")).to_contain_text(f"выполнено 0 из {GOOD}")
            await _shot(page, tmp_path, "1-created-and-uploaded")

            # Start it and watch the charts move.
            await row.get_by_role("button", name=f"Запустить волну {WAVE}", exact=True).click()
            dialog = page.get_by_role("dialog")
            await dialog.get_by_role("button", name="Запустить", exact=True).click()
            await expect(page.get_by_role("status")).to_have_text(f"Волна {WAVE}: идёт.")
            summary = page.locator("#charts-summary")
            await expect(summary).not_to_have_attribute("data-sends", "0")
            first = int(await summary.get_attribute("data-sends") or 0)
            await expect(summary).not_to_have_attribute("data-sends", str(first))  # it only grows: it moved
            assert int(await summary.get_attribute("data-sends") or 0) > first
            await expect(page.locator("#chart-sends canvas")).to_have_count(1)
            await expect(page.get_by_role("img", name=re.compile("^Отправки и завершения в минуту: Отправлено"))
                         ).to_be_visible()
            await expect(page.get_by_role("img", name=re.compile("^Дозвон и доставка, %: доставка SMS"))
                         ).to_be_visible()
            await expect(page.get_by_role("img", name=re.compile("^Исходы в минуту: доставлено"))).to_be_visible()
            await expect(page.locator("#chart-windows li[data-zone='Europe/Moscow']")).to_contain_text(
                "открыто сейчас")

            # Pause while the debtor's second task still waits.
            actions = page.locator("#detail-actions")
            await actions.get_by_role("button", name=f"Приостановить волну {WAVE}", exact=True).click()
            await dialog.get_by_role("button", name="Приостановить", exact=True).click()
            await expect(page.get_by_role("status")).to_have_text(f"Волна {WAVE}: на паузе.")
            await wait_until(lambda: _ended(ctx, "t-777a"))
            assert not (await task_state(ctx, "t-777b")).ended  # type: ignore[union-attr]
            await _shot(page, tmp_path, "2-running-charts-paused")

            # Look the debtor up: one message today of two allowed, one task delivered, one queued.
            await page.get_by_role("tab", name="Должник или телефон").click()
            await page.locator("#panel-lookup").get_by_label("Идентификатор должника или телефон").fill(DEBTOR)
            await page.locator("#lookup-form").get_by_role("button", name="Найти").click()
            await expect(page.locator("#lookup-result")).to_contain_text(f"{DEBTOR}: задач 2")
            await expect(page.locator("#lookup-caps tr[data-class='message']")).to_contain_text("1 / 2")
            await expect(page.locator("#lookup-tasks tr[data-task='t-777a']")).to_contain_text("доставлено")
            await expect(page.locator("#lookup-tasks tr[data-task='t-777b']")).to_contain_text("в очереди")
            await expect(page.locator("#lookup-phones")).to_contain_text("+79161234567")
            await expect(page.locator("#lookup-phones")).to_contain_text("активен")

            # Put them on the stop-list (reason: refused contact).
            await page.locator("#panel-lookup").get_by_label("Причина").select_option("refused")
            await page.get_by_role("button", name="Внести должника в стоп-лист").click()
            await expect(page.locator("#lookup-stop")).to_contain_text("отказ от взаимодействия")
            await expect(page.locator("#lookup-stop")).to_contain_text("(Иванова)")

            # Resume: the debtor's next task is skipped by the stop-list.
            await page.get_by_role("tab", name="Волны").click()
            await actions.get_by_role("button", name=f"Продолжить волну {WAVE}", exact=True).click()
            await dialog.get_by_role("button", name="Продолжить", exact=True).click()
            await expect(page.get_by_role("status")).to_have_text(f"Волна {WAVE}: идёт.")
            await wait_until(lambda: _ended(ctx, "t-777b"), timeout_s=40)
            await page.get_by_role("tab", name="Должник или телефон").click()
            await page.locator("#lookup-form").get_by_role("button", name="Найти").click()
            await expect(page.locator("#lookup-tasks tr[data-task='t-777b']")).to_contain_text("стоп-лист")
            await _shot(page, tmp_path, "3-lookup-stoplisted")

            # The stop-list page finds the entry; the health page shows the dispatcher's channel.
            await page.get_by_role("tab", name="Стоп-лист").click()
            await page.get_by_label("Поиск (часть номера или идентификатора)").fill("777")
            await page.locator("#stop-search-form").get_by_role("button", name="Найти").click()
            await expect(page.locator(f"#stop-entries tr[data-value='{DEBTOR}']")).to_contain_text("Иванова")
            await _shot(page, tmp_path, "4-stoplist")
            await page.get_by_role("tab", name="Состояние").click()
            await expect(page.locator("#health-redis")).to_have_text("Redis отвечает.")
            await expect(page.locator("#health-sessions tr[data-kind='sms']")).to_contain_text("исправно")
            await _shot(page, tmp_path, "5-health")
            await page.get_by_role("tab", name="Волны").click()
            await expect(row).to_contain_text("завершена", timeout=30_000)
            await _shot(page, tmp_path, "6-completed")

            # ---- a viewer: sees everything, changes nothing --------------------------------------
            seen = await browser.new_page(locale="ru-RU", timezone_id="Europe/Moscow",
                                          viewport={"width": 1280, "height": 900})
            seen.set_default_timeout(20_000)
            await _sign_in(seen, base, viewer)
            await expect(seen.get_by_text("Петров · viewer")).to_be_visible()
            vrow = seen.locator(f"tr[data-wave='{WAVE}']")
            await expect(vrow).to_contain_text("завершена")
            for name in ("Запустить", "Приостановить", "Продолжить", "Остановить"):
                await expect(vrow.get_by_role("button", name=f"{name} волну {WAVE}", exact=True)).to_be_disabled()
            await seen.get_by_text("Новая волна", exact=True).click()
            await expect(seen.get_by_role("button", name="Создать волну", exact=True)).to_be_disabled()
            await expect(seen.get_by_label("Идентификатор волны")).to_be_disabled()
            await expect(seen.get_by_role("button", name="Загрузить", exact=True)).to_be_disabled()
            await expect(seen.get_by_label("Файл задач (JSONL или CSV)")).to_be_disabled()
            await expect(seen.locator("#charts-summary")).not_to_have_attribute("data-sends", "0")
            await seen.get_by_role("tab", name="Стоп-лист").click()
            await expect(seen.get_by_role("button", name="Внести", exact=True)).to_be_disabled()
            await expect(seen.get_by_role("button", name="Импортировать", exact=True)).to_be_disabled()
            await expect(seen.get_by_role("button", name=f"Снять {DEBTOR} со стоп-листа")).to_be_disabled()
            await seen.get_by_role("tab", name="Должник или телефон").click()
            await seen.locator("#panel-lookup").get_by_label("Что").select_option("phone")
            await seen.locator("#panel-lookup").get_by_label("Идентификатор должника или телефон").fill(
                "8 916 123-45-67")
            await seen.locator("#lookup-form").get_by_role("button", name="Найти").click()
            await expect(seen.locator("#lookup-result")).to_contain_text("Номера скрыты для вашей роли.")
            await expect(seen.locator("#lookup-tasks tr[data-task='t-777b']")).to_contain_text("стоп-лист")
            assert "1234567" not in (await seen.locator("#panel-lookup").inner_text())
            await expect(seen.get_by_role("button", name="Внести должника в стоп-лист")).to_be_disabled()
            await _shot(seen, tmp_path, "7-viewer-lookup")

            # The same calls made by hand are refused by the API, and nothing changed.
            refused = await seen.evaluate("""async (wave) => {
              const token = sessionStorage.getItem('volna.token');
              const call = async (method, path, body, type) => (await fetch(path, { method, body,
                headers: { Authorization: `Bearer ${token}`, ...(type ? { 'Content-Type': type } : {}) } })).status;
              return [
                await call('POST', '/api/v1/waves', JSON.stringify({ wave_id: 'w-x', campaign_id: 'c1',
                  day: '2026-12-01' }), 'application/json'),
                await call('POST', `/api/v1/waves/${wave}/tasks`, '{}\\n', 'application/x-ndjson'),
                await call('POST', `/api/v1/waves/${wave}/stop`),
                await call('POST', '/api/v1/stoplist', JSON.stringify({ kind: 'debtor', value: 'D-1',
                  reason: 'paid' }), 'application/json'),
                await call('POST', '/api/v1/stoplist/import', 'debtor,D-2,paid\\n', 'text/csv'),
                await call('DELETE', '/api/v1/stoplist/debtor/D-777?note=x'),
              ];
            }""", WAVE)
            assert refused == [403] * 6
        finally:
            await browser.close()
    assert await ctx.stoplist.get("debtor", DEBTOR) is not None
    assert await ctx.stoplist.get("debtor", "D-1") is None and not await redis.exists(WaveKeys("w-x").meta)
    audit = [fields for _, fields in await redis.xrange(keys.AUDIT)]
    assert any(a["what"] == "stoplist.add" and a["who"] == "Иванова" and a["target"] == f"debtor:{DEBTOR}"
               for a in audit), audit[-8:]
    refusals = [a for a in audit if a["who"] == "Петров"]
    assert len(refusals) == 6 and {str(a["status"]) for a in refusals} == {"403"}, refusals
    shots = sorted(p.name for p in tmp_path.glob("*.png"))
    assert len(shots) == 7, shots
    print("screenshots:", tmp_path)


async def _ended(ctx: Context, task_id: str) -> bool:
    state = await task_state(ctx, task_id)
    return bool(state and state.ended)
