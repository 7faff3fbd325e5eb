// RELOAD TEST (project issue 3): no event lost or repeated across reloads.
//
// A browser's EventSource follows a channel that gets an event every ~20 ms
// (data = a sequence number) while nginx's master receives SIGHUP three
// times.  Each reload must: start new workers, make the old ones end their
// streams and exit promptly, and let the browser resume on a new worker from
// the zone's history (Last-Event-ID) -- the zone surviving the reload.  At the
// end the page must hold every sequence number exactly once, in order, and
// have seen no reset event.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
    badLogLines, delay, launchBrowser, publish, startNginx,
} from './lib/harness.mjs';

const CHANNEL = 'reload';
const INTERVAL_MS = 20;      // publishing pace
const RELOADS = 3;
const WAIT = { timeout: 15000 };

/**
 * Publish 0, 1, 2 ... every INTERVAL_MS, one request at a time, until
 * stop().  A refused publish (503, connection refused) is retried with the
 * same number, so the published sequence has no hole, and counted: a reload
 * keeps the listening sockets, so the test asserts there were none;
 * anything ambiguous (reset mid-request) is recorded as a failure.
 */
function startPublisher(port) {
    const state = { next: 0, stored: 0, delivered: 0, retries: 0, failures: [] };
    let running = true;
    const done = (async () => {
        while (running) {
            let reply;
            try {
                reply = await publish(port, CHANNEL, String(state.next));
            } catch (e) {
                if (e.code === 'ECONNREFUSED') { state.retries++; await delay(INTERVAL_MS); continue; }
                state.failures.push(`publish ${state.next}: ${e.message}`);
                break;
            }
            if (reply.status === 503) { state.retries++; await delay(INTERVAL_MS); continue; }
            if (reply.status !== 201 && reply.status !== 202) {
                state.failures.push(`publish ${state.next}: ${reply.status} ${reply.body}`);
                break;
            }
            // 202: stored only, no subscriber connected at that instant (the
            // browser was between two connections).  Fine: it must get it
            // from history when it resumes.
            if (reply.status === 201) state.delivered++; else state.stored++;
            state.next++;
            await delay(INTERVAL_MS);
        }
    })();
    return {
        state,
        async stop() { running = false; await done; return state.next - 1; },
    };
}

/** Where a received sequence differs from 0..last: missing, duplicated, disordered. */
function sequenceReport(seen, last) {
    const counts = new Map();
    for (const n of seen) counts.set(n, (counts.get(n) || 0) + 1);
    const missing = [];
    for (let i = 0; i <= last; i++) if (!counts.has(i)) missing.push(i);
    const duplicated = [...counts].filter(([, c]) => c > 1).map(([n]) => n);
    const disorder = [];
    for (let i = 1; i < seen.length; i++) if (seen[i] <= seen[i - 1]) disorder.push(`${seen[i - 1]}->${seen[i]}`);
    const extra = seen.filter((n) => !(n >= 0 && n <= last));
    return { received: seen.length, expected: last + 1, missing, duplicated,
             disorder: disorder.slice(0, 20), extra };
}

describe('reload (SIGHUP x3) while publishing: nothing lost, nothing repeated', () => {
    let nginx;
    let browser;
    let publisher;

    before(async () => {
        nginx = await startNginx({
            workers: 2,
            // Quick reconnects; a history deep enough for the reconnect window.
            httpExtra: 'sse_zone sse 8m history=1000;\n    sse_retry 200ms;',
        });
        browser = await launchBrowser(nginx.dir);
    });

    after(async () => {
        if (publisher) await publisher.stop();
        if (browser) await browser.close();
        if (nginx) { await nginx.stop(); nginx.cleanup(); }
    });

    test('every event exactly once, in order, across 3 reloads', { timeout: 120000 }, async () => {
        const page = await browser.newPage();
        await page.goto(nginx.url(`/recorder.html?stream=/events/${CHANNEL}`));
        await page.waitForFunction(() => window.rec.opens === 1, null, WAIT);

        publisher = startPublisher(nginx.port);
        const received = () => page.evaluate(() => window.rec.events.length);
        // Wait until the page has at least `m` events; a timeout reports
        // what the publisher and the page saw.
        const flowing = (m, what) => page.waitForFunction(
            (k) => window.rec.events.length >= k, m, WAIT).catch(async (e) => {
            const rec = await page.evaluate(() => window.rec);
            throw new Error(`${what}: ${e.message.split('\n')[0]}; page: ${rec.events.length} ` +
                            `events, ${rec.opens} opens, ${rec.errors} errors, closed=${rec.closed}; ` +
                            `publisher: ${JSON.stringify(publisher.state)}`);
        });
        await flowing(10, 'events before the first reload');

        for (let i = 1; i <= RELOADS; i++) {
            const t0 = Date.now();
            // Waits for the new workers and for every old worker to exit: an
            // old worker holding its stream open never exits.
            await nginx.reload({ ms: 15000 });
            const reloadMs = Date.now() - t0;
            // The stream resumed on a new worker and live events flow again.
            const n = await received();
            await flowing(n + 25, `events after reload ${i}`);
            console.error(`reload ${i}: done in ${reloadMs} ms, ${n} events so far`);
        }

        const last = await publisher.stop();
        const pub = publisher.state;
        publisher = null;
        assert.deepEqual(pub.failures, [], 'publisher failures');
        assert.equal(pub.retries, 0, 'no publish refused across the reloads (503 or connection refused)');

        // Wait until the page has the last event (or time out: then the
        // report below says what is missing).
        await page.waitForFunction((l) => window.rec.events.some((e) => e.data === String(l)),
                                   last, WAIT).catch(() => {});
        const rec = await page.evaluate(() => window.rec);
        console.error(`published 0..${last} (${pub.delivered} with a subscriber connected, ` +
                      `${pub.stored} only stored, ${pub.retries} retried); page: ` +
                      `${rec.events.length} events, ${rec.opens} connections`);

        const resets = rec.events.filter((e) => e.type !== 'message');
        assert.deepEqual(resets, [], 'no reset (or other typed) event: history survived');
        const seen = rec.events.map((e) => Number(e.data));
        const report = sequenceReport(seen, last);
        assert.deepEqual(report, { received: last + 1, expected: last + 1, missing: [],
                                   duplicated: [], disorder: [], extra: [] },
                         'every event exactly once, in order');
        assert.equal(new Set(rec.events.map((e) => e.id)).size, rec.events.length, 'ids unique');
        assert.ok(rec.opens >= RELOADS + 1,
                  `each reload ends the stream and the browser reconnects (${rec.opens} opens)`);
        assert.equal(rec.closed, false, 'the EventSource never gave up');
        assert.deepEqual(browser.problems(), [], 'no page error, no console error');
        await page.close();
    });

    test('error.log has no alert, crit or emerg', async () => {
        await browser.close();
        browser = null;
        await nginx.stop();
        assert.deepEqual(badLogLines(nginx.errorLog() + nginx.output()), [], 'error.log');
    });
});
