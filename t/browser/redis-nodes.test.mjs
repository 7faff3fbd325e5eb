// SEVERAL NODES, ONE REDIS, A REAL BROWSER (issue 13, item 4).
//
// Two nginx nodes with the module share channels through one redis-server
// (started here on a free loopback port, stopped by pid).  In front of
// them, a plain nginx (no module) balances round-robin, with
// proxy_buffering off, as an operator would put a load balancer.  A
// Chromium EventSource follows a channel through it while a publisher
// POSTs a numbered event every ~20 ms, to the two nodes in turn, with an
// Idempotency-Key (a retry after a refused connection or a 503 never
// publishes twice).  Mid-stream, the node that holds the browser's stream
// is stopped: the stream ends, EventSource reconnects through the balancer
// to the other node with its Last-Event-ID, and resumes there from the
// cluster's history.  The page must end with every event exactly once, in
// order, and no reset.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
    NGINX_BINARY, badLogLines, childrenOf, delay, freePort, launchBrowser,
    request, startNginx, waitUntil,
} from './lib/harness.mjs';

const REDIS_BINARY = process.env.TEST_REDIS_BINARY || '/usr/bin/redis-server';
const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const CHANNEL = 'nodes';
const TOTAL = 150;          // events published
const STOP_AT = 50;         // the browser's node is stopped after this many
const INTERVAL_MS = 20;
const WAIT = { timeout: 20000 };
// TEST_NODES_SAME=1 (as for t/lib/SSETest/Nodes.pm): both "nodes" are the
// same nginx and the stop is a reload (which also ends the stream): a
// check of this test's own logic on a one-node build
const SAME = Boolean(process.env.TEST_NODES_SAME);

/** One RESP PING on a fresh connection: true on +PONG. */
function ping(port) {
    return new Promise((resolve) => {
        const s = net.connect({ port, host: '127.0.0.1' });
        let buf = '';
        const done = (v) => { s.destroy(); resolve(v); };
        s.setTimeout(1000, () => done(false));
        s.once('error', () => done(false));
        s.on('connect', () => s.write('PING\r\n'));
        s.on('data', (d) => { buf += d; if (buf.includes('\r\n')) done(buf.startsWith('+PONG')); });
    });
}

/** A redis-server of the test's own: free port, own dir, stopped by pid. */
async function startRedis() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sse-browser-redis-'));
    const port = await freePort();
    fs.writeFileSync(path.join(dir, 'redis.conf'), [
        'bind 127.0.0.1', `port ${port}`, `dir ${dir}`, `logfile ${dir}/redis.log`,
        'daemonize no', 'save ""', 'appendonly no', 'protected-mode no', '',
    ].join('\n'));
    const proc = spawn(REDIS_BINARY, [path.join(dir, 'redis.conf')], { stdio: 'ignore' });
    const reaper = () => { try { process.kill(proc.pid, 'SIGKILL'); } catch { /* gone */ } };
    process.once('exit', reaper);
    let exited = false;
    const exit = new Promise((resolve) => proc.once('exit', () => { exited = true; resolve(); }));
    await waitUntil(async () => {
        if (exited) throw new Error(`redis-server exited:\n${readOr(path.join(dir, 'redis.log'))}`);
        return ping(port);
    }, { ms: 10000, what: `redis-server on port ${port}` });
    return {
        port,
        async stop() {
            if (!exited) {
                proc.kill('SIGTERM');
                await Promise.race([exit, delay(5000)]);
                if (!exited) { proc.kill('SIGKILL'); await exit; }
            }
            process.removeListener('exit', reaper);
            if (!process.env.TEST_NGINX_LEAVE) fs.rmSync(dir, { recursive: true, force: true });
        },
    };
}

function readOr(file) {
    try { return fs.readFileSync(file, 'utf8'); } catch { return ''; }
}

/** A plain nginx (no module) balancing round-robin over `upstreams`,
 *  serving the recorder page itself. */
