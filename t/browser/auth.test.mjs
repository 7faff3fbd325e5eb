// Signed tokens and CORS in a real browser (project issue 11).
//
// The page and its token endpoint are served by a small node server (this
// file) at http://127.0.0.1:P1, the application's origin; the endpoint
// sets the token as an HttpOnly cookie for 127.0.0.1.  The SSE locations
// are on another origin of the same site, http://127.0.0.1:P2 (a second
// server of the test's nginx), to which the browser sends that cookie
// (cookies do not depend on the port).  Events are published through the
// harness's own server.  Tokens are ES256, minted with the npm package
// jose.
//   1. EventSource with withCredentials and the cookie receives its user's
//      channel (sse_subscribe user:$sse_jwt_sub), and only that;
//   2. a token for another user gets 403: the EventSource fails and gives up;
//   3. a page of an unlisted origin (http://localhost:P1) gets no CORS
//      headers: it cannot read the stream;
//   4. a stream whose token expires ends; the page fetches a fresh cookie
//      and EventSource's own reconnect resumes with Last-Event-ID: every
//      event exactly once, in order;
//   5. nginx stops gracefully, error.log has no alert, crit or emerg.
// Page errors and console errors fail a test unless it expects them.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { SignJWT } from 'jose';
import {
    badLogLines, delay, freePort, launchBrowser, publish, request, startNginx, waitUntil,
} from './lib/harness.mjs';

const WAIT = { timeout: 15000 };
const SHORT_TTL = 4;             // seconds of the token that expires in test 4

/** An ES256 key pair; the public key as a PEM file in a fresh dir. */
function makeKey() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sse-browser-keys-'));
    fs.chmodSync(dir, 0o755);
    const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = path.join(dir, 'ec.pem');
    fs.writeFileSync(pem, publicKey.export({ type: 'spki', format: 'pem' }));
    return { dir, pem, privateKey };
}

function mint(privateKey, user, ttl) {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ sub: user, sse: { subscribe: [`user:${user}`] } })
        .setProtectedHeader({ alg: 'ES256' })
        .setIssuedAt(now)
        .setExpirationTime(now + ttl)
        .sign(privateKey);
}

/**
 * The application: GET /auth-recorder.html (the page), and GET
 * /token?user=42&ttl=4, which answers 204 with the token in an HttpOnly
 * cookie sse_token.  `issued` lists what it gave: {user, ttl, at}.
 */
async function startAppServer(privateKey) {
    const port = await freePort();
    const issued = [];
    const page = fs.readFileSync(new URL('./fixtures/auth-recorder.html', import.meta.url));
    const server = http.createServer(async (req, res) => {
        const url = new URL(req.url, `http://127.0.0.1:${port}`);
        if (url.pathname === '/auth-recorder.html') {
            res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
            res.end(page);
            return;
        }
        if (url.pathname === '/favicon.ico') { res.writeHead(204); res.end(); return; }
        if (url.pathname !== '/token') { res.writeHead(404); res.end(); return; }
        const user = url.searchParams.get('user');
        // the first token of a user may be short; every later one is long
        const short = Number(url.searchParams.get('ttl') || 3600);
        const ttl = issued.some((i) => i.user === user) ? 3600 : short;
        const token = await mint(privateKey, user, ttl);
        issued.push({ user, ttl, at: Date.now() });
        res.writeHead(204, {
            'Set-Cookie': `sse_token=${token}; Path=/; HttpOnly; SameSite=Lax`,
            'Cache-Control': 'no-store' });
        res.end();
    });
    await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
    return { port, issued, url: (p) => `http://127.0.0.1:${port}${p}`,
             close: () => new Promise((resolve) => server.close(resolve)) };
}

/** Console errors and page errors of a page, for the test to check. */
function watchErrors(page) {
    const errors = [];
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
    return errors;
}

function unexpected(errors, allowed = []) {
    return errors.filter((e) => !allowed.some((re) => re.test(e)));
}

/** Publish 0, 1, 2 ... every `ms` to `channel` until stop(). */
function startPublisher(port, channel, ms) {
    const state = { next: 0, failures: [] };
    let running = true;
    const done = (async () => {
        while (running) {
            const reply = await publish(port, channel, String(state.next)).catch((e) => e);
            if (reply instanceof Error || (reply.status !== 201 && reply.status !== 202)) {
                state.failures.push(`publish ${state.next}: ${reply.status || reply.message}`);
                break;
            }
            state.next++;
            await delay(ms);
        }
    })();
    return { state, async stop() { running = false; await done; return state.next - 1; } };
}

