// Volna wave console: plain JS, no build step. Reads the control API with a bearer token kept in
// sessionStorage; follows the selected wave's results over SSE (fetch + a stream reader, so the
// token goes in a header, and Last-Event-ID on reconnect); polls the wave status beside it.
"use strict";

const I18N = {
  ru: {
    title: "Волна — консоль волн", skip: "Перейти к содержимому", signout: "Выйти",
    signin_title: "Вход", token_label: "Токен доступа", signin: "Войти",
    token_help: "Токен выдаёт администратор (volna token create). Он хранится только в этой вкладке.",
    token_missing: "Введите токен.", token_bad: "Токен не принят.", signed_out: "Сеанс завершён: войдите снова.",
    waves_title: "Волны дня", day_label: "День", refresh: "Обновить", waves_caption: "Волны выбранного дня",
    col_wave: "Волна", col_campaign: "Кампания", col_state: "Состояние", col_progress: "Выполнено",
    col_actions: "Действия", no_waves: "На этот день волн нет.", details: "Подробнее",
    details_label: "Подробнее о волне {wave}",
    channels_title: "Каналы", col_channel: "Канал", col_total: "Всего", col_queued: "В очереди",
    col_sent: "Отправлено", col_rate: "В минуту", outcomes_title: "Исходы", col_outcome: "Исход",
    col_count: "Задач", zones_title: "Окна по часовым поясам", col_zone: "Часовой пояс", col_tasks: "Задач",
    col_window: "Окно", col_when: "Когда (местное время)", history_title: "История",
    feed_title: "Последние события", live_on: "в реальном времени", live_off: "переподключение…",
    cancel: "Отмена", confirm: "Подтвердить", updated: "обновлено {time}",
    "state.created": "создана", "state.running": "идёт", "state.paused": "на паузе",
    "state.stopped": "остановлена", "state.completed": "завершена",
    "action.start": "Запустить", "action.pause": "Приостановить", "action.resume": "Продолжить",
    "action.stop": "Остановить", action_label: "{action} волну {wave}",
    "confirm.start": "Запустить волну {wave}? Задачи начнут уходить в окнах контакта должников.",
    "confirm.pause": "Приостановить волну {wave}? Новые отправки прекратятся во всех процессах.",
    "confirm.resume": "Продолжить волну {wave}?",
    "confirm.stop": "Остановить волну {wave}? Все неотправленные задачи будут отменены. Это необратимо.",
    confirm_title: "{action}: {wave}", done: "Волна {wave}: {state}.", failed: "Не получилось: {error}",
    no_control: "Ваша роль не позволяет управлять волнами",
    progress: "{wave}: выполнено {final} из {total} ({pct} %)",
    "count.total": "Всего задач", "count.queued": "В очереди", "count.in_flight": "В работе",
    "count.final": "Завершено", "count.sent": "Отправлено", "count.rate": "Темп, в минуту", "count.eta": "Осталось",
    eta_none: "—", minutes: "{n} мин", open_now: "открыто", closed_now: "закрыто",
    closes_at: "до {time}", opens_at: "откроется {time}", no_window: "нет окна в ближайшие дни",
    multi_zone: "Задач, ограниченных пересечением нескольких поясов: {n}",
    "history.created": "Создана", "history.running": "Запущена", "history.paused": "Приостановлена",
    "history.stopped": "Остановлена", "history.completed": "Завершена", by: "({who})",
    "outcome.delivered": "доставлено", "outcome.read": "прочитано", "outcome.accepted": "принято шлюзом",
    "outcome.answered": "ответил", "outcome.answered_machine": "автоответчик", "outcome.busy": "занято",
    "outcome.answered_incomplete": "ответил, не дослушал", "outcome.wrong_party": "не должник",
    "outcome.no_answer": "не ответил", "outcome.rejected": "отклонено", "outcome.congestion": "перегрузка",
    "outcome.invalid_number": "неверный номер", "outcome.failed": "сбой", "outcome.undelivered": "не доставлено",
    "outcome.expired": "истёк срок", "outcome.not_subscribed": "нет в мессенджере",
    "outcome.skipped_stoplist": "стоп-лист", "outcome.skipped_cap": "лимит контактов",
    "outcome.skipped_phone_invalid": "номер отключён", "outcome.window_missed": "окно упущено",
    "outcome.cancelled": "отменено", "outcome.unknown": "неизвестно", "outcome.error": "ошибка",
    "kind.dispatched": "отправка", "kind.result": "исход", "kind.late": "позднее событие",
    "kind.inbound": "входящий",
    "channel.ivr": "IVR", "channel.sms": "SMS", "channel.viber": "Viber", "channel.whatsapp": "WhatsApp",
    lang_button: "English", lang_label: "Switch to English",
  },
  en: {
    title: "Volna — wave console", skip: "Skip to content", signout: "Sign out",
    signin_title: "Sign in", token_label: "Access token", signin: "Sign in",
    token_help: "An administrator issues tokens (volna token create). It is kept in this tab only.",
    token_missing: "Enter a token.", token_bad: "The token was not accepted.",
    signed_out: "Your session ended: sign in again.",
    waves_title: "Waves of the day", day_label: "Day", refresh: "Refresh", waves_caption: "Waves of the chosen day",
    col_wave: "Wave", col_campaign: "Campaign", col_state: "State", col_progress: "Done", col_actions: "Actions",
    no_waves: "No waves on this day.", details: "Details", details_label: "Details of wave {wave}",
    channels_title: "Channels", col_channel: "Channel", col_total: "Total", col_queued: "Queued",
    col_sent: "Sent", col_rate: "Per minute", outcomes_title: "Outcomes", col_outcome: "Outcome",
    col_count: "Tasks", zones_title: "Windows by time zone", col_zone: "Time zone", col_tasks: "Tasks",
    col_window: "Window", col_when: "When (local time)", history_title: "History",
    feed_title: "Latest events", live_on: "live", live_off: "reconnecting…",
    cancel: "Cancel", confirm: "Confirm", updated: "updated {time}",
    "state.created": "created", "state.running": "running", "state.paused": "paused",
    "state.stopped": "stopped", "state.completed": "completed",
    "action.start": "Start", "action.pause": "Pause", "action.resume": "Resume", "action.stop": "Stop",
    action_label: "{action} wave {wave}",
    "confirm.start": "Start wave {wave}? Tasks will go out inside the debtors' contact windows.",
    "confirm.pause": "Pause wave {wave}? No new sends, in every process.",
    "confirm.resume": "Resume wave {wave}?",
    "confirm.stop": "Stop wave {wave}? Every task not yet sent will be cancelled. This cannot be undone.",
    confirm_title: "{action}: {wave}", done: "Wave {wave}: {state}.", failed: "That did not work: {error}",
    no_control: "Your role may not control waves",
    progress: "{wave}: {final} of {total} done ({pct} %)",
    "count.total": "Tasks", "count.queued": "Queued", "count.in_flight": "In flight", "count.final": "Done",
    "count.sent": "Sent", "count.rate": "Rate per minute", "count.eta": "Time left",
    eta_none: "—", minutes: "{n} min", open_now: "open", closed_now: "closed",
    closes_at: "until {time}", opens_at: "opens {time}", no_window: "no window in the coming days",
    multi_zone: "Tasks constrained to the intersection of several zones: {n}",
    "history.created": "Created", "history.running": "Started", "history.paused": "Paused",
    "history.stopped": "Stopped", "history.completed": "Completed", by: "({who})",
    "outcome.delivered": "delivered", "outcome.read": "read", "outcome.accepted": "accepted by gateway",
    "outcome.answered": "answered", "outcome.answered_machine": "answering machine", "outcome.busy": "busy",
    "outcome.answered_incomplete": "answered, incomplete", "outcome.wrong_party": "wrong party",
    "outcome.no_answer": "no answer", "outcome.rejected": "rejected", "outcome.congestion": "congestion",
    "outcome.invalid_number": "invalid number", "outcome.failed": "failed", "outcome.undelivered": "undelivered",
    "outcome.expired": "expired", "outcome.not_subscribed": "not on the messenger",
    "outcome.skipped_stoplist": "stop-list", "outcome.skipped_cap": "contact cap",
    "outcome.skipped_phone_invalid": "phone deactivated", "outcome.window_missed": "window missed",
    "outcome.cancelled": "cancelled", "outcome.unknown": "unknown", "outcome.error": "error",
    "kind.dispatched": "dispatched", "kind.result": "outcome", "kind.late": "late event", "kind.inbound": "inbound",
    "channel.ivr": "IVR", "channel.sms": "SMS", "channel.viber": "Viber", "channel.whatsapp": "WhatsApp",
    lang_button: "Русский", lang_label: "Переключить на русский",
  },
};

