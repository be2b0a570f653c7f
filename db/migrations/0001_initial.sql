-- 0001_initial: sessions, reputation, contacts shared between appliances,
-- listings, appliances. Forward-only: later changes go in new files.
SET client_min_messages = warning;

CREATE TABLE IF NOT EXISTS appliances (
	name		text PRIMARY KEY,
	version		text NOT NULL,
	tier_map	jsonb NOT NULL DEFAULT '{}',
	started_at	timestamptz NOT NULL DEFAULT now(),
	heartbeat	timestamptz NOT NULL DEFAULT now(),
	shedding	boolean NOT NULL DEFAULT false,
	backend_down	boolean NOT NULL DEFAULT false
);

-- One row per session, partitioned by day; retention drops whole partitions.
CREATE TABLE IF NOT EXISTS sessions (
	session_id	text NOT NULL,
	appliance	text NOT NULL,
	started_at	timestamptz NOT NULL,
	ended_at	timestamptz NOT NULL,
	tier		text NOT NULL,
	client		inet NOT NULL,
	client_prefix	cidr NOT NULL,
	rdns		text,
	fcrdns		boolean NOT NULL DEFAULT false,
	helo		text,
	mail_from	text,
	rcpt_count	integer NOT NULL DEFAULT 0,
	first_rcpt	text,
	messages	integer NOT NULL DEFAULT 0,
	verdict		text NOT NULL,
	reasons		text[] NOT NULL DEFAULT '{}',
	dnsbl_score	integer NOT NULL DEFAULT 0,
	bytes		bigint NOT NULL DEFAULT 0,
	duration_ms	integer NOT NULL DEFAULT 0,
	backend_reply	text,
	-- A writer that lost its connection resends what it could not confirm: the key makes that harmless.
	PRIMARY KEY (appliance, session_id, started_at)
) PARTITION BY RANGE (started_at);

CREATE INDEX IF NOT EXISTS sessions_client_idx ON sessions (client, started_at);
CREATE INDEX IF NOT EXISTS sessions_prefix_idx ON sessions (client_prefix, started_at);

-- A partition for a day; the writer calls it for today and tomorrow.
CREATE OR REPLACE FUNCTION mxtier_session_partition(day date) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
	part text := 'sessions_' || to_char(day, 'YYYYMMDD');
BEGIN
	IF to_regclass(part) IS NOT NULL THEN
		RETURN;
	END IF;
	EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF sessions FOR VALUES FROM (%L) TO (%L)',
	    part, day::timestamptz, (day + 1)::timestamptz);
END $$;

