// Shared helpers of the browser tests: a private nginx with the module, a
// headless Chromium, an HTTP publisher, and bounded waits.
//
// Environment:
//   TEST_NGINX_BINARY   nginx to run      (default /usr/sbin/nginx)
//   TEST_NGINX_MODULE   module to load    (default <repo>/build/ngx_http_sse_module.so)
//   TEST_CHROMIUM       browser to drive  (default /usr/bin/chromium)
//   TEST_NGINX_LEAVE    keep the temp dirs (config, logs) for a post-mortem

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const NGINX_BINARY = process.env.TEST_NGINX_BINARY || '/usr/sbin/nginx';
export const NGINX_MODULE = process.env.TEST_NGINX_MODULE ||
    path.join(REPO, 'build', 'ngx_http_sse_module.so');
export const CHROMIUM = process.env.TEST_CHROMIUM || '/usr/bin/chromium';

const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));

// Log lines that fail a test whatever it checked: nginx's worst levels and
// sanitizer reports (when TEST_NGINX_BINARY is an ASan/UBSan build).
const BAD_LOG = /\[(alert|crit|emerg)\]|AddressSanitizer|LeakSanitizer|runtime error:/;

// ---------------------------------------------------------------------------
// Small utilities

export const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Like delay(), for the losing side of a Promise.race: its timer does not
 *  keep node alive once everything else is done. */
const deadline = (ms) => new Promise((resolve) => setTimeout(resolve, ms).unref());

/** Poll `cond` (sync or async) every `every` ms until it is truthy; throw
 *  `what` after `ms`.  Returns the truthy value. */
