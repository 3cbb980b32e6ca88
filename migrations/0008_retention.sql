-- Retention: personal data is kept no longer than needed (GDPR art. 5(1)(e)).
--
-- retention_run() applies three periods, given by the server's configuration, each time the
-- server calls it (every prune interval, on one instance at a time):
--   * an inquiry that never became a werklab is deleted that long after its last change;
--   * the people of a werklab completed or cancelled that long ago (its participants, and the
--     contact of the inquiry it came from) are anonymised as an erasure anonymises a person,
--     but within that werklab only: counts, attendance and ratings stay;
--   * audit entries older than the period are deleted.
-- Each period has a floor the database holds to, whatever it is asked (see below; the server's
-- configuration refuses the same values before it starts).
--
-- Why an inquiry is deleted, not anonymised: one that never became a werklab is referenced by
-- nothing and counted in no figure, so an anonymised husk would serve no purpose; and what would
-- remain of it is the sender's own message, free text that can name them and others and cannot
-- be anonymised reliably. Deleting it enters the change feed as "deleted", as every delete
-- does, so a CRM that copied it deletes its copy too. A werklab's people are anonymised instead
-- of deleted because the werklab's participant count, attendance, ratings and figures are
-- built on those rows.

-- ---- When a werklab closed ----
-- Retention of a werklab's people counts from the moment it was completed or cancelled, not
-- from its last change: a later correction of its text must not keep its people for two more
-- years. Not part of the resource: it is not shown, and setting it is no change of the werklab
-- beyond the status change that sets it.
ALTER TABLE werklabs ADD COLUMN closed_at timestamptz;

CREATE FUNCTION werklabs_closed_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('completed', 'cancelled') AND NEW.status IS DISTINCT FROM OLD.status THEN
        NEW.closed_at := now();
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER werklabs_closed_at BEFORE UPDATE OF status ON werklabs
    FOR EACH ROW EXECUTE FUNCTION werklabs_closed_at();
CREATE INDEX werklabs_closed ON werklabs (closed_at) WHERE closed_at IS NOT NULL;

-- Werklabs closed before this migration: their last change is the latest their closing can
-- have been, so retention never starts early. Without triggers: this is no change of theirs
-- (no new version, no entry in the change feed).
ALTER TABLE werklabs DISABLE TRIGGER USER;
UPDATE werklabs SET closed_at = updated_at WHERE status IN ('completed', 'cancelled');
ALTER TABLE werklabs ENABLE TRIGGER USER;

-- ---- Erasure within one werklab ----

-- An address an erasure wrote (erase_data_subject, erase_werklab_people): nothing left to erase.
CREATE FUNCTION erased(address text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT address LIKE 'erased-%@erased.invalid'
$$;

-- Erases every mention of any of needles (as whole words, like erase_mentions()) in one
-- werklab's own rows: the werklab and every row that belongs to it (a table with werklab_id),
-- every text column; answers how many rows changed. Only there: the same person may take part in
-- a younger werklab, or be a municipality's contact today, and retention of one werklab must not
-- reach those. One statement per table, all needles at once, longest first (so that "Jan Jansen"
-- goes whole, not as "[erased] Jansen"): a row changes once, with one new version.
CREATE FUNCTION erase_werklab_mentions(needles text[], werklab uuid) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    pattern text;
    t record;
    changed bigint := 0;
    n bigint;
BEGIN
    SELECT '(?:' || string_agg(mention_pattern(v), '|' ORDER BY length(v) DESC, v) || ')'
    INTO pattern
    FROM unnest(needles) AS v WHERE v IS NOT NULL AND length(v) >= 3;
    IF pattern IS NULL THEN
        RETURN 0;
    END IF;
    FOR t IN
        SELECT c.relname AS name, array_agg(a.attname::text ORDER BY a.attnum) AS columns
        FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
        WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'
          AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypid = 'text'::regtype
          AND (c.relname = 'werklabs'
               OR EXISTS (SELECT 1 FROM pg_attribute k WHERE k.attrelid = c.oid
                          AND k.attname = 'werklab_id' AND NOT k.attisdropped))
        GROUP BY c.relname
    LOOP
        EXECUTE format('UPDATE %I SET %s WHERE %I = $2 AND (%s)', t.name,
                       (SELECT string_agg(format('%I = regexp_replace(%I, $1, %L, %L)', col, col,
                                                 '[erased]', 'gi'), ', ')
                        FROM unnest(t.columns) AS col),
                       CASE WHEN t.name = 'werklabs' THEN 'id' ELSE 'werklab_id' END,
                       (SELECT string_agg(format('%I ~* $1', col), ' OR ')
                        FROM unnest(t.columns) AS col))
            USING pattern, werklab;
        GET DIAGNOSTICS n = ROW_COUNT;
        changed := changed + n;
    END LOOP;
    RETURN changed;
END
$$;
CREATE INDEX inquiries_werklab ON inquiries (werklab_id) WHERE werklab_id IS NOT NULL;

-- Anonymises the people of one werklab as erase_data_subject() anonymises a person: its
-- participants and the contact of the inquiry it came from get "[erased]" for a name, an
-- erased-<id>@erased.invalid address and no job title or phone, and their names, addresses and
-- phone numbers are erased wherever the werklab's own rows mention them (its texts, its
-- sessions, its feedback: feedback authors are its participants). Rows stay, so counts,
-- attendance and ratings hold. Who is erased already is left alone: a second call changes
-- nothing.
CREATE FUNCTION erase_werklab_people(werklab uuid, OUT erased_participants bigint,
                                     OUT erased_contacts bigint, OUT erased_mentions bigint)
