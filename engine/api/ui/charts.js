// Volna console: charts of the day (uPlot, vendored under /ui/vendor) and the windows timeline.
// Reads GET /api/v1/charts for the selected wave or for every wave of the chosen day, every few
// seconds; each chart also has a text summary (the figure's accessible name) for screen readers.
"use strict";

Object.assign(I18N.ru, {
  charts_title: "Графики дня", charts_scope: "Что показывать", scope_wave: "Выбранная волна",
  scope_day: "Все волны дня", chart_sends: "Отправки и завершения в минуту", chart_rates: "Дозвон и доставка, %",
  chart_outcomes: "Исходы в минуту", chart_windows: "Окна контакта по часовым поясам",
  charts_of_wave: "волна {wave}", charts_of_day: "все волны {day}: {n}",
  charts_summary: "Отправлено {sends}, завершено {finals} за {minutes} мин.",
  charts_empty: "Пока нет данных.", sends_of: "отправки {ch}", finals_of: "завершения {ch}",
  "rate.answer": "дозвон {ch}", "rate.delivery": "доставка {ch}", "channel.messages": "сообщения",
  window_bar: "{zone}, {ch}: {from}–{to}", window_open: "открыто сейчас", window_closed: "закрыто",
  window_none: "{zone}, {ch}: окна нет", now_line: "сейчас",
  rates_summary: "{what}: последнее значение {v} %", time: "Время",
});
Object.assign(I18N.en, {
  charts_title: "Charts of the day", charts_scope: "What to show", scope_wave: "Selected wave",
  scope_day: "All waves of the day", chart_sends: "Sends and finals per minute", chart_rates: "Answer and delivery rate, %",
  chart_outcomes: "Outcomes per minute", chart_windows: "Contact windows by time zone",
  charts_of_wave: "wave {wave}", charts_of_day: "every wave of {day}: {n}",
  charts_summary: "Sent {sends}, finished {finals} over {minutes} min.",
  charts_empty: "No data yet.", sends_of: "sends {ch}", finals_of: "finals {ch}",
  "rate.answer": "answered {ch}", "rate.delivery": "delivered {ch}", "channel.messages": "messages",
  window_bar: "{zone}, {ch}: {from}–{to}", window_open: "open now", window_closed: "closed",
  window_none: "{zone}, {ch}: no window", now_line: "now",
  rates_summary: "{what}: last value {v} %", time: "Time",
});

const CHART_POLL_MS = 2000;
const MIN_MINUTES = 30;
const PALETTE = ["#0b5cad", "#1a7f37", "#b42318", "#9a6700", "#6f42c1", "#0a7e8c", "#bf3989", "#57606a",
  "#e16f24", "#2f6f4f", "#8250df", "#a40e26"];
const C = { timer: null, data: null, plots: {}, busy: false };

function chartScope() {
  const checked = document.querySelector("input[name='chart-scope']:checked");
  return checked ? checked.value : "wave";
}

async function loadCharts() {
  if (!S.token || C.busy || $("panel-waves").hidden) return;
  const scope = chartScope();
  let url;
  if (scope === "wave" && S.selected) url = `/api/v1/charts?wave=${encodeURIComponent(S.selected)}`;
  else if ($("day").value) url = `/api/v1/charts?day=${encodeURIComponent($("day").value)}`;
  else return;
  C.busy = true;
  try {
    C.data = await api(url);
    renderCharts();
  } finally {
    C.busy = false;
  }
}

function hhmm(ms) {
  return new Intl.DateTimeFormat(S.lang === "ru" ? "ru-RU" : "en-GB", { hour: "2-digit", minute: "2-digit" })
    .format(new Date(ms));
}

function sum(list) {
  return list.reduce((a, b) => a + (b || 0), 0);
}

