// Subscribers over HTTP/3: Chromium forced onto QUIC for the test origin.
//
// Runs on an nginx built with --with-http_v3_module (the upstream builds of
// `make test-matrix` from 1.25 on; Debian 12's 1.22 has no HTTP/3 and the
// file is skipped there).  One nginx with a QUIC + TLS server on a free port,
// a certificate this test makes (openssl), and Chromium with
// --origin-to-force-quic-on for that origin and the certificate accepted by
// its public key:
//   1. the page itself arrived over HTTP/3 (navigation timing says "h3");
//   2. each event published (over HTTP/1.1, to the plain server) reaches the
//      page's EventSource at once: the next one is only published after the
//      page has shown the previous one, each within a bound far below the
//      heartbeat interval -- an event held in a buffer would stall the test;
//   3. nginx's access log records the subscribe request as HTTP/3.0, and its
//      error.log has no [alert]/[crit]/[emerg].

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
    NGINX_BINARY, badLogLines, freePort, launchBrowser, publish, replyIds,
    startNginx, waitUntil,
} from './lib/harness.mjs';

const EVENTS = 30;
const PER_EVENT_MS = 5000;   // heartbeats are off: nothing else would flush
const WAIT = { timeout: 15000 };

/** `nginx -V` (it writes to stderr). */
function nginxV() {
    return execFileSync('sh', ['-c', `'${NGINX_BINARY}' -V 2>&1`], { encoding: 'utf8' });
}

const HAS_H3 = /--with-http_v3_module/.test(nginxV());

/** A self-signed certificate for 127.0.0.1 and the base64 SHA-256 of its
 *  public key (what --ignore-certificate-errors-spki-list takes). */
function makeCertificate(dir) {
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt',
                             'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
                             '-subj', '/CN=127.0.0.1',
                             '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
                             '-keyout', key, '-out', cert], { stdio: 'ignore' });
    const x509 = new crypto.X509Certificate(fs.readFileSync(cert));
    const spkiDer = x509.publicKey.export({ type: 'spki', format: 'der' });
    const spki = crypto.createHash('sha256').update(spkiDer).digest('base64');
    return { cert, key, spki };
}

describe('HTTP/3 subscribers in Chromium', { skip: !HAS_H3 && `${NGINX_BINARY} has no --with-http_v3_module` }, () => {
    let nginx;
    let browser;
    let tmp;
    let h3port;
    let accessLog;

    before(async () => {
        tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sse-h3-'));
        const { cert, key, spki } = makeCertificate(tmp);
        h3port = await freePort();
        accessLog = path.join(tmp, 'h3-access.log');
        // A second server in the same http{} (and the same zone) as the
        // harness's plain one: QUIC and TLS on one port number.
        const httpExtra = `
    sse_zone sse 8m history=100;
    log_format h3proto '$server_protocol $request_method $uri $status';
    server {
        listen 127.0.0.1:${h3port} quic reuseport;
        listen 127.0.0.1:${h3port} ssl;
        server_name localhost;
        ssl_certificate     ${cert};
        ssl_certificate_key ${key};
        ssl_protocols TLSv1.3;
        add_header Alt-Svc 'h3=":${h3port}"; ma=600' always;
        access_log ${accessLog} h3proto;
        sse_heartbeat off;

        location ~ ^/events/([^/]+)$ { sse_subscribe $1; }
        location / { root html; }
    }`;
        nginx = await startNginx({ workers: 2, httpExtra });
        browser = await launchBrowser(nginx.dir, { quic: { origin: `127.0.0.1:${h3port}`, spki } });
    });

    after(async () => {
        if (browser) await browser.close();
        if (nginx) { await nginx.stop(); nginx.cleanup(); }
        if (tmp && !process.env.TEST_NGINX_LEAVE) fs.rmSync(tmp, { recursive: true, force: true });
    });

    test('the page is fetched over HTTP/3, and every event reaches it at once', async () => {
        const channel = 'h3-1';
        const page = await browser.newPage();
        await page.goto(`https://127.0.0.1:${h3port}/recorder.html?stream=/events/${channel}`);
        const proto = await page.evaluate(
            () => performance.getEntriesByType('navigation')[0].nextHopProtocol);
        assert.equal(proto, 'h3', 'the page came over HTTP/3');
        await page.waitForFunction(() => window.rec.opens === 1, null, WAIT);

        const ids = [];
        const slowest = { ms: 0, n: -1 };
        for (let n = 0; n < EVENTS; n++) {
            const t0 = Date.now();
            const reply = await publish(nginx.port, channel, `h3 event ${n}`);
            assert.equal(reply.status, 201, `publish ${n}: ${reply.status} ${reply.body}`);
            ids.push(...replyIds(reply));
            // The next event is published only once this one is on the page.
            await page.waitForFunction((k) => window.rec.events.length === k + 1, n,
                                       { timeout: PER_EVENT_MS });
            const ms = Date.now() - t0;
            if (ms > slowest.ms) { slowest.ms = ms; slowest.n = n; }
        }
        const got = await page.evaluate(() => window.rec.events);
        assert.deepEqual(got.map((e) => e.data),
                         Array.from({ length: EVENTS }, (_, n) => `h3 event ${n}`),
                         'every event once, in order');
        assert.deepEqual(got.map((e) => e.id), ids, 'the ids the publish replies gave');
        assert.equal(await page.evaluate(() => window.rec.errors), 0, 'the stream never broke');
        console.log(`# ${EVENTS} events over HTTP/3, slowest publish-to-page ${slowest.ms} ms (#${slowest.n})`);

        await page.close();
        // The stream's request ends when the page goes; then it is logged.
        const line = await waitUntil(() => {
            const log = fs.existsSync(accessLog) ? fs.readFileSync(accessLog, 'utf8') : '';
            return log.split('\n').find((l) => l.includes(`/events/${channel}`));
        }, { ms: 15000, what: `the subscribe request in ${accessLog}` });
        assert.match(line, /^HTTP\/3\.0 GET \/events\/h3-1 200$/, `access log: ${line}`);
    });

    test('nginx stops gracefully with a clean error log', async () => {
        await browser.close();
        browser = null;
        assert.ok(await nginx.stop(), 'graceful stop (SIGQUIT) sufficed');
        assert.deepEqual(badLogLines(nginx.errorLog()), [], 'no [alert]/[crit]/[emerg]');
    });
});