describe('signed tokens and CORS in Chromium', () => {
    let nginx;
    let browser;
    let tokens;
    let key;
    let ssePort;
    let pageOrigin;

    before(async () => {
        key = makeKey();
        ssePort = await freePort();
        tokens = await startAppServer(key.privateKey);
        pageOrigin = `http://127.0.0.1:${tokens.port}`;
        nginx = await startNginx({
            workers: 2,
            httpExtra: `
    sse_zone sse 8m history=1000;
    sse_retry 1s;

    server {
        listen 127.0.0.1:${ssePort};
        sse_cors_origins ${pageOrigin};
        sse_auth_jwt_key_file ${key.pem};
        sse_auth_jwt_leeway 0s;

        location = /me { sse_auth_jwt on; sse_subscribe user:$sse_jwt_sub; }
        location ~ ^/auth/([^/]+)$ { sse_auth_jwt on; sse_subscribe $1; }
        location ~ ^/open/([^/]+)$ { sse_subscribe $1; }
    }`,
        });
        browser = await launchBrowser(nginx.dir);
    });

    after(async () => {
        if (browser) await browser.close();
        if (nginx) { await nginx.stop(); nginx.cleanup(); }
        if (tokens) await tokens.close();
        if (key) fs.rmSync(key.dir, { recursive: true, force: true });
    });

    const sse = (p) => `http://127.0.0.1:${ssePort}${p}`;
    const pageUrl = (origin, q) =>
        `${origin}/auth-recorder.html?${new URLSearchParams(q).toString()}`;

    test('withCredentials and a cookie token: the user gets their own channel', async () => {
        await browser.context.clearCookies();
        const page = await browser.newPage();
        const errors = watchErrors(page);
        await page.goto(pageUrl(pageOrigin, { stream: sse('/me'), token: tokens.url('/token?user=42') }));
        await page.waitForFunction(() => window.rec.opens === 1, null, WAIT);
        assert.deepEqual(await page.evaluate(() => window.rec.tokens), [204], 'the token fetch');

        for (const [ch, data] of [['user:42', 'for 42 (1)'], ['user:7', 'for 7'],
                                  ['user:420', 'for 420'], ['user:42', 'for 42 (2)']]) {
            const r = await publish(nginx.port, ch, data);
            assert.ok(r.status === 201 || r.status === 202, `publish to ${ch}: ${r.status}`);
        }
        await page.waitForFunction(() => window.rec.events.length >= 2, null, WAIT);
        await delay(300);      // anything wrongly delivered would come now
        const rec = await page.evaluate(() => window.rec);
        assert.deepEqual(rec.events.map((e) => e.data), ['for 42 (1)', 'for 42 (2)'],
                         'only user:42 events');
        assert.equal(rec.errors, 0, 'no error on the EventSource');
        assert.deepEqual(unexpected(errors), [], 'no page or console error');
        await page.close();
    });

    test('a token for another user: 403, the EventSource gives up', async () => {
        await browser.context.clearCookies();
        const page = await browser.newPage();
        const errors = watchErrors(page);
        // a user-7 token asking for user:42's channel
        await page.goto(pageUrl(pageOrigin, { stream: sse('/auth/user:42'),
                                              token: tokens.url('/token?user=7') }));
        await page.waitForFunction(() => window.rec.closed, null, WAIT);
        await publish(nginx.port, 'user:42', 'not for 7');
        await delay(300);
        const rec = await page.evaluate(() => window.rec);
        assert.equal(rec.opens, 0, 'never opened');
        assert.deepEqual(rec.events, [], 'nothing received');
        assert.equal(rec.closed, true, 'EventSource CLOSED: no reconnect');
        // the same request from node: 403 with the CORS headers, so that a
        // page could read why
        const cookie = await browser.context.cookies(sse('/'));
        const r = await request(ssePort, 'GET', '/auth/user:42', { headers: {
            Origin: pageOrigin, Cookie: cookie.map((c) => `${c.name}=${c.value}`).join('; ') } });
        assert.equal(r.status, 403, '403 for the other user');
        assert.match(r.headers['www-authenticate'] || '', /error="insufficient_scope"/);
        assert.equal(r.headers['access-control-allow-origin'], pageOrigin, 'ACAO on the 403');
        assert.equal(r.headers['access-control-allow-credentials'], 'true', 'ACAC on the 403');
        assert.deepEqual(unexpected(errors, [/403/]), [], 'no page or console error but the 403');
        await page.close();
    });

    test('an unlisted origin gets no CORS headers and cannot read the stream', async () => {
        await browser.context.clearCookies();
        const other = `http://localhost:${tokens.port}`;      // another origin, not listed
        const page = await browser.newPage();
        const errors = watchErrors(page);
        const responses = [];
        page.on('response', (r) => { if (r.url().startsWith(sse('/open/'))) responses.push(r); });
        await page.goto(pageUrl(other, { stream: sse('/open/lobby') }));
        await page.waitForFunction(() => window.rec.closed, null, WAIT);
        await publish(nginx.port, 'lobby', 'hidden');
        await delay(300);
        const rec = await page.evaluate(() => window.rec);
        assert.equal(rec.opens, 0, 'never opened');
        assert.deepEqual(rec.events, [], 'nothing readable');

        // what the server answered that origin: the stream, without CORS headers
        const r = await request(ssePort, 'HEAD', '/open/lobby', { headers: { Origin: other } });
        assert.equal(r.status, 200, 'the server serves the stream');
        for (const h of ['access-control-allow-origin', 'access-control-allow-credentials']) {
            assert.equal(r.headers[h], undefined, `no ${h} for ${other}`);
        }
        assert.ok(errors.some((e) => /CORS|Access-Control-Allow-Origin/.test(e)),
                  `the browser says it was a CORS refusal: ${errors.join(' | ')}`);
        assert.deepEqual(unexpected(errors, [/CORS|Access-Control-Allow-Origin/, /ERR_FAILED/]), [],
                         'no other page or console error');

        // the listed origin reads the same stream
        const ok = await browser.newPage();
        const okErrors = watchErrors(ok);
        await ok.goto(pageUrl(pageOrigin, { stream: sse('/open/lobby') }));
        await ok.waitForFunction(() => window.rec.opens === 1, null, WAIT);
        await publish(nginx.port, 'lobby', 'visible');
        await ok.waitForFunction(() => window.rec.events.length === 1, null, WAIT);
        assert.equal(await ok.evaluate(() => window.rec.events[0].data), 'visible');
        assert.deepEqual(unexpected(okErrors), [], 'the listed origin: no error');
        await page.close();
        await ok.close();
    });

    test('the token expires, the stream ends, a fresh cookie resumes it: nothing lost',
         { timeout: 60000 }, async () => {
        await browser.context.clearCookies();
        const page = await browser.newPage();
        const errors = watchErrors(page);
        await page.goto(pageUrl(pageOrigin, { stream: sse('/me'), refresh: '1',
                                              token: tokens.url(`/token?user=5&ttl=${SHORT_TTL}`) }));
        await page.waitForFunction(() => window.rec.opens === 1, null, WAIT);
        const first = tokens.issued.find((i) => i.user === '5');
        assert.equal(first.ttl, SHORT_TTL, 'the first token is short');

        const publisher = startPublisher(nginx.port, 'user:5', 100);
        // the stream ends (by exp + 2 s), the page gets a new token, and
        // EventSource reconnects (retry: 1 s) with its Last-Event-ID
        await page.waitForFunction(() => window.rec.opens >= 2, null,
                                   { timeout: (SHORT_TTL + 2 + 1 + 5) * 1000 });
        const n = await page.evaluate(() => window.rec.events.length);
        await page.waitForFunction((k) => window.rec.events.length >= k + 10, n, WAIT);
        const last = await publisher.stop();
        assert.deepEqual(publisher.state.failures, [], 'publisher failures');
        await page.waitForFunction((l) => window.rec.events.some((e) => e.data === String(l)),
                                   last, WAIT);
        await delay(200);
        const rec = await page.evaluate(() => window.rec);

        const seen = rec.events.map((e) => Number(e.data));
        assert.deepEqual(seen, Array.from({ length: last + 1 }, (_, i) => i),
                         'every event exactly once, in order');
        assert.deepEqual(rec.events.filter((e) => e.type !== 'message'), [], 'no reset');
        assert.equal(rec.opens, 2, 'one reconnect');
        assert.equal(rec.errors, 1, 'one end of stream');
        assert.equal(rec.closed, false, 'the EventSource never gave up');
        assert.deepEqual(rec.tokens, [204, 204], 'a token at the start, a fresh one at the end');
        const second = tokens.issued.filter((i) => i.user === '5')[1];
        const endedAfter = (second.at - first.at) / 1000;
        assert.ok(endedAfter >= SHORT_TTL - 1 && endedAfter <= SHORT_TTL + 2 + 1,
                  `the stream ended when the token expired (${endedAfter} s after it was issued)`);
        assert.deepEqual(unexpected(errors), [], 'no page or console error');
        await page.close();
    });

    test('nginx stops gracefully; error.log has no alert, crit or emerg', async () => {
        await browser.close();
        browser = null;
        const graceful = await nginx.stop();
        assert.deepEqual(badLogLines(nginx.errorLog() + nginx.output()), [], 'error.log');
        assert.ok(graceful, 'nginx exits on SIGQUIT within 5 s');
    });
});