const POLL_LIST_MS = 3000;
const POLL_DETAIL_MS = 2000;
const RECONNECT_MS = 2000;
const FEED_SIZE = 25;

const S = {
  lang: localStorage.getItem("volna.lang") === "en" ? "en" : "ru",
  token: sessionStorage.getItem("volna.token"),
  me: null, waves: [], selected: null, view: null, lastPct: null,
  follow: null, timers: [], refreshSoon: null, busy: false,
};

const $ = (id) => document.getElementById(id);

// The other parts of the console (charts.js, tools.js) hook in here: they run after this file.
const HOOKS = { signin: [], signout: [], select: [], lang: [], detail: [] };

function fire(name, ...args) {
  for (const f of HOOKS[name]) {
    try { f(...args); } catch (e) { console.error(e); }
  }
}

function can(perm) {
  return Boolean(S.me && S.me.permissions.includes(perm));
}

function t(key, params = {}) {
  const text = I18N[S.lang][key] ?? I18N.ru[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, k) => (params[k] ?? ""));
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c);
  return node;
}

const num = (n) => Number(n ?? 0).toLocaleString(S.lang === "ru" ? "ru-RU" : "en-GB");

function fmtTime(ms, zone, seconds = false) {
  if (ms === null || ms === undefined) return "";
  const opts = { day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit" };
  if (seconds) opts.second = "2-digit";
  if (zone) opts.timeZone = zone;
  try {
    return new Intl.DateTimeFormat(S.lang === "ru" ? "ru-RU" : "en-GB", opts).format(new Date(ms));
  } catch (e) {
    return new Date(ms).toISOString();
  }
}

function applyI18n() {
  document.documentElement.lang = S.lang;
  document.title = t("title");
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of document.querySelectorAll("[data-i18n-label]")) {
    node.setAttribute("aria-label", t(node.dataset.i18nLabel));
  }
  const lang = $("lang");
  lang.textContent = t("lang_button");
  lang.setAttribute("aria-label", t("lang_label"));
  lang.setAttribute("lang", S.lang === "ru" ? "en" : "ru");
  renderWaves();
  renderDetail();
  fire("lang");
}