LANGUAGE plpgsql AS $$
DECLARE
    needles text[];
BEGIN
    SELECT array_agg(DISTINCT v) FILTER (WHERE v IS NOT NULL AND length(v) >= 3) INTO needles
    FROM (SELECT unnest(ARRAY[p.name, lower(p.email)]) FROM participants p
          WHERE p.werklab_id = werklab AND NOT erased(p.email)
          UNION ALL
          SELECT unnest(ARRAY[i.contact_name, lower(i.email), i.phone]) FROM inquiries i
          WHERE i.werklab_id = werklab AND NOT erased(i.email)) AS held(v);

    UPDATE participants SET name = '[erased]', email = 'erased-' || id || '@erased.invalid',
        job_title = NULL WHERE werklab_id = werklab AND NOT erased(email);
    GET DIAGNOSTICS erased_participants = ROW_COUNT;

    UPDATE inquiries SET contact_name = '[erased]', email = 'erased-' || id || '@erased.invalid',
        phone = NULL WHERE werklab_id = werklab AND NOT erased(email);
    GET DIAGNOSTICS erased_contacts = ROW_COUNT;

    erased_mentions := erase_werklab_mentions(needles, werklab);
END
$$;

-- ---- Audit entries ----
-- The audit log is append-only for the server (0004): UPDATE, DELETE and TRUNCATE are revoked
-- from the role that owns it, and a trigger refuses them. The owner is the role migrations run
-- as, and the server connects as that same role (scripts/pg makes one role, `werklab`, which
-- owns the database). An owner can grant itself the privileges back and drop the trigger, so
-- what really holds is this: no statement the server sends, whatever data it is given, can
-- change or remove an entry, since both ways back are GRANT or DDL, and the server sends
-- neither (its SQL is fixed text, values travel only as parameters). Against someone who can
-- send the owner's SQL, only a server role that owns nothing would hold; the migrations do not
-- set up such a role today.
--
-- Retention keeps that, with one narrow door: audit_log_expire(). It runs as the owner
-- (SECURITY DEFINER, with its search_path fixed), grants the owner DELETE, deletes what is older
-- than the period, and revokes DELETE again, all inside the caller's transaction. A grant is
-- visible to no other session before commit, and it is revoked before the function returns
-- (rolled back with it, should it fail), so at no moment can a statement other than this
-- function's DELETE use it: a DELETE anywhere else still fails for lack of privilege, as before.
-- The trigger is the second line: it lets a DELETE through only for an entry older than the
-- floor, so neither the function nor an owner that grants itself DELETE can remove a younger
-- entry without dropping the trigger (DDL). UPDATE and TRUNCATE stay refused, always.
--
-- The floor is 180 days: the audit log is what answers a person's question "who saw my data"
-- and what an incident, often found months later, is investigated with; entries younger than
-- the floor are what no configuration, wrong or hostile, and no caller of the function can take
-- away. The server's configuration refuses shorter periods too (server/config.c).

CREATE FUNCTION audit_log_minimum_age() RETURNS interval LANGUAGE sql IMMUTABLE AS $$
    SELECT interval '180 days'
$$;

CREATE OR REPLACE FUNCTION audit_log_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.at < now() - audit_log_minimum_age() THEN
        RETURN OLD;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('an audit entry is kept at least %s', audit_log_minimum_age());
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
        MESSAGE = 'the audit log is append-only';
END
$$;

