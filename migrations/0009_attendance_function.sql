-- Attendance: the replacement of a session's attendance list as one SQL function, like
-- erase_data_subject(). PUT /v1/sessions/{id}/attendance is one operation; the server sends it
-- as one statement, and its steps and their order stand here, in one place. The other list a
-- session holds, the initiatives taking part, is replaced alike.

-- Replaces the attendance of session `for_session` with `records`, a JSON array of
-- {"participantId", "status"} whose shape the server has checked.
--
-- A record whose participant is not a participant of the session's werklab refuses the whole
-- list: each such record is answered as a row (unknown_at: its index from 0; version NULL), in
-- the order of the array, and nothing is written, so the server can name every one of them.
-- Otherwise the list is replaced, the session's version moves with it (the session's ETag
-- covers its attendance), and the one row answered holds that new version (unknown_at NULL).
--
-- The caller has locked the session's row (SELECT ... FOR UPDATE) in its transaction, so
-- concurrent replacements of one list take turns. What the statements raise (SQLSTATEs,
-- constraint names) reaches the caller unchanged, for the server to answer as it answers the
-- same constraint anywhere.
CREATE FUNCTION replace_attendance(for_session uuid, records jsonb)
RETURNS TABLE (unknown_at bigint, version integer) LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    SELECT e.n - 1, NULL::integer
    FROM jsonb_array_elements(records) WITH ORDINALITY AS e(v, n)
    WHERE NOT EXISTS (SELECT 1 FROM participants p JOIN sessions s ON s.werklab_id = p.werklab_id
                      WHERE s.id = for_session AND p.id = (e.v ->> 'participantId')::uuid)
    ORDER BY e.n;
    IF FOUND THEN
        RETURN;
    END IF;

    DELETE FROM attendance a WHERE a.session_id = for_session;
    INSERT INTO attendance (session_id, participant_id, status)
    SELECT for_session, (e.v ->> 'participantId')::uuid, e.v ->> 'status'
    FROM jsonb_array_elements(records) AS e(v);

    RETURN QUERY
    UPDATE sessions s SET updated_at = now() WHERE s.id = for_session RETURNING NULL::bigint, s.version;
END
$$;

-- Replaces the initiatives taking part in session `for_session` with `records`, a JSON array of
-- {"initiativeId", "role"} whose shape the server has checked: the `initiatives` field of a
-- session, written in the transaction of the session's own create or patch. The rules
-- (an initiative of the werklab's municipality, one role each) are the table's; what they raise
-- reaches the caller unchanged.
CREATE FUNCTION replace_session_initiatives(for_session uuid, records jsonb)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM session_initiatives si WHERE si.session_id = for_session;
    INSERT INTO session_initiatives (session_id, initiative_id, role)
    SELECT for_session, (e.v ->> 'initiativeId')::uuid, e.v ->> 'role'
    FROM jsonb_array_elements(records) AS e(v);
END
$$;
