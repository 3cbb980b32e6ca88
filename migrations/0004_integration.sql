-- Integration: the change feed, the audit log, idempotent POSTs, per-key settings.

-- ---- The change feed ----
-- Every create, update and delete of every resource, recorded by triggers in the same
-- transaction as the change. Entries carry a transaction id: the feed serves only entries whose
-- transaction id is older than every transaction still running, ordered by (txid, seq), so an
-- entry can never appear behind a position a reader has already passed.
--
-- The txid of an entry is its own transaction's, or, when an earlier entry of the same object
-- carries a later one, that later one: a transaction that began early (a small txid) but
-- changes an object after a younger transaction did must not sort before it, or a reader would
-- end with the older version. Raising the txid keeps the guarantee: an entry whose txid is at
-- least its own transaction's is served only after that transaction ended.
CREATE TABLE changes (
    seq bigserial PRIMARY KEY,
    txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    type text NOT NULL,
    id uuid NOT NULL,
    op text NOT NULL CONSTRAINT changes_op CHECK (op IN ('created', 'updated', 'deleted')),
    version integer NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    -- For partner keys limited to municipalities; NULL for what has none.
    municipality_id uuid,
    -- The parent in the resource's path (a participant's werklab), so the feed can say where
    -- the resource is read.
    parent_id uuid
);
CREATE INDEX changes_position ON changes (txid, seq);
CREATE INDEX changes_at ON changes (at);
CREATE INDEX changes_object ON changes (id, txid);

-- The txid an entry for object `object` takes now (see above).
CREATE FUNCTION change_txid(object uuid) RETURNS xid8 LANGUAGE sql AS $$
    SELECT greatest(pg_current_xact_id(),
                    (SELECT c.txid FROM changes c WHERE c.id = object ORDER BY c.txid DESC LIMIT 1))
$$;

-- Where the feed begins after pruning: a position before it is gone (410).
CREATE TABLE changes_horizon (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    txid xid8 NOT NULL,
    seq bigint NOT NULL
);
INSERT INTO changes_horizon (txid, seq) VALUES ('0'::xid8, 0);

-- record_change(type) on a table: its rows' changes enter the feed.
CREATE FUNCTION record_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
    municipality uuid;
    parent uuid;
BEGIN
    IF TG_OP = 'DELETE' THEN
        r := OLD;
    ELSE
        r := NEW;
    END IF;
    -- One branch per shape of table: a branch names only fields its tables have.
    IF TG_TABLE_NAME = 'municipalities' THEN
        municipality := r.id;
    ELSIF TG_TABLE_NAME IN ('initiatives', 'werklabs') THEN
        municipality := r.municipality_id;
    ELSIF TG_TABLE_NAME IN ('participants', 'sessions', 'feedback') THEN
        SELECT w.municipality_id INTO municipality FROM werklabs w WHERE w.id = r.werklab_id;
    END IF;
    IF TG_TABLE_NAME = 'participants' THEN
        parent := r.werklab_id;
    END IF;
    INSERT INTO changes (txid, type, id, op, version, municipality_id, parent_id)
    VALUES (change_txid(r.id), TG_ARGV[0], r.id,
            CASE TG_OP WHEN 'INSERT' THEN 'created' WHEN 'UPDATE' THEN 'updated' ELSE 'deleted' END,
            CASE WHEN TG_OP = 'DELETE' THEN r.version + 1 ELSE r.version END, municipality, parent);
    RETURN NULL;
END
$$;

CREATE TRIGGER municipalities_changes AFTER INSERT OR UPDATE OR DELETE ON municipalities
    FOR EACH ROW EXECUTE FUNCTION record_change('municipality');
CREATE TRIGGER initiatives_changes AFTER INSERT OR UPDATE OR DELETE ON initiatives
    FOR EACH ROW EXECUTE FUNCTION record_change('initiative');
CREATE TRIGGER trainers_changes AFTER INSERT OR UPDATE OR DELETE ON trainers
    FOR EACH ROW EXECUTE FUNCTION record_change('trainer');
CREATE TRIGGER werklabs_changes AFTER INSERT OR UPDATE OR DELETE ON werklabs
    FOR EACH ROW EXECUTE FUNCTION record_change('werklab');
