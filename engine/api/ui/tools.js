// Volna console: the manager's tools beside the waves — sections (tabs), create a wave, upload its
// tasks (with a progress bar and the rejected lines), the stop-list, a debtor or phone look-up, and
// the engine's health. Controls a role may not use are disabled here; the API refuses them anyway.
"use strict";

const REASONS = ["paid", "refused", "representative", "bankrupt", "deceased", "wrong_number", "complaint"];

Object.assign(I18N.ru, {
  tabs_label: "Разделы", tab_waves: "Волны", tab_stoplist: "Стоп-лист", tab_lookup: "Должник или телефон",
  tab_health: "Состояние",
  create_title: "Новая волна", new_wave_label: "Идентификатор волны", new_campaign_label: "Кампания",
  new_day_label: "День волны", create_submit: "Создать волну", created: "Волна {wave} создана на {day}.",
  bad_id: "Идентификатор: латинские буквы, цифры и . _ : - (до 128 знаков).",
  upload_title: "Загрузка задач", upload_label: "Файл задач (JSONL или CSV)", upload_submit: "Загрузить",
  upload_pick: "Выберите файл.", upload_sending: "Загрузка {name}: {pct} %",
  upload_done: "Загружено из {name}: принято {accepted}, уже было {dup}, отклонено {rejected}.",
  upload_more: "Показаны первые {n} отклонённых строк.", rejections_caption: "Отклонённые строки",
  col_line: "Строка", col_reason: "Причина", no_upload: "Ваша роль не позволяет загружать задачи",
  no_create: "Ваша роль не позволяет создавать волны", no_stoplist: "Ваша роль не позволяет менять стоп-лист",
  stoplist_title: "Стоп-лист", stop_kind_label: "Что", kind_debtor: "Должник", kind_phone: "Телефон",
  stop_q_label: "Поиск (часть номера или идентификатора)", search: "Найти",
  stop_entries_caption: "Записи стоп-листа", col_value: "Значение", col_since: "С", col_who: "Кто",
  stop_empty: "Ничего не найдено.", stop_add_title: "Внести в стоп-лист",
  stop_value_label: "Идентификатор должника или телефон", stop_reason_label: "Причина",
  stop_add_submit: "Внести", stop_added: "{value} внесён в стоп-лист ({reason}).",
  stop_import_title: "Импорт из CSV", stop_import_help: "Строки kind,value,reason: debtor или phone, значение, причина.",
  stop_import_label: "Файл CSV", stop_import_submit: "Импортировать",
  stop_imported: "Импорт: добавлено {added}, отклонено {rejected}.", line_reason: "строка {line}: {reason}",
  stop_note_title: "Снятие со стоп-листа", stop_note_label: "Почему снимаете (обязательно)",
  stop_note_missing: "Укажите, почему снимаете запись (поле «Почему снимаете»).",
  remove: "Снять", remove_label: "Снять {value} со стоп-листа", stop_removed: "{value} снят со стоп-листа.",
  "reason.paid": "оплачено", "reason.refused": "отказ от взаимодействия", "reason.representative": "через представителя",
  "reason.bankrupt": "банкротство", "reason.deceased": "умер", "reason.wrong_number": "чужой номер",
  "reason.complaint": "жалоба",
  lookup_title: "Должник или телефон", lookup_none: "Ничего не найдено о {value}.",
  lookup_found: "{value}: задач {tasks}, телефонов {phones}.", lookup_masked: "Номера скрыты для вашей роли.",
  caps_title: "Контакты и лимиты", col_debtor: "Должник", col_class: "Вид", col_today: "Сегодня",
  col_week: "Неделя", col_month: "Месяц", "cap.conversation": "разговоры", "cap.message": "сообщения",
  phones_title: "Телефоны", col_phone_status: "Статус", "phone.active": "активен", "phone.stopped": "в стоп-листе",
  "phone.invalid": "отключён (неверный номер)", lookup_tasks_title: "Задачи и последние исходы",
  col_task: "Задача", col_attempt: "Попытка", lookup_stop_submit: "Внести должника в стоп-лист",
  not_on_stoplist: "В стоп-листе нет.", on_stoplist: "{kind} {value}: {reason}, с {since} ({who})",
  "phase.queued": "в очереди", "phase.claimed": "взята", "phase.sending": "отправляется",
  "phase.accepted": "ждёт итога", "phase.ended": "завершена",
  health_title: "Состояние движка", redis_ok: "Redis отвечает.", redis_down: "Redis не отвечает!",
  no_processes: "Ни один процесс рассылки (volna run) не сообщает о себе.",
  sessions_caption: "Сессии AMI, SMPP-бинды и шлюзы", col_process: "Процесс", col_kind: "Тип",
  col_target: "Направление", col_up: "Работает", throttle_caption: "Троттлинг (отказы «слишком часто», с запуска)",
  queues_caption: "Очереди идущих волн", col_eligible: "Можно отправить сейчас", col_inflight: "В работе",
  "health.up": "в работе", "health.degraded": "частично", "health.down": "не работает", "health.stale": "нет связи",
  "health.healthy": "исправно", "health.unhealthy": "отключено", "kind.target": "канал {ch}",
  in_flight_n: "в работе: {n}", no_throttling: "Отказов не было.",
});
Object.assign(I18N.en, {
  tabs_label: "Sections", tab_waves: "Waves", tab_stoplist: "Stop-list", tab_lookup: "Debtor or phone",
  tab_health: "Health",
  create_title: "New wave", new_wave_label: "Wave id", new_campaign_label: "Campaign", new_day_label: "Wave day",
  create_submit: "Create wave", created: "Wave {wave} created for {day}.",
  bad_id: "Ids: Latin letters, digits and . _ : - (up to 128).",
  upload_title: "Upload tasks", upload_label: "Task file (JSONL or CSV)", upload_submit: "Upload",
  upload_pick: "Choose a file.", upload_sending: "Uploading {name}: {pct} %",
  upload_done: "Loaded from {name}: {accepted} accepted, {dup} already there, {rejected} rejected.",
  upload_more: "The first {n} rejected lines are shown.", rejections_caption: "Rejected lines",
  col_line: "Line", col_reason: "Reason", no_upload: "Your role may not upload tasks",
  no_create: "Your role may not create waves", no_stoplist: "Your role may not change the stop-list",
  stoplist_title: "Stop-list", stop_kind_label: "Kind", kind_debtor: "Debtor", kind_phone: "Phone",
  stop_q_label: "Search (part of a number or id)", search: "Search",
  stop_entries_caption: "Stop-list entries", col_value: "Value", col_since: "Since", col_who: "By",
  stop_empty: "Nothing found.", stop_add_title: "Add to the stop-list",
  stop_value_label: "Debtor id or phone", stop_reason_label: "Reason",
  stop_add_submit: "Add", stop_added: "{value} is on the stop-list ({reason}).",
  stop_import_title: "Import a CSV", stop_import_help: "Lines kind,value,reason: debtor or phone, the value, the reason.",
  stop_import_label: "CSV file", stop_import_submit: "Import",
  stop_imported: "Import: {added} added, {rejected} rejected.", line_reason: "line {line}: {reason}",
  stop_note_title: "Taking entries off", stop_note_label: "Why it comes off (required)",
  stop_note_missing: "Say why the entry comes off (the “Why it comes off” field).",
  remove: "Remove", remove_label: "Take {value} off the stop-list", stop_removed: "{value} is off the stop-list.",
  "reason.paid": "paid", "reason.refused": "refused contact", "reason.representative": "through a representative",
  "reason.bankrupt": "bankrupt", "reason.deceased": "deceased", "reason.wrong_number": "wrong number",
  "reason.complaint": "complaint",
  lookup_title: "Debtor or phone", lookup_none: "Nothing is known of {value}.",
  lookup_found: "{value}: {tasks} tasks, {phones} phones.", lookup_masked: "Numbers are masked for your role.",
  caps_title: "Contacts and caps", col_debtor: "Debtor", col_class: "Class", col_today: "Today",
  col_week: "Week", col_month: "Month", "cap.conversation": "conversations", "cap.message": "messages",
  phones_title: "Phones", col_phone_status: "Status", "phone.active": "active", "phone.stopped": "on the stop-list",
  "phone.invalid": "deactivated (invalid number)", lookup_tasks_title: "Tasks and last outcomes",
  col_task: "Task", col_attempt: "Attempt", lookup_stop_submit: "Put the debtor on the stop-list",
  not_on_stoplist: "Not on the stop-list.", on_stoplist: "{kind} {value}: {reason}, since {since} ({who})",
  "phase.queued": "queued", "phase.claimed": "claimed", "phase.sending": "sending",
  "phase.accepted": "awaiting its outcome", "phase.ended": "ended",
  health_title: "Engine health", redis_ok: "Redis answers.", redis_down: "Redis does not answer!",
  no_processes: "No dispatcher process (volna run) reports.",
  sessions_caption: "AMI sessions, SMPP binds and gateways", col_process: "Process", col_kind: "Kind",
  col_target: "Target", col_up: "Up", throttle_caption: "Throttling (peers' “too fast” refusals, since start)",
  queues_caption: "Queues of the live waves", col_eligible: "Eligible now", col_inflight: "In flight",
  "health.up": "up", "health.degraded": "degraded", "health.down": "down", "health.stale": "no report",
  "health.healthy": "healthy", "health.unhealthy": "disabled", "kind.target": "{ch} channel",
  in_flight_n: "in flight: {n}", no_throttling: "No refusals.",
});