async function startBalancer(upstreams) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sse-browser-lb-'));
    fs.chmodSync(dir, 0o755);
    fs.mkdirSync(path.join(dir, 'temp'));
    fs.mkdirSync(path.join(dir, 'html'));
    fs.copyFileSync(path.join(FIXTURES, 'recorder.html'), path.join(dir, 'html', 'recorder.html'));
    const port = await freePort();
    const conf = path.join(dir, 'nginx.conf');
    fs.writeFileSync(conf, `
worker_processes 1;
daemon off;
master_process on;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 256; }
http {
    types { text/html html; }
    access_log ${dir}/access.log;
    client_body_temp_path ${dir}/temp/body;
    proxy_temp_path       ${dir}/temp/proxy;
    fastcgi_temp_path     ${dir}/temp/fastcgi;
    uwsgi_temp_path       ${dir}/temp/uwsgi;
    scgi_temp_path        ${dir}/temp/scgi;

    upstream nodes {
${upstreams.map((p) => `        server 127.0.0.1:${p};`).join('\n')}
    }
    server {
        listen 127.0.0.1:${port};
        location /events/ {
            proxy_pass http://nodes;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 1h;
        }
        location = /favicon.ico { return 204; }
        location / { root ${dir}/html; }
    }
}
`);
    const proc = spawn(NGINX_BINARY, ['-p', `${dir}/`, '-c', conf, '-e', `${dir}/error.log`],
                       { stdio: 'ignore' });
    const reaper = () => { try { process.kill(proc.pid, 'SIGKILL'); } catch { /* gone */ } };
    process.once('exit', reaper);
    let exited = false;
    const exit = new Promise((resolve) => proc.once('exit', () => { exited = true; resolve(); }));
    await waitUntil(() => {
        if (exited) throw new Error(`balancer exited:\n${readOr(path.join(dir, 'error.log'))}`);
        return childrenOf(proc.pid).size === 1
            && request(port, 'GET', '/favicon.ico').then((r) => r.status === 204, () => false);
    }, { ms: 10000, what: `balancer on port ${port}` });
    return {
        port,
        url: (p) => `http://127.0.0.1:${port}${p}`,
        errorLog: () => readOr(path.join(dir, 'error.log')),
        async stop() {
            if (!exited) {
                const kids = childrenOf(proc.pid);
                proc.kill('SIGQUIT');
                await Promise.race([exit, delay(5000)]);
                if (!exited) { proc.kill('SIGKILL'); await exit; }
                for (const k of kids) { try { process.kill(k, 'SIGKILL'); } catch { /* gone */ } }
            }
            process.removeListener('exit', reaper);
            if (!process.env.TEST_NGINX_LEAVE) fs.rmSync(dir, { recursive: true, force: true });
        },
    };
}

/** Subscribers of the zone on one node (its own shared zone: local). */
async function localSubscribers(node) {
    const r = await request(node.port, 'GET', '/sse-status');
    return ((r.json || {}).zones || {}).sse?.subscribers ?? -1;
}

/** The link to Redis of one node. */
async function redisState(node) {
    const r = await request(node.port, 'GET', '/sse-status');
    return ((r.json || {}).zones || {}).sse?.redis?.state ?? 'none';
}

/**
 * Publish 0 .. TOTAL-1, one at a time, to the live nodes in turn.  Each
 * event has its own Idempotency-Key; a refused connection (the node was
 * stopped) or a 503 is retried with the same key on the next live node.
 */
function startPublisher(nodes) {
    const live = nodes.map(() => true);
    const state = { next: 0, retries: 0, failures: [], ids: [] };
    let turn = 0;
    const done = (async () => {
        while (state.next < TOTAL && state.failures.length === 0) {
            const k = turn++ % nodes.length;
            if (!live[k]) continue;
            let reply;
            try {
                reply = await request(nodes[k].port, 'POST', `/publish/${CHANNEL}`, {
                    body: String(state.next),
                    headers: { 'Content-Type': 'text/plain', 'Idempotency-Key': `ev-${state.next}` },
                });
            } catch (e) {
                if (e.code === 'ECONNREFUSED' || e.code === 'ECONNRESET') {
                    if (e.code === 'ECONNREFUSED') live[k] = false;
                    state.retries++;
                    if (!live.some(Boolean)) { state.failures.push('no node left'); break; }
                    continue;
                }
                state.failures.push(`publish ${state.next}: ${e.message}`);
                break;
            }
            if (reply.status === 503) { state.retries++; await delay(INTERVAL_MS); continue; }
            if (reply.status !== 201 && reply.status !== 202) {
                state.failures.push(`publish ${state.next}: ${reply.status} ${reply.body}`);
                break;
            }
            state.ids.push(reply.json && reply.json.id);
            state.next++;
            await delay(INTERVAL_MS);
        }
    })();
    return { state, done, markDown(k) { live[k] = false; } };
}