CREATE TRIGGER participants_changes AFTER INSERT OR UPDATE OR DELETE ON participants
    FOR EACH ROW EXECUTE FUNCTION record_change('participant');
CREATE TRIGGER sessions_changes AFTER INSERT OR UPDATE OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION record_change('session');
CREATE TRIGGER feedback_changes AFTER INSERT OR UPDATE OR DELETE ON feedback
    FOR EACH ROW EXECUTE FUNCTION record_change('feedback');
CREATE TRIGGER inquiries_changes AFTER INSERT OR UPDATE OR DELETE ON inquiries
    FOR EACH ROW EXECUTE FUNCTION record_change('inquiry');

-- Attendance has no id or version of its own: a change to it is a change of its session's
-- attendance list, recorded as type 'attendance' under the session's id.
CREATE FUNCTION record_attendance_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO changes (txid, type, id, op, version, municipality_id)
    SELECT change_txid(s.id), 'attendance', s.id, 'updated', s.version, w.municipality_id
    FROM sessions s JOIN werklabs w ON w.id = s.werklab_id
    WHERE s.id IN (SELECT session_id FROM changed);
    RETURN NULL;
END
$$;
CREATE TRIGGER attendance_changes_insert AFTER INSERT ON attendance
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION record_attendance_change();
CREATE TRIGGER attendance_changes_delete AFTER DELETE ON attendance
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION record_attendance_change();

-- ---- The audit log ----
-- Who did what: every write, and every read of personal data. Insert-only for the application:
-- the role that owns the table gives up changing and deleting, and a trigger refuses it too.
CREATE TABLE audit_log (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    key_id uuid,
    action text NOT NULL,
    resource text NOT NULL,
    resource_id uuid,
    status integer NOT NULL,
    request_id text
);
CREATE INDEX audit_log_at ON audit_log (at, id);
CREATE INDEX audit_log_key ON audit_log (key_id, at);
CREATE INDEX audit_log_resource ON audit_log (resource, resource_id, at);

CREATE FUNCTION audit_log_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
        MESSAGE = 'the audit log is append-only';
END
$$;
CREATE TRIGGER audit_log_immutable BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_immutable();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_immutable();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM CURRENT_USER;

-- ---- Idempotent POSTs ----
-- The first answer to a POST with an Idempotency-Key, stored in the transaction of its effect.
CREATE TABLE idempotency_keys (
    owner text NOT NULL,          -- the API key's id, or the client address for public POSTs
    key text NOT NULL,
    request_hash bytea NOT NULL,  -- of method, path and body: the same key with another body is 422
    status integer NOT NULL,
    location text,
    etag text,
    content_type text,
    body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- ---- Per-key settings ----
ALTER TABLE api_keys
    ADD COLUMN require_if_match boolean NOT NULL DEFAULT false,
    -- Requests per minute; NULL: the server's default; 0: unlimited.
    ADD COLUMN rate_limit integer CONSTRAINT api_keys_rate_limit CHECK (rate_limit >= 0);

-- What existed before the feed did enters it as created, so the feed tells the whole story.
INSERT INTO changes (type, id, op, version, municipality_id)
SELECT 'municipality', id, 'created', version, id FROM municipalities
UNION ALL SELECT 'initiative', id, 'created', version, municipality_id FROM initiatives
UNION ALL SELECT 'trainer', id, 'created', version, NULL FROM trainers
UNION ALL SELECT 'werklab', id, 'created', version, municipality_id FROM werklabs
UNION ALL SELECT 'participant', p.id, 'created', p.version, w.municipality_id
    FROM participants p JOIN werklabs w ON w.id = p.werklab_id
UNION ALL SELECT 'session', s.id, 'created', s.version, w.municipality_id
    FROM sessions s JOIN werklabs w ON w.id = s.werklab_id
UNION ALL SELECT 'feedback', f.id, 'created', f.version, w.municipality_id
    FROM feedback f JOIN werklabs w ON w.id = f.werklab_id
UNION ALL SELECT 'inquiry', id, 'created', version, NULL FROM inquiries;
UPDATE changes c SET parent_id = p.werklab_id FROM participants p
WHERE c.type = 'participant' AND c.id = p.id;