const HEALTH_POLL_MS = 3000;
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const T = { healthTimer: null, lookup: null, stop: null };

function say(id, text, bad = false) {
  const node = $(id);
  node.textContent = text;
  node.classList.toggle("bad", bad);
}

// ---- sections (an ARIA tablist: arrows move, Home/End jump) ------------------------------

function tabs() {
  return [...document.querySelectorAll("[role='tab']")];
}

function selectTab(tab, focus = true) {
  for (const other of tabs()) {
    const on = other === tab;
    other.setAttribute("aria-selected", String(on));
    other.tabIndex = on ? 0 : -1;
    $(other.getAttribute("aria-controls")).hidden = !on;
  }
  if (focus) tab.focus();
  $("status").textContent = "";  // the last action's word belongs to the section it was said in
  if (tab.id === "tab-health") loadHealth().catch(showError);
  if (tab.id === "tab-stoplist" && !T.stop) searchStop().catch(showError);
}

// ---- what a role may change ---------------------------------------------------------------

function gate(ids, perm, why) {
  for (const id of ids) {
    const node = $(id);
    node.disabled = !can(perm);
    if (!can(perm)) node.title = t(why); else node.removeAttribute("title");
  }
}

function applyRole() {
  gate(["new-wave", "new-campaign", "new-day", "create-submit"], "create", "no_create");
  gate(["upload-file", "upload-submit"], "upload", "no_upload");
  gate(["stop-add-kind", "stop-add-value", "stop-add-reason", "stop-add-submit", "stop-import-file",
    "stop-import-submit", "stop-note", "lookup-stop-reason", "lookup-stop-submit"], "stoplist", "no_stoplist");
}