-- Deletes audit entries older than days (at most 10,000 a call: a long backlog is worked off
-- over several runs, each of them short); returns how many.
CREATE FUNCTION audit_log_expire(days integer) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    n bigint;
BEGIN
    IF days IS NULL OR make_interval(days => days) < audit_log_minimum_age() THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('audit entries are kept at least %s, not %s days',
                             audit_log_minimum_age(), days);
    END IF;
    -- Callers take turns, under the retention lock ('retain' in ASCII): GRANT and REVOKE of two
    -- at once would collide on the table's row in pg_class. (Re-entrant: retention_run() holds
    -- it already.)
    PERFORM pg_advisory_xact_lock(8243122654701027328);
    -- Most runs find nothing to delete: they leave the privileges (a row of pg_class) alone.
    IF NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.at < now() - make_interval(days => days)) THEN
        RETURN 0;
    END IF;
    GRANT DELETE ON audit_log TO CURRENT_USER;
    DELETE FROM audit_log
    WHERE id IN (SELECT a.id FROM audit_log a WHERE a.at < now() - make_interval(days => days)
                 ORDER BY a.at, a.id LIMIT 10000);
    GET DIAGNOSTICS n = ROW_COUNT;
    REVOKE DELETE ON audit_log FROM CURRENT_USER;
    RETURN n;
END
$$;
-- Its search_path is this schema (then pg_temp, last), so that no object of another schema
-- stands in for audit_log or a function it calls while it runs as the owner.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION audit_log_expire(integer) SET search_path = %I, pg_temp',
                   current_schema());
END
$$;
-- Only the owner (and so the server, which connects as the owner) may call it: another role of
-- the cluster must not shorten how long entries are kept. A server role of its own would be
-- granted EXECUTE on it by the owner.
REVOKE ALL ON FUNCTION audit_log_expire(integer) FROM PUBLIC;

-- ---- One run ----
-- Applies the three periods (in days) and answers what changed, one row per kind: inquiries
-- (deleted), participants and contacts (anonymised), mentions (other rows of their werklabs in
-- which a name, address or phone number was erased), failed (werklabs whose anonymisation a
-- constraint refused, left as they were), auditEntries (deleted). Answers no rows when another
-- session runs it at this moment: instances sharing the database take turns, and a run that
-- finds the lock taken does nothing. Each kind is done in batches (1,000 inquiries, 100
-- werklabs, 10,000 audit entries a run), so that a run stays short (100 werklabs of 15
-- participants and 10,000 entries: under 2 s); the next run goes on.
--
-- Floors: an inquiry and a closed werklab's people are kept at least 30 days. Less would take
-- away what staff still work with (an inquiry not yet answered, the feedback and follow-up
-- after a werklab's last session); this guards against a mistake, not an attacker: the
-- server's role may change and delete these rows through the API anyway.
CREATE FUNCTION retention_run(inquiry_days integer, participant_days integer,
                              audit_days integer)
RETURNS TABLE (what text, changed bigint) LANGUAGE plpgsql AS $$
DECLARE
    werklab uuid;
    erasure record;
    n bigint;
    erased_participants bigint := 0;
    erased_contacts bigint := 0;
    erased_mentions bigint := 0;
    failed bigint := 0;
BEGIN
    IF inquiry_days IS NULL OR inquiry_days < 30 OR participant_days IS NULL
       OR participant_days < 30 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'inquiries and the people of closed werklabs are kept at least 30 days';
    END IF;
    -- The retention lock ('retain' in ASCII), until the transaction ends.
    IF NOT pg_try_advisory_xact_lock(8243122654701027328) THEN
        RETURN;
    END IF;

    DELETE FROM inquiries
    WHERE id IN (SELECT i.id FROM inquiries i
                 WHERE i.werklab_id IS NULL
                   AND i.updated_at < now() - make_interval(days => inquiry_days)
                 ORDER BY i.updated_at, i.id LIMIT 1000);
    GET DIAGNOSTICS n = ROW_COUNT;
    what := 'inquiries'; changed := n; RETURN NEXT;

    FOR werklab IN
        SELECT w.id FROM werklabs w
        WHERE w.closed_at < now() - make_interval(days => participant_days)
          AND (EXISTS (SELECT 1 FROM participants p
                       WHERE p.werklab_id = w.id AND NOT erased(p.email))
               OR EXISTS (SELECT 1 FROM inquiries i
                          WHERE i.werklab_id = w.id AND NOT erased(i.email)))
        ORDER BY w.closed_at, w.id LIMIT 100
    LOOP
        -- One werklab at a time: a value the erasure cannot store (a CHECK refuses it) leaves
        -- that werklab as it was, counted as failed, and the others are done.
        BEGIN
            erasure := erase_werklab_people(werklab);
            erased_participants := erased_participants + erasure.erased_participants;
            erased_contacts := erased_contacts + erasure.erased_contacts;
            erased_mentions := erased_mentions + erasure.erased_mentions;
        EXCEPTION WHEN check_violation THEN
            failed := failed + 1;
        END;
    END LOOP;
    what := 'participants'; changed := erased_participants; RETURN NEXT;
    what := 'contacts'; changed := erased_contacts; RETURN NEXT;
    what := 'mentions'; changed := erased_mentions; RETURN NEXT;
    what := 'failed'; changed := failed; RETURN NEXT;

    what := 'auditEntries'; changed := audit_log_expire(audit_days); RETURN NEXT;
END
$$;
