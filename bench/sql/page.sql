-- pgbench -M prepared: what werklabd runs for GET /v1/municipalities?limit=20, the first page of
-- the municipality list (bench/run's `page`): one statement, no transaction. The row count is
-- in the SQL (the page size plus one), and page 1 has no cursor, so nothing varies.
SELECT id, code, name, province, contact_name, contact_email, contact_phone, notes, version, created_at, updated_at, created_at AS sort_1, municipalities.id AS row_id FROM municipalities WHERE true ORDER BY created_at ASC, municipalities.id ASC LIMIT 21;
