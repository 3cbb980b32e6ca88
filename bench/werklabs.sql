-- Data for bench/run: werklabs with trainers, participants and sessions, loaded with psql as
-- the role that owns the tables, after `werklabd migrate`:
--
--   psql -X -v ON_ERROR_STOP=1 -v werklabs=12000 -f bench/werklabs.sql postgresql://werklab@.../werklab
--
-- Everything goes in through the tables' own triggers (participant counts, dates, versions, the
-- change feed, the status machine): the rows are what the API would have made, without the
-- hours that 12,000 werklabs take over HTTP. The rules the triggers keep decide the order:
-- werklabs start in inquiry or intake; participants join while a werklab is in intake (here);
-- sessions are added before a werklab is completed; a status moves one step of the machine at a
-- time (intake → planned → running → completed, or → cancelled).
--
-- The shape of an active programme: werklabs created over three years, the status following
-- the age (inquiries and intakes recent, completed ones old), about 40 % planned or running;
-- more werklabs in the larger municipalities (the first by code get more). Every planned,
-- running and completed werklab has both trainers, 8 to 15 participants and 3 or 4 sessions;
-- half of the intakes have a first trainer and a few participants. setseed makes every run load
-- the same shape (the ids differ: gen_random_uuid).
\if :{?werklabs}
\else
\set werklabs 12000
\endif

SELECT setseed(0.4242);

-- 48 trainers; those for the municipal organisation and those for resident initiatives are
-- different people, so a werklab's two roles never fall to one trainer.
INSERT INTO trainers (name, email, phone, expertise, bio)
SELECT 'Trainer ' || i, 'trainer' || i || '@bench.example', '+31 6 1000 ' || lpad(i::text, 4, '0'),
       CASE WHEN i % 2 = 0 THEN ARRAY['municipalOrganisation']
            ELSE ARRAY['residentInitiatives'] END,
       'Trains werklabs (bench/run).'
FROM generate_series(1, 48) i;

CREATE TEMP TABLE bench_trainer AS
SELECT row_number() OVER (PARTITION BY expertise[1] ORDER BY id) - 1 AS n, expertise[1] AS role, id
FROM trainers;

CREATE TEMP TABLE bench_municipality AS
SELECT row_number() OVER (ORDER BY code) - 1 AS n, id, name FROM municipalities;

-- The plan: one row a werklab, with the status it ends in and its age in days.
CREATE TEMP TABLE bench_plan AS
WITH draw AS (
    SELECT n, random() AS s, random() AS a, random() AS m, random() AS r FROM generate_series(1, :werklabs) n
), status AS (
    SELECT n, a, m, r, CASE
        WHEN s < 0.08 THEN 'inquiry'
        WHEN s < 0.20 THEN 'intake'
        WHEN s < 0.35 THEN 'planned'
        WHEN s < 0.60 THEN 'running'
        WHEN s < 0.92 THEN 'completed'
        ELSE 'cancelled' END AS target
    FROM draw
)
SELECT gen_random_uuid() AS id, n, target,
       -- days since creation, by status
       (CASE target
            WHEN 'inquiry' THEN a * 60
            WHEN 'intake' THEN a * 120
            WHEN 'planned' THEN 30 + a * 210
            WHEN 'running' THEN 90 + a * 275
            WHEN 'completed' THEN 300 + a * 795
            ELSE a * 1095 END) AS age,
       -- larger municipalities (here: the first by code) have more werklabs
       (SELECT id FROM bench_municipality WHERE bench_municipality.n = floor(342 * m * m)::int)
           AS municipality_id,
       r
FROM status;

INSERT INTO werklabs (id, municipality_id, title, status, intake_held_on, intake_needs,
                      intake_developments, intake_goals, capacity_min, capacity_max,
                      quote_amount_cents, quote_note, shared_vision, created_at, updated_at)
SELECT p.id, p.municipality_id,
       'Werklab ' || m.name || ' ' || to_char(now() - p.age * interval '1 day', 'YYYY') || ' #' || p.n,
       CASE WHEN p.target = 'inquiry' THEN 'inquiry' ELSE 'intake' END,
       CASE WHEN p.target IN ('planned', 'running', 'completed') OR (p.target = 'intake' AND p.r < 0.5)
            THEN (now() - (p.age - 14) * interval '1 day')::date END,
       CASE WHEN p.target <> 'inquiry' THEN 'Meer ruimte voor bewonersinitiatieven in ' || m.name
            || ': de gemeente wil leren samenwerken met wat inwoners zelf organiseren.' END,
       CASE WHEN p.target <> 'inquiry' THEN 'Een nieuw beleidskader voor participatie; '
            || 'een wijkbudget dat bewoners zelf besteden.' END,
       CASE WHEN p.target <> 'inquiry' THEN 'Ambtenaren kennen de initiatieven in hun wijk en '
            || 'weten wanneer ze moeten loslaten.' END,
       8 + (p.n % 3), 15,
       CASE WHEN p.target <> 'inquiry' THEN 1200000 + (p.n % 7) * 50000 END,
       CASE WHEN p.target <> 'inquiry' THEN 'Offerte inclusief twee trainers en locatiekosten.' END,
       CASE WHEN p.target IN ('running', 'completed') THEN 'Samen met de initiatieven in '
            || m.name || ' bouwen we aan een gemeente die ruimte geeft en vertrouwt.' END,
       now() - p.age * interval '1 day', now() - p.age * interval '1 day'