export async function waitUntil(cond, { ms = 10000, every = 25, what = 'condition' } = {}) {
    const end = Date.now() + ms;
    for (;;) {
        const v = await cond();
        if (v) return v;
        if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
        await delay(every);
    }
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

function canConnect(port) {
    return new Promise((resolve) => {
        const s = net.connect({ port, host: '127.0.0.1' });
        s.once('connect', () => { s.destroy(); resolve(true); });
        s.once('error', () => resolve(false));
    });
}

/** Live (non-zombie) child pids of `pid`, read from /proc. */
export function childrenOf(pid) {
    const kids = new Set();
    for (const entry of fs.readdirSync('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        let stat;
        try { stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8'); } catch { continue; }
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        if (Number(fields[1]) === pid && fields[0] !== 'Z') kids.add(Number(entry));
    }
    return kids;
}

// ---------------------------------------------------------------------------
// nginx

/**
 * The test configuration: the same shape as examples/nginx.conf, with every
 * path inside `dir`.  `httpExtra` goes into the http block (sse_zone,
 * sse_retry ...).
 */
function nginxConfig({ dir, port, workers, httpExtra }) {
    return `
load_module ${NGINX_MODULE};

worker_processes ${workers};
daemon off;
master_process on;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;

events {
    worker_connections 1024;
}

http {
    types {
        text/html html;
    }
    default_type application/octet-stream;
    access_log ${dir}/access.log;

    client_body_temp_path ${dir}/temp/body;
    proxy_temp_path       ${dir}/temp/proxy;
    fastcgi_temp_path     ${dir}/temp/fastcgi;
    uwsgi_temp_path       ${dir}/temp/uwsgi;
    scgi_temp_path        ${dir}/temp/scgi;

${httpExtra}

    server {
        listen 127.0.0.1:${port};
        server_name localhost;

        location ~ ^/events/([^/]+)$ {
            sse_subscribe $1;
        }

        location ~ ^/publish/([^/]+)$ {
            allow 127.0.0.1;
            deny all;
            sse_publish $1;
        }

        location = /sse-status {
            sse_status;
        }

        # Chromium asks for one; a 404 would be a console error
        location = /favicon.ico {
            return 204;
        }

        location / {
            root ${dir}/html;
        }
    }
}
`;
}

/**
 * Start nginx (master + `workers` workers) on a free port in a fresh temp dir
 * whose html/ holds the fixtures plus `pages` ({name: source path}).
 * Resolves once the port accepts connections and all workers are up.
 */
export async function startNginx({ workers = 2, httpExtra = '', pages = {} } = {}) {
    if (!fs.existsSync(NGINX_MODULE)) {
        throw new Error(`no module at ${NGINX_MODULE}: run 'make' (or set TEST_NGINX_MODULE)`);
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sse-browser-'));
    // As root, nginx's workers run as "nobody": let them read the pages.
    fs.chmodSync(dir, 0o755);
    fs.mkdirSync(path.join(dir, 'temp'));
    fs.mkdirSync(path.join(dir, 'html'));
    for (const f of fs.readdirSync(FIXTURES)) {
        fs.copyFileSync(path.join(FIXTURES, f), path.join(dir, 'html', f));
    }
    for (const [name, src] of Object.entries(pages)) {
        fs.copyFileSync(src, path.join(dir, 'html', name));
    }

    const port = await freePort();
    const conf = path.join(dir, 'nginx.conf');
    fs.writeFileSync(conf, nginxConfig({ dir, port, workers, httpExtra }));

    const proc = spawn(NGINX_BINARY, ['-p', `${dir}/`, '-c', conf, '-e', `${dir}/error.log`],
                       { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    proc.stdout.on('data', (d) => { output += d; });
    proc.stderr.on('data', (d) => { output += d; });
    let exited = null;
    const exit = new Promise((resolve) => proc.once('exit', (code, signal) => {
        exited = { code, signal };
        resolve(exited);
    }));
    // Never leave an nginx behind if the test process itself dies.
    const reaper = () => { try { process.kill(proc.pid, 'SIGKILL'); } catch { /* gone */ } };
    process.once('exit', reaper);

    const nginx = {
        dir, port, proc,
        pid: proc.pid,
        url: (p) => `http://127.0.0.1:${port}${p}`,
        errorLog: () => readOr(path.join(dir, 'error.log')),
        output: () => output,
        workers: () => childrenOf(proc.pid),

        /** SIGHUP, then wait until `workers` new workers run and every old
         *  one has exited.  Returns the new worker pids. */
        async reload({ ms = 15000 } = {}) {
            const old = nginx.workers();
            process.kill(proc.pid, 'SIGHUP');
            return waitUntil(() => {
                const now = nginx.workers();
                const fresh = [...now].filter((p) => !old.has(p));
                const lingering = [...old].filter((p) => now.has(p));
                return fresh.length === workers && lingering.length === 0 && now;
            }, { ms, what: `reload: ${workers} new workers and the exit of old ones ` +
                          `(${[...old].join(',')}); now ${[...nginx.workers()].join(',')}` });
        },

        /** Graceful stop (SIGQUIT); fast stop then SIGKILL if it hangs.
         *  Resolves to true when the graceful stop sufficed. */
        async stop({ ms = 5000 } = {}) {
            if (exited) return true;
            const kids = nginx.workers();
            const ladder = [['SIGQUIT', ms], ['SIGTERM', 3000], ['SIGKILL', 3000]];
            for (const [sig, wait] of ladder) {
                try { process.kill(proc.pid, sig); } catch { /* gone */ }
                const done = await Promise.race([exit, deadline(wait).then(() => null)]);
                if (done) {
                    if (sig === 'SIGKILL') killAll(kids);
                    process.removeListener('exit', reaper);
                    return sig === 'SIGQUIT';
                }
            }
            killAll(kids);
            return false;
        },

        /** Remove the temp dir unless TEST_NGINX_LEAVE is set. */
        cleanup() {
            if (process.env.TEST_NGINX_LEAVE) {
                console.error(`# nginx files kept in ${dir}`);
            } else {
                fs.rmSync(dir, { recursive: true, force: true });
            }
        },
    };

    try {
        await waitUntil(async () => {
            if (exited) {
                throw new Error(`nginx exited (${JSON.stringify(exited)}):\n${output}\n` +
                                nginx.errorLog());
            }
            return nginx.workers().size === workers && canConnect(port);
        }, { ms: 10000, what: `nginx on port ${port} with ${workers} workers` });
    } catch (e) {
        await nginx.stop();
        nginx.cleanup();
        throw e;
    }
    return nginx;
}

function killAll(pids) {
    for (const p of pids) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
}

function readOr(file) {
    try { return fs.readFileSync(file, 'utf8'); } catch { return ''; }
}

/** The lines of an error log that must never appear. */
export function badLogLines(text) {
    return text.split('\n').filter((l) => BAD_LOG.test(l));
}

// ---------------------------------------------------------------------------
// Publishing

/**
 * One HTTP request on a fresh connection (so that requests spread over the
 * workers).  Resolves to {status, headers, body, json}.
 */
export function request(port, method, urlPath, { body = null, headers = {}, ms = 10000 } = {}) {
    return new Promise((resolve, reject) => {
        const req = http.request({
            host: '127.0.0.1', port, method, path: urlPath, agent: false,
            headers: body === null ? headers
                                   : { ...headers, 'Content-Length': Buffer.byteLength(body) },
            timeout: ms,
        }, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => {
                const text = Buffer.concat(chunks).toString('utf8');
                let json = null;
                try { json = JSON.parse(text); } catch { /* not JSON */ }
                resolve({ status: res.statusCode, headers: res.headers, body: text, json });
            });
            res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath}: no reply in ${ms} ms`)));
        req.on('error', reject);
        req.end(body === null ? undefined : body);
    });
}

/** POST `data` to /publish/<channel>; `type` sets the SSE-Event header. */
export function publish(port, channel, data, { type = null, contentType = 'text/plain; charset=utf-8' } = {}) {
    const headers = { 'Content-Type': contentType };
    if (type) headers['SSE-Event'] = type;
    return request(port, 'POST', `/publish/${encodeURIComponent(channel)}`, { body: data, headers });
}

/** The event ids a publish reply assigned, in order (docs/protocol.md). */
export function replyIds(reply) {
    const j = reply.json || {};
    if (Array.isArray(j.ids)) return j.ids;
    return j.id ? [j.id] : [];
}

// ---------------------------------------------------------------------------
// The browser

/**
 * Headless Chromium with a fresh profile.  Returns {context, newPage,
 * problems, close}.  Every page made with newPage() records its uncaught
 * exceptions ("pageerror") and console messages of type error; problems()
 * lists those no `allow` pattern matches, so that a test can assert there
 * were none:
 *
 *     assert.deepEqual(browser.problems(), [], 'page and console errors');
 *
 * `allow` (RegExps) is for errors a test provokes on purpose.
 *
 * QUIC is off unless `quic` is given: {origin: 'host:port', spki: base64
 * SHA-256 of the server certificate's public key}; then that origin is
 * spoken to over HTTP/3 only, and the test's own certificate is accepted
 * by its key (QUIC ignores the usual ignore-certificate-errors switches).
 */
export async function launchBrowser(dir, { allow = [], quic = null } = {}) {
    const profile = fs.mkdtempSync(path.join(dir || os.tmpdir(), 'chromium-'));
    const network = quic ? ['--enable-quic', `--origin-to-force-quic-on=${quic.origin}`,
                        `--ignore-certificate-errors-spki-list=${quic.spki}`]
                     : ['--disable-quic'];
    const context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,                    // --headless
        args: ['--no-sandbox', '--disable-gpu', ...network, '--no-first-run',
               '--disable-background-networking', '--disable-component-update',
               '--disable-sync'],
        viewport: { width: 1100, height: 800 },
        timeout: 30000,
    });
    const seen = [];
    return {
        context,
        async newPage() {
            const page = await context.newPage();
            page.on('pageerror', (err) => seen.push(`pageerror on ${page.url()}: ${err.message}`));
            page.on('console', (msg) => {
                if (msg.type() === 'error') seen.push(`console.error on ${page.url()}: ${msg.text()}`);
            });
            return page;
        },
        problems: () => seen.filter((line) => !allow.some((re) => re.test(line))),
        async close() {
            await Promise.race([context.close().catch(() => {}), deadline(10000)]);
            fs.rmSync(profile, { recursive: true, force: true });
        },
    };
}
