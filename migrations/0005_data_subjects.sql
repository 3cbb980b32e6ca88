-- Data subjects: erasure of one person, found by e-mail address, everywhere at once.

-- Replaces every mention of needle (case-insensitive) in every text column of the domain's
-- tables; returns how many values changed. The audit log and the change feed hold no personal
-- data, so they are not touched.
CREATE FUNCTION erase_mentions(needle text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    col record;
    pattern text := regexp_replace(needle, '([.^$*+?()\[\]{}|\\-])', '\\\1', 'g');
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

-- Anonymises everything held about the person with this e-mail address and answers what it
-- changed. Aggregates stay: rows are kept (so counts hold), ratings are kept; what identifies
-- the person is replaced.
CREATE FUNCTION erase_data_subject(address text)
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
                  WHERE k.body ILIKE '%' || x.v || '%');
    GET DIAGNOSTICS n = ROW_COUNT;
    what := 'storedAnswers'; changed := n; RETURN NEXT;
END
$$;
