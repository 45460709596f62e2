#!/usr/bin/env node
// An SMSC for Volna's tests and benchmarks, on node-smpp's server API (the npm package `smpp`,
// pinned in package.json). Volna's authors wrote neither its PDU codec nor its session code, so a
// bug in Volna's SMPP connector cannot hide by sitting on both ends of the wire (as it could with
// simulators/smsc, which the connector's authors also wrote).
//
//   node smsc.js --port 0 --http-port 0 --account volna:secret [--receipt-delay-ms 200]
//                [--throttle-rate N] [--throttle-share F] [--undeliv-share F]
//                [--submit-delay-ms N] [--reach-log PATH] [--keep-texts] [--seed N] [--first-id N]
//
// It accepts binds (transmitter, receiver, transceiver) of the configured accounts, answers
// enquire_link and unbind, answers submit_sm with a message id and, after the receipt delay, sends
// a delivery receipt (deliver_sm, esm_class 0x04, the SMPP 3.4 appendix B text, the
// receipted_message_id and message_state TLVs) on a receiver or transceiver bind of the same
// system_id, round-robin across them (so a receipt often arrives on another bind than its submit).
// Above --throttle-rate accepted submits in any 1000 ms per system_id, and for a --throttle-share
// of submits, it answers ESME_RTHROTTLED (0x58); --submit-delay-ms holds every submit_sm_resp
// that long (so a client's window fills). It counts binds, submits, parts (UDH
// concatenation, IE 0x00 and 0x08, parsed: each part counted once, each concatenated message once
// by its reference), receipts, throttled submits and messages per destination, and reports them
// at GET /stats (JSON; ?brief=1 leaves out the per-destination counts) and on SIGUSR2 (one JSON line on stdout). Once it listens it prints
// {"listening": {"smpp": PORT, "http": PORT}} on stdout. With --reach-log it appends one JSON line
// per message whose DELIVRD receipts were all sent:
// {"at_ms", "number" (+digits for an international destination), "channel": "sms",
//  "kind": "delivered", "ref": the message id of its first part}.
'use strict';

const fs = require('fs');
const http = require('http');
const smpp = require('smpp');

// ---- configuration -------------------------------------------------------------------------

