-- Revocations told to every instance at once. Each werklabd keeps the keys it checked in a cache
-- for WERKLAB_KEY_CACHE_MS (server/auth.h) and LISTENs on the channel werklab_revoked
-- (server/notify.h): a key revoked through any instance, by a subscription's deletion
-- (webhook_subscriptions_deleted) or by hand in SQL is announced here, with its id as the
-- payload, and every instance drops it from its cache when the notification arrives.
--
-- A trigger rather than a NOTIFY in the program: every path that revokes a key is covered, also
-- those that are not the API's. NOTIFY is delivered only once the transaction commits (and not
-- at all when it rolls back), and only to sessions whose snapshots then see the commit, so an
-- instance told of a revocation that looks the key up again finds it revoked.
--
-- Not only revocation: any change of what an instance keeps of a key (its role, its limits, its
-- expiry, its hash; none of them changes through the API, but an operator may change them in
-- SQL) and a deleted row are announced alike. Using a key (last_used_at) is not, nor is revoking
-- a key again (revoked_at stays as it was).
CREATE FUNCTION api_keys_announce() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('werklab_revoked', OLD.id::text);
        RETURN OLD;
    END IF;
    IF (OLD.revoked_at, OLD.role, OLD.secret_hash, OLD.municipality_codes, OLD.expires_at,
        OLD.require_if_match, OLD.rate_limit)
       IS DISTINCT FROM
       (NEW.revoked_at, NEW.role, NEW.secret_hash, NEW.municipality_codes, NEW.expires_at,
        NEW.require_if_match, NEW.rate_limit) THEN
        PERFORM pg_notify('werklab_revoked', NEW.id::text);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER api_keys_announce AFTER UPDATE OF revoked_at, role, secret_hash,
    municipality_codes, expires_at, require_if_match, rate_limit OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_announce();
