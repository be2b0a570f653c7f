-- 0002_dashboard_views: the views the dashboard's API (GET /api/history, see
-- docs/http-api.md) and the Grafana boards read (docs/dashboard.md lists
-- them; their names and columns are a contract: add columns, never rename).
-- Every view is SELECT-only for mxtier_reader.
SET client_min_messages = warning;

-- The registered-domain guess the views use for an rDNS name: its last two
-- labels ("mail-7.out.example.org" -> "example.org").  The daemon's own
-- rdns_domain (reputation kind rdns_domain) knows public suffixes better;
-- this is for grouping on a dashboard.
CREATE OR REPLACE FUNCTION mxtier_rdns_domain(name text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT NULLIF(lower(substring(rtrim(name, '.') FROM '([^.]+\.[^.]+)$')), '')
$$;

-- Sessions "blocked": refused for good (reject) or held off by a block
-- (an operator's or a behaviour block, answered 4xx: the daemon has no
-- separate block verdict, so the reasons tell it).
CREATE OR REPLACE FUNCTION mxtier_is_blocked(verdict text, reasons text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT verdict IN ('reject', 'block')
	    OR reasons && ARRAY['blocklist', 'bait-first-contact', 'hit-and-run', 'manual', 'reputation-bad']
$$;

-- The five views of docs/http-api.md (GET /api/history): no ORDER BY, the
-- server adds WHERE on hour/day, ORDER BY and LIMIT.  Days are UTC days.

-- Sessions per hour by appliance, tier and verdict.
CREATE OR REPLACE VIEW dash_sessions_hourly AS
	SELECT appliance, date_trunc('hour', started_at) AS hour, tier, verdict, count(*) AS sessions
	FROM sessions GROUP BY 1, 2, 3, 4;

-- Sessions per day by appliance, tier and verdict.
CREATE OR REPLACE VIEW dash_sessions_daily AS
	SELECT appliance, (started_at AT TIME ZONE 'UTC')::date AS day, tier, verdict, count(*) AS sessions
	FROM sessions GROUP BY 1, 2, 3, 4;

-- The share of sessions stopped before the backend (verdict not relay), per day.
CREATE OR REPLACE VIEW dash_stopped_before_backend AS
	SELECT appliance, (started_at AT TIME ZONE 'UTC')::date AS day, count(*) AS sessions,
	    count(*) FILTER (WHERE verdict <> 'relay') AS stopped,
	    (count(*) FILTER (WHERE verdict <> 'relay'))::double precision / count(*) AS share
	FROM sessions GROUP BY 1, 2;

-- Deferrals at the primary, and the sessions that came back (reason
-- retried) and were relayed, per day.
CREATE OR REPLACE VIEW dash_retried_relayed AS
	SELECT appliance, (started_at AT TIME ZONE 'UTC')::date AS day,
	    count(*) FILTER (WHERE tier = 'primary' AND verdict = 'tempfail') AS deferred,
	    count(*) FILTER (WHERE verdict = 'relay' AND 'retried' = ANY (reasons)) AS retried_relayed
	FROM sessions GROUP BY 1, 2;

-- Blocked sessions of the last 7 days by source: kind 'address', 'prefix'
-- (the /24 or /64) or 'rdns_domain'.
CREATE OR REPLACE VIEW dash_top_blocked AS
	SELECT k.kind, k.key, count(*) AS sessions, max(s.started_at) AS last_seen
	FROM sessions s
	CROSS JOIN LATERAL (VALUES ('address', host(s.client)), ('prefix', s.client_prefix::text),
	    ('rdns_domain', mxtier_rdns_domain(s.rdns))) AS k(kind, key)
	WHERE s.started_at > now() - interval '7 days' AND mxtier_is_blocked(s.verdict, s.reasons)
	    AND k.key IS NOT NULL
	GROUP BY 1, 2;

-- For Grafana, whose time picker filters on hour/day: the same figures by
-- hour, the reasons, and blocked sources per day and appliance.

CREATE OR REPLACE VIEW dash_stopped_hourly AS
	SELECT appliance, date_trunc('hour', started_at) AS hour, count(*) AS sessions,
	    count(*) FILTER (WHERE verdict <> 'relay') AS stopped,
	    count(*) FILTER (WHERE tier = 'primary' AND verdict = 'tempfail') AS deferred,
	    count(*) FILTER (WHERE verdict = 'relay' AND 'retried' = ANY (reasons)) AS retried_relayed
	FROM sessions GROUP BY 1, 2;

-- Reason codes per hour, tier and verdict (a session with no reason counts as '-').
CREATE OR REPLACE VIEW dash_reasons_hourly AS
	SELECT s.appliance, date_trunc('hour', s.started_at) AS hour, s.tier, s.verdict, r.reason,
	    count(*) AS sessions
	FROM sessions s, unnest(CASE WHEN s.reasons = '{}' THEN '{-}'::text[] ELSE s.reasons END) AS r(reason)
	GROUP BY 1, 2, 3, 4, 5;

CREATE OR REPLACE VIEW dash_blocked_daily AS
	SELECT s.appliance, (s.started_at AT TIME ZONE 'UTC')::date AS day, k.kind, k.key, count(*) AS sessions,
	    max(s.started_at) AS last_seen
	FROM sessions s
	CROSS JOIN LATERAL (VALUES ('address', host(s.client)), ('prefix', s.client_prefix::text),
	    ('rdns_domain', mxtier_rdns_domain(s.rdns))) AS k(kind, key)
	WHERE mxtier_is_blocked(s.verdict, s.reasons) AND k.key IS NOT NULL
	GROUP BY 1, 2, 3, 4;

-- Every contact, for the Sender page and Grafana's table of a sender.
CREATE OR REPLACE VIEW dash_contacts AS
	SELECT started_at, ended_at, appliance, tier, host(client) AS client, client_prefix::text AS client_prefix,
	    rdns, fcrdns, mxtier_rdns_domain(rdns) AS rdns_domain, helo, mail_from,
	    NULLIF(lower(split_part(mail_from, '@', 2)), '') AS sender_domain, rcpt_count, messages, verdict,
	    array_to_string(reasons, ',') AS reasons, dnsbl_score, duration_ms, backend_reply
	FROM sessions;

-- Listings in force now.
CREATE OR REPLACE VIEW dash_listings_active AS
	SELECT id, network::text AS network, kind, reason, expires_at, set_by, created_at,
	    CASE WHEN expires_at IS NULL THEN NULL
	        ELSE GREATEST(0, extract(epoch FROM expires_at - now()))::bigint END AS expires_in_s
	FROM listings WHERE expires_at IS NULL OR expires_at > now();

-- Appliances with their heartbeat age; healthy = heartbeat within 60 s, not shedding, backend up.
CREATE OR REPLACE VIEW dash_appliances AS
	SELECT name, version, tier_map, started_at, heartbeat,
	    GREATEST(0, extract(epoch FROM now() - heartbeat))::bigint AS heartbeat_age_s,
	    shedding, backend_down,
	    (heartbeat > now() - interval '60 seconds' AND NOT shedding AND NOT backend_down) AS healthy
	FROM appliances;

-- The read-only role (0001 makes it too; a database restored without it still gets it).
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mxtier_reader') THEN
		CREATE ROLE mxtier_reader NOLOGIN;
	END IF;
END $$;
GRANT EXECUTE ON FUNCTION mxtier_rdns_domain(text), mxtier_is_blocked(text, text[]) TO mxtier_reader;
GRANT SELECT ON dash_sessions_hourly, dash_sessions_daily, dash_stopped_before_backend, dash_retried_relayed,
	dash_top_blocked, dash_stopped_hourly, dash_reasons_hourly, dash_blocked_daily, dash_contacts,
	dash_listings_active, dash_appliances TO mxtier_reader;
