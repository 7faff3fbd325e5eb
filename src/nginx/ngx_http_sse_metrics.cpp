/*
 * Histograms of every zone: publish-to-flush latency of live events, and
 * the durations of ended streams; their sse_status output.
 *
 * Latency is observed per event and per stream, when the event's last
 * byte is handed to the socket (or, for a stream still on its request, to
 * nginx's filter chain).  A stream's two buffers each keep a short list
 * of marks, where an event ends in the buffer and when it was published;
 * written bytes are matched against the marks.  Nothing of this is in
 * the zone: a worker counts into its own tally (plain increments) and
 * adds the tally to the zone's histogram with one atomic add per bucket
 * touched, at the end of each fan-out round, when a stream ends, once a
 * second from the sweep, and before its own status reply.  Writes that
 * complete on a write event (a slow reader catching up) so reach the zone
 * within a second.
 *
 * Only live events are observed: those published after the stream
 * started.  A replay of history (Last-Event-ID, sse_replay) is as old as
 * the history is, not a delivery delay.
 */

#include "ngx_http_sse.h"


/*
 * Marks per buffer: a few at first, doubled as needed up to the most.  A
 * buffer with more events than that (a burst that piled up behind a slow
 * reader) merges the newest ones into its last mark, which keeps the
 * oldest publish time: those are then observed as late as the oldest of
 * them (an overestimate, never an underestimate).  Events published in
 * the same millisecond share a mark exactly.  So a stream's marks cost
 * ~200 bytes while it receives events, 2 KB at most, and nothing once it
 * is quiet (ngx_http_sse_metrics_idle()).
 */
#define NGX_HTTP_SSE_MARKS_MIN  4
#define NGX_HTTP_SSE_MARKS_MAX  64

/*
 * Timing records of quiet and ended streams kept for the next stream
 * (with marks arrays of their first size): a stream that gets an event
 * every few seconds would otherwise allocate and free them per event.
 * At most this many, ~180 bytes each.
 */
#define NGX_HTTP_SSE_TIMINGS_CACHED  64


typedef struct {
    ngx_msec_t                  published;  /* the oldest it stands for */
    uint32_t                    end;        /* data bytes in the buffer
                                               through its last event */
    uint32_t                    n;          /* events */
} ngx_http_sse_mark_t;


typedef struct {
    ngx_http_sse_mark_t        *marks;      /* malloc'ed */
    size_t                      cap;
    uint32_t                    first;      /* not observed yet */
    uint32_t                    last;
} ngx_http_sse_marks_t;


/* the pending buffer's marks and the ones of the buffer being sent */
struct ngx_http_sse_timing_s {
    ngx_http_sse_marks_t        pend;
    ngx_http_sse_marks_t        out;
    ngx_http_sse_timing_t      *next;       /* in the cache */
};


namespace {

typedef struct {
    const char                 *name;
    const char                 *help;
    const ngx_msec_t           *bounds;     /* ms, ascending */
    const char * const         *labels;     /* the same, in seconds */
    ngx_uint_t                  nbounds;    /* +Inf not included */
    size_t                      histogram;  /* in ngx_http_sse_shctx_t */
} ngx_http_sse_histogram_def_t;


const ngx_msec_t  ngx_http_sse_latency_bounds[] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500
};

const char * const  ngx_http_sse_latency_labels[] = {
    "0.001", "0.002", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
    "0.5", "1", "2.5"
};

const ngx_msec_t  ngx_http_sse_duration_bounds[] = {
    1000, 10000, 60000, 300000, 1800000, 3600000
};

const char * const  ngx_http_sse_duration_labels[] = {
    "1", "10", "60", "300", "1800", "3600"
};


#define SSE_BOUNDS(b)  (sizeof(b) / sizeof(b[0]))

static_assert(SSE_BOUNDS(ngx_http_sse_latency_bounds)
              == SSE_BOUNDS(ngx_http_sse_latency_labels),
              "a label per latency bound");
