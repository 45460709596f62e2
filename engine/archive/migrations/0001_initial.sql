-- Volna's archive, version 1. Applied once, in one transaction, by engine.archive.db.migrate.
-- Personal data (phones, template vars) sits in task_personal and nowhere else, so retention
-- can pseudonymize it without touching the interaction log (results, contacts).

CREATE TABLE campaigns (
    campaign_id   text PRIMARY KEY,
    first_seen_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE waves (
    wave_id      text PRIMARY KEY,
    campaign_id  text NOT NULL REFERENCES campaigns,
    day          date NOT NULL,               -- the debtors' local calendar day
    state        text NOT NULL,
    meta         jsonb NOT NULL,              -- the wave's meta hash (who started, paused, stopped it)
    finished_at  timestamptz,                 -- completed or stopped (engine clock)
    archived_at  timestamptz,                 -- its stream was drained into the archive, nothing pending
    purged_at    timestamptz                  -- its keys left Redis
);

-- A task as the planner loaded it, without personal data.
CREATE TABLE tasks (
    wave_id      text NOT NULL,
    task_id      text NOT NULL,
    campaign_id  text NOT NULL,
    debtor_id    text NOT NULL,
    channel      text NOT NULL,
    scenario     text NOT NULL,
    region       text,
    tz           text,
    priority     smallint NOT NULL DEFAULT 0,
    cascade      text[] NOT NULL DEFAULT '{}',
    day          date NOT NULL,
    PRIMARY KEY (wave_id, task_id)
);
CREATE INDEX tasks_debtor ON tasks (debtor_id);

-- The personal data of a task: the phone (kept as a keyed hash after pseudonymization, so the
-- stop-list and the caps still recognise it) and the template vars (names, addresses, …).
CREATE TABLE task_personal (
    wave_id           text NOT NULL,
    task_id           text NOT NULL,
    debtor_id         text NOT NULL,
    phone             text,                   -- E.164; NULL once pseudonymized or erased
    phone_hash        bytea NOT NULL,         -- HMAC-SHA256(retention key, phone)
    vars              jsonb,                  -- NULL once pseudonymized or erased
    day               date NOT NULL,
    pseudonymized_at  timestamptz,
    erased_at         timestamptz,
    PRIMARY KEY (wave_id, task_id)
);
CREATE INDEX task_personal_debtor ON task_personal (debtor_id);
CREATE INDEX task_personal_hash ON task_personal (phone_hash);

-- Every record of the results streams (kinds result, dispatched, late), once: the stream entry
-- id (wave, ms, seq) is the key, so a redelivered batch writes nothing twice.
CREATE TABLE results (
    wave_id        text NOT NULL,
    stream_ms      bigint NOT NULL,
    stream_seq     integer NOT NULL,
    kind           text NOT NULL,
    day            date NOT NULL,             -- the wave's day (the debtor's local calendar)
    campaign_id    text NOT NULL,
    task_id        text NOT NULL,
    attempt        smallint NOT NULL,
    debtor_id      text NOT NULL,
    channel        text NOT NULL,
    outcome        text,
    final          boolean NOT NULL DEFAULT false,
    provider_code  text,
    provider_text  text,
    claimed_at     timestamptz,
    sent_at        timestamptz,
    accepted_at    timestamptz,
    finished_at    timestamptz,
    parts          smallint,                  -- SMS parts billed (data.parts)
    actions        text[],                    -- scenario actions (data.actions)
    data           jsonb,
    PRIMARY KEY (wave_id, stream_ms, stream_seq)
);
-- Records arrive roughly in day order: a BRIN index finds a month's pages for a fraction of a
-- B-tree's size and insert cost (the report scans whole months anyway).
CREATE INDEX results_day ON results USING brin (day);
CREATE INDEX results_debtor ON results (debtor_id);

