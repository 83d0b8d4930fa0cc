/* GET /v1/workspaces/{ws}/analytics?from=&to=  (the analytics and pipeline read models)
 *
 * from and to are dates (YYYY-MM-DD) or RFC 3339 times, read as their UTC dates; to is exclusive.
 * Default: the 30 days up to and including today (UTC).  At most 400 days at once.
 *
 *   {"from", "to",
 *    "totals": {"messages", "inbound", "outbound", "calls"},
 *    "messages_by_channel": {"sms": n, ...}, "messages_by_status": {"delivered": n, ...},
 *    "messages_by_day": [{"date", "inbound", "outbound"}],
 *    "response_time_seconds": {"average", "median", "p90", "replies"},
 *    "calls": {"total", "answered", "missed", "average_duration_seconds",
 *              "by_agent": [{"agent_id", "total", "answered", "missed", "average_duration_seconds"}]},
 *    "pipeline": [{"stage", "contacts"}]}
 *
 * Messages count once, on the day they were received or queued (by channel, by day, totals); by
 * status, each status counts the messages that reached it on a day in the range (a message sent
 * one day and delivered the next counts as sent on the first and delivered on the second, so
 * delivered / sent is the range's delivery rate).
 * Response time runs from a contact's first unanswered inbound message to the team's next reply
 * (replies dated in the range).  Calls count on the day they started; a call counts for the agent it
 * was last with (rung, answered, unparked or transferred to), so a call an agent missed and the
 * queue then took is one of their missed calls.  Averages are null when there is nothing to average. Pipeline
 * counts are today's (stages in pipeline order, then stages no longer in the pipeline, then no
 * stage), not the range's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "http/api_int.h"

#define DAY_US (86400LL * 1000000)
#define MAX_DAYS 400

typedef struct {
    char from[16], to[16];
} analytics_state_t;

static const char report_sql[] =
    "WITH m AS (SELECT day, channel, direction, messages FROM analytics.messages_daily "
    "WHERE workspace_id = $1 AND day >= $2::date AND day < $3::date AND messages > 0), "
    "st AS (SELECT status, messages FROM analytics.status_daily "
    "WHERE workspace_id = $1 AND day >= $2::date AND day < $3::date AND messages > 0), "
    "c AS (SELECT coalesce(sum(calls), 0)::int8 AS total, coalesce(sum(answered), 0)::int8 AS answered, "
    "coalesce(sum(missed), 0)::int8 AS missed, coalesce(sum(duration_seconds), 0)::int8 AS seconds "
    "FROM analytics.calls_daily WHERE workspace_id = $1 AND day >= $2::date AND day < $3::date), "
    "r AS (SELECT avg(seconds) AS average, percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS median, "
    "percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds) AS p90, count(*)::int8 AS replies "
    "FROM analytics.responses WHERE workspace_id = $1 AND replied_at >= ($2::date)::timestamp AT TIME ZONE "
    "'UTC' "
    "AND replied_at < ($3::date)::timestamp AT TIME ZONE 'UTC') "
    "SELECT json_build_object('from', $2::date, 'to', $3::date, "
    "'totals', json_build_object("
    "'messages', (SELECT coalesce(sum(messages), 0)::int8 FROM m), "
    "'inbound', (SELECT coalesce(sum(messages), 0)::int8 FROM m WHERE direction = 'inbound'), "
    "'outbound', (SELECT coalesce(sum(messages), 0)::int8 FROM m WHERE direction = 'outbound'), "
    "'calls', c.total), "
    "'messages_by_channel', coalesce((SELECT json_object_agg(channel, n) FROM "
    "(SELECT channel, sum(messages)::int8 AS n FROM m GROUP BY channel ORDER BY channel) x), '{}'::json), "
    "'messages_by_status', coalesce((SELECT json_object_agg(status, n) FROM "
    "(SELECT status, sum(messages)::int8 AS n FROM st GROUP BY status ORDER BY status) x), '{}'::json), "
    "'messages_by_day', coalesce((SELECT json_agg(json_build_object('date', day, 'inbound', i, 'outbound', "
    "o) "
    "ORDER BY day) FROM (SELECT day, coalesce(sum(messages) FILTER (WHERE direction = 'inbound'), 0)::int8 "
    "AS i, "
    "coalesce(sum(messages) FILTER (WHERE direction = 'outbound'), 0)::int8 AS o FROM m GROUP BY day) x), "
    "'[]'::json), "
    "'response_time_seconds', json_build_object('average', r.average, 'median', r.median, 'p90', r.p90, "
    "'replies', r.replies), "
    "'calls', json_build_object('total', c.total, 'answered', c.answered, 'missed', c.missed, "
    "'average_duration_seconds', CASE WHEN c.answered > 0 THEN c.seconds::float8 / c.answered END, "
    "'by_agent', coalesce((SELECT json_agg(json_build_object('agent_id', agent_id, 'total', t, 'answered', "
    "a, "
    "'missed', m, 'average_duration_seconds', CASE WHEN a > 0 THEN s::float8 / a END) ORDER BY t DESC, "
    "agent_id) "
    "FROM (SELECT agent_id, sum(calls)::int8 AS t, sum(answered)::int8 AS a, sum(missed)::int8 AS m, "
    "sum(duration_seconds)::int8 AS s FROM analytics.calls_agents_daily WHERE workspace_id = $1 "
    "AND day >= $2::date AND day < $3::date GROUP BY agent_id) x), '[]'::json)), "
    "'pipeline', coalesce((SELECT json_agg(json_build_object('stage', p.stage, 'contacts', p.contacts) "
    "ORDER BY s.position NULLS LAST, p.stage NULLS LAST) FROM pipeline.counts p LEFT JOIN pipeline.stages s "
    "ON s.workspace_id = p.workspace_id AND s.name = p.stage WHERE p.workspace_id = $1), '[]'::json))::text "
    "FROM c, r";

static void reported(sb_api_call_t *c, int status, PGresult *const *results, int n)
{
    char *text = strdup(PQgetvalue(results[0], 0, 0));
    if (text == NULL) {
        sb_api_reply_errcode(c, SB_ENOMEM, NULL);
        return;
    }
    sb_api_reply_raw(c, 200, text);
}

/* Reads a date or time parameter as its UTC day (microseconds at midnight). */
static bool read_day(sb_api_call_t *c, const char *name, int64_t def, int64_t *out)
{
    const char *v = sb_api_query(c, name);
    if (v == NULL) {
        *out = def;
        return true;
    }
    int64_t us;
    if (sb_clock_parse_rfc3339(v, &us) != 0) {
        char msg[96];
        snprintf(msg, sizeof(msg), "%s must be a date (YYYY-MM-DD) or an RFC 3339 time", name);
        sb_api_reply_error(c, 400, "invalid", msg, name);
        return false;
    }
    *out = us - ((us % DAY_US) + DAY_US) % DAY_US;
    return true;
}