static_assert(SSE_BOUNDS(ngx_http_sse_duration_bounds)
              == SSE_BOUNDS(ngx_http_sse_duration_labels),
              "a label per duration bound");
static_assert(SSE_BOUNDS(ngx_http_sse_latency_bounds) + 1
              <= NGX_HTTP_SSE_BUCKETS_MAX, "latency buckets fit");
static_assert(SSE_BOUNDS(ngx_http_sse_duration_bounds) + 1
              <= NGX_HTTP_SSE_BUCKETS_MAX, "duration buckets fit");


const ngx_http_sse_histogram_def_t  ngx_http_sse_histograms[] = {
    { "publish_flush_seconds",
      "time from a publish storing a live event to a stream handing it "
      "to the socket",
      ngx_http_sse_latency_bounds, ngx_http_sse_latency_labels,
      SSE_BOUNDS(ngx_http_sse_latency_bounds),
      offsetof(ngx_http_sse_shctx_t, latency) },

    { "stream_duration_seconds",
      "how long ended subscriber streams lasted",
      ngx_http_sse_duration_bounds, ngx_http_sse_duration_labels,
      SSE_BOUNDS(ngx_http_sse_duration_bounds),
      offsetof(ngx_http_sse_shctx_t, duration) },
};

#define SSE_NHISTOGRAMS \
    (sizeof(ngx_http_sse_histograms) / sizeof(ngx_http_sse_histograms[0]))


ngx_http_sse_timing_t *ngx_http_sse_timing(ngx_http_sse_sub_t *sub);
void ngx_http_sse_timing_free(ngx_http_sse_sub_t *sub);
void ngx_http_sse_observe(ngx_http_sse_tally_t *tally,
    const ngx_http_sse_histogram_def_t *def, ngx_msec_t ms, ngx_uint_t n);
void ngx_http_sse_observe_marks(ngx_http_sse_sub_t *sub,
    ngx_http_sse_marks_t *m, size_t sent);
void ngx_http_sse_tally_flush(ngx_http_sse_tally_t *tally,
    ngx_http_sse_histogram_t *h);
u_char *ngx_http_sse_seconds(u_char *p, ngx_atomic_uint_t ms);
u_char *ngx_http_sse_zone_label(u_char *p, ngx_http_sse_zone_t *zone);
void ngx_http_sse_histogram_read(ngx_http_sse_zone_t *zone,
    const ngx_http_sse_histogram_def_t *def, ngx_atomic_uint_t *cum,
    ngx_atomic_uint_t *sum_ms);

} // namespace


/* an event was appended to the stream's pending buffer */

void
ngx_http_sse_metrics_event(ngx_http_sse_sub_t *sub, ngx_msec_t published)
{
    ngx_http_sse_mark_t    *mark;
    ngx_http_sse_marks_t   *m;
    ngx_http_sse_timing_t  *t;

    if ((ngx_msec_int_t) (published - sub->started) < 0) {
        /* from history: published before the stream started */
        return;
    }

    t = ngx_http_sse_timing(sub);
    if (t == NULL) {
        /* no memory: this event goes unobserved, the stream goes on */
        return;
    }

    m = &t->pend;

    if (m->last > m->first) {
        mark = &m->marks[m->last - 1];

        if (mark->published == published
            || (m->last == m->cap
                && (m->cap == NGX_HTTP_SSE_MARKS_MAX
                    || ngx_http_sse_grow((void **) &m->marks, &m->cap,
                                         m->cap + 1,
                                         sizeof(ngx_http_sse_mark_t),
                                         NGX_HTTP_SSE_MARKS_MIN)
                       != NGX_OK)))
        {
            mark->end = (uint32_t) sub->pend_len;
            mark->n++;
            return;
        }

    } else if (m->cap == 0
               && ngx_http_sse_grow((void **) &m->marks, &m->cap, 1,
                                    sizeof(ngx_http_sse_mark_t),
                                    NGX_HTTP_SSE_MARKS_MIN)
                  != NGX_OK)
    {
        return;
    }

    mark = &m->marks[m->last++];
    mark->published = published;
    mark->end = (uint32_t) sub->pend_len;
    mark->n = 1;
}