function renderCharts() {
  const d = C.data;
  if (!d) return;
  $("charts-scope-label").textContent = chartScope() === "wave" && d.waves.length === 1
    ? t("charts_of_wave", { wave: d.waves[0] }) : t("charts_of_day", { day: d.day, n: d.waves.length });
  const sends = sum(Object.values(d.sends).map(sum));
  const finals = sum(Object.values(d.finals).map(sum));
  const summary = d.minutes_ms.length
    ? t("charts_summary", { sends: num(sends), finals: num(finals), minutes: d.minutes_ms.length })
    : t("charts_empty");
  $("charts-summary").textContent = summary;
  $("charts-summary").dataset.sends = String(sends);
  $("charts-summary").dataset.finals = String(finals);
  // At least half an hour across: the first minutes of a wave are a rise from zero, not a lone dot.
  const pad = d.minutes_ms.length ? Math.max(0, MIN_MINUTES - d.minutes_ms.length) : 0;
  const first = d.minutes_ms.length ? d.minutes_ms[0] : 0;
  const xs = [...Array.from({ length: pad }, (_, k) => (first - (pad - k) * 60000) / 1000),
    ...d.minutes_ms.map((ms) => ms / 1000)];
  const padded = (ys, fill) => [...Array(pad).fill(fill), ...ys];
  const chName = (ch) => t(`channel.${ch}`);

  const sendSeries = [];
  let i = 0;
  for (const [ch, ys] of Object.entries(d.sends)) {
    sendSeries.push({ label: t("sends_of", { ch: chName(ch) }), data: padded(ys, 0), color: PALETTE[i % PALETTE.length] });
    sendSeries.push({ label: t("finals_of", { ch: chName(ch) }), data: padded(d.finals[ch] || [], 0), dash: [6, 4],
      color: PALETTE[i % PALETTE.length] });
    i += 1;
  }
  plot("chart-sends", xs, sendSeries, summary);

  const rateSeries = Object.entries(d.rates).map(([ch, ys], j) => ({
    label: t(`rate.${d.rate_kinds[ch]}`, { ch: chName(ch) }), data: padded(ys, null), color: PALETTE[j % PALETTE.length],
  }));
  const rateText = rateSeries.map((s) => t("rates_summary", {
    what: s.label, v: [...s.data].reverse().find((v) => v !== null) ?? "—",
  })).join("; ");
  plot("chart-rates", xs, rateSeries, rateText || t("charts_empty"), { min: 0, max: 100 });

  const outcomeSeries = Object.entries(d.outcomes).map(([o, ys], j) => ({
    label: t(`outcome.${o}`), data: padded(ys, 0), color: PALETTE[j % PALETTE.length],
  }));
  const outcomeText = outcomeSeries.map((s) => `${s.label}: ${num(sum(s.data))}`).join("; ");
  plot("chart-outcomes", xs, outcomeSeries, outcomeText || t("charts_empty"));

  renderTimeline(d.windows, d.now_ms);
}

function plot(id, xs, series, label, yRange) {
  const box = $(id);
  // The figure's caption and what it shows now, as one accessible name (a canvas says nothing).
  box.setAttribute("aria-label", `${$(box.dataset.caption).textContent}: ${label}`);
  box.dataset.points = String(sum(series.map((s) => sum(s.data))));
  const key = `${S.lang}|${series.map((s) => s.label).join("|")}`;
  const data = [xs, ...series.map((s) => s.data)];
  const existing = C.plots[id];
  if (existing && existing.key === key) {
    existing.u.setData(data);
    return;
  }
  if (existing) existing.u.destroy();
  box.replaceChildren();
  if (typeof uPlot === "undefined") return;
  const width = Math.max(280, box.clientWidth || 480);
  const opts = {
    width, height: 220, legend: { show: true },
    scales: {
      x: { time: true },
      y: yRange ? { range: [yRange.min, yRange.max] } : { range: (u, min, max) => [0, Math.max(4, max)] },
    },
    // Hours and minutes in the page's language (uPlot's own labels are English, 12-hour).
    axes: [{ values: (u, ticks) => ticks.map((sec) => hhmm(sec * 1000)) }, { size: 50 }],
    series: [{ label: t("time") }, ...series.map((s) => ({
      label: s.label, stroke: s.color, width: 2, dash: s.dash, spanGaps: false,
      points: { show: s.data.filter((v) => v !== null && v !== 0).length < 4, size: 6 },
    }))],
  };
  C.plots[id] = { key, u: new uPlot(opts, data, box) };
}

