-- Erasure matches mentions as whole words.
--
-- 0005 replaced every occurrence of a name, also inside other words: erasing a person called
-- "Ann" turned the status of every planned werklab into 'pl[erased]ed', which the status rules
-- refuse, so the erasure failed; and it deleted every stored idempotent answer that held the
-- word "planned". A mention is now the name, address or phone number with no letter, digit or
-- underscore right before or after it.

-- The regular expression (case-insensitive use: ~*) matching needle as a whole word.
CREATE FUNCTION mention_pattern(needle text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT '(?<![[:alnum:]_])' || regexp_replace(needle, '([.^$*+?()\[\]{}|\\-])', '\\\1', 'g')
           || '(?![[:alnum:]_])'
$$;

CREATE OR REPLACE FUNCTION erase_mentions(needle text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    col record;
    pattern text := mention_pattern(needle);
    changed bigint := 0;
    n bigint;
BEGIN
    IF needle IS NULL OR length(needle) < 3 THEN
        RETURN 0;
    END IF;
    FOR col IN
        SELECT c.table_name, c.column_name FROM information_schema.columns c
        JOIN information_schema.tables t
          ON t.table_schema = c.table_schema AND t.table_name = c.table_name
        WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
          AND c.data_type = 'text'
          AND c.table_name NOT IN ('audit_log', 'changes', 'schema_migrations', 'server_secrets',
                                   'idempotency_keys', 'api_keys')
    LOOP
        EXECUTE format('UPDATE %I SET %I = regexp_replace(%I, $1, ''[erased]'', ''gi'') '
                       'WHERE %I ~* $1', col.table_name, col.column_name, col.column_name,
                       col.column_name)
            USING pattern;
        GET DIAGNOSTICS n = ROW_COUNT;
        changed := changed + n;
    END LOOP;
    RETURN changed;
END
$$;

-- The same, with stored answers deleted only when they mention the person as a word.
CREATE OR REPLACE FUNCTION erase_data_subject(address text)
RETURNS TABLE (what text, changed bigint) LANGUAGE plpgsql AS $$
DECLARE
    needles text[];
    n bigint;
    needle text;
    mentions bigint := 0;
BEGIN
    address := lower(address);
    -- Every name and phone number held with this address: they are erased wherever they appear.
    SELECT array_agg(DISTINCT v) FILTER (WHERE v IS NOT NULL AND length(v) >= 3) INTO needles
    FROM (SELECT name FROM participants WHERE lower(email) = address
          UNION ALL SELECT name FROM trainers WHERE lower(email) = address
          UNION ALL SELECT phone FROM trainers WHERE lower(email) = address
          UNION ALL SELECT contact_name FROM inquiries WHERE lower(email) = address
          UNION ALL SELECT phone FROM inquiries WHERE lower(email) = address
          UNION ALL SELECT contact_name FROM municipalities WHERE lower(contact_email) = address
          UNION ALL SELECT contact_phone FROM municipalities WHERE lower(contact_email) = address
          UNION ALL SELECT contact_name FROM initiatives WHERE lower(contact_email) = address
          UNION ALL SELECT contact_phone FROM initiatives WHERE lower(contact_email) = address)
        AS held(v);

    UPDATE participants SET name = '[erased]', email = 'erased-' || id || '@erased.invalid',
        job_title = NULL WHERE lower(email) = address;
    GET DIAGNOSTICS n = ROW_COUNT;
    what := 'participants'; changed := n; RETURN NEXT;

    UPDATE trainers SET name = '[erased]', email = 'erased-' || id || '@erased.invalid',
        phone = NULL, bio = NULL WHERE lower(email) = address;
    GET DIAGNOSTICS n = ROW_COUNT;
    what := 'trainers'; changed := n; RETURN NEXT;

    UPDATE inquiries SET contact_name = '[erased]', email = 'erased-' || id || '@erased.invalid',
        phone = NULL WHERE lower(email) = address;
    GET DIAGNOSTICS n = ROW_COUNT;
    what := 'inquiries'; changed := n; RETURN NEXT;

    UPDATE municipalities SET contact_name = NULL, contact_email = NULL, contact_phone = NULL
    WHERE lower(contact_email) = address;
    GET DIAGNOSTICS n = ROW_COUNT;
    what := 'municipalityContacts'; changed := n; RETURN NEXT;

    UPDATE initiatives SET contact_name = NULL, contact_email = NULL, contact_phone = NULL
    WHERE lower(contact_email) = address;
    GET DIAGNOSTICS n = ROW_COUNT;
    what := 'initiativeContacts'; changed := n; RETURN NEXT;

    FOREACH needle IN ARRAY coalesce(needles, '{}') || ARRAY[address] LOOP
        mentions := mentions + erase_mentions(needle);
    END LOOP;
    what := 'mentions'; changed := mentions; RETURN NEXT;

    -- Stored answers of idempotent POSTs may repeat what was erased.
    DELETE FROM idempotency_keys k
    WHERE EXISTS (SELECT 1 FROM unnest(coalesce(needles, '{}') || ARRAY[address]) AS x(v)
                  WHERE k.body ~* mention_pattern(x.v));
    GET DIAGNOSTICS n = ROW_COUNT;
    what := 'storedAnswers'; changed := n; RETURN NEXT;
END
$$;