function fillReasons() {
  for (const select of document.querySelectorAll("select.reasons")) {
    const keep = select.value;
    select.replaceChildren(...REASONS.map((r) => el("option", { value: r, text: t(`reason.${r}`) })));
    if (keep) select.value = keep;
  }
}

// ---- create a wave ------------------------------------------------------------------------

async function createWave(ev) {
  ev.preventDefault();
  const wave = $("new-wave").value.trim();
  const campaign = $("new-campaign").value.trim();
  const day = $("new-day").value || $("day").value;
  if (!ID_RE.test(wave) || !ID_RE.test(campaign)) { say("create-result", t("bad_id"), true); return; }
  try {
    await api("/api/v1/waves", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ wave_id: wave, campaign_id: campaign, day }),
    });
  } catch (e) {
    say("create-result", t("failed", { error: e.message }), true);
    return;
  }
  say("create-result", t("created", { wave, day }));
  if ($("day").value !== day) {
    $("day").value = day;
    S.selected = null;
  }
  await loadWaves();
  selectWave(wave, false);
  $("upload-file").focus();
}

// ---- upload tasks (XMLHttpRequest: fetch reports no upload progress) ------------------------

function uploadTasks(ev) {
  ev.preventDefault();
  const file = $("upload-file").files[0];
  const wave = S.selected;
  if (!file || !wave) { say("upload-result", t("upload_pick"), true); return; }
  const csv = /\.(csv|txt)$/i.test(file.name) || file.type === "text/csv";
  const bar = $("upload-progress");
  bar.hidden = false;
  bar.value = 0;
  $("upload-submit").disabled = true;
  say("upload-result", t("upload_sending", { name: file.name, pct: 0 }));
  const xhr = new XMLHttpRequest();
  xhr.open("POST", `/api/v1/waves/${encodeURIComponent(wave)}/tasks`);
  xhr.setRequestHeader("Authorization", `Bearer ${S.token}`);
  xhr.setRequestHeader("Content-Type", csv ? "text/csv" : "application/x-ndjson");
  xhr.responseType = "json";
  xhr.upload.onprogress = (e) => {
    if (!e.lengthComputable) return;
    const pct = Math.floor((100 * e.loaded) / e.total);
    bar.value = pct;
    $("upload-result").textContent = t("upload_sending", { name: file.name, pct });
  };
  xhr.onloadend = () => {
    $("upload-submit").disabled = !can("upload");
    const body = xhr.response;
    if (xhr.status === 401) { signOut(t("signed_out")); return; }
    if (!body || (xhr.status >= 300 && body.accepted === undefined)) {
      bar.hidden = true;
      say("upload-result", t("failed", { error: (body && body.error) || `HTTP ${xhr.status}` }), true);
      return;
    }
    bar.value = 100;
    say("upload-result", t("upload_done", {
      name: file.name, accepted: num(body.accepted), dup: num(body.already_loaded), rejected: num(body.rejected),
    }) + (xhr.status >= 300 ? ` ${body.error}` : ""), xhr.status >= 300);
    renderRejections(body.rejections || [], body.rejections_truncated);
    refreshDetail().catch(showError);
    loadWaves().catch(showError);
  };
  xhr.send(file);
}

