// A webhook receiver on loopback for werklabd's API tests: every delivery is verified with the
// reference library of the Standard Webhooks specification (the npm package standardwebhooks),
// recorded, and answered as the test asked.
//
//   node receiver.mjs CONFIG.json
//
// CONFIG: {"port": N, "ipv6": bool, "state": "PATH", "hooks": {NAME: SETTINGS}}
// "listening" on stdout says every listener is up (127.0.0.1, and [::1] when ipv6 is true).
// SIGTERM (or the end of stdin: the test process is gone) closes every connection, writes the
// records to the state file and exits; a receiver started with that state file carries on from
// them (a restart on the same port keeps its history).
//
// POST /hooks/NAME              a delivery: verified, recorded, answered by NAME's mode
// PUT  /control/NAME            SETTINGS (fields left out keep their value):
//        {"secrets": ["whsec_…", …], "mode": "ok" | "ok 200" | "status N" | "slow S" | "down",
//         "headers": {"Retry-After": "2", …}, "body_bytes": N}
// GET  /control/NAME            the settings
// GET  /control/NAME/deliveries NAME's records, oldest first
// DELETE /control/NAME/deliveries
// GET  /control/deliveries      every record of every name, oldest first
//
// A delivery verifies when the library's verify() accepts it with one of NAME's secrets (during
// a rotation a receiver holds the old and the new one). One that does not is answered 400 in
// every mode but "down" and recorded with verified: false, which the tests fail on. "down"
// reads the request and destroys the socket without an answer (a sender sees a network error);
// a refused connection is the receiver stopped. "slow S" answers 204 after S seconds: a sender
// whose timeout is shorter has hung up by then, and the record says acknowledged: false.
//
// Besides the library's verdict a record lists "problems": what the specification or werklabd's
// contract asks and the library does not check (a timestamp that is not decimal seconds, a
// signature entry other than "v1,<base64>", a header sent twice, a body that is not a JSON
// object with type, timestamp and data, a media type other than application/json).
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';

import standardwebhooks from 'standardwebhooks';

const { Webhook } = standardwebhooks;
const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const NAME = /^[A-Za-z0-9._-]{1,100}$/;
const SIGNATURE = /^v1,[A-Za-z0-9+/]+={0,2}$/;

let records = [];
let seq = 0;
try {
  const state = JSON.parse(readFileSync(config.state, 'utf8'));
  records = state.records;
  seq = state.seq;
} catch (err) {
  if (err.code !== 'ENOENT') throw err;
}

// NAME -> {secrets: [string], verifiers: [Webhook], mode, headers, body_bytes}
const hooks = new Map();

function parseMode(mode) {
  const m = /^(ok)(?: (2\d\d))?$|^(status) ([1-5]\d\d)$|^(slow) (\d+(?:\.\d+)?)$|^(down)$/.exec(
    mode,
  );
  if (!m) throw new Error(`unknown mode ${JSON.stringify(mode)}`);
  if (m[1]) return { kind: 'ok', status: m[2] ? Number(m[2]) : 204 };
  if (m[3]) return { kind: 'status', status: Number(m[4]) };
  if (m[5]) return { kind: 'slow', status: 204, seconds: Number(m[6]) };
  return { kind: 'down' };
}

function configure(name, settings) {
  const old = hooks.get(name) || {
    secrets: [],
    verifiers: [],
    mode: 'ok',
    headers: {},
    body_bytes: 0,
  };
  const next = { ...old };
  if (settings.secrets !== undefined) {
    if (!Array.isArray(settings.secrets) || settings.secrets.some((s) => typeof s !== 'string')) {
      throw new Error('secrets: a list of strings');
    }
    // The library's constructor decodes the secret (standard base64 after "whsec_") and
    // throws on one it cannot use: a secret werklabd hands out must pass here.
    next.verifiers = settings.secrets.map((s) => new Webhook(s));
    next.secrets = [...settings.secrets];
  }
  if (settings.mode !== undefined) {
    parseMode(settings.mode);
    next.mode = settings.mode;
  }
  if (settings.headers !== undefined) next.headers = { ...settings.headers };
  if (settings.body_bytes !== undefined) next.body_bytes = Number(settings.body_bytes);
  hooks.set(name, next);
  return next;
}

