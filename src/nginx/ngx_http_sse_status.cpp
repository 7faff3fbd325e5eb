/*
 * sse_status: every zone's gauges, counters and histograms, as JSON or,
 * with ?format=prometheus, in the Prometheus text exposition format;
 * ?format=html is a page that shows the JSON live
 * (ngx_http_sse_status_page.cpp).
 */

#include "ngx_http_sse.h"
#include "ngx_http_sse_redis.h"


namespace {

typedef struct {
    const char  *name;
    const char  *help;
    size_t       offset;
    unsigned     counter:1;
} ngx_http_sse_metric_t;


#define SSE_FIGURE(f)  offsetof(ngx_http_sse_figures_t, f)

const ngx_http_sse_metric_t  ngx_http_sse_metrics[] = {
    { "size", "zone size in bytes", SSE_FIGURE(size), 0 },
    { "used", "bytes of the zone in use", SSE_FIGURE(used), 0 },
    { "channels", "channels in the zone", SSE_FIGURE(channels), 0 },
    { "subscribers", "connected subscribers", SSE_FIGURE(subscribers), 0 },
    { "stored_events", "events held in history",
      SSE_FIGURE(stored_events), 0 },
    { "workers", "worker processes attached to the zone",
      SSE_FIGURE(workers), 0 },
    { "published", "events published", SSE_FIGURE(published), 1 },
    { "delivered", "events handed to subscribers",
      SSE_FIGURE(delivered), 1 },
    { "evicted", "events evicted to make room", SSE_FIGURE(evicted), 1 },
    { "dropped_slow", "subscribers dropped as too slow",
      SSE_FIGURE(dropped_slow), 1 },
    { "refused_full", "publishes refused with 507",
      SSE_FIGURE(refused_full), 1 },
    { "wakeups", "queues of changed channels taken by workers",
      SSE_FIGURE(wakeups), 1 },
    { "woken", "changed channels taken from those queues",
      SSE_FIGURE(woken), 1 },
    { "idempotency_records", "Idempotency-Key answers kept",
      SSE_FIGURE(idempotency_records), 0 },
    { "idempotent_replays", "publishes answered from an earlier one",
      SSE_FIGURE(idempotent_replays), 1 },
    { "idempotency_dropped", "Idempotency-Key answers dropped for room",
      SSE_FIGURE(idempotency_dropped), 1 },
};


void ngx_http_sse_figures(ngx_http_sse_zone_t *zone,
    ngx_http_sse_figures_t *f);
u_char *ngx_http_sse_redis_json(u_char *p, ngx_http_sse_redis_figures_t *f);
u_char *ngx_http_sse_redis_prometheus(u_char *p, ngx_http_sse_zone_t **zones,
    ngx_http_sse_redis_figures_t *redis, ngx_uint_t n);


const char  *ngx_http_sse_redis_states[] = {
    "connecting", "connecting", "up", "down"
};


/* the token verification counters (when a location checks tokens) */
const char  *ngx_http_sse_token_figures[4][2] = {
    { "signatures", "tokens whose signature was checked in full" },
    { "shared_hits", "tokens another worker had checked the signature of" },
    { "worker_hits", "tokens this worker had verified for the location" },
    { "refused", "tokens refused as invalid" },
};

} // namespace