/* the pending buffer becomes the one being sent (that one was sent) */

void
ngx_http_sse_metrics_swap(ngx_http_sse_sub_t *sub)
{
    ngx_http_sse_marks_t    m;
    ngx_http_sse_timing_t  *t = sub->timing;

    if (t == NULL) {
        return;
    }

    /* as the buffers are: the arrays trade places, none is copied */

    m = t->out;
    t->out = t->pend;
    t->pend = m;
    t->pend.first = 0;
    t->pend.last = 0;
}


/*
 * The first "sent" data bytes of the buffer being sent are handed on
 * (-1: all of them): the events that end there are observed.
 */

void
ngx_http_sse_metrics_sent(ngx_http_sse_sub_t *sub, ssize_t sent)
{
    if (sub->timing == NULL || sent == 0) {
        return;
    }

    ngx_http_sse_observe_marks(sub, &sub->timing->out,
                               sent < 0 ? (size_t) -1 : (size_t) sent);
}


/* everything the stream holds is handed to the filter chain at its end */

void
ngx_http_sse_metrics_handed(ngx_http_sse_sub_t *sub)
{
    if (sub->timing == NULL) {
        return;
    }

    ngx_http_sse_observe_marks(sub, &sub->timing->out, (size_t) -1);
    ngx_http_sse_observe_marks(sub, &sub->timing->pend, (size_t) -1);
}


/* a quiet stream with its buffers given back keeps no marks either */

void
ngx_http_sse_metrics_idle(ngx_http_sse_sub_t *sub)
{
    ngx_http_sse_timing_t  *t = sub->timing;

    if (t == NULL
        || t->pend.last > t->pend.first
        || t->out.last > t->out.first)
    {
        return;
    }

    ngx_http_sse_timing_free(sub);
}


/*
 * The stream is freed: its duration is observed.  Events still in its
 * buffers never reached the socket (a dropped stream): not observed.
 */

void
ngx_http_sse_metrics_stream_end(ngx_http_sse_sub_t *sub)
{
    ngx_http_sse_zone_t  *zone = sub->zone;

    ngx_http_sse_timing_free(sub);

    if (sub->all.next == NULL) {
        /* never started: refused before it was a stream */
        return;
    }

    ngx_http_sse_observe(&zone->duration, &ngx_http_sse_histograms[1],
                         ngx_current_msec - sub->started, 1);

    ngx_http_sse_metrics_flush(zone);
}


void
ngx_http_sse_metrics_flush(ngx_http_sse_zone_t *zone)
{
    if (zone->sh == NULL) {
        return;
    }

    ngx_http_sse_tally_flush(&zone->latency, &zone->sh->latency);
    ngx_http_sse_tally_flush(&zone->duration, &zone->sh->duration);
}


/* an upper bound of what the output of one zone's histograms takes */

size_t
ngx_http_sse_metrics_size(ngx_http_sse_zone_t *zone)
{
    size_t  per_line;

    /* name, zone (escaped: up to 6 bytes a byte), le, a 20-digit count */
    per_line = 64 + zone->name.len * 6 + 16 + NGX_ATOMIC_T_LEN;

    return 2 * (NGX_HTTP_SSE_BUCKETS_MAX + 3) * per_line + 512;
}


