"""Acceptance: the wave console in a real headless Chromium (Debian's, driven by Playwright).

Sign in with a manager token, start a wave, watch the counts move over the live stream,
stop it, and see its unsent tasks cancelled. The dispatcher runs in this process with the
recording test double, paced so the wave lasts several seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, date, datetime

import pytest
import redis.asyncio as aioredis

from engine.api.app import ApiOptions, make_app
from engine.api.auth import create_token
from engine.calendar.clock import ScaledClock
from engine.context import Context
from engine.domain.outcomes import Channel
from engine.waves.status import status_view
from tests.fakes import RecordingConnector
from tests.harness import context, final_count, load_wave, make_settings, running, task, wait_until
from tests.test_api_helpers import serving

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DAY = date(2026, 12, 1)
NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)
TASKS = 400
RATE_PER_S = 30  # 400 tasks: over ten seconds of sending, time enough to watch and to stop


def chromium() -> str:
    """Debian's chromium, installed when missing and we may; the test skips only when neither works."""
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=300)
        subprocess.run(["apt-get", "install", "-y", "chromium"], env=env, capture_output=True, timeout=900)
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is absent and could not be installed (apt-get install -y chromium)")
    return CHROMIUM


@pytest.mark.timeout(120)
async def test_manager_starts_watches_and_stops_a_wave(redis: aioredis.Redis, redis_url: str) -> None:
    playwright_api = pytest.importorskip("playwright.async_api", reason="pip install playwright")
    executable = chromium()
    clock = ScaledClock(NOON_MSK)
    ctx = context(make_settings(redis_url), clock, redis)
    await load_wave(ctx, "w-morning", DAY, [task(n, wave="w-morning") for n in range(TASKS)], start=False)
    await ctx.waves.create("w-evening", "c1", DAY)
    manager = await create_token(redis, "manager", "Иванова")
    conn = RecordingConnector(channel=Channel.SMS, rate_per_s=RATE_PER_S, max_concurrent=10, late_after_s=0.05)
    app = make_app(ctx, options=ApiOptions(heartbeat_s=2.0, feed_block_ms=500))
    async with serving(app) as base, running(ctx, [conn]), playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(locale="ru-RU", timezone_id="Europe/Moscow")
            page.set_default_timeout(20_000)
            expect = playwright_api.expect
            await page.goto(f"{base}/ui/")

            # Sign in: Russian labels by default; a wrong token is refused with a message.
            await page.get_by_label("Токен доступа").fill("vln_" + "x" * 40)
            await page.get_by_role("button", name="Войти", exact=True).click()
            await expect(page.get_by_role("alert")).to_have_text("Токен не принят.")
            await page.get_by_label("Токен доступа").fill(manager)
            await page.get_by_role("button", name="Войти", exact=True).click()
            await expect(page.get_by_text("Иванова · manager")).to_be_visible()
            assert await page.evaluate("sessionStorage.getItem('volna.token')") == manager

            # The waves of the engine's today, each with its state and the actions it allows.
            row = page.locator("tr[data-wave='w-morning']")
            await expect(row).to_contain_text("создана")
            await expect(page.locator("tr[data-wave='w-evening']")).to_be_visible()
            await expect(row.get_by_role("button", name="Приостановить волну w-morning", exact=True)).to_be_disabled()
            await row.get_by_role("button", name="Подробнее о волне w-morning", exact=True).click()
            live = page.locator("#progress-live")
            await expect(live).to_have_attribute("aria-live", "polite")
            await expect(live).to_contain_text("выполнено 0 из 400")
            zones = page.locator("#zones tbody tr")
            await expect(zones.first).to_contain_text("Europe/Moscow")
            await expect(zones.first).to_contain_text("открыто")

            # Start, through the confirmation dialog (cancel first: nothing happens).
            await row.get_by_role("button", name="Запустить волну w-morning", exact=True).click()
            dialog = page.get_by_role("dialog")
            await expect(dialog).to_contain_text("Запустить волну w-morning?")
            await dialog.get_by_role("button", name="Отмена", exact=True).click()
            assert (await ctx.waves.get("w-morning")).state == "created"
            await row.get_by_role("button", name="Запустить волну w-morning", exact=True).click()
            await dialog.get_by_role("button", name="Запустить", exact=True).click()
            await expect(page.get_by_role("status")).to_have_text("Волна w-morning: идёт.")
            await expect(row).to_contain_text("идёт")

            # The counts move: the final count grows twice, events arrive over the stream.
            final = page.locator("#count-final")
            await expect(final).not_to_have_text("0")
            first = _int(await final.text_content())
            await expect(final).not_to_have_text(re.compile(rf"^{first}$"))
            await expect(page.locator("#feed li").first).to_contain_text("SMS")
            await expect(page.locator("#feed-state")).to_have_text("в реальном времени")
            await expect(page.locator("#channels tbody tr").first).to_contain_text("SMS")
            await expect(page.locator("#outcomes tr[data-outcome='delivered']")).to_contain_text("доставлено")

            # Stop while tasks are still queued: the rest end cancelled, on the page and in Redis.
            detail_actions = page.locator("#detail-actions")
            await detail_actions.get_by_role("button", name="Остановить волну w-morning", exact=True).click()
            await expect(dialog).to_contain_text("Все неотправленные задачи будут отменены")
            await dialog.get_by_role("button", name="Остановить", exact=True).click()
            await expect(page.get_by_role("status")).to_have_text("Волна w-morning: остановлена.")
            cancelled = page.locator("#outcomes tr[data-outcome='cancelled']")
            await expect(cancelled).to_contain_text("отменено")
            await expect(live).to_contain_text("из 400 (100 %)")
            await expect(page.locator("#history")).to_contain_text("Остановлена")
            await expect(page.locator("#history")).to_contain_text("(Иванова)")
            shown_cancelled = _int(await cancelled.locator("td").text_content())
            sent = len(conn.sent)

            # English is one toggle away.
            await page.get_by_role("button", name="Switch to English", exact=True).click()
            await expect(row).to_contain_text("stopped")
            await expect(page.get_by_role("button", name="Sign out", exact=True)).to_be_visible()
            assert await page.evaluate("document.documentElement.lang") == "en"
        finally:
            await browser.close()
        await wait_until(lambda: _all_final(ctx))  # the last accepted sends get their receipts
    outcomes = {k: v for k, v in (await status_view(ctx.waves, "w-morning"))["outcomes"].items()}
    assert outcomes["cancelled"] == shown_cancelled > 0
    assert outcomes["cancelled"] + outcomes.get("delivered", 0) == TASKS
    assert 0 < sent < TASKS and len(conn.sent) == sent, "nothing was sent after the stop"
    info = await ctx.waves.get("w-morning")
    assert info.meta["running_by"] == info.meta["stopped_by"] == "Иванова"


async def _all_final(ctx: Context) -> bool:
    return await final_count(ctx, "w-morning") >= TASKS


def _int(text: str | None) -> int:
    return int(re.sub(r"\D", "", text or "0") or 0)