// The windows timeline: one row per zone and channel kind, a bar from the window's opening to its
// closing on the day, and a line at "now". SVG attributes only (the page's CSP allows no inline styles).
function renderTimeline(windows, nowMs) {
  const box = $("chart-windows");
  const NS = "http://www.w3.org/2000/svg";
  const withWin = windows.filter((w) => w.opens_at_ms !== null);
  const list = el("ul", { class: "sr-only" });
  if (!windows.length) {
    box.replaceChildren(el("p", { class: "muted", text: t("charts_empty") }));
    return;
  }
  let lo = Math.min(nowMs, ...withWin.map((w) => w.opens_at_ms));
  let hi = Math.max(nowMs, ...withWin.map((w) => w.closes_at_ms));
  const HOUR = 3600 * 1000;
  lo = Math.floor(lo / HOUR) * HOUR;
  hi = Math.ceil(hi / HOUR) * HOUR;
  if (hi <= lo) hi = lo + HOUR;
  const labelW = 190;
  const width = Math.max(360, box.clientWidth || 560);
  const rowH = 22;
  const height = windows.length * rowH + 30;
  const x = (ms) => labelW + ((ms - lo) / (hi - lo)) * (width - labelW - 10);
  const svg = document.createElementNS(NS, "svg");
  const attrs = (node, a) => { for (const [k, v] of Object.entries(a)) node.setAttribute(k, String(v)); return node; };
  attrs(svg, { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-labelledby": "cap-windows" });
  // An hour label at least every 56 px: one, two, three or six hours apart.
  const perHour = (width - labelW - 10) / ((hi - lo) / HOUR);
  const step = [1, 2, 3, 6, 12].find((h) => h * perHour >= 56) * HOUR || 12 * HOUR;
  for (let ms = lo; ms <= hi; ms += step) {
    svg.append(attrs(document.createElementNS(NS, "line"), { x1: x(ms), x2: x(ms), y1: 0, y2: height - 18, class: "grid-line" }));
    const tx = attrs(document.createElementNS(NS, "text"), { x: x(ms), y: height - 4, "text-anchor": "middle", class: "axis" });
    tx.textContent = hhmm(ms);
    svg.append(tx);
  }
  windows.forEach((w, row) => {
    const y = row * rowH + 4;
    const ch = t(`channel.${w.channel}`);
    const name = attrs(document.createElementNS(NS, "text"), { x: 4, y: y + 14, class: "axis" });
    name.textContent = `${w.zone} · ${ch}`;
    svg.append(name);
    let text;
    if (w.opens_at_ms === null) {
      text = t("window_none", { zone: w.zone, ch });
    } else {
      const bar = attrs(document.createElementNS(NS, "rect"), {
        x: x(w.opens_at_ms), y, width: Math.max(2, x(w.closes_at_ms) - x(w.opens_at_ms)), height: rowH - 8, rx: 3,
        class: w.open_now ? "win-open" : "win-closed",
      });
      text = `${t("window_bar", { zone: w.zone, ch, from: fmtTime(w.opens_at_ms, w.zone), to: fmtTime(w.closes_at_ms, w.zone) })}`
        + ` (${w.open_now ? t("window_open") : t("window_closed")})`;
      const title = document.createElementNS(NS, "title");
      title.textContent = text;
      bar.append(title);
      svg.append(bar);
    }
    list.append(el("li", { text, "data-zone": w.zone }));
  });
  svg.append(attrs(document.createElementNS(NS, "line"), { x1: x(nowMs), x2: x(nowMs), y1: 0, y2: height - 18, class: "now-line" }));
  box.replaceChildren(svg, list);
}

HOOKS.signin.push(() => {
  loadCharts().catch(showError);
  C.timer = setInterval(() => loadCharts().catch(showError), CHART_POLL_MS);
});
HOOKS.signout.push(() => {
  clearInterval(C.timer);
  for (const p of Object.values(C.plots)) p.u.destroy();
  C.plots = {};
  C.data = null;
});
HOOKS.select.push(() => loadCharts().catch(showError));
HOOKS.lang.push(() => renderCharts());

document.addEventListener("DOMContentLoaded", () => {
  for (const radio of document.querySelectorAll("input[name='chart-scope']")) {
    radio.addEventListener("change", () => loadCharts().catch(showError));
  }
  $("day").addEventListener("change", () => loadCharts().catch(showError));
});