-- The interaction log: one row per attempt that reached the debtor or counts towards a cap
-- (the scenario's caps_count for the channel; engine.archive.rows.contact_of). Texts and
-- recording references are kept retention.interaction_log_days (230-FZ: 3 years), then deleted.
CREATE TABLE contacts (
    wave_id        text NOT NULL,
    task_id        text NOT NULL,
    attempt        smallint NOT NULL,
    stream_ms      bigint NOT NULL,           -- the record that made it a contact
    stream_seq     integer NOT NULL,
    campaign_id    text NOT NULL,
    debtor_id      text NOT NULL,
    channel        text NOT NULL,
    cap_class      text NOT NULL,             -- conversation | message
    outcome        text NOT NULL,
    at             timestamptz,
    local_day      date NOT NULL,
    local_week     text NOT NULL,             -- ISO week, as the caps count it: 2026-49
    local_month    text NOT NULL,             -- 2026-12
    scenario       text NOT NULL,
    text           text,                      -- the message as sent (messages)
    recording_ref  text,                      -- the call recording (IVR, when the IVR reports one)
    content_deleted_at timestamptz,
    PRIMARY KEY (wave_id, task_id, attempt)
);
CREATE INDEX contacts_debtor_day ON contacts (debtor_id, local_day);

-- Debtor-initiated contacts: inbound calls (and messages, when a channel reports them).
CREATE TABLE inbound (
    wave_id      text NOT NULL,
    stream_ms    bigint NOT NULL,
    stream_seq   integer NOT NULL,
    kind         text NOT NULL,
    day          date NOT NULL,
    campaign_id  text NOT NULL,
    debtor_id    text NOT NULL,
    channel      text NOT NULL,
    at           timestamptz,
    data         jsonb,
    PRIMARY KEY (wave_id, stream_ms, stream_seq)
);
CREATE INDEX inbound_at ON inbound (at);

-- Stream records the archiver does not know (a kind added by a later version): kept whole.
CREATE TABLE other_records (
    wave_id     text NOT NULL,
    stream_ms   bigint NOT NULL,
    stream_seq  integer NOT NULL,
    kind        text,
    record      jsonb NOT NULL,
    PRIMARY KEY (wave_id, stream_ms, stream_seq)
);

-- Stop-list changes (add, remove), from the stop-list's change stream. Phones are never kept
-- here in clear: their keyed hash and the masked form.
CREATE TABLE stoplist_changes (
    stream_ms   bigint NOT NULL,
    stream_seq  integer NOT NULL,
    op          text NOT NULL,                -- add | remove | hash (moved to its keyed hash on erasure)
    kind        text NOT NULL,                -- debtor | phone
    debtor_id   text,
    phone_hash  bytea,
    masked      text,
    reason      text,
    at          timestamptz,
    by          text,
    PRIMARY KEY (stream_ms, stream_seq)
);

-- The API's audit stream (phones already masked there), plus erasures and retention runs.
CREATE TABLE audit (
    source      text NOT NULL,                -- api | erase | retention
    stream_ms   bigint NOT NULL,
    stream_seq  integer NOT NULL,
    who         text,
    role        text,
    what        text NOT NULL,
    target      text,
    status      integer,
    peer        text,
    at          timestamptz NOT NULL,
    detail      jsonb,
    PRIMARY KEY (source, stream_ms, stream_seq)
);
CREATE SEQUENCE audit_local_seq;

-- ---- views for the planner ----------------------------------------------------------------

-- The last outcome of every task (its final one once it ended).
CREATE VIEW last_outcome AS
SELECT DISTINCT ON (wave_id, task_id)
       wave_id, task_id, campaign_id, debtor_id, day, channel, attempt, outcome, final,
       provider_code, finished_at
FROM results
WHERE kind = 'result'
ORDER BY wave_id, task_id, final DESC, stream_ms DESC, stream_seq DESC;

-- Contacts per debtor per local day, ISO week and month, by cap class (what the caps count).
CREATE VIEW contacts_per_day AS
SELECT debtor_id, local_day, cap_class, count(*) AS contacts
FROM contacts GROUP BY debtor_id, local_day, cap_class;
CREATE VIEW contacts_per_week AS
SELECT debtor_id, local_week, cap_class, count(*) AS contacts
FROM contacts GROUP BY debtor_id, local_week, cap_class;
CREATE VIEW contacts_per_month AS
SELECT debtor_id, local_month, cap_class, count(*) AS contacts
FROM contacts GROUP BY debtor_id, local_month, cap_class;

-- Phones deactivated and why: an attempt came back invalid_number (provider code and text
-- say why). phone is NULL once pseudonymized; phone_hash stays.
CREATE VIEW phones_deactivated AS
SELECT r.finished_at AS at, r.debtor_id, p.phone, p.phone_hash, r.channel, r.provider_code,
       r.provider_text, r.wave_id, r.task_id, r.attempt
FROM results r LEFT JOIN task_personal p USING (wave_id, task_id)
WHERE r.kind = 'result' AND r.outcome = 'invalid_number';

-- Callbacks (inbound calls and messages) and opt-outs, for "since a time":
-- SELECT * FROM callbacks_and_opt_outs WHERE at >= '2026-12-01T00:00:00+03:00'.
CREATE VIEW callbacks_and_opt_outs AS
SELECT i.at, 'callback' AS what, i.debtor_id, i.channel, i.wave_id, NULL::text AS task_id, i.data
FROM inbound i
UNION ALL
SELECT r.finished_at AS at, 'opt_out' AS what, r.debtor_id, r.channel, r.wave_id, r.task_id, r.data
FROM results r WHERE r.kind = 'result' AND 'opt_out' = ANY (r.actions);