-- Drop day partitions older than keep_days; returns how many went.
CREATE OR REPLACE FUNCTION mxtier_session_retention(keep_days integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
	r record;
	dropped integer := 0;
BEGIN
	-- Today's partition is never dropped, whatever the caller asks.
	keep_days := GREATEST(keep_days, 1);
	FOR r IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
	    JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'sessions'
	    AND c.relname ~ '^sessions_[0-9]{8}$'
	    AND to_date(substr(c.relname, 10), 'YYYYMMDD') < current_date - keep_days LOOP
		EXECUTE format('DROP TABLE %I', r.relname);
		dropped := dropped + 1;
	END LOOP;
	RETURN dropped;
END $$;

-- Reputation per client address, prefix, rDNS domain, HELO and sender domain.
CREATE TABLE IF NOT EXISTS reputation (
	kind		text NOT NULL CHECK (kind IN ('address', 'prefix', 'rdns_domain', 'helo', 'sender_domain')),
	key		text NOT NULL,
	sessions	bigint NOT NULL DEFAULT 0,
	relayed		bigint NOT NULL DEFAULT 0,
	tempfailed	bigint NOT NULL DEFAULT 0,
	retried		bigint NOT NULL DEFAULT 0,
	hit_and_run	bigint NOT NULL DEFAULT 0,
	bait_first	bigint NOT NULL DEFAULT 0,
	trapped		bigint NOT NULL DEFAULT 0,
	rejected	bigint NOT NULL DEFAULT 0,
	first_seen	timestamptz NOT NULL DEFAULT now(),
	last_seen	timestamptz NOT NULL DEFAULT now(),
	-- Good behaviour raises it, abuse lowers it; the daemon fast-tracks >= 10 and refuses <= -10.
	score		integer GENERATED ALWAYS AS (LEAST(1000, GREATEST(-1000,
	    (relayed + 5 * retried - 5 * hit_and_run - 20 * bait_first - 20 * trapped - 2 * rejected)::integer))) STORED,
	PRIMARY KEY (kind, key)
);

CREATE OR REPLACE FUNCTION mxtier_reputation_add(p_kind text, p_key text, p_verdict text, p_reasons text[],
    p_seen timestamptz) RETURNS void
LANGUAGE sql AS $$
	INSERT INTO reputation AS r (kind, key, sessions, relayed, tempfailed, retried, hit_and_run, bait_first,
	    trapped, rejected, first_seen, last_seen)
	VALUES (p_kind, p_key, 1,
	    (p_verdict = 'relay')::int, (p_verdict = 'tempfail')::int, ('retried' = ANY (p_reasons))::int,
	    ('hit-and-run' = ANY (p_reasons))::int, ('bait-first-contact' = ANY (p_reasons))::int,
	    ('trap-recipient' = ANY (p_reasons))::int, (p_verdict = 'reject')::int, p_seen, p_seen)
	ON CONFLICT (kind, key) DO UPDATE SET
	    sessions = r.sessions + 1,
	    relayed = r.relayed + EXCLUDED.relayed,
	    tempfailed = r.tempfailed + EXCLUDED.tempfailed,
	    retried = r.retried + EXCLUDED.retried,
	    hit_and_run = r.hit_and_run + EXCLUDED.hit_and_run,
	    bait_first = r.bait_first + EXCLUDED.bait_first,
	    trapped = r.trapped + EXCLUDED.trapped,
	    rejected = r.rejected + EXCLUDED.rejected,
	    last_seen = GREATEST(r.last_seen, EXCLUDED.last_seen)
$$;

-- mxtier_record_session - one session row and its reputation, in one statement
-- (so one transaction): a resent row changes nothing twice.
CREATE OR REPLACE FUNCTION mxtier_record_session(p_session_id text, p_appliance text, p_started timestamptz,
    p_ended timestamptz, p_tier text, p_client inet, p_prefix cidr, p_rdns text, p_fcrdns boolean, p_helo text,
    p_mail_from text, p_rcpt_count integer, p_first_rcpt text, p_messages integer, p_verdict text,
    p_reasons text[], p_dnsbl_score integer, p_bytes bigint, p_duration_ms integer, p_backend_reply text,
    p_rdns_domain text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
	inserted integer;
BEGIN
	PERFORM mxtier_session_partition(p_started::date);
	INSERT INTO sessions VALUES (p_session_id, p_appliance, p_started, p_ended, p_tier, p_client, p_prefix,
	    p_rdns, p_fcrdns, p_helo, p_mail_from, p_rcpt_count, p_first_rcpt, p_messages, p_verdict, p_reasons,
	    p_dnsbl_score, p_bytes, p_duration_ms, p_backend_reply)
	    ON CONFLICT DO NOTHING;
	GET DIAGNOSTICS inserted = ROW_COUNT;
	IF inserted = 0 THEN
		RETURN false;
	END IF;
	PERFORM mxtier_reputation_add('address', host(p_client), p_verdict, p_reasons, p_ended);
	PERFORM mxtier_reputation_add('prefix', p_prefix::text, p_verdict, p_reasons, p_ended);
	IF p_rdns_domain IS NOT NULL AND p_rdns_domain <> '' THEN
		PERFORM mxtier_reputation_add('rdns_domain', lower(p_rdns_domain), p_verdict, p_reasons, p_ended);
	END IF;
	IF p_helo IS NOT NULL AND p_helo <> '' THEN
		PERFORM mxtier_reputation_add('helo', lower(p_helo), p_verdict, p_reasons, p_ended);
	END IF;
	IF p_mail_from LIKE '%@%' THEN
		PERFORM mxtier_reputation_add('sender_domain', lower(split_part(p_mail_from, '@', 2)), p_verdict,
		    p_reasons, p_ended);
	END IF;
	RETURN true;
END $$;

-- Tier contacts and pending retries, shared so that appliance B's secondary
-- sees the deferral appliance A's primary made a moment ago. key is the
-- history key: 'a:ADDR', 'p:PREFIX', 'd:DOMAIN'.
CREATE TABLE IF NOT EXISTS contacts (
	key		text PRIMARY KEY,
	last_primary	timestamptz,
	last_secondary	timestamptz,
	last_bait	timestamptz,
	pending_since	timestamptz,
	pass_until	timestamptz,
	block_until	timestamptz,
	block_reason	text,
	updated_at	timestamptz NOT NULL DEFAULT now()
);

-- mxtier_contact - merge one appliance's news about a history key (later times win).
CREATE OR REPLACE FUNCTION mxtier_contact(p_key text, p_primary timestamptz, p_secondary timestamptz,
    p_bait timestamptz, p_pending timestamptz, p_clear_pending boolean, p_pass timestamptz,
    p_block timestamptz, p_block_reason text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public AS $$
	INSERT INTO contacts AS c (key, last_primary, last_secondary, last_bait, pending_since, pass_until,
	    block_until, block_reason, updated_at)
	VALUES (p_key, p_primary, p_secondary, p_bait, p_pending, p_pass, p_block, p_block_reason, now())
	ON CONFLICT (key) DO UPDATE SET
	    last_primary = GREATEST(c.last_primary, EXCLUDED.last_primary),
	    last_secondary = GREATEST(c.last_secondary, EXCLUDED.last_secondary),
	    last_bait = GREATEST(c.last_bait, EXCLUDED.last_bait),
	    -- the first deferral's time is kept: a later attempt is measured from it
	    pending_since = CASE WHEN p_clear_pending THEN NULL
	        ELSE COALESCE(c.pending_since, EXCLUDED.pending_since) END,
	    pass_until = GREATEST(c.pass_until, EXCLUDED.pass_until),
	    block_until = CASE WHEN EXCLUDED.block_until IS NOT NULL THEN EXCLUDED.block_until ELSE c.block_until END,
	    block_reason = COALESCE(EXCLUDED.block_reason, c.block_reason),
	    updated_at = now()
$$;

-- Operator listings (mxtierctl allow/block), seen by every appliance.
CREATE TABLE IF NOT EXISTS listings (
	id		bigserial PRIMARY KEY,
	network		cidr NOT NULL,
	kind		text NOT NULL CHECK (kind IN ('allow', 'block')),
	reason		text NOT NULL DEFAULT 'manual',
	expires_at	timestamptz,
	set_by		text NOT NULL DEFAULT current_user,
	created_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS listings_network_idx ON listings USING gist (network inet_ops);

CREATE OR REPLACE FUNCTION mxtier_listings_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('mxtier_listings', COALESCE(NEW.network, OLD.network)::text);
	RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS listings_notify ON listings;
CREATE TRIGGER listings_notify AFTER INSERT OR UPDATE OR DELETE ON listings
	FOR EACH ROW EXECUTE FUNCTION mxtier_listings_notify();

-- What dashboards read.
CREATE OR REPLACE VIEW verdicts_per_tier_hourly AS
	SELECT date_trunc('hour', started_at) AS hour, tier, verdict, unnest(CASE WHEN reasons = '{}' THEN '{-}'::text[] ELSE reasons END) AS reason,
	    count(*) AS sessions
	FROM sessions GROUP BY 1, 2, 3, 4;

CREATE OR REPLACE VIEW top_offending_prefixes AS
	SELECT client_prefix, count(*) FILTER (WHERE verdict IN ('tempfail', 'reject')) AS refused,
	    count(*) AS sessions, max(started_at) AS last_seen
	FROM sessions WHERE started_at > now() - interval '1 day'
	GROUP BY client_prefix ORDER BY refused DESC;

CREATE OR REPLACE VIEW retry_conversion AS
	SELECT date_trunc('hour', started_at) AS hour,
	    count(*) FILTER (WHERE tier = 'primary' AND verdict = 'tempfail') AS deferred,
	    count(*) FILTER (WHERE 'retried' = ANY (reasons)) AS retried
	FROM sessions GROUP BY 1;

-- Least privilege: mxtierd writes with mxtier_writer; dashboards read with mxtier_reader.
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mxtier_writer') THEN
		CREATE ROLE mxtier_writer NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mxtier_reader') THEN
		CREATE ROLE mxtier_reader NOLOGIN;
	END IF;
END $$;
-- Functions are executable by PUBLIC by default; the definer's rights must be mxtier_writer's alone.
REVOKE EXECUTE ON FUNCTION mxtier_session_partition(date), mxtier_session_retention(integer),
	mxtier_reputation_add(text, text, text, text[], timestamptz),
	mxtier_record_session(text, text, timestamptz, timestamptz, text, inet, cidr, text, boolean, text, text,
	    integer, text, integer, text, text[], integer, bigint, integer, text, text),
	mxtier_contact(text, timestamptz, timestamptz, timestamptz, timestamptz, boolean, timestamptz,
	    timestamptz, text) FROM PUBLIC;
-- mxtierctl creates the version table before the first migration; the daemon reads it at start.
CREATE TABLE IF NOT EXISTS mxtier_schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now());
GRANT SELECT ON mxtier_schema_migrations TO mxtier_writer, mxtier_reader;
GRANT SELECT, INSERT ON sessions TO mxtier_writer;
GRANT SELECT, INSERT, UPDATE ON reputation, contacts, appliances TO mxtier_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON listings TO mxtier_writer;
GRANT USAGE ON SEQUENCE listings_id_seq TO mxtier_writer;
GRANT EXECUTE ON FUNCTION mxtier_session_partition(date), mxtier_session_retention(integer),
	mxtier_record_session(text, text, timestamptz, timestamptz, text, inet, cidr, text, boolean, text, text,
	    integer, text, integer, text, text[], integer, bigint, integer, text, text),
	mxtier_contact(text, timestamptz, timestamptz, timestamptz, timestamptz, boolean, timestamptz,
	    timestamptz, text) TO mxtier_writer;
GRANT SELECT ON sessions, reputation, contacts, listings, appliances,
	verdicts_per_tier_hourly, top_offending_prefixes, retry_conversion TO mxtier_reader;