for (const [name, settings] of Object.entries(config.hooks || {})) configure(name, settings);

function publicSettings(h) {
  return { secrets: h.secrets, mode: h.mode, headers: h.headers, body_bytes: h.body_bytes };
}

function verify(hook, body, headers) {
  const errors = [];
  const verifiedBy = [];
  if (!hook || hook.verifiers.length === 0) {
    return { verified: false, error: 'no secret is set for this path', errors, verifiedBy };
  }
  hook.verifiers.forEach((wh, i) => {
    try {
      wh.verify(body, headers, { jsonParse: false });
      verifiedBy.push(i);
      errors.push(null);
    } catch (err) {
      errors.push(`${err.name}: ${err.message}`);
    }
  });
  const verified = verifiedBy.length > 0;
  const error = verified ? null : errors.find((e) => e) || 'unverified';
  return { verified, error, errors, verifiedBy };
}

function problemsOf(req, body, parsed) {
  const problems = [];
  if (req.method !== 'POST') problems.push(`method ${req.method}, not POST`);
  for (const h of ['webhook-id', 'webhook-timestamp', 'webhook-signature', 'content-type']) {
    const n = (req.headersDistinct[h] || []).length;
    if (n === 0) problems.push(`no ${h} header`);
    if (n > 1) problems.push(`${h} header sent ${n} times`);
  }
  const ts = req.headers['webhook-timestamp'];
  if (ts !== undefined && !/^[0-9]{1,12}$/.test(ts)) {
    problems.push(`webhook-timestamp ${JSON.stringify(ts)} is not whole seconds`);
  }
  const sig = req.headers['webhook-signature'];
  if (sig !== undefined) {
    for (const entry of sig.split(' ')) {
      if (!SIGNATURE.test(entry)) {
        problems.push(`signature entry ${JSON.stringify(entry)} is not v1,<base64>`);
      }
    }
  }
  const type = (req.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') {
    problems.push(`content-type ${JSON.stringify(req.headers['content-type'])}`);
  }
  if (parsed === undefined) {
    problems.push(body.length ? 'body is not JSON' : 'empty body');
  } else if (
    parsed === null ||
    typeof parsed !== 'object' ||
    Array.isArray(parsed) ||
    typeof parsed.type !== 'string' ||
    typeof parsed.timestamp !== 'string' ||
    parsed.data === null ||
    typeof parsed.data !== 'object'
  ) {
    problems.push('body is not {"type": string, "timestamp": string, "data": object}');
  }
  return problems;
}

function sendJson(res, status, value) {
  const text = JSON.stringify(value);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

const pending = new Set(); // timers of "slow" answers, cleared at shutdown
const open = new Map(); // record -> response, while the answer's fate is unknown

async function delivery(req, res, name) {
  const body = await readBody(req);
  const hook = hooks.get(name);
  const mode = parseMode(hook ? hook.mode : 'ok');
  let parsed;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    parsed = undefined;
  }
  const v = verify(hook, body, req.headers);
  const now = Date.now();
  const record = {
    seq: ++seq,
    name,
    webhook_id: req.headers['webhook-id'] ?? null,
    webhook_timestamp: req.headers['webhook-timestamp'] ?? null,
    type: parsed && typeof parsed === 'object' ? (parsed.type ?? null) : null,
    body: parsed === undefined ? null : parsed,
    raw: body.toString('utf8'),
    headers: req.headers,
    signatures: (req.headers['webhook-signature'] || '').split(' ').filter((e) => e).length,
    verified: v.verified,
    error: v.error,
    secret: v.verified ? v.verifiedBy[0] : null,
    secrets_verified: v.verifiedBy,
    errors: v.errors,
    problems: problemsOf(req, body, parsed),
    received_at: new Date(now).toISOString(),
    received_ms: now,
    mode: hook ? hook.mode : 'ok',
    status: null,
    acknowledged: null,
  };
  records.push(record);

  // The answer's fate: acknowledged when written whole before the sender hung up.
  open.set(record, res);
  res.on('finish', () => {
    open.delete(record);
    if (record.acknowledged === null) {
      record.acknowledged = record.status >= 200 && record.status < 300;
    }
  });
  res.on('close', () => {
    open.delete(record);
    if (record.acknowledged === null) record.acknowledged = false;
  });

  if (mode.kind === 'down') {
    record.status = 'dropped';
    record.acknowledged = false;
    open.delete(record);
    req.socket.destroy();
    return;
  }
  const answer = (status) => {
    if (res.destroyed || res.writableEnded) return;
    record.status = status;
    const headers = { ...(hook ? hook.headers : {}) };
    const size = hook ? hook.body_bytes : 0;
    if (status === 204 || status === 304 || size === 0) {
      res.writeHead(status, headers);
      res.end();
    } else {
      res.writeHead(status, { ...headers, 'Content-Type': 'text/plain', 'Content-Length': size });
      res.end(Buffer.alloc(size, 'x'));
    }
  };
  if (!v.verified) return answer(400);
  if (mode.kind === 'slow') {
    const t = setTimeout(() => {
      pending.delete(t);
      answer(mode.status);
    }, mode.seconds * 1000);
    pending.add(t);
    return;
  }
  answer(mode.status);
}

