// sse_status?format=html in Chromium: the page loads under its own
// Content-Security-Policy without a single violation (one would be a
// console error), shows every zone, and its numbers follow the server
// live: a subscriber and three publishes appear within seconds, the
// latency histogram counts the deliveries, the wake-ups and the channels
// taken in them are the JSON's, a publish with an Idempotency-Key and its
// retry show as a kept answer and a replay.  A zone with sse_redis (its
// Redis a port nobody listens on) shows its link's state, down, and its
// reconnects as the JSON has them; the other zones show no Redis part.
// A zone whose name is HTML is shown as text, never parsed.  A screenshot goes to build/status-page.png
// and must show something: its pixels are checked, not only the file.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
    REPO, badLogLines, freePort, launchBrowser, publish, request, startNginx,
} from './lib/harness.mjs';
import { decodePng, pixelStats } from './lib/png.mjs';

const SCREENSHOT = path.join(REPO, 'build', 'status-page.png');
const WAIT = { timeout: 15000 };
const EVIL = '<img src=x onerror="window.__xss=1">';

describe('the live status page in Chromium', () => {
    let nginx;
    let browser;

    before(async () => {
        // nothing listens there: the link is down, and retried
        const noRedis = await freePort();
        nginx = await startNginx({
            workers: 2,
            httpExtra: 'sse_zone sse 8m history=100;\n' +
                       `    sse_zone "${EVIL.replace(/"/g, '\\"')}" 1m;\n` +
                       '    sse_zone linked 1m;\n' +
                       `    sse_redis redis://127.0.0.1:${noRedis} zone=linked;`,
        });
        browser = await launchBrowser(nginx.dir);
    });

    after(async () => {
        if (browser) await browser.close();
        if (nginx) { await nginx.stop(); nginx.cleanup(); }
    });

    test('numbers appear and follow a publish (screenshot in build/status-page.png)',
         { timeout: 60000 }, async () => {
        const page = await browser.newPage();
        const reply = await page.goto(nginx.url('/sse-status?format=html'));
        assert.equal(reply.status(), 200);
        assert.match(reply.headers()['content-security-policy'] || '', /script-src 'sha256-/);

        // a number of the zone, as the page shows it; null while absent
        const shown = (metric) => page.evaluate((m) => {
            const td = document.querySelector(`section[data-zone="sse"] [data-metric="${m}"]`);
            return td && /^\d+$/.test(td.textContent) ? Number(td.textContent) : null;
        }, metric);

        await page.waitForFunction(() => document.querySelector(
            'section[data-zone="sse"] [data-metric="published"]'), null, WAIT);
        assert.equal(await shown('published'), 0, 'published: 0 at first');
        assert.equal(await shown('subscribers'), 0, 'subscribers: 0 at first');
        assert.match(await page.textContent('#state'), /^updated /, 'the page says it is live');

        // a subscriber (another page's EventSource), then three publishes
        const sub = await browser.newPage();
        await sub.goto(nginx.url('/recorder.html?stream=/events/watched'));
        await sub.waitForFunction(() => window.rec.opens === 1, null, WAIT);
        for (const data of ['one', 'two', 'three']) {
            const r = await publish(nginx.port, 'watched', data);
            assert.equal(r.status, 201, r.body);
        }
        await sub.waitForFunction(() => window.rec.events.length === 3, null, WAIT);

        // the page catches up by itself, from its once-a-second refresh
        await page.waitForFunction(() => {
            const get = (m) => Number((document.querySelector(
                `section[data-zone="sse"] [data-metric="${m}"]`) || {}).textContent);
            return get('published') === 3 && get('subscribers') === 1 && get('delivered') === 3
                && get('publish_flush_seconds_count') === 3;
        }, null, WAIT);
        assert.equal(await shown('channels'), 1, 'channels: 1');

        // the wake-ups and the channels taken in them: the JSON's figures
        const json = (await request(nginx.port, 'GET', '/sse-status')).json;
        const { wakeups, woken } = json.zones.sse;
        assert.ok(woken >= 1 && wakeups >= 1, `woken ${woken}, wakeups ${wakeups}`);
        await page.waitForFunction(([w, n]) => {
            const get = (m) => Number((document.querySelector(
                `section[data-zone="sse"] [data-metric="${m}"]`) || {}).textContent);
            return get('wakeups') === w && get('woken') === n;
        }, [wakeups, woken], WAIT);

        // the zone with sse_redis shows its link: down (on both workers:
        // nobody listens on its port), retried, never answered; as the
        // JSON has it at the same moment
        await page.waitForFunction(() => {
            const td = (m) => document.querySelector(
                `section[data-zone="linked"] [data-metric="${m}"]`);
            return td('redis_state') && td('redis_state').textContent === 'down'
                && td('redis_workers_down').textContent === '2'
                && Number(td('redis_reconnects').textContent) >= 1;
        }, null, WAIT);
        const linked = (await request(nginx.port, 'GET', '/sse-status')).json.zones.linked.redis;
        assert.equal(linked.state, 'down', 'JSON: the link is down');
        assert.equal(linked.last_reply_ms, null, 'JSON: no reply ever');
        assert.equal(linked.workers_down, 2, 'JSON: both workers have it down');
        await page.waitForFunction((n) => Number(document.querySelector(
            'section[data-zone="linked"] [data-metric="redis_reconnects"]').textContent) >= n,
            linked.reconnects, WAIT);
        const redisShown = await page.evaluate(() => {
            const text = (m) => document.querySelector(
                `section[data-zone="linked"] [data-metric="${m}"]`).textContent;
            return {
                state: text('redis_state'),
                workersDown: text('redis_workers_down'),
                refused: text('redis_publishes_refused'),
                errors: text('redis_errors'),
                lastReply: text('redis_last_reply_ms'),
                downClass: document.querySelector(
                    'section[data-zone="linked"] [data-metric="redis_state"]').className,
                parts: [...document.querySelectorAll('section.zone')]
                    .filter((s) => s.querySelector('[data-redis]'))
                    .map((s) => s.getAttribute('data-zone')),
            };
        });
        assert.deepEqual(redisShown, {
            state: 'down', workersDown: '2',
            refused: '0', errors: '0', lastReply: 'never',
            downClass: 'value down', parts: ['linked'],
        }, 'the Redis part of the linked zone, and of no other');

        // a publish with an Idempotency-Key, then its retry: one answer
        // kept, one publish answered from it
        assert.equal(await shown('idempotency_records'), 0, 'idempotency_records: 0 at first');
        assert.equal(await shown('idempotent_replays'), 0, 'idempotent_replays: 0 at first');
        assert.equal(await shown('idempotency_dropped'), 0, 'idempotency_dropped: 0');
        for (let i = 0; i < 2; i++) {
            const r = await request(nginx.port, 'POST', '/publish/watched', {
                body: 'once', headers: { 'Idempotency-Key': 'status-page-1' },
            });
            assert.equal(r.status, 201, r.body);
        }
        await page.waitForFunction(() => {
            const get = (m) => Number((document.querySelector(
                `section[data-zone="sse"] [data-metric="${m}"]`) || {}).textContent);
            return get('idempotency_records') === 1 && get('idempotent_replays') === 1
                && get('published') === 4;
        }, null, WAIT);
        assert.equal(await shown('idempotency_dropped'), 0, 'idempotency_dropped: still 0');

        // the zone named with HTML: its name as text, nothing of it parsed
        const evil = await page.evaluate(() => ({
            names: [...document.querySelectorAll('section.zone h2')].map((h) => h.textContent),
            zones: [...document.querySelectorAll('section.zone')].map((s) => s.getAttribute('data-zone')),
            images: document.querySelectorAll('img').length,
            xss: window.__xss === undefined ? null : window.__xss,
        }));
        assert.deepEqual(evil.names.sort(), [EVIL, 'linked', 'sse'].sort(),
                         'every zone, names as text');
        assert.ok(evil.zones.includes(EVIL), 'the name as an attribute value, exactly');
        assert.equal(evil.images, 0, 'no element was made of the name');
        assert.equal(evil.xss, null, 'no script ran from it');

        fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
        const png = await page.screenshot({ path: SCREENSHOT, fullPage: true });
        const stats = pixelStats(decodePng(png));
        assert.ok(stats.colours >= 8, `the screenshot has ${stats.colours} colours`);
        assert.ok(stats.foreground > 0.03,
                  `${(stats.foreground * 100).toFixed(1)}% of it is not background ${stats.background}`);

        assert.deepEqual(browser.problems(), [],
                         'no page error, no console error (a CSP violation is one)');
        await sub.close();
        await page.close();
    });

    test('error.log has no alert, crit or emerg', async () => {
        await browser.close();
        browser = null;
        await nginx.stop();
        assert.deepEqual(badLogLines(nginx.errorLog() + nginx.output()), [], 'error.log');
    });
});
