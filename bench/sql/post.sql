-- pgbench -M simple, each statement prepared once a connection (PREPARE) and run with EXECUTE:
-- what werklabd runs for POST /v1/initiatives (bench/run's `post`) with the body bench/requests.lua
-- sends (municipalityId, name, kind, description): one statement, its own transaction: the INSERT
-- with the audit entry of the row it returns (a CTE, audit_sql_around). EXECUTE because pgbench -M prepared
-- cannot bind NULL (it sends the text NULL), and werklabd binds NULL for every field not given.
-- The municipality is one of all of them at random, as the wrk run picks it: their ids are read
-- once a connection into a setting (the SELECT below, once per client: not the endpoint's); the
-- audit entry names the admin key (:key_id, given by bench/run) and a fresh request id.
\if :prepared
\else
PREPARE ins AS WITH w (written_id) AS (INSERT INTO initiatives (municipality_id, name, kind, legal_form, kvk_number, themes, neighbourhood, description, website, lsa_member, right_to_challenge, contact_name, contact_email, contact_phone) VALUES ($1::uuid, $2::text, $3::text, $4::text, $5::text, $6::text[], $7::text, $8::text, $9::text, $10::boolean, $11::boolean, $12::text, $13::text, $14::text) RETURNING id, municipality_id, name, kind, legal_form, kvk_number, themes, neighbourhood, description, website, lsa_member, right_to_challenge, contact_name, contact_email, contact_phone, version, created_at, updated_at), a AS (INSERT INTO audit_log (key_id, action, resource, resource_id, status, request_id, subject, client) SELECT $15::uuid, $16, $17, w.written_id, $18::integer, $19, $20, $21 FROM w) SELECT * FROM w;
SELECT set_config('bench.municipalities', string_agg(id::text, ','), false), count(*) AS municipalities FROM municipalities \gset
\set prepared 1
\endif
\set m random(1, :municipalities)
\set n random(1, 1000000000)
EXECUTE ins(split_part(current_setting('bench.municipalities'), ',', :m)::uuid, 'Bench initiative :client_id-:n', 'residentInitiative', NULL, NULL, '{}', NULL, 'Beschrijving :n', NULL, false, false, NULL, NULL, NULL, ':key_id', 'create', '/v1/initiatives', 201, gen_random_uuid()::text, NULL, NULL);