async function control(req, res, parts) {
  // parts: ["deliveries"] | [NAME] | [NAME, "deliveries"]
  if (parts.length === 1 && parts[0] === 'deliveries' && req.method === 'GET') {
    return sendJson(res, 200, records);
  }
  const name = parts[0];
  if (!NAME.test(name || '')) return sendJson(res, 404, { error: 'no such control path' });
  if (parts.length === 1 && req.method === 'PUT') {
    let settings;
    try {
      settings = JSON.parse((await readBody(req)).toString('utf8'));
      return sendJson(res, 200, publicSettings(configure(name, settings)));
    } catch (err) {
      return sendJson(res, 400, { error: err.message });
    }
  }
  if (parts.length === 1 && req.method === 'GET') {
    const h = hooks.get(name);
    return h ? sendJson(res, 200, publicSettings(h)) : sendJson(res, 404, { error: 'not set' });
  }
  if (parts.length === 2 && parts[1] === 'deliveries' && req.method === 'GET') {
    return sendJson(res, 200, records.filter((r) => r.name === name));
  }
  if (parts.length === 2 && parts[1] === 'deliveries' && req.method === 'DELETE') {
    records = records.filter((r) => r.name !== name);
    res.writeHead(204);
    return res.end();
  }
  return sendJson(res, 404, { error: 'no such control path' });
}

function handle(req, res) {
  const path = new URL(req.url, 'http://receiver').pathname;
  const parts = path.split('/').filter((p) => p !== '');
  const failed = (err) => {
    console.error(err);
    if (!res.headersSent) sendJson(res, 500, { error: String(err) });
  };
  if (parts[0] === 'hooks' && parts.length === 2 && NAME.test(parts[1])) {
    delivery(req, res, parts[1]).catch(failed);
  } else if (parts[0] === 'control' && parts.length >= 2) {
    control(req, res, parts.slice(1)).catch(failed);
  } else {
    sendJson(res, 404, { error: `nothing at ${path}` });
  }
}

const servers = [createServer(handle)];
if (config.ipv6) servers.push(createServer(handle));
const hosts = ['127.0.0.1', '::1'];
let up = 0;
servers.forEach((s, i) => {
  s.on('error', (err) => {
    console.error(`listen on ${hosts[i]} port ${config.port}: ${err.message}`);
    process.exit(1);
  });
  s.listen(config.port, hosts[i], () => {
    if (++up === servers.length) console.log('listening');
  });
});

function shutdown() {
  for (const t of pending) clearTimeout(t);
  // An answer handed to the socket counts as given; one not yet written never will be.
  for (const [record, res] of open) {
    record.acknowledged = res.writableEnded && record.status >= 200 && record.status < 300;
  }
  for (const s of servers) {
    s.close();
    s.closeAllConnections();
  }
  const tmp = `${config.state}.tmp`;
  writeFileSync(tmp, JSON.stringify({ seq, records }));
  renameSync(tmp, config.state);
  process.exit(0);
}
process.on('SIGTERM', shutdown);
// stdin is a pipe from the test process: when that process is gone, so is the receiver.
process.stdin.on('end', shutdown);
process.stdin.resume();