static void format_day(int64_t us, char out[16])
{
    char buf[SB_RFC3339_LEN];
    sb_clock_format_rfc3339(us, buf);
    snprintf(out, 16, "%.10s", buf);
}

static void analytics_loaded(sb_api_call_t *c)
{
    analytics_state_t *st = c->data;
    int64_t now = sb_clock_now_us();
    int64_t today = now - now % DAY_US;
    int64_t from, to;
    if (!read_day(c, "to", today + DAY_US, &to) || !read_day(c, "from", to - 30 * DAY_US, &from))
        return;
    if (from >= to) {
        sb_api_reply_error(c, 400, "invalid", "from must be before to", "from");
        return;
    }
    if ((to - from) / DAY_US > MAX_DAYS) {
        sb_api_reply_error(c, 400, "invalid", "a report covers at most 400 days", "to");
        return;
    }
    format_day(from, st->from);
    format_day(to, st->to);
    sb_api_sql_t q = {"api_analytics", report_sql, 3, {c->ws_id, st->from, st->to}};
    sb_api_sql(c, &q, 1, false, reported);
}

static int on_analytics(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, sizeof(analytics_state_t)), SB_ROLE_AGENT, analytics_loaded);
    return 0;
}

int sb__api_analytics_routes(sb_router_t *r, sb_api_t *api)
{
    return sb_router_add(r, "GET", "/v1/workspaces/{ws}/analytics", on_analytics, api);
}