// ---- the API ----------------------------------------------------------------------------

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${S.token}`, ...(options.headers || {}) };
  const resp = await fetch(path, { ...options, headers, cache: "no-store" });
  let body = null;
  try { body = await resp.json(); } catch (e) { body = null; }
  if (resp.status === 401) {
    if (S.me) signOut(t("signed_out"));  // a token that stopped working (revoked)
    throw new Error(t("token_bad"));
  }
  if (!resp.ok) throw new Error((body && body.error) || `HTTP ${resp.status}`);
  return body;
}

function canControl() {
  return Boolean(S.me && S.me.permissions.includes("control"));
}

// ---- sign in and out --------------------------------------------------------------------

async function signIn(token) {
  S.token = token;
  const me = await api("/api/v1/whoami");
  S.me = me;
  sessionStorage.setItem("volna.token", token);
  $("whoami").textContent = `${me.name} · ${me.role}`;
  $("signin").hidden = true;
  $("console").hidden = false;
  $("signout").hidden = false;
  if (!$("day").value) $("day").value = localDay(me.now_ms);
  await loadWaves();
  fire("signin");
  S.timers.push(setInterval(() => loadWaves().catch(showError), POLL_LIST_MS));
  S.timers.push(setInterval(() => refreshDetail().catch(showError), POLL_DETAIL_MS));
}

function signOut(message = "") {
  for (const id of S.timers) clearInterval(id);
  S.timers = [];
  stopFollow();
  sessionStorage.removeItem("volna.token");
  Object.assign(S, { token: null, me: null, waves: [], selected: null, view: null, lastPct: null });
  $("console").hidden = true;
  $("signout").hidden = true;
  $("signin").hidden = false;
  $("whoami").textContent = "";
  $("signin-error").textContent = message;
  $("token").value = "";
  $("token").focus();
  fire("signout");
}

function localDay(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

// ---- the waves of the day ---------------------------------------------------------------

async function loadWaves() {
  if (!S.token) return;
  const day = $("day").value;
  const body = await api(`/api/v1/waves${day ? `?day=${encodeURIComponent(day)}` : ""}`);
  S.waves = body.waves;
  $("updated").textContent = t("updated", { time: new Date().toLocaleTimeString(S.lang === "ru" ? "ru-RU" : "en-GB") });
  if (!S.selected && S.waves.length) {
    const live = S.waves.find((w) => w.state === "running" || w.state === "paused");
    selectWave((live || S.waves[0]).wave_id, false);
  }
  renderWaves();
}

function stateBadge(state) {
  return el("span", { class: `state state-${state}`, text: t(`state.${state}`) });
}

// Re-rendering replaces nodes: keep the keyboard focus on the "same" control across it.
function keepFocus(render) {
  const key = document.activeElement?.dataset?.focusKey;
  render();
  if (key) document.querySelector(`[data-focus-key="${CSS.escape(key)}"]`)?.focus();
}

function actionButtons(scope, wave, actions) {
  const box = el("div", { class: "actions" });
  for (const action of ["start", "pause", "resume", "stop"]) {
    const allowed = actions.includes(action) && canControl();
    const label = t("action_label", { action: t(`action.${action}`), wave });
    box.append(el("button", {
      type: "button", class: action === "stop" ? "danger" : (action === "start" ? "primary" : ""),
      "aria-label": label, title: canControl() ? label : t("no_control"), disabled: !allowed,
      "data-action": action, "data-wave": wave, "data-focus-key": `${scope}:${wave}:${action}`,
      text: t(`action.${action}`), onclick: (ev) => confirmAction(wave, action, ev.currentTarget.dataset.focusKey),
    }));
  }
  return box;
}

function pct(counts) {
  return counts.total ? Math.floor((100 * counts.final) / counts.total) : 0;
}

function renderWaves() {
  keepFocus(renderWaveRows);
}

function renderWaveRows() {
  const body = $("waves").querySelector("tbody");
  body.replaceChildren();
  $("no-waves").hidden = S.waves.length > 0 || !S.me;
  for (const w of S.waves) {
    const p = pct(w.counts);
    const row = el("tr", { class: w.wave_id === S.selected ? "selected" : "", "data-wave": w.wave_id },
      el("th", { scope: "row" }, el("button", {
        type: "button", class: "link", "aria-label": t("details_label", { wave: w.wave_id }),
        "aria-pressed": String(w.wave_id === S.selected), text: w.wave_id, "data-focus-key": `open:${w.wave_id}`,
        onclick: () => selectWave(w.wave_id, true),
      })),
      el("td", { text: w.campaign_id }),
      el("td", {}, stateBadge(w.state)),
      el("td", {}, el("progress", { max: "100", value: String(p), "aria-label": `${w.wave_id}: ${p} %` }),
        el("span", { text: `${num(w.counts.final)} / ${num(w.counts.total)}` })),
      el("td", {}, actionButtons("row", w.wave_id, w.actions)),
    );
    body.append(row);
  }
}

// ---- one wave ---------------------------------------------------------------------------

function selectWave(waveId, focus) {
  if (S.selected !== waveId) {
    S.selected = waveId;
    S.view = null;
    S.lastPct = null;
    $("feed").replaceChildren();
    follow(waveId);
  }
  renderWaves();
  fire("select", waveId);
  refreshDetail().then(() => { if (focus) $("detail-title").focus(); }).catch(showError);
}

async function refreshDetail() {
  if (!S.selected || !S.token) return;
  S.view = await api(`/api/v1/waves/${encodeURIComponent(S.selected)}`);
  renderDetail();
}

function scheduleRefresh() {
  if (S.refreshSoon) return;
  S.refreshSoon = setTimeout(() => {
    S.refreshSoon = null;
    refreshDetail().catch(showError);
    loadWaves().catch(showError);
  }, 700);
}

function renderDetail() {
  keepFocus(renderDetailParts);
  fire("detail", S.view);
}

function renderDetailParts() {
  const v = S.view;
  $("detail").hidden = !v;
  if (!v) return;
  $("detail-title").textContent = `${t("col_wave")} ${v.wave_id} · ${v.campaign_id} · ${v.day} · ${t(`state.${v.state}`)}`;
  $("detail-title").setAttribute("tabindex", "-1");
  const p = pct(v.counts);
  $("progress-bar").value = p;
  // The live region changes only when the whole percent (or the state) does: a screen reader
  // hears progress, not every counter tick.
  const key = `${p}|${v.state}|${S.lang}|${v.counts.total}`;
  if (S.lastPct !== key) {
    S.lastPct = key;
    $("progress-live").textContent = `${t("progress", {
      wave: v.wave_id, final: num(v.counts.final), total: num(v.counts.total), pct: p,
    })} · ${t(`state.${v.state}`)}`;
  }
  $("detail-actions").replaceChildren(actionButtons("detail", v.wave_id, v.actions));

  const counts = $("counts");
  counts.replaceChildren();
  const items = [
    ["total", num(v.counts.total)], ["queued", num(v.counts.queued)], ["in_flight", num(v.counts.in_flight)],
    ["final", num(v.counts.final)], ["sent", num(v.counts.sent)], ["rate", num(v.rate_per_min)],
    ["eta", v.eta_s === null ? t("eta_none") : t("minutes", { n: Math.ceil(v.eta_s / 60) })],
  ];
  for (const [k, value] of items) {
    counts.append(el("div", {}, el("dt", { text: t(`count.${k}`) }), el("dd", { id: `count-${k}`, text: value })));
  }

  const channels = $("channels").querySelector("tbody");
  channels.replaceChildren();
  for (const [ch, c] of Object.entries(v.channels)) {
    channels.append(el("tr", {},
      el("th", { scope: "row", text: t(`channel.${ch}`) }), el("td", { class: "num", text: num(c.total) }),
      el("td", { class: "num", text: num(c.queued) }), el("td", { class: "num", text: num(c.sent) }),
      el("td", { class: "num", text: num(c.rate_per_min) })));
  }

  const outcomes = $("outcomes").querySelector("tbody");
  outcomes.replaceChildren();
  for (const [o, n] of Object.entries(v.outcomes).sort((a, b) => b[1] - a[1])) {
    outcomes.append(el("tr", { "data-outcome": o },
      el("th", { scope: "row", text: t(`outcome.${o}`) }), el("td", { class: "num", text: num(n) })));
  }

  const zones = $("zones").querySelector("tbody");
  zones.replaceChildren();
  for (const z of v.zones) {
    if (z.zone.startsWith("multi:")) continue;
    let when = t("no_window");
    if (z.open_now) when = t("closes_at", { time: fmtTime(z.closes_at_ms, z.zone) });
    else if (z.opens_at_ms) when = t("opens_at", { time: fmtTime(z.opens_at_ms, z.zone) });
    zones.append(el("tr", {},
      el("th", { scope: "row", text: z.zone }), el("td", { class: "num", text: num(z.tasks) }),
      el("td", { class: z.open_now ? "open" : "closed", text: z.open_now ? t("open_now") : t("closed_now") }),
      el("td", { text: when })));
  }
  $("multi-zone").textContent = v.multi_zone_tasks ? t("multi_zone", { n: num(v.multi_zone_tasks) }) : "";

  const history = $("history");
  history.replaceChildren();
  for (const step of ["created", "running", "paused", "stopped", "completed"]) {
    const at = v.history[`${step}_at`];
    if (!at) continue;
    const who = v.history[`${step}_by`];
    history.append(el("li", { text: `${t(`history.${step}`)}: ${fmtTime(at)} ${who ? t("by", { who }) : ""}` }));
  }
}

// ---- control ----------------------------------------------------------------------------

function confirmAction(wave, action, focusKey) {
  const dialog = $("confirm");
  $("confirm-title").textContent = t("confirm_title", { action: t(`action.${action}`), wave });
  $("confirm-text").textContent = t(`confirm.${action}`, { wave });
  $("confirm-ok").textContent = t(`action.${action}`);
  $("confirm-ok").className = action === "stop" ? "danger" : "primary";
  dialog.returnValue = "";
  dialog.onclose = async () => {
    dialog.onclose = null;
    const restore = () => {
      const again = document.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`);
      (again && !again.disabled ? again : $("detail-title")).focus();
    };
    if (dialog.returnValue !== "ok") { restore(); return; }
    await runAction(wave, action);
    restore();
  };
  dialog.showModal();
  $("confirm-cancel").focus();
}