FROM bench_plan p JOIN bench_municipality m ON m.id = p.municipality_id;

-- Both trainers for what gets planned; one for half of the intakes.
INSERT INTO werklab_trainers (werklab_id, role, trainer_id, assigned_at)
SELECT p.id, t.role, t.id, now() - (p.age - 10) * interval '1 day'
FROM bench_plan p
JOIN bench_trainer t ON t.n = p.n % 24
WHERE p.target IN ('planned', 'running', 'completed')
   OR (p.target = 'intake' AND p.r < 0.5 AND t.role = 'municipalOrganisation');

-- 8 to 15 participants for what gets planned, 0 to 5 for half of the intakes.
INSERT INTO participants (werklab_id, name, email, job_title, department, role, created_at, updated_at)
SELECT p.id, 'Deelnemer ' || i, 'deelnemer' || i || '.' || p.n || '@gemeente.example',
       (ARRAY['Beleidsadviseur', 'Wijkregisseur', 'Teamleider', 'Projectleider'])[1 + i % 4],
       (ARRAY['Sociaal domein', 'Ruimte', 'Dienstverlening'])[1 + i % 3],
       (ARRAY['adviser', 'connector', 'director', NULL])[1 + i % 4],
       now() - (p.age - 20) * interval '1 day', now() - (p.age - 20) * interval '1 day'
FROM bench_plan p
CROSS JOIN LATERAL generate_series(1, CASE
    WHEN p.target IN ('planned', 'running', 'completed') THEN 8 + (p.n * 7) % 8
    WHEN p.target = 'intake' AND p.r < 0.5 THEN p.n % 6
    ELSE 0 END) i;

-- Sessions, 13:30 to 16:30 in Amsterdam, four weeks apart: three or four from two months after
-- creation for completed werklabs (all in the past), from half the werklab's age ago for running
-- ones (the first in the past), from one week to three months ahead for planned ones.
INSERT INTO sessions (werklab_id, sequence, kind, title, starts_at, ends_at, location_name,
                      location_address, location_on_site, created_at, updated_at)
SELECT p.id, i, (ARRAY['municipalCollaboration', 'ownRole', 'custom', 'municipalCollaboration'])[i],
       'Bijeenkomst ' || i,
       (first + (i - 1) * 28 + time '13:30') AT TIME ZONE 'Europe/Amsterdam',
       (first + (i - 1) * 28 + time '16:30') AT TIME ZONE 'Europe/Amsterdam',
       'Gemeentehuis', 'Markt 1', true,
       now() - (p.age - 20) * interval '1 day', now() - (p.age - 20) * interval '1 day'
FROM bench_plan p
CROSS JOIN LATERAL (SELECT CASE p.target
    WHEN 'completed' THEN (now() - (p.age - 60) * interval '1 day')::date
    WHEN 'running' THEN (now() - p.age / 2 * interval '1 day')::date
    ELSE (now() + (7 + p.r * 84) * interval '1 day')::date END AS first) f
CROSS JOIN LATERAL generate_series(1, 3 + p.n % 2) i
WHERE p.target IN ('planned', 'running', 'completed');

-- The statuses, one step at a time.
UPDATE werklabs SET status = 'planned' FROM bench_plan p
WHERE p.id = werklabs.id AND p.target IN ('planned', 'running', 'completed');
UPDATE werklabs SET status = 'running' FROM bench_plan p
WHERE p.id = werklabs.id AND p.target IN ('running', 'completed');
UPDATE werklabs SET status = 'completed' FROM bench_plan p
WHERE p.id = werklabs.id AND p.target = 'completed';
UPDATE werklabs SET status = 'cancelled' FROM bench_plan p
WHERE p.id = werklabs.id AND p.target = 'cancelled';

-- Every row was updated many times by the triggers: clean up, and give the planner figures.
VACUUM (ANALYZE) werklabs, werklab_trainers, participants, sessions, trainers, changes;