u_char *
ngx_http_sse_metrics_prometheus(u_char *p, ngx_http_sse_zone_t **zones,
    ngx_uint_t n)
{
    ngx_uint_t                           i, k, b;
    ngx_atomic_uint_t                    cum[NGX_HTTP_SSE_BUCKETS_MAX];
    ngx_atomic_uint_t                    sum_ms;
    const ngx_http_sse_histogram_def_t  *def;

    for (k = 0; k < SSE_NHISTOGRAMS; k++) {
        def = &ngx_http_sse_histograms[k];

        p = ngx_sprintf(p, "# HELP sse_%s %s\n# TYPE sse_%s histogram\n",
                        def->name, def->help, def->name);

        for (i = 0; i < n; i++) {
            ngx_http_sse_histogram_read(zones[i], def, cum, &sum_ms);

            for (b = 0; b <= def->nbounds; b++) {
                p = ngx_sprintf(p, "sse_%s_bucket", def->name);
                p = ngx_http_sse_zone_label(p, zones[i]);
                p = ngx_sprintf(p, ",le=\"%s\"} %uA\n",
                                b < def->nbounds ? def->labels[b] : "+Inf",
                                cum[b]);
            }

            p = ngx_sprintf(p, "sse_%s_sum", def->name);
            p = ngx_http_sse_zone_label(p, zones[i]);
            p = ngx_cpymem(p, "} ", 2);
            p = ngx_http_sse_seconds(p, sum_ms);

            p = ngx_sprintf(p, "\nsse_%s_count", def->name);
            p = ngx_http_sse_zone_label(p, zones[i]);
            p = ngx_sprintf(p, "} %uA\n", cum[def->nbounds]);
        }
    }

    return p;
}


/*
 * ,"publish_flush_seconds":{"buckets":[{"le":"0.001","count":3},...,
 * {"le":"+Inf","count":9}],"sum":0.125,"count":9}: cumulative, as in
 * the Prometheus output
 */

u_char *
ngx_http_sse_metrics_json(u_char *p, ngx_http_sse_zone_t *zone)
{
    ngx_uint_t                           k, b;
    ngx_atomic_uint_t                    cum[NGX_HTTP_SSE_BUCKETS_MAX];
    ngx_atomic_uint_t                    sum_ms;
    const ngx_http_sse_histogram_def_t  *def;

    for (k = 0; k < SSE_NHISTOGRAMS; k++) {
        def = &ngx_http_sse_histograms[k];

        ngx_http_sse_histogram_read(zone, def, cum, &sum_ms);

        p = ngx_sprintf(p, ",\"%s\":{\"buckets\":[", def->name);

        for (b = 0; b <= def->nbounds; b++) {
            p = ngx_sprintf(p, "%s{\"le\":\"%s\",\"count\":%uA}",
                            b ? "," : "",
                            b < def->nbounds ? def->labels[b] : "+Inf",
                            cum[b]);
        }

        p = ngx_cpymem(p, "],\"sum\":", 8);
        p = ngx_http_sse_seconds(p, sum_ms);
        p = ngx_sprintf(p, ",\"count\":%uA}", cum[def->nbounds]);
    }

    return p;
}


