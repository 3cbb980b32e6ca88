-- pgbench -M prepared: what werklabd runs for the same read with a staff key (bench/run's
-- `staff`): the read of partner.sql, and its audit entry, committed before the answer. werklabd's
-- audit writer commits the entries of the reads waiting on it together, one multi-row INSERT a
-- transaction; :batch is how many entries its commits held in werklabd's run at the same number
-- of connections (bench/run gives it, and the entries' values as arrays of that many). Here one
-- transaction in :batch, at random, commits such an INSERT after its read, so PostgreSQL does the
-- reads, the rows and the commits werklabd's run asked of it; the client whose turn it was waits
-- for the commit, as werklabd's waiting reads do.
SELECT id, code, name, province, contact_name, contact_email, contact_phone, notes, version, created_at, updated_at FROM municipalities WHERE id = :cid::uuid;
\set turn random(1, :batch)
\if :turn = 1
INSERT INTO audit_log (key_id, action, resource, resource_id, status, request_id, at, subject, client) SELECT k, a, r, i, s, q, coalesce(t, clock_timestamp()), p, c FROM unnest(:e_key::uuid[], :e_action::text[], :e_resource::text[], :e_resource_id::uuid[], :e_status::integer[], :e_request::text[], :e_at::timestamptz[], :e_subject::text[], :e_client::text[]) AS e(k, a, r, i, s, q, t, p, c) ORDER BY t;
\endif
