/*
 * sse_status?format=html: one small, self-contained page that fetches the
 * location's JSON once a second and shows it.
 *
 * The page is the same bytes for every request: nothing from the
 * configuration or from clients is put into it on the server.  The
 * script builds the view with DOM calls and textContent only (no
 * innerHTML, no eval, no inline handlers), so zone names, whatever the
 * configuration quotes, are shown as text.  The reply's
 * Content-Security-Policy allows exactly the page's own style and script
 * (by their SHA-256) and requests to the page's origin, nothing else.
 * The JSON has no channel ids: a page (or anyone polling) costs a status
 * reply per second, which is a few lines per zone whatever the number of
 * channels.
 */

#include "ngx_http_sse.h"

#include <openssl/evp.h>


namespace {

const char  ngx_http_sse_page_style[] =
"body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;"
"color:#1d2430}"
"header{display:flex;align-items:baseline;gap:1em;padding:.6em 1.2em;"
"background:#1d2430;color:#fff}"
"header h1{font-size:1.2em;margin:0}"
"#state{font-size:.9em;opacity:.8}"
"#state.error{color:#ffb4a8;opacity:1}"
"main{display:flex;flex-wrap:wrap;gap:1em;padding:1em}"
"section{background:#fff;border:1px solid #d5d9e0;border-radius:6px;"
"padding:.6em 1em;min-width:22em}"
"h2{font-size:1.1em;margin:.2em 0 .5em;overflow-wrap:anywhere}"
"h3{font-size:.95em;margin:.8em 0 .3em;color:#4a5568}"
"table{border-collapse:collapse;width:100%}"
"td{padding:.1em .4em;border-bottom:1px solid #eef0f3}"
"td.value,td.rate{text-align:right;font-variant-numeric:tabular-nums}"
"td.rate{color:#4a5568}"
"td.down{color:#b42318;font-weight:600}"
"meter,progress{width:100%}"
"td.bar{width:45%}";

const char  ngx_http_sse_page_script[] =
"\"use strict\";\n"
"(function () {\n"
"  var zonesEl = document.getElementById(\"zones\");\n"
"  var stateEl = document.getElementById(\"state\");\n"
"  var before = null;\n"
"  var beforeAt = 0;\n"
"  var gauges = [[\"channels\", \"channels\"], [\"subscribers\", "
"\"subscribers\"],\n"
"    [\"stored_events\", \"stored events\"], [\"workers\", \"workers\"],\n"
"    [\"idempotency_records\", \"Idempotency-Key answers kept\"]];\n"
"  var counters = [[\"published\", \"published\"], [\"delivered\", "
"\"delivered\"],\n"
"    [\"evicted\", \"evicted\"], [\"dropped_slow\", \"dropped as slow\"],\n"
"    [\"refused_full\", \"refused, zone full\"], [\"wakeups\", "
"\"wake-ups\"],\n"
"    [\"woken\", \"channels taken in wake-ups\"],\n"
"    [\"idempotent_replays\", \"answered from an earlier publish\"],\n"
"    [\"idempotency_dropped\", \"Idempotency-Key answers dropped\"]];\n"
"  var histograms = [[\"publish_flush_seconds\", \"publish \\u2192 flush\"],\n"
"    [\"stream_duration_seconds\", \"stream duration\"]];\n"
"  var redisCounters = [[\"reconnects\", \"reconnects\"],\n"
"    [\"publishes_refused\", \"publishes refused (503)\"],\n"
"    [\"errors\", \"refused with an error (500)\"]];\n"
"\n"
"  function el(tag, cls, text) {\n"
"    var e = document.createElement(tag);\n"
"    if (cls) { e.className = cls; }\n"
"    if (text !== undefined) { e.textContent = String(text); }\n"
"    return e;\n"
"  }\n"
"\n"
"  function row(table, label, value, metric, rate) {\n"
"    var tr = el(\"tr\");\n"
"    tr.appendChild(el(\"td\", \"label\", label));\n"
"    var td = el(\"td\", \"value\", value);\n"
"    if (metric) { td.setAttribute(\"data-metric\", metric); }\n"
"    tr.appendChild(td);\n"
"    tr.appendChild(el(\"td\", \"rate\", rate === undefined ? \"\" : rate));\n"
"    table.appendChild(tr);\n"
"    return tr;\n"
"  }\n"
"\n"
"  function bytes(n) {\n"
"    var units = [\"B\", \"KiB\", \"MiB\", \"GiB\"];\n"
"    var i = 0;\n"
"    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }\n"
"    return (i ? n.toFixed(1) : String(n)) + \" \" + units[i];\n"
"  }\n"
"\n"
"  function number(v) {\n"
"    return typeof v === \"number\" && isFinite(v) ? v : 0;\n"
"  }\n"
"\n"
"  /* a counter's rate since the last refresh; undefined at first */\n"
"  function rate(now, old, key, seconds) {\n"
"    if (!old || !(seconds > 0)) { return undefined; }\n"
"    return Math.max(0, (number(now[key]) - number(old[key])) / seconds)"
".toFixed(1) + \"/s\";\n"
"  }\n"
"\n"
"  /* the bound of the bucket the q-quantile falls in */\n"
"  function quantile(h, q) {\n"
"    var i, rank = q * h.count;\n"
"    for (i = 0; i < h.buckets.length; i++) {\n"
"      if (h.buckets[i].count >= rank) {\n"
"        return h.buckets[i].le === \"+Inf\" ? \"> \" +\n"
"          h.buckets[i - 1].le + \" s\" : \"\\u2264 \" + h.buckets[i].le +"
" \" s\";\n"
"      }\n"
"    }\n"
"    return \"\";\n"
"  }\n"
"\n"
"  function histogram(section, h, title, key) {\n"
"    if (!h || !Array.isArray(h.buckets) || h.buckets.length < 2) {"
" return; }\n"
"    section.appendChild(el(\"h3\", null, title));\n"
"    var table = el(\"table\");\n"
"    table.setAttribute(\"data-histogram\", key);\n"
"    var count = number(h.count);\n"
"    row(table, \"count\", count, key + \"_count\");\n"
"    row(table, \"mean\", count ? (number(h.sum) / count).toFixed(3) +"
" \" s\" : \"\\u2013\");\n"
"    if (count) {\n"
"      row(table, \"p50\", quantile(h, 0.5));\n"
"      row(table, \"p99\", quantile(h, 0.99));\n"
"    }\n"
"    var below = 0;\n"
"    h.buckets.forEach(function (b, i) {\n"
"      var n = number(b.count) - below;\n"
"      below = number(b.count);\n"
"      var tr = row(table, b.le === \"+Inf\" && i > 0\n"
"                   ? \"> \" + h.buckets[i - 1].le + \" s\"\n"
"                   : \"\\u2264 \" + b.le + \" s\", n);\n"
"      var bar = el(\"td\", \"bar\");\n"
"      var p = el(\"progress\");\n"
"      p.max = count || 1;\n"
"      p.value = n;\n"
"      bar.appendChild(p);\n"
"      tr.replaceChild(bar, tr.lastChild);\n"
"    });\n"
"    section.appendChild(table);\n"
"  }\n"
"\n"
"  function zone(name, z, old, seconds) {\n"
"    var section = el(\"section\", \"zone\");\n"
"    section.setAttribute(\"data-zone\", name);\n"
"    section.appendChild(el(\"h2\", null, name));\n"
"    var m = el(\"meter\");\n"
"    m.max = number(z.size) || 1;\n"
"    m.value = number(z.used);\n"
"    section.appendChild(m);\n"
"    var table = el(\"table\");\n"
"    row(table, \"memory\", bytes(number(z.used)) + \" of \" +"
" bytes(number(z.size)), \"used\");\n"
"    gauges.forEach(function (g) {\n"
"      row(table, g[1], number(z[g[0]]), g[0]);\n"
"    });\n"
"    counters.forEach(function (c) {\n"
"      row(table, c[1], number(z[c[0]]), c[0], rate(z, old, c[0], seconds));"
"\n"
"    });\n"
"    section.appendChild(table);\n"
"    if (z.redis && typeof z.redis === \"object\") {\n"
"      redis(section, z.redis, old && old.redis, seconds);\n"
"    }\n"
"    histograms.forEach(function (h) {\n"
"      histogram(section, z[h[0]], h[1], h[0]);\n"
"    });\n"
"    return section;\n"
"  }\n"
"\n"
"  /* a zone with sse_redis: the link's state and counters */\n"
"  function redis(section, r, old, seconds) {\n"
"    section.appendChild(el(\"h3\", null, \"Redis\"));\n"
"    var table = el(\"table\");\n"
"    table.setAttribute(\"data-redis\", \"\");\n"
"    var state = typeof r.state === \"string\" ? r.state : \"?\";\n"
"    var tr = row(table, \"state\", state, \"redis_state\");\n"
"    if (state !== \"up\") { tr.children[1].className += \" down\"; }\n"
"    row(table, \"workers down\", number(r.workers_down), \"redis_workers_down\");\n"
"    redisCounters.forEach(function (c) {\n"
"      row(table, c[1], number(r[c[0]]), \"redis_\" + c[0],\n"
"          rate(r, old, c[0], seconds));\n"
"    });\n"
"    row(table, \"last reply\", typeof r.last_reply_ms === \"number\"\n"
"        ? number(r.last_reply_ms) + \" ms ago\" : \"never\","
" \"redis_last_reply_ms\");\n"
"    section.appendChild(table);\n"
"  }\n"
"\n"
"  function tokens(t) {\n"
"    var section = el(\"section\", \"tokens\");\n"
"    section.appendChild(el(\"h2\", null, \"tokens\"));\n"
"    var table = el(\"table\");\n"
"    Object.keys(t).forEach(function (k) {\n"
"      row(table, k.replace(/_/g, \" \"), number(t[k]), \"tokens_\" + k);\n"
"    });\n"
"    section.appendChild(table);\n"
"    return section;\n"
"  }\n"
"\n"
"  function show(data) {\n"
"    var now = Date.now();\n"
"    var seconds = before ? (now - beforeAt) / 1000 : 0;\n"
"    var zones = data && typeof data.zones === \"object\" ? data.zones :"
" {};\n"
"    var frag = document.createDocumentFragment();\n"
"    Object.keys(zones).sort().forEach(function (name) {\n"
"      var old = before && before.zones ? before.zones[name] : null;\n"
"      frag.appendChild(zone(name, zones[name] || {}, old, seconds));\n"
"    });\n"
"    if (data && data.tokens && typeof data.tokens === \"object\") {\n"
"      frag.appendChild(tokens(data.tokens));\n"
"    }\n"
"    while (zonesEl.firstChild) { zonesEl.removeChild(zonesEl.firstChild);"
" }\n"
"    zonesEl.appendChild(frag);\n"
"    before = data;\n"
"    beforeAt = now;\n"
"    stateEl.className = \"\";\n"
"    stateEl.textContent = \"updated \" + new Date(now).toLocaleTimeString();"
"\n"
"  }\n"
"\n"
"  function fail(why) {\n"
"    stateEl.className = \"error\";\n"
"    stateEl.textContent = \"no status: \" + why;\n"
"  }\n"
"\n"
"  function refresh() {\n"
"    fetch(location.pathname, { cache: \"no-store\","
" credentials: \"same-origin\",\n"
"                               headers: { \"Accept\":"
" \"application/json\" } })\n"
"      .then(function (r) {\n"
"        if (!r.ok) { throw new Error(\"HTTP \" + r.status); }\n"
"        return r.json();\n"
"      })\n"
"      .then(show, function (e) { fail(e.message); })\n"
"      .then(function () { setTimeout(refresh, 1000); });\n"
"  }\n"
"\n"
"  refresh();\n"
"})();\n";

const char  ngx_http_sse_page_head[] =
"<!DOCTYPE html>\n"
"<html lang=\"en\"><head><meta charset=\"utf-8\">"
"<meta name=\"viewport\" content=\"width=device-width\">"
"<meta name=\"referrer\" content=\"no-referrer\">"
"<title>SSE status</title><style>";

const char  ngx_http_sse_page_body[] =
"</style></head>\n<body><header><h1>SSE status</h1>"
"<span id=\"state\">loading\xe2\x80\xa6</span></header>\n"
"<main id=\"zones\"></main>\n<script>";

const char  ngx_http_sse_page_tail[] = "</script></body></html>\n";


#define SSE_LEN(s)  (sizeof(s) - 1)

#define SSE_PAGE_LEN                                                         \
    (SSE_LEN(ngx_http_sse_page_head) + SSE_LEN(ngx_http_sse_page_style)     \
     + SSE_LEN(ngx_http_sse_page_body) + SSE_LEN(ngx_http_sse_page_script)  \
     + SSE_LEN(ngx_http_sse_page_tail))

/* base64 of a SHA-256 */
#define SSE_HASH_LEN  44

#define SSE_CSP_FORMAT                                                       \
    "default-src 'none'; style-src 'sha256-%*s'; script-src 'sha256-%*s'; " \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; "             \
    "frame-ancestors 'none'"

/* both made once per worker: the page's bytes and its policy never change */
u_char      ngx_http_sse_page[SSE_PAGE_LEN];
u_char      ngx_http_sse_csp[sizeof(SSE_CSP_FORMAT) + 2 * SSE_HASH_LEN];
ngx_str_t   ngx_http_sse_csp_value;


ngx_int_t ngx_http_sse_page_init(ngx_log_t *log);
ngx_int_t ngx_http_sse_sha256_base64(const char *text, size_t len,
    u_char *out, ngx_log_t *log);

} // namespace


