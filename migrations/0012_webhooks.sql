-- Webhooks: receivers told of the change feed's entries that their events and view select,
-- signed as the Standard Webhooks specification says. A subscription follows the feed exactly
-- as a CRM polling /v1/changes would, storing its position only once the receiver acknowledged:
-- the feed stays the one source of truth, and nothing is stored per event but the attempts.

CREATE TABLE webhook_subscriptions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    url text NOT NULL
        CONSTRAINT webhook_subscriptions_url_length CHECK (char_length(url) BETWEEN 1 AND 2000),
    -- "werklab.created", "werklab.*": a type and an operation, or every operation of a type.
    events text[] NOT NULL CONSTRAINT webhook_subscriptions_events CHECK (
        cardinality(events) BETWEEN 1 AND 40 AND array_position(events, NULL) IS NULL),
    description text
        CONSTRAINT webhook_subscriptions_description_length CHECK (char_length(description) <= 500),
    enabled boolean NOT NULL DEFAULT true,
    -- What the receiver may read: staff (whole objects) or partner (as a partner key, limited to
    -- municipality_codes when given).
    view text NOT NULL CONSTRAINT webhook_subscriptions_view CHECK (view IN ('staff', 'partner')),
    municipality_codes text[] CONSTRAINT webhook_subscriptions_codes CHECK (
        municipality_codes IS NULL OR (view = 'partner' AND cardinality(municipality_codes) >= 1)),
    -- The signing secret ("whsec_" and base64 of 32 random bytes). During a rotation the
    -- previous one signs next to it until previous_secret_until.
    secret text NOT NULL,
    previous_secret text,
    previous_secret_until timestamptz,
    -- What the sender reads each event's object with: an API key of the subscription's view
    -- (role staff, or partner limited to its municipalities), so that a receiver gets exactly
    -- what that key may read, by the same code that answers the key. Revoked with the
    -- subscription; shown in GET /v1/api-keys like any key.
    view_key text NOT NULL,
    view_key_id uuid NOT NULL REFERENCES api_keys,
    -- The feed position acknowledged so far: a new subscription starts at the feed's end.
    position_txid xid8 NOT NULL,
    position_seq bigint NOT NULL,
    -- The sender's account of itself (not changes of the subscription: they keep its version).
    last_success_at timestamptz,
    last_failure_at timestamptz,
    last_error text,
    failing_since timestamptz,
    attempts integer NOT NULL DEFAULT 0, -- failed attempts at the entry after the position
    next_attempt_at timestamptz,
    disabled_reason text,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- What an administrator changes is a new version; the sender's bookkeeping is not.
CREATE TRIGGER webhook_subscriptions_touch BEFORE UPDATE OF url, events, description, enabled,
    secret ON webhook_subscriptions FOR EACH ROW EXECUTE FUNCTION touch_row();
CREATE INDEX webhook_subscriptions_created ON webhook_subscriptions (created_at, id);
CREATE INDEX webhook_subscriptions_due ON webhook_subscriptions (next_attempt_at) WHERE enabled;

-- Enabled again (by an administrator, after the sender disabled it): it resumes at its
-- position, with the failures behind it forgotten; or, when the feed was pruned past that
-- position meanwhile (its disabledReason said so), at the oldest entry the feed holds.
CREATE FUNCTION webhook_subscriptions_enabled() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    h changes_horizon;
BEGIN
    IF NEW.enabled AND NOT OLD.enabled THEN
        NEW.disabled_reason := NULL;
        NEW.failing_since := NULL;
        NEW.attempts := 0;
        NEW.next_attempt_at := NULL;
        SELECT * INTO h FROM changes_horizon;
        IF (NEW.position_txid, NEW.position_seq) < (h.txid, h.seq) THEN
            NEW.position_txid := h.txid;
            NEW.position_seq := h.seq;
        END IF;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER webhook_subscriptions_enabled BEFORE UPDATE OF enabled ON webhook_subscriptions
    FOR EACH ROW EXECUTE FUNCTION webhook_subscriptions_enabled();

-- A subscription deleted takes its view key with it.
CREATE FUNCTION webhook_subscriptions_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = OLD.view_key_id;
    RETURN OLD;
END
$$;
CREATE TRIGGER webhook_subscriptions_deleted AFTER DELETE ON webhook_subscriptions
    FOR EACH ROW EXECUTE FUNCTION webhook_subscriptions_deleted();

-- Every attempt to deliver, for GET /v1/webhook-subscriptions/{id}/deliveries; pruned with the
-- change feed's retention.
CREATE TABLE webhook_deliveries (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    subscription_id uuid NOT NULL REFERENCES webhook_subscriptions ON DELETE CASCADE,
    -- The Standard Webhooks message id: the feed position, the same for every retry.
    webhook_id text NOT NULL,
    event text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(), -- when it was attempted
    status integer,
    error text,
    duration_ms integer NOT NULL,
    next_attempt_at timestamptz,
    -- An attempt never changes; the columns every resource's rows have (not rendered).
    version integer NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_latest ON webhook_deliveries (subscription_id, created_at, id);

-- Whether subscription s is told of feed entry c: its events name the entry's type and
-- operation, and its view reads the type (a partner view: the types partners read, of its
-- municipalities when it names some; api/changes.c PARTNER_TYPES).
CREATE FUNCTION webhook_selects(s webhook_subscriptions, c changes) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT (c.type || '.' || c.op = ANY (s.events) OR c.type || '.*' = ANY (s.events))
       AND (s.view = 'staff'
            OR (c.type = ANY ('{municipality,initiative,werklab,session,feedback}'::text[])
                AND (s.municipality_codes IS NULL OR c.municipality_id IN (
                     SELECT id FROM municipalities WHERE code = ANY (s.municipality_codes)))))
$$;

-- The entries subscription s has still to be told of: those of ended transactions after its
-- position (the feed's own rule, api/changes.c).
CREATE FUNCTION webhook_backlog(s webhook_subscriptions) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT count(*)::integer FROM changes c
     WHERE (c.txid, c.seq) > (s.position_txid, s.position_seq)
       AND c.txid < pg_snapshot_xmin(pg_current_snapshot())
       AND webhook_selects(s, c)
$$;