function renderRejections(list, truncated) {
  const table = $("rejections");
  const body = table.querySelector("tbody");
  body.replaceChildren(...list.map((r) => el("tr", { "data-line": String(r.line) },
    el("td", { class: "num", text: String(r.line) }), el("td", { text: r.reason }))));
  if (truncated) body.append(el("tr", {}, el("td", { colspan: "2", text: t("upload_more", { n: list.length }) })));
  table.hidden = list.length === 0;
}

// ---- the stop-list ------------------------------------------------------------------------

async function searchStop(ev) {
  if (ev) ev.preventDefault();
  const kind = $("stop-kind").value;
  const q = $("stop-q").value.trim();
  const page = await api(`/api/v1/stoplist?kind=${kind}&limit=200${q ? `&q=${encodeURIComponent(q)}` : ""}`);
  T.stop = page;
  renderStop();
}

function renderStop() {
  if (!T.stop) return;
  const body = $("stop-entries").querySelector("tbody");
  body.replaceChildren();
  for (const e of T.stop.entries) {
    const label = t("remove_label", { value: e.value });
    body.append(el("tr", { "data-value": e.value },
      el("th", { scope: "row", text: e.value }), el("td", { text: t(`reason.${e.reason}`) }),
      el("td", { text: fmtTime(e.at_ms) }), el("td", { text: e.by }),
      el("td", {}, el("button", {
        type: "button", class: "danger", text: t("remove"), "aria-label": label, disabled: !can("stoplist"),
        title: can("stoplist") ? label : t("no_stoplist"), onclick: () => removeStop(e.kind, e.value),
      }))));
  }
  $("stop-empty").hidden = T.stop.entries.length > 0;
}

async function addStop(kind, value, reason, resultId) {
  const entry = await api("/api/v1/stoplist", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ kind, value, reason }),
  });
  say(resultId, t("stop_added", { value: entry.value, reason: t(`reason.${entry.reason}`) }));
  return entry;
}

async function removeStop(kind, value) {
  const note = $("stop-note").value.trim();
  if (!note) { showError(new Error(t("stop_note_missing"))); $("stop-note").focus(); return; }
  try {
    await api(`/api/v1/stoplist/${kind}/${encodeURIComponent(value)}?note=${encodeURIComponent(note)}`,
      { method: "DELETE" });
    $("status").className = "status";
    $("status").textContent = t("stop_removed", { value });
  } catch (e) {
    showError(e);
  }
  await searchStop();
}

