-- 0003_batch_writes: the writer sends a batch of session rows (and one of
-- contact news) per statement, a batch per transaction. Every column comes
-- as a text[] (reasons as the text of a text[] each: arrays cannot be
-- ragged); the casts happen here, so a value that does not fit fails its
-- batch, which the writer then bisects down to that one row.
SET client_min_messages = warning;

-- mxtier_record_sessions - many session rows and their reputation in one
-- statement. A row already there (a resend after a lost confirmation) is
-- skipped, and reputation is summed from the rows this call inserted only,
-- so a resend never counts twice. One upsert per (kind, key) per batch,
-- taken in key order, so that appliances writing the same keys at once
-- lock them in the same order (no deadlock). Returns the rows inserted.
CREATE OR REPLACE FUNCTION mxtier_record_sessions(p_session_id text[], p_appliance text[], p_started text[],
    p_ended text[], p_tier text[], p_client text[], p_prefix text[], p_rdns text[], p_fcrdns text[],
    p_helo text[], p_mail_from text[], p_rcpt_count text[], p_first_rcpt text[], p_messages text[],
    p_verdict text[], p_reasons text[], p_dnsbl_score text[], p_bytes text[], p_duration_ms text[],
    p_backend_reply text[], p_rdns_domain text[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
	d date;
	inserted integer;
BEGIN
	FOR d IN SELECT DISTINCT (s::timestamptz)::date FROM unnest(p_started) AS s LOOP
		PERFORM mxtier_session_partition(d);
	END LOOP;
	-- Each value is cast once, here: the rows and all five reputation keys read the typed columns.
	WITH input AS (
		SELECT u.session_id, u.appliance, u.started::timestamptz AS started, u.ended::timestamptz AS ended,
		    u.tier, u.client::inet AS client, u.prefix::cidr AS prefix, u.rdns, u.fcrdns::boolean AS fcrdns,
		    u.helo, u.mail_from, u.rcpt_count::integer AS rcpt_count, u.first_rcpt,
		    u.messages::integer AS messages, u.verdict, u.reasons::text[] AS reasons,
		    u.dnsbl_score::integer AS dnsbl_score, u.bytes::bigint AS bytes,
		    u.duration_ms::integer AS duration_ms, u.backend_reply, u.rdns_domain
		FROM unnest(p_session_id, p_appliance, p_started, p_ended, p_tier, p_client, p_prefix,
		    p_rdns, p_fcrdns, p_helo, p_mail_from, p_rcpt_count, p_first_rcpt, p_messages, p_verdict,
		    p_reasons, p_dnsbl_score, p_bytes, p_duration_ms, p_backend_reply, p_rdns_domain)
		    AS u(session_id, appliance, started, ended, tier, client, prefix, rdns, fcrdns, helo, mail_from,
		    rcpt_count, first_rcpt, messages, verdict, reasons, dnsbl_score, bytes, duration_ms,
		    backend_reply, rdns_domain)
	), ins AS (
		INSERT INTO sessions
		SELECT session_id, appliance, started, ended, tier, client, prefix, rdns, fcrdns, helo, mail_from,
		    rcpt_count, first_rcpt, messages, verdict, reasons, dnsbl_score, bytes, duration_ms, backend_reply
		FROM input
		ON CONFLICT DO NOTHING
		RETURNING session_id
	), done AS (
		-- What the inserted rows say, with the rDNS domain the table does not keep. A batch is
		-- one appliance's, and its session ids are unique: the id alone picks the input row
		-- (a hashed subplan, not a join of the batch with itself).
		SELECT * FROM input WHERE session_id IN (SELECT session_id FROM ins)
	), keyed AS (
		SELECT 'address' AS kind, host(client) AS key, verdict, reasons, ended AS seen FROM done
		UNION ALL SELECT 'prefix', prefix::text, verdict, reasons, ended FROM done
		UNION ALL SELECT 'rdns_domain', lower(rdns_domain), verdict, reasons, ended
		    FROM done WHERE rdns_domain IS NOT NULL AND rdns_domain <> ''
		UNION ALL SELECT 'helo', lower(helo), verdict, reasons, ended FROM done WHERE helo IS NOT NULL AND helo <> ''
		UNION ALL SELECT 'sender_domain', lower(split_part(mail_from, '@', 2)), verdict, reasons, ended
		    FROM done WHERE mail_from LIKE '%@%'
	), summed AS (
		SELECT kind, key, count(*) AS sessions,
		    count(*) FILTER (WHERE verdict = 'relay') AS relayed,
		    count(*) FILTER (WHERE verdict = 'tempfail') AS tempfailed,
		    count(*) FILTER (WHERE 'retried' = ANY (reasons)) AS retried,
		    count(*) FILTER (WHERE 'hit-and-run' = ANY (reasons)) AS hit_and_run,
		    count(*) FILTER (WHERE 'bait-first-contact' = ANY (reasons)) AS bait_first,
		    count(*) FILTER (WHERE 'trap-recipient' = ANY (reasons)) AS trapped,
		    count(*) FILTER (WHERE verdict = 'reject') AS rejected,
		    min(seen) AS first_seen, max(seen) AS last_seen
		FROM keyed GROUP BY kind, key
	), up AS (
		INSERT INTO reputation AS r (kind, key, sessions, relayed, tempfailed, retried, hit_and_run,
		    bait_first, trapped, rejected, first_seen, last_seen)
		SELECT kind, key, sessions, relayed, tempfailed, retried, hit_and_run, bait_first, trapped, rejected,
		    first_seen, last_seen FROM summed ORDER BY kind, key
		ON CONFLICT (kind, key) DO UPDATE SET
		    sessions = r.sessions + EXCLUDED.sessions,
		    relayed = r.relayed + EXCLUDED.relayed,
		    tempfailed = r.tempfailed + EXCLUDED.tempfailed,
		    retried = r.retried + EXCLUDED.retried,
		    hit_and_run = r.hit_and_run + EXCLUDED.hit_and_run,
		    bait_first = r.bait_first + EXCLUDED.bait_first,
		    trapped = r.trapped + EXCLUDED.trapped,
		    rejected = r.rejected + EXCLUDED.rejected,
		    last_seen = GREATEST(r.last_seen, EXCLUDED.last_seen)
		RETURNING 1
	)
	SELECT (SELECT count(*) FROM ins) INTO inserted FROM (SELECT count(*) FROM up) AS touched;
	RETURN inserted;
END $$;

-- mxtier_contacts - many keys' news in one statement. The writer folds a
-- batch's news per key first (one row per key, in key order); a key whose
-- news cleared its pending retry (and may have set a new one after) has
-- the old one cleared before the merge, so mxtier_contact's rule holds
-- for the batch as it would have one message at a time. The merge takes
-- its rows in key order, so appliances merging the same keys at once do
-- not deadlock (a clear's update may; the writer retries a deadlock).
CREATE OR REPLACE FUNCTION mxtier_contacts(p_key text[], p_primary text[], p_secondary text[], p_bait text[],
    p_pending text[], p_clear_pending text[], p_pass text[], p_block text[], p_block_reason text[])
    RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
	-- A join with the batch, not "key = ANY (p_key)": plpgsql's cached generic plan for
	-- that scans the whole table once contacts grows, and a batch then costs seconds.
	UPDATE contacts AS c SET pending_since = NULL FROM unnest(p_key, p_clear_pending) AS u(key, clear_pending)
	    WHERE c.key = u.key AND u.clear_pending::boolean;
	INSERT INTO contacts AS c (key, last_primary, last_secondary, last_bait, pending_since, pass_until,
	    block_until, block_reason, updated_at)
	SELECT DISTINCT ON (key) key, prim::timestamptz, sec::timestamptz, bait::timestamptz,
	    pend::timestamptz, pass::timestamptz, block::timestamptz, reason, now()
	FROM unnest(p_key, p_primary, p_secondary, p_bait, p_pending, p_pass, p_block, p_block_reason)
	    AS u(key, prim, sec, bait, pend, pass, block, reason)
	ORDER BY key
	ON CONFLICT (key) DO UPDATE SET
	    last_primary = GREATEST(c.last_primary, EXCLUDED.last_primary),
	    last_secondary = GREATEST(c.last_secondary, EXCLUDED.last_secondary),
	    last_bait = GREATEST(c.last_bait, EXCLUDED.last_bait),
	    pending_since = COALESCE(c.pending_since, EXCLUDED.pending_since),
	    pass_until = GREATEST(c.pass_until, EXCLUDED.pass_until),
	    block_until = CASE WHEN EXCLUDED.block_until IS NOT NULL THEN EXCLUDED.block_until ELSE c.block_until END,
	    block_reason = COALESCE(EXCLUDED.block_reason, c.block_reason),
	    updated_at = now();
END $$;

REVOKE EXECUTE ON FUNCTION
	mxtier_record_sessions(text[], text[], text[], text[], text[], text[], text[], text[], text[], text[],
	    text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], text[]),
	mxtier_contacts(text[], text[], text[], text[], text[], text[], text[], text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	mxtier_record_sessions(text[], text[], text[], text[], text[], text[], text[], text[], text[], text[],
	    text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], text[]),
	mxtier_contacts(text[], text[], text[], text[], text[], text[], text[], text[], text[]) TO mxtier_writer;
