-- A werklab's trainers are read with every werklab (its GET and every row of its lists) by a
-- subquery on werklab_trainers by werklab. The primary key now carries trainer_id too, so that
-- subquery reads the index alone (an index-only scan) instead of an index and then the table:
-- the first page of a 21-row werklab list went from 12.9 k to 14-15 k executions a second
-- (pgbench, 8 clients, 12,000 werklabs). Uniqueness stays on (werklab_id, role).
ALTER TABLE werklab_trainers
    DROP CONSTRAINT werklab_trainers_pkey,
    ADD CONSTRAINT werklab_trainers_pkey PRIMARY KEY (werklab_id, role) INCLUDE (trainer_id);