async function importStop(ev) {
  ev.preventDefault();
  const file = $("stop-import-file").files[0];
  if (!file) { say("stop-import-result", t("upload_pick"), true); return; }
  try {
    const r = await api("/api/v1/stoplist/import", { method: "POST", headers: { "Content-Type": "text/csv" }, body: file });
    say("stop-import-result", t("stop_imported", { added: num(r.added), rejected: num(r.rejected) }));
    $("stop-import-rejections").replaceChildren(...r.rejections.map((x) => el("li", {
      text: t("line_reason", { line: x.line, reason: x.reason }),
    })));
    await searchStop();
  } catch (e) {
    say("stop-import-result", t("failed", { error: e.message }), true);
  }
}

// ---- look-up ------------------------------------------------------------------------------

async function lookup(ev) {
  if (ev) ev.preventDefault();
  const kind = $("lookup-kind").value;
  const value = $("lookup-value").value.trim();
  if (!value) return;
  try {
    T.lookup = await api(`/api/v1/lookup?${kind}=${encodeURIComponent(value)}&day=${encodeURIComponent($("day").value)}`);
  } catch (e) {
    T.lookup = null;
    $("lookup-body").hidden = true;
    say("lookup-result", t("failed", { error: e.message }), true);
    return;
  }
  renderLookup();
}

function renderLookup() {
  const r = T.lookup;
  if (!r) return;
  const known = r.tasks.length || r.stoplist.length;
  say("lookup-result", (known ? t("lookup_found", { value: r.query, tasks: r.tasks.length, phones: r.phones.length })
    : t("lookup_none", { value: r.query })) + (r.masked ? ` ${t("lookup_masked")}` : ""));
  $("lookup-body").hidden = false;
  const caps = $("lookup-caps").querySelector("tbody");
  caps.replaceChildren(...r.caps.map((c) => el("tr", { "data-class": c.cap_class },
    el("th", { scope: "row", text: c.debtor_id }), el("td", { text: t(`cap.${c.cap_class}`) }),
    el("td", { class: "num", text: `${c.day} / ${c.day_limit}` }),
    el("td", { class: "num", text: `${c.week} / ${c.week_limit}` }),
    el("td", { class: "num", text: `${c.month} / ${c.month_limit}` }))));
  const phones = $("lookup-phones").querySelector("tbody");
  phones.replaceChildren(...r.phone_status.map((p) => el("tr", {},
    el("th", { scope: "row", text: p.phone }), el("td", { class: `phone-${p.status}`, text: t(`phone.${p.status}`) }))));
  const stop = $("lookup-stop");
  stop.replaceChildren(...(r.stoplist.length ? r.stoplist.map((e) => el("li", {
    text: t("on_stoplist", { kind: t(`kind_${e.kind}`), value: e.value, reason: t(`reason.${e.reason}`),
      since: fmtTime(e.at_ms), who: e.by }),
  })) : [el("li", { class: "muted", text: t("not_on_stoplist") })]));
  $("lookup-stop-form").hidden = !(r.kind === "debtor" || r.debtors.length === 1);
  const tasks = $("lookup-tasks").querySelector("tbody");
  tasks.replaceChildren(...r.tasks.map((x) => el("tr", { "data-task": x.task_id },
    el("td", { text: `${x.wave_id} (${x.day})` }), el("th", { scope: "row", text: x.task_id }),
    el("td", { text: t(`channel.${x.channel}`) }), el("td", { text: x.phone }),
    el("td", { class: "num", text: String(x.attempt) }),
    el("td", { text: x.final || x.outcome ? t(`outcome.${x.outcome}`) : t(`phase.${x.phase}`) }))));
}

async function stopDebtor(ev) {
  ev.preventDefault();
  const r = T.lookup;
  if (!r) return;
  const debtor = r.kind === "debtor" ? r.query : r.debtors[0];
  try {
    await addStop("debtor", debtor, $("lookup-stop-reason").value, "lookup-result");
  } catch (e) {
    say("lookup-result", t("failed", { error: e.message }), true);
    return;
  }
  const said = $("lookup-result").textContent;
  await lookup();
  say("lookup-result", said);
}

// ---- health -------------------------------------------------------------------------------