describe('two nodes on one Redis behind a round-robin balancer', () => {
    let redis;
    const nodes = [];
    let lb;
    let browser;

    before(async () => {
        redis = await startRedis();
        for (let i = 0; i < 2; i++) {
            if (SAME && i === 1) { nodes.push(nodes[0]); break; }
            nodes.push(await startNginx({
                workers: 2,
                httpExtra: 'sse_zone sse 8m history=1000;\n'
                    + `    sse_redis redis://127.0.0.1:${redis.port} prefix=tbrowser:;\n`
                    + '    sse_retry 200ms;',
            }));
        }
        lb = await startBalancer(nodes.map((n) => n.port));
        browser = await launchBrowser(nodes[0].dir);
    });

    after(async () => {
        if (browser) await browser.close();
        if (lb) await lb.stop();
        for (const n of new Set(nodes)) { await n.stop(); n.cleanup(); }
        if (redis) await redis.stop();
    });

    test('one node stopped mid-stream: every event exactly once, in order', { timeout: 120000 }, async () => {
        await waitUntil(async () => (await Promise.all(nodes.map(redisState))).every((s) => s === 'up'),
                        { ms: 10000, what: 'both nodes\' links to Redis up' });
        const page = await browser.newPage();
        await page.goto(lb.url(`/recorder.html?stream=/events/${CHANNEL}`));
        await page.waitForFunction(() => window.rec.opens === 1, null, WAIT);

        // which node holds the browser's stream
        let holder = -1;
        await waitUntil(async () => {
            const counts = await Promise.all([...new Set(nodes)].map(localSubscribers));
            holder = counts.indexOf(1);
            return holder >= 0 && counts.reduce((a, b) => a + b, 0) === 1;
        }, { ms: 5000, what: 'the stream on one node' });

        const publisher = startPublisher(nodes);
        const report = async (what, e) => {
            const rec = await page.evaluate(() => window.rec);
            throw new Error(`${what}: ${e.message.split('\n')[0]}; page: ${rec.events.length} events, `
                            + `${rec.opens} opens, closed=${rec.closed}; publisher: `
                            + `${JSON.stringify({ ...publisher.state, ids: publisher.state.ids.length })}`);
        };
        await page.waitForFunction((k) => window.rec.events.length >= k, STOP_AT, WAIT)
            .catch((e) => report('events before the stop', e));

        // stop the browser's node (graceful: its streams end at once)
        const t0 = Date.now();
        if (SAME) {
            await nodes[holder].reload();
        } else {
            publisher.markDown(holder);
            assert.equal(await nodes[holder].stop(), true, 'the node stopped gracefully');
        }
        console.error(`node ${holder} ${SAME ? "reloaded" : "stopped"} in ${Date.now() - t0} ms`);

        await publisher.done;
        assert.deepEqual(publisher.state.failures, [], 'publisher failures');
        await page.waitForFunction((n) => window.rec.events.length >= n, TOTAL, WAIT)
            .catch(() => {});
        // anything extra (a repeat) would come right after: give it a moment to show
        await page.waitForFunction((n) => window.rec.events.length > n, TOTAL, { timeout: 300 })
            .catch(() => {});
        const rec = await page.evaluate(() => window.rec);
        console.error(`published ${TOTAL} (${publisher.state.retries} retried); page: `
                      + `${rec.events.length} events, ${rec.opens} connections`);

        assert.deepEqual(rec.events.filter((e) => e.type !== 'message'), [], 'no reset');
        const seen = rec.events.map((e) => Number(e.data));
        assert.deepEqual(seen, [...Array(TOTAL).keys()], 'every event exactly once, in order');
        assert.deepEqual(rec.events.map((e) => e.id), publisher.state.ids,
                         'the page saw the ids the publishes got, from both nodes');
        assert.ok(rec.opens >= 2, `the stream moved to the other node (${rec.opens} opens)`);
        assert.equal(rec.closed, false, 'the EventSource never gave up');
        if (!SAME) {
            assert.equal(await localSubscribers(nodes[1 - holder]), 1,
                         'the stream is on the other node now');
        }
        assert.deepEqual(browser.problems(), [], 'no page error, no console error');
        await page.close();
    });

    test('no alert, crit or emerg in any log', async () => {
        await browser.close();
        browser = null;
        for (const n of new Set(nodes)) await n.stop();
        const lbLog = lb.errorLog();
        await lb.stop();
        const logs = nodes.map((n) => n.errorLog() + n.output()).join('\n') + lbLog;
        assert.deepEqual(badLogLines(logs), [], 'error logs');
        lb = null;
    });
});