function parseArgs(argv) {
	const cfg = {
		host: '127.0.0.1', port: 2775, httpPort: 0, accounts: {}, receiptDelayMs: 200,
		receiptRetryMs: 1000, submitDelayMs: 0, throttleRate: 0, throttleShare: 0, undelivShare: 0, reachLog: '',
		keepTexts: false, seed: 1, firstId: 1,
	};
	const numeric = {
		'--port': 'port', '--http-port': 'httpPort', '--receipt-delay-ms': 'receiptDelayMs',
		'--receipt-retry-ms': 'receiptRetryMs', '--submit-delay-ms': 'submitDelayMs',
		'--throttle-rate': 'throttleRate',
		'--throttle-share': 'throttleShare', '--undeliv-share': 'undelivShare', '--seed': 'seed',
		'--first-id': 'firstId',
	};
	for (let i = 2; i < argv.length; i++) {
		const flag = argv[i];
		const value = () => {
			if (i + 1 >= argv.length) throw new Error(`${flag} needs a value`);
			return argv[++i];
		};
		if (flag in numeric) {
			const v = Number(value());
			if (!Number.isFinite(v) || v < 0) throw new Error(`${flag} needs a number ≥ 0`);
			cfg[numeric[flag]] = v;
		} else if (flag === '--host') {
			cfg.host = value();
		} else if (flag === '--account') {
			const raw = value();
			const at = raw.indexOf(':');
			if (at < 1) throw new Error('--account needs system_id:password');
			cfg.accounts[raw.slice(0, at)] = raw.slice(at + 1);
		} else if (flag === '--reach-log') {
			cfg.reachLog = value();
		} else if (flag === '--keep-texts') {
			cfg.keepTexts = true;
		} else if (flag === '--help' || flag === '-h') {
			const lines = fs.readFileSync(__filename, 'utf8').split('\n').slice(1);
			const header = lines.slice(0, lines.findIndex((l) => !l.startsWith('//')));
			process.stdout.write(header.map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
			process.exit(0);
		} else {
			throw new Error(`unknown option ${flag}`);
		}
	}
	if (Object.keys(cfg.accounts).length === 0) cfg.accounts.volna = 'secret';
	if (cfg.throttleShare > 1 || cfg.undelivShare > 1) throw new Error('shares are between 0 and 1');
	return cfg;
}

// mulberry32: a small seeded PRNG, so a run's throttled share and failures repeat with --seed.
function prng(seed) {
	let a = seed >>> 0;
	return function () {
		a = (a + 0x6D2B79F5) >>> 0;
		let t = a;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}

// ---- counts --------------------------------------------------------------------------------

function newStats() {
	return {
		connections: 0,
		binds: {transmitter: 0, receiver: 0, transceiver: 0},
		bind_failures: {},
		bound_now: 0,
		submits: 0,               // submit_sm PDUs received
		accepted_parts: 0,        // answered ESME_ROK (each part once)
		duplicate_parts: 0,       // a part of an unfinished message seen again (same ref, same number)
		throttled: 0,             // answered ESME_RTHROTTLED, both reasons
		throttled_rate: 0,
		throttled_share: 0,
		rejected: 0,              // other error answers (not bound, bad message)
		messages: 0,              // whole messages: one-part ones and concatenated ones complete
		concatenated: 0,          // of those, with more than one part
		incomplete: 0,            // concatenated messages still missing a part
		per_destination: {},      // whole messages per destination_addr
		parts_per_message: {},
		udh_ref_bits: {},
		receipts_sent: 0,         // deliver_sm receipts written (resends included)
		receipts_resent: 0,
		receipts_on_other_session: 0,
		receipts_acked: 0,
		receipts_nacked: 0,
		receipts_waiting: 0,      // due, but no receiver of their system_id is bound
		receipts_delivered: 0,    // DELIVRD receipts written for the first time
		receipts_undelivered: 0,
		reach_written: 0,
		enquire_links: 0,
		unbinds: 0,
		generic_nacks_sent: 0,
		generic_nacks_received: 0,
		errors: 0,
		first_accept_ms: 0,       // epoch ms (fractional) of the first and the last part accepted
		last_accept_ms: 0,
		last_receipt_ms: 0,       // … the last receipt written
		last_ack_ms: 0,           // … the last receipt answered ESME_ROK (the client recorded it)
	};
}

function bump(counter, key, by) {
	counter[key] = (counter[key] || 0) + (by || 1);
}

const nowMs = () => performance.timeOrigin + performance.now();

// "YYMMDDhhmm", UTC, as the receipt text's dates.
function receiptDate(ms) {
	const d = new Date(ms);
	const two = (n) => String(n).padStart(2, '0');
	return two(d.getUTCFullYear() % 100) + two(d.getUTCMonth() + 1) + two(d.getUTCDate()) +
		two(d.getUTCHours()) + two(d.getUTCMinutes());
}

// A whole message as the reach ledger follows it: parts arrived of total, receipts requested and
// DELIVRD receipts sent.
function newMessage(destination, ton, firstId, arrived) {
	return {destination, ton, firstId, total: 1, arrived, requested: 0, delivered: 0, failed: false, written: false};
}

// The concatenation IE of a part's UDH (node-smpp splits the UDH into IEs: [iei, len, ...data]).
function concatInfo(udhList) {
	for (const ie of udhList || []) {
		if (ie[0] === 0x00 && ie[1] === 3 && ie.length >= 5) {
			return {bits: 8, ref: ie[2], total: ie[3], seq: ie[4]};
		}
		if (ie[0] === 0x08 && ie[1] === 4 && ie.length >= 6) {
			return {bits: 16, ref: (ie[2] << 8) | ie[3], total: ie[4], seq: ie[5]};
		}
	}
	return null;
}

// ---- the SMSC ------------------------------------------------------------------------------

class Smsc {
	constructor(cfg) {
		this.cfg = cfg;
		this.stats = newStats();
		this.perText = {};
		this.random = prng(cfg.seed);
		this.nextId = cfg.firstId;
		this.receivers = {};        // system_id → [session] bound as receiver or transceiver
		this.rr = {};               // system_id → next receiver index
		this.waiting = {};          // system_id → [receipt] due while no receiver was bound
		this.accepted = {};         // system_id → accept times (ms) of the last 1000 ms, for the rate
		this.partial = new Map();   // concatenation key → {total, parts: Map(seq → text), message}
		this.reach = cfg.reachLog ? fs.openSync(cfg.reachLog, 'a') : null;
		this.timers = new Set();
	}

	// -- binds --

	onBind(session, pdu, mode) {
		if (session.mode) {
			session.send(pdu.response({command_status: smpp.ESME_RALYBND}));
			return;
		}
		const expected = this.cfg.accounts[pdu.system_id];
		if (expected === undefined || expected !== pdu.password) {
			bump(this.stats.bind_failures, pdu.system_id);
			session.send(pdu.response({
				command_status: expected === undefined ? smpp.ESME_RINVSYSID : smpp.ESME_RINVPASWD,
			}));
			return;
		}
		session.mode = mode;
		session.systemId = pdu.system_id;
		this.stats.binds[mode]++;
		this.stats.bound_now++;
		session.send(pdu.response({system_id: 'node-smsc'}));
		if (mode !== 'transmitter') {
			(this.receivers[session.systemId] ||= []).push(session);
			this.flushWaiting(session.systemId);
		}
	}

	onGone(session) {
		if (session.gone) return;
		session.gone = true;
		if (session.mode) this.stats.bound_now--;
		const list = this.receivers[session.systemId];
		if (list && list.includes(session)) list.splice(list.indexOf(session), 1);
		// Receipts written but not answered on it go out again on another bind.
		for (const receipt of session.unanswered.values()) this.route(receipt, true);
		session.unanswered.clear();
	}

	// -- submits --

	throttle(systemId) {
		const rate = this.cfg.throttleRate;
		if (rate > 0) {
			const times = (this.accepted[systemId] ||= {at: [], head: 0});
			const since = nowMs() - 1000;
			while (times.head < times.at.length && times.at[times.head] <= since) times.head++;
			if (times.head > 4096) {
				times.at = times.at.slice(times.head);
				times.head = 0;
			}
			if (times.at.length - times.head >= rate) return 'rate';
		}
		if (this.cfg.throttleShare > 0 && this.random() < this.cfg.throttleShare) return 'share';
		return null;
	}

	onSubmit(session, pdu) {
		this.stats.submits++;
		if (session.mode !== 'transmitter' && session.mode !== 'transceiver') {
			this.stats.rejected++;
			this.answer(session, pdu.response({command_status: smpp.ESME_RINVBNDSTS}));
			return;
		}
		const why = this.throttle(session.systemId);
		if (why) {
			this.stats.throttled++;
			this.stats['throttled_' + why]++;
			this.answer(session, pdu.response({command_status: smpp.ESME_RTHROTTLED}));
			return;
		}
		const body = pdu.short_message;
		let text = '';
		let udh = null;
		if (body && typeof body === 'object' && !Buffer.isBuffer(body)) {
			text = typeof body.message === 'string' ? body.message : '';
			udh = body.udh || null;
		}
		if (!text && pdu.message_payload && typeof pdu.message_payload.message === 'string') {
			text = pdu.message_payload.message;
		}
		const id = String(this.nextId++);
		const at = nowMs();
		if (this.cfg.throttleRate > 0) this.accepted[session.systemId].at.push(at);
		this.stats.accepted_parts++;
		if (!this.stats.first_accept_ms) this.stats.first_accept_ms = at;
		this.stats.last_accept_ms = at;
		this.answer(session, pdu.response({message_id: id}));
		const message = this.assemble(session, pdu, udh, text, id);
		const wanted = (pdu.registered_delivery & 0x03) !== 0;
		if (wanted) message.requested++;
		const receipt = {
			id, systemId: session.systemId, from: session, submittedMs: at, message,
			source: pdu.destination_addr, sourceTon: pdu.dest_addr_ton, sourceNpi: pdu.dest_addr_npi,
			destination: pdu.source_addr, destinationTon: pdu.source_addr_ton, destinationNpi: pdu.source_addr_npi,
			text: text.slice(0, 20), stat: this.random() < this.cfg.undelivShare ? 'UNDELIV' : 'DELIVRD',
			sent: false, tries: 0,
		};
		if (wanted) this.later(this.cfg.receiptDelayMs, receipt);
		else this.reached(message);
	}

	answer(session, resp) {
		if (this.cfg.submitDelayMs <= 0) {
			session.send(resp);
			return;
		}
		const timer = setTimeout(() => {
			this.timers.delete(timer);
			session.send(resp);
		}, this.cfg.submitDelayMs);
		this.timers.add(timer);
	}

	// Joins the parts of a concatenated message; returns the message a part belongs to.
	assemble(session, pdu, udh, text, id) {
		const info = concatInfo(udh);
		const destination = pdu.destination_addr;
		if (!info || info.total <= 1) {
			this.whole(destination, text, 1);
			return newMessage(destination, pdu.dest_addr_ton, id, 1);
		}
		bump(this.stats.udh_ref_bits, info.bits);
		const key = [session.systemId, pdu.source_addr, destination, info.bits, info.ref, info.total].join('|');
		let entry = this.partial.get(key);
		if (!entry) {
			entry = {parts: new Map(), message: newMessage(destination, pdu.dest_addr_ton, null, 0)};
			this.partial.set(key, entry);
			this.stats.incomplete++;
		}
		if (entry.parts.has(info.seq)) {
			this.stats.duplicate_parts++;
			const duplicate = newMessage(destination, pdu.dest_addr_ton, id, 1);
			duplicate.failed = true;  // never in the reach ledger: its message is counted already
			return duplicate;
		}
		entry.parts.set(info.seq, text);
		entry.message.arrived++;
		entry.message.total = info.total;
		if (info.seq === 1) entry.message.firstId = id;
		if (entry.parts.size === info.total) {
			this.partial.delete(key);
			this.stats.incomplete--;
			let whole = '';
			for (let seq = 1; seq <= info.total; seq++) whole += entry.parts.get(seq) || '';
			this.whole(destination, whole, info.total);
		}
		return entry.message;
	}

	whole(destination, text, parts) {
		this.stats.messages++;
		if (parts > 1) this.stats.concatenated++;
		bump(this.stats.per_destination, destination);
		bump(this.stats.parts_per_message, parts);
		if (this.cfg.keepTexts) bump(this.perText, text);
	}

	// -- receipts --

	later(delayMs, receipt) {
		const timer = setTimeout(() => {
			this.timers.delete(timer);
			this.route(receipt, false);
		}, delayMs);
		this.timers.add(timer);
	}

	route(receipt, again) {
		const list = this.receivers[receipt.systemId] || [];
		if (list.length === 0) {
			(this.waiting[receipt.systemId] ||= []).push(receipt);
			this.stats.receipts_waiting++;
			return;
		}
		const index = (this.rr[receipt.systemId] || 0) % list.length;
		this.rr[receipt.systemId] = index + 1;
		this.send(list[index], receipt, again);
	}

	flushWaiting(systemId) {
		const queue = this.waiting[systemId] || [];
		delete this.waiting[systemId];
		this.stats.receipts_waiting -= queue.length;
		for (const receipt of queue) this.route(receipt, true);
	}

	send(session, receipt, again) {
		const delivered = receipt.stat === 'DELIVRD';
		const at = nowMs();
		const text = `id:${receipt.id} sub:001 dlvrd:${delivered ? '001' : '000'} ` +
			`submit date:${receiptDate(receipt.submittedMs)} done date:${receiptDate(at)} ` +
			`stat:${receipt.stat} err:${delivered ? '000' : '001'} text:` +
			receipt.text.replace(/[^\x20-\x7e]/g, '?');
		const pdu = new smpp.PDU('deliver_sm', {
			source_addr_ton: receipt.sourceTon, source_addr_npi: receipt.sourceNpi, source_addr: receipt.source,
			dest_addr_ton: receipt.destinationTon, dest_addr_npi: receipt.destinationNpi,
			destination_addr: receipt.destination, esm_class: smpp.ESM_CLASS.MC_DELIVERY_RECEIPT, data_coding: 0,
			short_message: Buffer.from(text, 'ascii'), receipted_message_id: receipt.id,
			message_state: delivered ? smpp.MESSAGE_STATE.DELIVERED : smpp.MESSAGE_STATE.UNDELIVERABLE,
		});
		const ok = session.send(pdu, (resp) => this.onReceiptAnswer(session, receipt, resp));
		if (!ok) {
			this.onGone(session);
			this.route(receipt, true);
			return;
		}
		session.unanswered.set(pdu.sequence_number, receipt);
		receipt.tries++;
		this.stats.receipts_sent++;
		this.stats.last_receipt_ms = at;
		if (again || receipt.sent) this.stats.receipts_resent++;
		if (session !== receipt.from) this.stats.receipts_on_other_session++;
		if (!receipt.sent) {
			receipt.sent = true;
			if (delivered) {
				this.stats.receipts_delivered++;
				receipt.message.delivered++;
			} else {
				this.stats.receipts_undelivered++;
				receipt.message.failed = true;
			}
			this.reached(receipt.message, at);
		}
	}

	onReceiptAnswer(session, receipt, resp) {
		session.unanswered.delete(resp.sequence_number);
		if (resp.command_status === 0) {
			this.stats.receipts_acked++;
			this.stats.last_ack_ms = nowMs();
			return;
		}
		this.stats.receipts_nacked++;
		if (receipt.tries < 6) this.later(this.cfg.receiptRetryMs, receipt);
	}

	// The reach ledger: a message is reached once all its parts arrived and a DELIVRD receipt
	// was sent for every part that asked for one (Kannel asks on one part of a long message,
	// Volna on each), none of them failed.
	reached(message, at) {
		if (message.written || message.failed || message.arrived < message.total) return;
		if (message.requested === 0 || message.delivered < message.requested) return;
		message.written = true;
		this.stats.reach_written++;
		if (this.reach === null) return;
		const number = message.ton === 1 ? '+' + message.destination : message.destination;
		fs.writeSync(this.reach, JSON.stringify({
			at_ms: Math.round(at || nowMs()), number, channel: 'sms', kind: 'delivered', ref: message.firstId,
		}) + '\n');
	}

	// brief: without the per-destination and per-text counts (cheap enough to poll during a run).
	snapshot(brief) {
		const out = {...this.stats, receivers: {}};
		for (const [systemId, list] of Object.entries(this.receivers)) out.receivers[systemId] = list.length;
		if (brief) delete out.per_destination;
		else if (this.cfg.keepTexts) out.per_text = this.perText;
		return out;
	}

	// -- sessions --

	attach(session) {
		this.stats.connections++;
		session.unanswered = new Map();
		session.on('bind_transceiver', (pdu) => this.onBind(session, pdu, 'transceiver'));
		session.on('bind_transmitter', (pdu) => this.onBind(session, pdu, 'transmitter'));
		session.on('bind_receiver', (pdu) => this.onBind(session, pdu, 'receiver'));
		session.on('submit_sm', (pdu) => this.onSubmit(session, pdu));
		session.on('enquire_link', (pdu) => {
			this.stats.enquire_links++;
			session.send(pdu.response());
		});
		session.on('unbind', (pdu) => {
			this.stats.unbinds++;
			session.send(pdu.response(), () => session.close());
			this.onGone(session);
		});
		session.on('generic_nack', () => this.stats.generic_nacks_received++);
		session.on('unknown', (pdu) => {
			this.stats.generic_nacks_sent++;
			session.send(pdu.response());
		});
		session.on('error', () => {
			this.stats.errors++;
			this.onGone(session);
			session.destroy();
		});
		session.on('close', () => this.onGone(session));
	}

	close() {
		for (const timer of this.timers) clearTimeout(timer);
		if (this.reach !== null) fs.closeSync(this.reach);
	}
}

// ---- the process ---------------------------------------------------------------------------

function main() {
	let cfg;
	try {
		cfg = parseArgs(process.argv);
	} catch (e) {
		process.stderr.write(`smsc.js: ${e.message}\n`);
		process.exit(2);
	}
	const smsc = new Smsc(cfg);
	const server = smpp.createServer((session) => smsc.attach(session));
	const stats = http.createServer((req, res) => {
		const [path, query] = req.url.split('?');
		if (req.method === 'GET' && path === '/stats') {
			res.writeHead(200, {'Content-Type': 'application/json'});
			res.end(JSON.stringify(smsc.snapshot(/(^|&)brief=1(&|$)/.test(query || ''))));
			return;
		}
		res.writeHead(404, {'Content-Type': 'text/plain'});
		res.end('not found\n');
	});
	let listening = 0;
	const ready = () => {
		if (++listening < 2) return;
		process.stdout.write(JSON.stringify({
			listening: {smpp: server.address().port, http: stats.address().port},
		}) + '\n');
	};
	server.on('error', (e) => {
		process.stderr.write(`smsc.js: SMPP server: ${e.message}\n`);
		process.exit(1);
	});
	stats.on('error', (e) => {
		process.stderr.write(`smsc.js: HTTP server: ${e.message}\n`);
		process.exit(1);
	});
	server.listen(cfg.port, cfg.host, ready);
	stats.listen(cfg.httpPort, cfg.host, ready);
	process.on('SIGUSR2', () => process.stdout.write(JSON.stringify(smsc.snapshot()) + '\n'));
	const stop = () => {
		smsc.close();
		for (const session of server.sessions.slice()) session.destroy();
		server.close();
		stats.close();
		process.exit(0);
	};
	process.on('SIGTERM', stop);
	process.on('SIGINT', stop);
}

main();