ngx_int_t
ngx_http_sse_status_page(ngx_http_request_t *r)
{
    if (ngx_http_sse_csp_value.len == 0
        && ngx_http_sse_page_init(r->connection->log) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_sse_add_header_str(r, "Content-Security-Policy",
                                    &ngx_http_sse_csp_value)
            != NGX_OK
        || ngx_http_sse_add_header(r, "X-Content-Type-Options", "nosniff")
           != NGX_OK
        || ngx_http_sse_add_header(r, "Cache-Control", "no-store")
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = SSE_PAGE_LEN;
    ngx_str_set(&r->headers_out.content_type, "text/html; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    /* the page is static: sent from where it lies */
    return ngx_http_sse_send_memory(r, ngx_http_sse_page, SSE_PAGE_LEN);
}


namespace {

ngx_int_t
ngx_http_sse_page_init(ngx_log_t *log)
{
    u_char  *p;
    u_char   style[SSE_HASH_LEN], script[SSE_HASH_LEN];

    if (ngx_http_sse_sha256_base64(ngx_http_sse_page_style,
                                   SSE_LEN(ngx_http_sse_page_style), style,
                                   log)
            != NGX_OK
        || ngx_http_sse_sha256_base64(ngx_http_sse_page_script,
                                      SSE_LEN(ngx_http_sse_page_script),
                                      script, log)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    p = ngx_http_sse_page;
    p = ngx_cpymem(p, ngx_http_sse_page_head, SSE_LEN(ngx_http_sse_page_head));
    p = ngx_cpymem(p, ngx_http_sse_page_style,
                   SSE_LEN(ngx_http_sse_page_style));
    p = ngx_cpymem(p, ngx_http_sse_page_body, SSE_LEN(ngx_http_sse_page_body));
    p = ngx_cpymem(p, ngx_http_sse_page_script,
                   SSE_LEN(ngx_http_sse_page_script));
    (void) ngx_cpymem(p, ngx_http_sse_page_tail,
                      SSE_LEN(ngx_http_sse_page_tail));

    p = ngx_snprintf(ngx_http_sse_csp, sizeof(ngx_http_sse_csp),
                     SSE_CSP_FORMAT, (size_t) SSE_HASH_LEN, style,
                     (size_t) SSE_HASH_LEN, script);

    ngx_http_sse_csp_value.data = ngx_http_sse_csp;
    ngx_http_sse_csp_value.len = p - ngx_http_sse_csp;

    return NGX_OK;
}


ngx_int_t
ngx_http_sse_sha256_base64(const char *text, size_t len, u_char *out,
    ngx_log_t *log)
{
    u_char        digest[32];
    unsigned int  n;
    ngx_str_t     src, dst;

    n = sizeof(digest);

    if (EVP_Digest(text, len, digest, &n, EVP_sha256(), NULL) != 1
        || n != sizeof(digest))
    {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "sse: SHA-256 of the status page failed");
        return NGX_ERROR;
    }

    src.data = digest;
    src.len = sizeof(digest);
    dst.data = out;

    ngx_encode_base64(&dst, &src);

    return (dst.len == SSE_HASH_LEN) ? NGX_OK : NGX_ERROR;
}

} // namespace