namespace {

ngx_http_sse_timing_t  *ngx_http_sse_timings;     /* the cache */
ngx_uint_t              ngx_http_sse_ntimings;


ngx_http_sse_timing_t *
ngx_http_sse_timing(ngx_http_sse_sub_t *sub)
{
    ngx_http_sse_timing_t  *t;

    if (sub->timing) {
        return sub->timing;
    }

    if (ngx_http_sse_timings) {
        t = ngx_http_sse_timings;
        ngx_http_sse_timings = t->next;
        ngx_http_sse_ntimings--;
        t->next = NULL;

        sub->timing = t;
        return t;
    }

    t = (ngx_http_sse_timing_t *) ngx_calloc(sizeof(ngx_http_sse_timing_t),
                                             sub->connection->log);
    if (t == NULL) {
        return NULL;
    }

    sub->timing = t;

    return t;
}


void
ngx_http_sse_timing_free(ngx_http_sse_sub_t *sub)
{
    ngx_http_sse_timing_t  *t = sub->timing;

    if (t == NULL) {
        return;
    }

    sub->timing = NULL;

    if (ngx_http_sse_ntimings < NGX_HTTP_SSE_TIMINGS_CACHED
        && t->pend.cap <= NGX_HTTP_SSE_MARKS_MIN
        && t->out.cap <= NGX_HTTP_SSE_MARKS_MIN)
    {
        /* its marks, none left to observe, are forgotten */
        t->pend.first = 0;
        t->pend.last = 0;
        t->out.first = 0;
        t->out.last = 0;

        t->next = ngx_http_sse_timings;
        ngx_http_sse_timings = t;
        ngx_http_sse_ntimings++;
        return;
    }

    ngx_free(t->pend.marks);
    ngx_free(t->out.marks);
    ngx_free(t);
}


void
ngx_http_sse_observe_marks(ngx_http_sse_sub_t *sub, ngx_http_sse_marks_t *m,
    size_t sent)
{
    ngx_msec_t            now;
    ngx_http_sse_mark_t  *mark;

    now = ngx_current_msec;

    while (m->first < m->last) {
        mark = &m->marks[m->first];

        if (sent != (size_t) -1 && mark->end > sent) {
            break;
        }

        /* another worker's clock reads the same monotonic time, but its
         * cached copy may be a little ahead of ours: never negative */

        ngx_http_sse_observe(&sub->zone->latency,
                             &ngx_http_sse_histograms[0],
                             (ngx_msec_int_t) (now - mark->published) > 0
                             ? now - mark->published : 0,
                             mark->n);
        m->first++;
    }

    if (m->first == m->last) {
        m->first = 0;
        m->last = 0;
    }
}


void
ngx_http_sse_observe(ngx_http_sse_tally_t *tally,
    const ngx_http_sse_histogram_def_t *def, ngx_msec_t ms, ngx_uint_t n)
{
    ngx_uint_t  b;

    for (b = 0; b < def->nbounds && ms > def->bounds[b]; b++) {
        /* void */
    }

    tally->counts[b] += n;
    tally->sum_ms += ms * n;
    tally->n += n;
}


void
ngx_http_sse_tally_flush(ngx_http_sse_tally_t *tally,
    ngx_http_sse_histogram_t *h)
{
    ngx_uint_t  b;

    if (tally->n == 0) {
        return;
    }

    for (b = 0; b < NGX_HTTP_SSE_BUCKETS_MAX; b++) {
        if (tally->counts[b]) {
            (void) ngx_atomic_fetch_add(&h->counts[b], tally->counts[b]);
            tally->counts[b] = 0;
        }
    }

    (void) ngx_atomic_fetch_add(&h->sum_ms, tally->sum_ms);
    tally->sum_ms = 0;
    tally->n = 0;
}


/*
 * Cumulative counts, +Inf last.  The count is that of +Inf, so that the
 * two always agree even while workers add to the buckets.
 */

void
ngx_http_sse_histogram_read(ngx_http_sse_zone_t *zone,
    const ngx_http_sse_histogram_def_t *def, ngx_atomic_uint_t *cum,
    ngx_atomic_uint_t *sum_ms)
{
    ngx_uint_t                 b;
    ngx_atomic_uint_t          total;
    ngx_http_sse_histogram_t  *h;

    h = (ngx_http_sse_histogram_t *) ((u_char *) zone->sh + def->histogram);

    total = 0;

    for (b = 0; b <= def->nbounds; b++) {
        total += h->counts[b];
        cum[b] = total;
    }

    *sum_ms = h->sum_ms;
}


/* {zone="name" (not closed): zone names are nginx config tokens, their
 * " and \ are escaped */

u_char *
ngx_http_sse_zone_label(u_char *p, ngx_http_sse_zone_t *zone)
{
    p = ngx_cpymem(p, "{zone=\"", 7);
    p += sse::json_escape(p, { zone->name.data, zone->name.len });
    *p++ = '"';

    return p;
}


/* milliseconds as seconds: 1234 -> 1.234 */

u_char *
ngx_http_sse_seconds(u_char *p, ngx_atomic_uint_t ms)
{
    return ngx_sprintf(p, "%uA.%03uA", ms / 1000, ms % 1000);
}

} // namespace