ngx_int_t
ngx_http_sse_status_handler(ngx_http_request_t *r)
{
    u_char                     *out, *p;
    size_t                      len;
    ngx_int_t                   rc;
    ngx_str_t                   format;
    ngx_uint_t                  i, k, prometheus, value, has_tokens;
    ngx_uint_t                  tokens[4];
    ngx_http_sse_zone_t       **zones;
    ngx_http_sse_figures_t     *figures;
    ngx_http_sse_main_conf_t   *smcf;
    ngx_http_sse_redis_figures_t *redis;
    const ngx_http_sse_metric_t *m;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        if (ngx_http_sse_add_header(r, "Allow", "GET, HEAD") != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_sse_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                       "method_not_allowed",
                                       "the status location takes GET or "
                                       "HEAD");
    }

    if (ngx_http_arg(r, (u_char *) "format", 6, &format) == NGX_OK
        && format.len == 4
        && ngx_strncmp(format.data, "html", 4) == 0)
    {
        return ngx_http_sse_status_page(r);
    }

    smcf = (ngx_http_sse_main_conf_t *)
               ngx_http_get_module_main_conf(r, ngx_http_sse_module);

    zones = (ngx_http_sse_zone_t **) smcf->zones.elts;

    figures = (ngx_http_sse_figures_t *)
                  ngx_pcalloc(r->pool, (smcf->zones.nelts + 1)
                                       * sizeof(ngx_http_sse_figures_t));
    if (figures == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* state NGX_DECLINED (0): the zone has no sse_redis */
    redis = (ngx_http_sse_redis_figures_t *)
                ngx_pcalloc(r->pool, (smcf->zones.nelts + 1)
                                     * sizeof(ngx_http_sse_redis_figures_t));
    if (redis == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < smcf->zones.nelts; i++) {
        /* this worker's own observations are in the reply at once */
        ngx_http_sse_metrics_flush(zones[i]);
        ngx_http_sse_figures(zones[i], &figures[i]);

        if (ngx_http_sse_redis_figures((ngx_cycle_t *) ngx_cycle, zones[i],
                                       &redis[i])
            != NGX_OK)
        {
            redis[i].state = 0;
        }
    }

    prometheus = (ngx_http_arg(r, (u_char *) "format", 6, &format) == NGX_OK
                  && format.len == 10
                  && ngx_strncmp(format.data, "prometheus", 10) == 0);

    has_tokens = (ngx_http_sse_tokens_figures((ngx_cycle_t *) ngx_cycle, tokens) == NGX_OK);

    len = 64 + 4 * 200 + 5 * 200;
    for (i = 0; i < smcf->zones.nelts; i++) {
        /* the counters, and the redis object's five numbers */
        len += (sizeof(ngx_http_sse_metrics) / sizeof(ngx_http_sse_metrics[0])
                + 5)
               * (200 + zones[i]->name.len * 6)
               + ngx_http_sse_metrics_size(zones[i]);
    }

    out = (u_char *) ngx_pnalloc(r->pool, len);
    if (out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = out;

    if (prometheus) {

        for (k = 0; k < sizeof(ngx_http_sse_metrics)
                        / sizeof(ngx_http_sse_metrics[0]); k++)
        {
            m = &ngx_http_sse_metrics[k];

            p = ngx_sprintf(p, "# HELP sse_%s%s %s\n# TYPE sse_%s%s %s\n",
                            m->name, m->counter ? "_total" : "", m->help,
                            m->name, m->counter ? "_total" : "",
                            m->counter ? "counter" : "gauge");

            for (i = 0; i < smcf->zones.nelts; i++) {
                value = *(ngx_uint_t *) ((u_char *) &figures[i] + m->offset);

                /* zone names are nginx config tokens: escape " and \ */
                p = ngx_sprintf(p, "sse_%s%s{zone=\"", m->name,
                                m->counter ? "_total" : "");
                p += sse::json_escape(p, { zones[i]->name.data,
                                           zones[i]->name.len });
                p = ngx_sprintf(p, "\"} %ui\n", value);
            }
        }

        p = ngx_http_sse_redis_prometheus(p, zones, redis, smcf->zones.nelts);

        for (k = 0; has_tokens && k < 4; k++) {
            p = ngx_sprintf(p, "# HELP sse_tokens_%s_total %s\n"
                            "# TYPE sse_tokens_%s_total counter\n"
                            "sse_tokens_%s_total %ui\n",
                            ngx_http_sse_token_figures[k][0],
                            ngx_http_sse_token_figures[k][1],
                            ngx_http_sse_token_figures[k][0],
                            ngx_http_sse_token_figures[k][0], tokens[k]);
        }

        p = ngx_http_sse_metrics_prometheus(p, zones, smcf->zones.nelts);

        r->headers_out.status = NGX_HTTP_OK;
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4; charset=utf-8");

    } else {

        p = ngx_cpymem(p, "{\"zones\":{", 10);

        for (i = 0; i < smcf->zones.nelts; i++) {
            if (i) {
                *p++ = ',';
            }

            *p++ = '"';
            p += sse::json_escape(p, { zones[i]->name.data,
                                       zones[i]->name.len });
            p = ngx_cpymem(p, "\":{", 3);

            for (k = 0; k < sizeof(ngx_http_sse_metrics)
                            / sizeof(ngx_http_sse_metrics[0]); k++)
            {
                m = &ngx_http_sse_metrics[k];
                value = *(ngx_uint_t *) ((u_char *) &figures[i] + m->offset);

                p = ngx_sprintf(p, "%s\"%s\":%ui", k ? "," : "", m->name,
                                value);
            }

            p = ngx_http_sse_metrics_json(p, zones[i]);

            if (redis[i].state) {
                p = ngx_http_sse_redis_json(p, &redis[i]);
            }

            *p++ = '}';
        }

        *p++ = '}';

        if (has_tokens) {
            p = ngx_cpymem(p, ",\"tokens\":{", 11);

            for (k = 0; k < 4; k++) {
                p = ngx_sprintf(p, "%s\"%s\":%ui", k ? "," : "",
                                ngx_http_sse_token_figures[k][0], tokens[k]);
            }

            *p++ = '}';
        }

        p = ngx_cpymem(p, "}\n", 2);

        ngx_str_set(&r->headers_out.content_type, "application/json");
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    return ngx_http_sse_send_json(r, NGX_HTTP_OK, out, p - out);
}


namespace {

void
ngx_http_sse_figures(ngx_http_sse_zone_t *zone, ngx_http_sse_figures_t *f)
{
    zone->store->figures(zone, f);
}


/* "redis":{"state":..,"workers_down":..,"reconnects":..,
 * "publishes_refused":..,"errors":..,"last_reply_ms":.. (null: never)} */

u_char *
ngx_http_sse_redis_json(u_char *p, ngx_http_sse_redis_figures_t *f)
{
    p = ngx_sprintf(p, ",\"redis\":{\"state\":\"%s\",\"workers_down\":%ui,"
                    "\"reconnects\":%ui,"
                    "\"publishes_refused\":%ui,\"errors\":%ui,"
                    "\"last_reply_ms\":",
                    ngx_http_sse_redis_states[f->state], f->workers_down,
                    f->reconnects, f->publishes_refused, f->errors);

    if (f->last_reply_ms < 0) {
        p = ngx_cpymem(p, "null", 4);

    } else {
        p = ngx_sprintf(p, "%i", f->last_reply_ms);
    }

    *p++ = '}';

    return p;
}


u_char *
ngx_http_sse_redis_prometheus(u_char *p, ngx_http_sse_zone_t **zones,
    ngx_http_sse_redis_figures_t *redis, ngx_uint_t n)
{
    ngx_uint_t   i, k, any, values[5];

    static const char  *metrics[5][3] = {
        { "sse_redis_up", "gauge",
          "1 when every worker's Redis connections are up" },
        { "sse_redis_workers_down", "gauge",
          "workers whose Redis connection failed or was lost" },
        { "sse_redis_reconnects_total", "counter",
          "Redis connection attempts after a connection was lost or failed" },
        { "sse_redis_publishes_refused_total", "counter",
          "publishes refused for want of Redis" },
        { "sse_redis_errors_total", "counter",
          "requests Redis refused with an error a retry does not mend" },
    };

    any = 0;

    for (i = 0; i < n; i++) {
        any |= (redis[i].state != 0);
    }

    if (!any) {
        return p;
    }

    for (k = 0; k < sizeof(metrics) / sizeof(metrics[0]); k++) {
        p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s %s\n", metrics[k][0],
                        metrics[k][2], metrics[k][0], metrics[k][1]);

        for (i = 0; i < n; i++) {
            if (redis[i].state == 0) {
                continue;
            }

            /* in the order of metrics[] */
            values[0] = (redis[i].state == NGX_HTTP_SSE_REDIS_UP);
            values[1] = redis[i].workers_down;
            values[2] = redis[i].reconnects;
            values[3] = redis[i].publishes_refused;
            values[4] = redis[i].errors;

            p = ngx_sprintf(p, "%s{zone=\"", metrics[k][0]);
            p += sse::json_escape(p, { zones[i]->name.data,
                                       zones[i]->name.len });
            p = ngx_sprintf(p, "\"} %ui\n", values[k]);
        }
    }

    return p;
}

} // namespace