async function runAction(wave, action) {
  const status = $("status");
  try {
    const r = await api(`/api/v1/waves/${encodeURIComponent(wave)}/${action}`, { method: "POST" });
    status.className = "status";
    status.textContent = t("done", { wave, state: t(`state.${r.state}`) });
  } catch (e) {
    showError(e);
  }
  await Promise.all([loadWaves(), refreshDetail()]).catch(showError);
}

function showError(e) {
  if (!S.token) return;
  const status = $("status");
  status.className = "status bad";
  status.textContent = t("failed", { error: e.message || String(e) });
}

// ---- the live results stream ------------------------------------------------------------

function stopFollow() {
  if (S.follow) S.follow.ctrl.abort();
  S.follow = null;
  $("feed-state").textContent = "";
}

async function follow(waveId) {
  stopFollow();
  const f = { waveId, ctrl: new AbortController(), lastId: null };
  S.follow = f;
  while (!f.ctrl.signal.aborted && S.token) {
    try {
      const headers = { Authorization: `Bearer ${S.token}` };
      let url = `/api/v1/results/stream?wave=${encodeURIComponent(waveId)}`;
      if (f.lastId) headers["Last-Event-ID"] = f.lastId;
      else url += "&since=now";
      const resp = await fetch(url, { headers, signal: f.ctrl.signal, cache: "no-store" });
      if (resp.status === 401) { signOut(t("signed_out")); return; }
      if (!resp.ok || !resp.body) throw new Error(`HTTP ${resp.status}`);
      $("feed-state").textContent = t("live_on");
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n?/g, "\n");
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          onBlock(f, block);
        }
      }
    } catch (e) {
      if (f.ctrl.signal.aborted) return;
    }
    if (f.ctrl.signal.aborted) return;
    $("feed-state").textContent = t("live_off");
    await new Promise((r) => setTimeout(r, RECONNECT_MS));
  }
}

