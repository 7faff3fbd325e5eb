// A real browser stops on 204 (SPEC: DELETE, then "for history_ttl
// afterwards a subscriber asking for it gets 204 No Content, which tells an
// EventSource to stop reconnecting").
//
// Chromium's EventSource follows a channel; the channel is deleted: the
// stream ends, the browser reconnects once (sse_retry 200ms), gets 204 and
// must give up: readyState CLOSED, and nginx's access log shows no further
// request for the channel during ten reconnection times.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
    badLogLines, delay, launchBrowser, publish, request, startNginx, waitUntil,
} from './lib/harness.mjs';

const CHANNEL = 'ends';
const RETRY_MS = 200;
const WAIT = { timeout: 15000 };

describe('EventSource in Chromium stops on 204', () => {
    let nginx;
    let browser;

    before(async () => {
        nginx = await startNginx({
            workers: 2,
            httpExtra: `sse_zone sse 8m history=100;\n    sse_retry ${RETRY_MS}ms;`,
        });
        browser = await launchBrowser(nginx.dir);
    });

    after(async () => {
        if (browser) await browser.close();
        if (nginx) { await nginx.stop(); nginx.cleanup(); }
    });

    // requests for the channel's stream in nginx's access log, with their status
    const streamRequests = () => fs.readFileSync(path.join(nginx.dir, 'access.log'), 'utf8')
        .split('\n')
        .filter((l) => l.includes(`GET /events/${CHANNEL} `))
        .map((l) => Number((l.match(/" (\d{3}) /) || [])[1]));

    test('DELETE: the stream ends, one reconnect gets 204, then nothing', { timeout: 60000 }, async () => {
        const page = await browser.newPage();
        await page.goto(nginx.url(`/recorder.html?stream=/events/${CHANNEL}`));
        await page.waitForFunction(() => window.rec.opens === 1, null, WAIT);

        const reply = await publish(nginx.port, CHANNEL, 'before the end');
        assert.equal(reply.status, 201, reply.body);
        await page.waitForFunction(() => window.rec.events.length === 1, null, WAIT);

        const del = await request(nginx.port, 'DELETE', `/publish/${CHANNEL}`);
        assert.equal(del.status, 200, del.body);

        await page.waitForFunction(() => window.es.readyState === EventSource.CLOSED, null, WAIT);
        // the first stream's log line is written when it ends; the 204's at once
        await waitUntil(() => streamRequests().length >= 2, { what: 'two access log lines' });
        // ten reconnection times: an EventSource that did not stop would
        // have asked again several times by now
        await delay(10 * RETRY_MS);

        const rec = await page.evaluate(() => ({ ...window.rec, state: window.es.readyState }));
        assert.equal(rec.state, 2, 'readyState CLOSED');
        assert.equal(rec.closed, true, 'the error event saw CLOSED');
        assert.equal(rec.opens, 1, 'opened once, never again');
        assert.deepEqual(rec.events.map((e) => e.data), ['before the end']);
        assert.deepEqual(streamRequests(), [200, 204],
                         'nginx saw the stream, then one reconnect answered 204, then nothing');
        assert.deepEqual(browser.problems(), [], 'no page error, no unexpected console error');
        await page.close();
    });

    test('error.log has no alert, crit or emerg', async () => {
        await browser.close();
        browser = null;
        await nginx.stop();
        assert.deepEqual(badLogLines(nginx.errorLog() + nginx.output()), [], 'error.log');
    });
});
