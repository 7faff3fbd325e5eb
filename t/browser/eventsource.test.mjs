// A real browser's EventSource against the module.
//
// One nginx (2 workers, a config shaped like examples/nginx.conf) and one
// headless Chromium for the whole file:
//   1. the page's EventSource receives exactly the published events, in
//      order, with their types, data (multi-line, UTF-8, large) and ids;
//   2. the demo page (examples/demo/index.html) shows events, a reset and a
//      publish from its own form; a screenshot goes to build/demo.png;
//   3. nginx stops gracefully and its error.log has no [alert]/[crit]/[emerg].

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
    REPO, badLogLines, launchBrowser, publish, replyIds, startNginx,
} from './lib/harness.mjs';

const DEMO_PAGE = path.join(REPO, 'examples', 'demo', 'index.html');
const SCREENSHOT = path.join(REPO, 'build', 'demo.png');
const WAIT = { timeout: 15000 };          // bound of every wait on the page

describe('EventSource in Chromium', () => {
    let nginx;
    let browser;

    before(async () => {
        nginx = await startNginx({
            workers: 2,
            httpExtra: 'sse_zone sse 8m history=100;',
            pages: { 'index.html': DEMO_PAGE },
        });
        browser = await launchBrowser(nginx.dir);
    });

    after(async () => {
        // Normally test 3 already stopped both; this covers failures.
        if (browser) await browser.close();
        if (nginx) { await nginx.stop(); nginx.cleanup(); }
    });

    test('receives exactly the published events, in order', async () => {
        const channel = 'browser-1';
        const types = ['update', 'chunk', 'done', 'evil'];
        const page = await browser.newPage();
        await page.goto(nginx.url(`/recorder.html?stream=/events/${channel}&types=${types}`));
        await page.waitForFunction(() => window.rec.opens === 1, null, WAIT);

        // What we publish, and what the page must see: [type, data].
        const expected = [];
        const ids = [];
        async function send(data, opts, events) {
            const reply = await publish(nginx.port, channel, data, opts);
            // A subscriber is connected, so 201 (docs: 202 = only stored).
            assert.equal(reply.status, 201, `publish ${JSON.stringify(data).slice(0, 60)}: ` +
                         `${reply.status} ${reply.body}`);
            // exactly the page's one EventSource
            assert.equal(reply.json && reply.json.subscribers, 1, `reply ${reply.body}`);
            const got = replyIds(reply);
            assert.equal(got.length, events.length, `ids in reply ${reply.body}`);
            ids.push(...got);
            expected.push(...events);
        }

        // Plain events, the whole body being the data.
        for (let i = 0; i < 20; i++) await send(`plain ${i}`, {}, [['message', `plain ${i}`]]);

        // Typed events through the SSE-Event header.
        for (let i = 0; i < 5; i++) {
            const data = JSON.stringify({ n: i, text: 'typed' });
            await send(data, { type: 'update' }, [['update', data]]);
        }

        // Multi-line data: LF, CRLF and CR all become line breaks; an empty
        // line inside the data is kept.
        await send('line one\nline two\nline three', {}, [['message', 'line one\nline two\nline three']]);
        await send('crlf one\r\ncrlf two', {}, [['message', 'crlf one\ncrlf two']]);
        await send('cr one\rcr two', { type: 'chunk' }, [['chunk', 'cr one\ncr two']]);
        await send('first\n\nthird', {}, [['message', 'first\n\nthird']]);

        // Text that looks like SSE fields is data, never a field of its own.
        const lookalike = 'id: 999\nevent: evil\nretry: 1\n: not a comment\ndata: x';
        await send(lookalike, {}, [['message', lookalike]]);

        // UTF-8 beyond ASCII.
        await send('héllo wörld ✓ 日本 😀', {}, [['message', 'héllo wörld ✓ 日本 😀']]);

        // A large event: bigger than nginx's client body buffer (so the body
        // may be in a temp file) and than a socket buffer.
        const big = Array.from({ length: 5000 }, (_, i) => `${i}:abcdefghijklmnopqrstuvwxyz`).join('|');
        await send(big, {}, [['message', big]]);

        // An event-stream body: several events in one request, typed and
        // untyped, multi-line, with a comment and an ignored id: field.
        await send(
            'event: chunk\ndata: stream one\n\n' +
            ': a comment\ndata: stream two a\ndata: stream two b\n\n' +
            'id: 12345\nevent: done\ndata: stream three\n\n',
            { contentType: 'text/event-stream' },
            [['chunk', 'stream one'], ['message', 'stream two a\nstream two b'],
             ['done', 'stream three']]);

        // The last one: once it is on the page, everything before it must be.
        await send('END', { type: 'done' }, [['done', 'END']]);

        await page.waitForFunction(() => window.rec.events.some((e) => e.data === 'END'),
                                   null, WAIT);
        const rec = await page.evaluate(() => window.rec);

        assert.deepEqual(rec.events.map((e) => [e.type, e.data]), expected,
                         'types and data, in order, nothing more');
        assert.deepEqual(rec.events.map((e) => e.id), ids,
                         'each event carries the id the publish reply announced');
        assert.equal(new Set(ids).size, ids.length, 'ids are unique');
        assert.equal(rec.opens, 1, 'one connection, no reconnect');
        assert.equal(rec.errors, 0, 'no error event on the EventSource');
        assert.deepEqual(browser.problems(), [], 'no page error, no console error');
        await page.close();
    });

    test('demo page shows events (screenshot in build/demo.png)', async () => {
        const channel = 'demo';
        const page = await browser.newPage();
        // last_event_id that the channel never issued: the stream must start
        // with a reset event, which the page shows.
        await page.goto(nginx.url(`/index.html?channel=${channel}&types=update&last_event_id=zzz-1`));
        await page.waitForFunction(() => document.getElementById('status').textContent === 'open',
                                   null, WAIT);
        await page.waitForSelector('#events tr.reset', WAIT);

        for (const [data, type] of [
            ['hello', null],
            [JSON.stringify({ user: 'ada', action: 'joined' }), 'update'],
            ['a message\non two lines', null],
        ]) {
            const reply = await publish(nginx.port, channel, data, { type });
            assert.equal(reply.status, 201, reply.body);
        }
        // And one through the page's own publish form (the browser is on
        // 127.0.0.1, which the publish location allows).
        await page.fill('#data', 'published from the page');
        await page.fill('#ptype', 'chunk');
        await page.click('#publish button[type=submit]');
        await page.waitForFunction(() => /^201 /.test(document.getElementById('result').textContent),
                                   null, WAIT);

        await page.waitForFunction(() => document.querySelectorAll('#events tr:not(.note)').length >= 5,
                                   null, WAIT);
        const rows = await page.$$eval('#events tr:not(.note)', (trs) =>
            trs.map((tr) => [...tr.cells].slice(2).map((td) => td.textContent)));
        // Newest first: the form's event, then ours in reverse, the reset last.
        assert.deepEqual(rows.slice(0, 4), [
            ['chunk', 'published from the page'],
            ['message', 'a message\non two lines'],
            ['update', '{"user":"ada","action":"joined"}'],
            ['message', 'hello'],
        ]);
        assert.equal(rows[4][0], 'reset');
        assert.match(rows[4][1], /"reason":"unknown"/);
        const curl = await page.textContent('#curl');
        assert.match(curl, /^curl -H 'SSE-Event: chunk' -d 'published from the page' http:\/\/127\.0\.0\.1:\d+\/publish\/demo$/);

        fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
        await page.screenshot({ path: SCREENSHOT, fullPage: true });
        assert.deepEqual(browser.problems(), [], 'no page error, no console error');
        await page.close();
    });

    test('nginx stops gracefully; error.log has no alert, crit or emerg', async () => {
        await browser.close();
        browser = null;
        const graceful = await nginx.stop();
        const bad = badLogLines(nginx.errorLog() + nginx.output());
        assert.deepEqual(bad, [], 'error.log');
        assert.ok(graceful, 'nginx exits on SIGQUIT within 5 s');
    });
});