function onBlock(f, block) {
  let id = null;
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const at = line.indexOf(":");
    const name = at < 0 ? line : line.slice(0, at);
    let value = at < 0 ? "" : line.slice(at + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "id") id = value;
    else if (name === "data") data.push(value);
  }
  if (!data.length || f !== S.follow) return;
  if (id) f.lastId = id;
  let record;
  try { record = JSON.parse(data.join("\n")); } catch (e) { return; }
  const feed = $("feed");
  const what = record.outcome ? t(`outcome.${record.outcome}`) : "";
  feed.prepend(el("li", {
    text: `${fmtTime(record.finished_at || record.sent_at || record.claimed_at, null, true)} ${record.task_id} `
      + `${t(`channel.${record.channel}`)} ${t(`kind.${record.kind}`)} ${what}`.trim(),
  }));
  while (feed.children.length > FEED_SIZE) feed.lastChild.remove();
  scheduleRefresh();
}

// ---- wiring -----------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const token = $("token").value.trim();
    $("signin-error").textContent = "";
    if (!token) { $("signin-error").textContent = t("token_missing"); return; }
    try {
      await signIn(token);
    } catch (e) {
      S.token = null;
      if (!$("signin-error").textContent) $("signin-error").textContent = t("token_bad");
    }
  });
  $("signout").addEventListener("click", () => signOut());
  $("refresh").addEventListener("click", () => { loadWaves().catch(showError); refreshDetail().catch(showError); });
  $("day").addEventListener("change", () => {
    S.selected = null; S.view = null; stopFollow(); renderDetail(); loadWaves().catch(showError);
  });
  $("lang").addEventListener("click", () => {
    S.lang = S.lang === "ru" ? "en" : "ru";
    localStorage.setItem("volna.lang", S.lang);
    S.lastPct = null;
    applyI18n();
  });
  applyI18n();
  if (S.token) signIn(S.token).catch(() => signOut(t("signed_out")));
  else $("token").focus();
});
