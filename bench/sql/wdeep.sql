-- pgbench -M simple, the statement prepared once a connection (PREPARE) and run with EXECUTE:
-- what werklabd runs for page DEEP_PAGE of the werklab list (bench/run's `wdeep`), the keyset
-- condition with the deep page's cursor, (created_at, id) > (:cursor_at, :cursor_id), given by
-- bench/run (-D) from the URL the wrk run reads. werklabd's statement uses its parameters out of
-- order and twice ($3, $2, $1, $4, $2, $1); pgbench -M prepared numbers a script's variables in
-- the order they appear, each anew, which would be another statement for pg_stat_statements.
-- A prepared statement's plans are cached as werklabd's are (generic after five custom ones
-- when that is cheaper). bench/run gives -D prepared=0; each connection prepares once.
\if :prepared
\else
PREPARE wdeep AS SELECT * FROM ((SELECT id, municipality_id, title, status, intake_held_on, intake_needs, intake_developments, intake_goals, capacity_min, capacity_max, (SELECT string_agg(t.trainer_id::text || ' ' || t.role, ';' ORDER BY t.role) FROM werklab_trainers t WHERE t.werklab_id = werklabs.id), participant_count, quote_amount_cents, quote_currency, quote_note, shared_vision, starts_on, ends_on, version, created_at, updated_at, created_at AS sort_1, werklabs.id AS row_id FROM werklabs WHERE true AND (status = $3::text) AND (created_at, werklabs.id) > ($2::timestamptz, $1::uuid) ORDER BY created_at ASC, werklabs.id ASC LIMIT 21) UNION ALL (SELECT id, municipality_id, title, status, intake_held_on, intake_needs, intake_developments, intake_goals, capacity_min, capacity_max, (SELECT string_agg(t.trainer_id::text || ' ' || t.role, ';' ORDER BY t.role) FROM werklab_trainers t WHERE t.werklab_id = werklabs.id), participant_count, quote_amount_cents, quote_currency, quote_note, shared_vision, starts_on, ends_on, version, created_at, updated_at, created_at AS sort_1, werklabs.id AS row_id FROM werklabs WHERE true AND (status = $4::text) AND (created_at, werklabs.id) > ($2::timestamptz, $1::uuid) ORDER BY created_at ASC, werklabs.id ASC LIMIT 21)) AS merged ORDER BY sort_1 ASC, row_id ASC LIMIT 21;
\set prepared 1
\endif
EXECUTE wdeep(':cursor_id', ':cursor_at', ':status_1', ':status_2');
