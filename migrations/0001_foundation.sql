-- The foundation: API keys, municipalities, and what every table shares.

-- Keeps version and updated_at for every row: +1 and now() on each change, whatever the
-- statement, so that ETags and updatedSince can never miss a change.
CREATE FUNCTION touch_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

-- Secrets the instances share, made once by the database: the key that signs list cursors.
CREATE TABLE server_secrets (
    name text PRIMARY KEY,
    value bytea NOT NULL
);
INSERT INTO server_secrets (name, value)
VALUES ('cursor', decode(replace(gen_random_uuid()::text || gen_random_uuid()::text
                                 || gen_random_uuid()::text, '-', ''), 'hex'));

CREATE TABLE api_keys (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL CONSTRAINT api_keys_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    role text NOT NULL CONSTRAINT api_keys_role CHECK (role IN ('admin', 'staff', 'partner')),
    -- SHA-256 of the key; the key itself is shown once and never stored.
    secret_hash bytea NOT NULL CONSTRAINT api_keys_secret_hash_key UNIQUE,
    -- For partner keys: the municipalities (GM codes) they are limited to; NULL means all.
    municipality_codes text[],
    expires_at timestamptz,
    revoked_at timestamptz,
    last_used_at timestamptz,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- Using a key updates last_used_at; that is not a change of the key, so it does not count.
CREATE TRIGGER api_keys_touch BEFORE UPDATE OF name, role, municipality_codes, expires_at,
    revoked_at ON api_keys FOR EACH ROW EXECUTE FUNCTION touch_row();
CREATE INDEX api_keys_created ON api_keys (created_at, id);
CREATE INDEX api_keys_name ON api_keys (name, id);

CREATE TABLE municipalities (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code text NOT NULL
        CONSTRAINT municipalities_code_key UNIQUE
        CONSTRAINT municipalities_code_format CHECK (code ~ '^GM[0-9]{4}$'),
    name text NOT NULL
        CONSTRAINT municipalities_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    province text CONSTRAINT municipalities_province CHECK (province IN (
        'Groningen', 'Fryslân', 'Drenthe', 'Overijssel', 'Flevoland', 'Gelderland', 'Utrecht',
        'Noord-Holland', 'Zuid-Holland', 'Zeeland', 'Noord-Brabant', 'Limburg')),
    contact_name text CONSTRAINT municipalities_contact_name_length
        CHECK (char_length(contact_name) <= 200),
    contact_email text CONSTRAINT municipalities_contact_email_length
        CHECK (char_length(contact_email) <= 254),
    contact_phone text CONSTRAINT municipalities_contact_phone_length
        CHECK (char_length(contact_phone) <= 40),
    notes text CONSTRAINT municipalities_notes_length CHECK (char_length(notes) <= 4000),
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER municipalities_touch BEFORE UPDATE ON municipalities
    FOR EACH ROW EXECUTE FUNCTION touch_row();
-- Keyset pagination reads these in order; each ends in id, the tiebreaker.
CREATE INDEX municipalities_created ON municipalities (created_at, id);
CREATE INDEX municipalities_updated ON municipalities (updated_at, id);
CREATE INDEX municipalities_name ON municipalities (name, id);
CREATE INDEX municipalities_province ON municipalities ((coalesce(province, '')), id);
CREATE INDEX municipalities_search ON municipalities USING gin (to_tsvector('dutch', name));
