-- pgbench -M prepared: what werklabd runs for GET /v1/municipalities/{id} with a partner key
-- (bench/run's `partner`): one statement, no transaction, for the municipality with a contact
-- person (:cid, given by bench/run). The partner is not shown the contact, so nothing is audited.
SELECT id, code, name, province, contact_name, contact_email, contact_phone, notes, version, created_at, updated_at FROM municipalities WHERE id = :cid::uuid;
