-- pgbench -M simple, each statement prepared once a connection (PREPARE) and run with EXECUTE:
-- what werklabd runs for PATCH /v1/initiatives/{id} changing the description, without If-Match
-- (bench/run's `patch`): one statement, its own transaction: the UPDATE with the audit entry of
-- the row it returns (a CTE, audit_sql_around). The UPDATE uses its parameters out of order and several
-- times ($3 for every field), which pgbench -M prepared cannot send (it numbers each variable
-- anew where it appears), and binds NULL for every field not given, which it cannot bind either.
-- The row is one of the :rows initiatives bench/run loads for the patches, at random, as the
-- wrk run picks it: their ids end in the twelve digits 100000000001 and up.
\if :prepared
\else
PREPARE upd AS WITH w (written_id) AS (UPDATE initiatives SET municipality_id = CASE WHEN substr($3, 1, 1) = '1' THEN $4::uuid ELSE municipality_id END, name = CASE WHEN substr($3, 2, 1) = '1' THEN $5::text ELSE name END, kind = CASE WHEN substr($3, 3, 1) = '1' THEN $6::text ELSE kind END, legal_form = CASE WHEN substr($3, 4, 1) = '1' THEN $7::text ELSE legal_form END, kvk_number = CASE WHEN substr($3, 5, 1) = '1' THEN $8::text ELSE kvk_number END, themes = CASE WHEN substr($3, 6, 1) = '1' THEN $9::text[] ELSE themes END, neighbourhood = CASE WHEN substr($3, 7, 1) = '1' THEN $10::text ELSE neighbourhood END, description = CASE WHEN substr($3, 8, 1) = '1' THEN $11::text ELSE description END, website = CASE WHEN substr($3, 9, 1) = '1' THEN $12::text ELSE website END, lsa_member = CASE WHEN substr($3, 10, 1) = '1' THEN $13::boolean ELSE lsa_member END, right_to_challenge = CASE WHEN substr($3, 11, 1) = '1' THEN $14::boolean ELSE right_to_challenge END, contact_name = CASE WHEN substr($3, 12, 1) = '1' THEN $15::text ELSE contact_name END, contact_email = CASE WHEN substr($3, 13, 1) = '1' THEN $16::text ELSE contact_email END, contact_phone = CASE WHEN substr($3, 14, 1) = '1' THEN $17::text ELSE contact_phone END WHERE id = $1 AND ($2::integer IS NULL OR version = $2::integer) RETURNING id, municipality_id, name, kind, legal_form, kvk_number, themes, neighbourhood, description, website, lsa_member, right_to_challenge, contact_name, contact_email, contact_phone, version, created_at, updated_at), a AS (INSERT INTO audit_log (key_id, action, resource, resource_id, status, request_id, subject, client) SELECT $18::uuid, $19, $20, w.written_id, $21::integer, $22, $23, $24 FROM w) SELECT * FROM w;
\set prepared 1
\endif
\set r random(100000000001, 100000000000 + :rows)
\set n random(1, 1000000000)
EXECUTE upd('00000000-0000-4000-8000-:r', NULL, '00000001000000', NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'Beschrijving :n', NULL, NULL, NULL, NULL, NULL, NULL, ':key_id', 'update', '/v1/initiatives/{id}', 200, gen_random_uuid()::text, NULL, NULL);