async function loadHealth() {
  if (!S.token || $("panel-health").hidden) return;
  const h = await api("/api/v1/health");
  say("health-redis", h.redis ? t("redis_ok") : t("redis_down"), !h.redis);
  const sessions = $("health-sessions").querySelector("tbody");
  sessions.replaceChildren();
  for (const p of h.processes) {
    const stale = p.stale ? ` · ${t("health.stale")}` : "";
    for (const s of p.sessions) {
      sessions.append(el("tr", { "data-kind": s.kind, "data-target": s.target },
        el("td", { text: p.process }), el("td", { text: s.kind }), el("th", { scope: "row", text: s.target }),
        el("td", { class: "num", text: s.configured === null ? String(s.up) : `${s.up} / ${s.configured}` }),
        el("td", { class: `health-${p.stale ? "down" : s.state}`, text: t(`health.${s.state}`) + stale })));
    }
    for (const g of p.targets) {
      const state = p.stale ? "stale" : (g.healthy ? "healthy" : "unhealthy");
      sessions.append(el("tr", { "data-kind": g.channel, "data-target": g.target },
        el("td", { text: p.process }), el("td", { text: t("kind.target", { ch: t(`channel.${g.channel}`) }) }),
        el("th", { scope: "row", text: g.target }), el("td", { class: "num", text: t("in_flight_n", { n: num(g.in_flight) }) }),
        el("td", { class: `health-${g.healthy && !p.stale ? "up" : "down"}`, text: t(`health.${state}`) })));
    }
  }
  if (!h.processes.length) {
    sessions.append(el("tr", {}, el("td", { colspan: "5", class: "muted", text: t("no_processes") })));
  }
  const throttle = $("health-throttle").querySelector("tbody");
  throttle.replaceChildren(...h.processes.flatMap((p) => p.throttled.map((x) => el("tr", { "data-target": x.target },
    el("td", { text: x.kind }), el("th", { scope: "row", text: x.target }), el("td", { class: "num", text: num(x.total) })))));
  if (!throttle.children.length) {
    throttle.append(el("tr", {}, el("td", { colspan: "3", class: "muted", text: t("no_throttling") })));
  }
  const queues = $("health-queues").querySelector("tbody");
  queues.replaceChildren();
  for (const q of h.queues) {
    const channels = Object.entries(q.channels);
    if (!channels.length) channels.push(["—", { queued: 0, eligible_now: 0 }]);
    for (const [ch, c] of channels) {
      queues.append(el("tr", { "data-queue": q.wave_id },
        el("th", { scope: "row", text: q.wave_id }), el("td", { text: t(`state.${q.state}`) }),
        el("td", { text: ch === "—" ? ch : t(`channel.${ch}`) }), el("td", { class: "num", text: num(c.queued) }),
        el("td", { class: "num", text: num(c.eligible_now) }), el("td", { class: "num", text: num(q.in_flight) })));
    }
  }
}

// ---- wiring -------------------------------------------------------------------------------

HOOKS.signin.push(() => {
  applyRole();
  fillReasons();
  if (!$("new-day").value) $("new-day").value = $("day").value;
  T.healthTimer = setInterval(() => loadHealth().catch(showError), HEALTH_POLL_MS);
});
HOOKS.signout.push(() => {
  clearInterval(T.healthTimer);
  T.lookup = null;
  T.stop = null;
  selectTab($("tab-waves"), false);
});
HOOKS.lang.push(() => {
  fillReasons();
  if (S.me) applyRole();
  renderStop();
  renderLookup();
});
HOOKS.detail.push((view) => {
  $("upload").hidden = !view;
});
HOOKS.select.push(() => {
  renderRejections([], false);
  $("upload-progress").hidden = true;
  $("upload-result").textContent = "";
});

document.addEventListener("DOMContentLoaded", () => {
  for (const tab of tabs()) {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (ev) => {
      const all = tabs();
      const i = all.indexOf(tab);
      const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: all.length - 1 }[ev.key];
      if (to === undefined) return;
      ev.preventDefault();
      selectTab(all[(to + all.length) % all.length]);
    });
  }
  $("create-form").addEventListener("submit", createWave);
  $("upload-form").addEventListener("submit", uploadTasks);
  $("stop-search-form").addEventListener("submit", (ev) => searchStop(ev).catch(showError));
  $("stop-add-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await addStop($("stop-add-kind").value, $("stop-add-value").value.trim(), $("stop-add-reason").value, "status");
      await searchStop();
    } catch (e) { showError(e); }
  });
  $("stop-import-form").addEventListener("submit", importStop);
  $("lookup-form").addEventListener("submit", lookup);
  $("lookup-stop-form").addEventListener("submit", stopDebtor);
  fillReasons();
});
