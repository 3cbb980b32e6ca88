-- The werklab domain: initiatives, trainers, werklabs and what hangs under them.
--
-- The rules live here as well as in the server: CHECKs for values, foreign keys for references,
-- an exclusion constraint for overlapping sessions, and triggers for rules that span tables.
-- Triggers raise with a constraint name, so the server maps every refusal the same way
-- (server/resource.c, resource_fail), whichever path a write took.

CREATE EXTENSION IF NOT EXISTS btree_gist;

-- Raises a check violation under a constraint name: the server reads the name.
CREATE FUNCTION refuse(constraint_name text, message text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = constraint_name,
        MESSAGE = message;
END
$$;

CREATE TABLE initiatives (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    municipality_id uuid NOT NULL
        CONSTRAINT initiatives_municipality_fkey REFERENCES municipalities (id),
    name text NOT NULL CONSTRAINT initiatives_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    kind text NOT NULL CONSTRAINT initiatives_kind CHECK (kind IN ('residentInitiative',
        'communityCentre', 'neighbourhoodCooperative', 'communityEnterprise', 'residentsCompany',
        'other')),
    legal_form text CONSTRAINT initiatives_legal_form CHECK (legal_form IN ('association',
        'foundation', 'cooperative', 'informal', 'other')),
    kvk_number text CONSTRAINT initiatives_kvk_number CHECK (kvk_number ~ '^[0-9]{8}$'),
    themes text[] NOT NULL DEFAULT '{}' CONSTRAINT initiatives_themes CHECK (themes <@ ARRAY[
        'careWelfare', 'communityCentre', 'greenPublicSpace', 'energyTransition', 'housing',
        'environmentPlanning', 'socialCohesion', 'economyWork', 'other']::text[]),
    neighbourhood text CONSTRAINT initiatives_neighbourhood_length
        CHECK (char_length(neighbourhood) <= 200),
    description text CONSTRAINT initiatives_description_length
        CHECK (char_length(description) <= 4000),
    website text CONSTRAINT initiatives_website CHECK (website ~ '^https?://'),
    lsa_member boolean NOT NULL DEFAULT false,
    right_to_challenge boolean NOT NULL DEFAULT false,
    contact_name text CHECK (char_length(contact_name) <= 200),
    contact_email text CHECK (char_length(contact_email) <= 254),
    contact_phone text CHECK (char_length(contact_phone) <= 40),
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER initiatives_touch BEFORE UPDATE ON initiatives
    FOR EACH ROW EXECUTE FUNCTION touch_row();
CREATE INDEX initiatives_created ON initiatives (created_at, id);
CREATE INDEX initiatives_updated ON initiatives (updated_at, id);
CREATE INDEX initiatives_name ON initiatives (name, id);
CREATE INDEX initiatives_municipality ON initiatives (municipality_id, created_at, id);
CREATE INDEX initiatives_themes ON initiatives USING gin (themes);
CREATE INDEX initiatives_search ON initiatives
    USING gin (to_tsvector('dutch', name || ' ' || coalesce(description, '')));

CREATE TABLE trainers (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL CONSTRAINT trainers_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    email text NOT NULL CONSTRAINT trainers_email_length CHECK (char_length(email) <= 254),
    phone text CHECK (char_length(phone) <= 40),
    expertise text[] NOT NULL CONSTRAINT trainers_expertise CHECK (cardinality(expertise) >= 1
        AND expertise <@ ARRAY['municipalOrganisation', 'residentInitiatives']::text[]),
    bio text CONSTRAINT trainers_bio_length CHECK (char_length(bio) <= 4000),
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER trainers_touch BEFORE UPDATE ON trainers FOR EACH ROW EXECUTE FUNCTION touch_row();
CREATE INDEX trainers_created ON trainers (created_at, id);
CREATE INDEX trainers_updated ON trainers (updated_at, id);
CREATE INDEX trainers_name ON trainers (name, id);

CREATE TABLE werklabs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    municipality_id uuid NOT NULL
        CONSTRAINT werklabs_municipality_fkey REFERENCES municipalities (id),
    title text NOT NULL CONSTRAINT werklabs_title_length CHECK (char_length(title) BETWEEN 1 AND 200),
    status text NOT NULL DEFAULT 'inquiry' CONSTRAINT werklabs_status CHECK (status IN ('inquiry',
        'intake', 'planned', 'running', 'completed', 'cancelled')),
    intake_held_on date,
    intake_needs text CONSTRAINT werklabs_intake_needs_length CHECK (char_length(intake_needs) <= 4000),
    intake_developments text CONSTRAINT werklabs_intake_developments_length
        CHECK (char_length(intake_developments) <= 4000),
    intake_goals text CONSTRAINT werklabs_intake_goals_length CHECK (char_length(intake_goals) <= 4000),
    capacity_min integer NOT NULL DEFAULT 10,
    capacity_max integer NOT NULL DEFAULT 15,
    quote_amount_cents bigint CONSTRAINT werklabs_quote_amount CHECK (quote_amount_cents >= 0),
    quote_currency text CONSTRAINT werklabs_quote_currency CHECK (quote_currency = 'EUR'),
    quote_note text CONSTRAINT werklabs_quote_note_length CHECK (char_length(quote_note) <= 2000),
    shared_vision text CONSTRAINT werklabs_shared_vision_length
        CHECK (char_length(shared_vision) <= 8000),
    -- Kept by triggers on participants and sessions, so reads and filters need no aggregate.
    participant_count integer NOT NULL DEFAULT 0,
    starts_on date,
    ends_on date,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT werklabs_capacity CHECK (1 <= capacity_min AND capacity_min <= capacity_max
        AND capacity_max <= 15),
    CONSTRAINT werklabs_capacity_participants CHECK (participant_count <= capacity_max)
);
CREATE INDEX werklabs_created ON werklabs (created_at, id);
CREATE INDEX werklabs_updated ON werklabs (updated_at, id);
CREATE INDEX werklabs_title ON werklabs (title, id);
CREATE INDEX werklabs_starts ON werklabs ((coalesce(starts_on, '9999-12-31')), id);
CREATE INDEX werklabs_municipality ON werklabs (municipality_id, created_at, id);
CREATE INDEX werklabs_status_created ON werklabs (status, created_at, id);
CREATE INDEX werklabs_search ON werklabs USING gin (to_tsvector('dutch', title || ' ' ||
    coalesce(intake_needs, '') || ' ' || coalesce(intake_goals, '')));

-- A quote is in euros: the currency is implied when only the amount is given.
CREATE FUNCTION werklabs_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.quote_amount_cents IS NOT NULL AND NEW.quote_currency IS NULL THEN
        NEW.quote_currency := 'EUR';
    ELSIF NEW.quote_amount_cents IS NULL THEN
        NEW.quote_currency := NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.status IS DISTINCT FROM OLD.status AND NOT (
        (OLD.status, NEW.status) IN (('inquiry', 'intake'), ('intake', 'planned'),
                                     ('planned', 'running'), ('running', 'completed'))
        OR (NEW.status = 'cancelled' AND OLD.status NOT IN ('completed', 'cancelled'))) THEN
        PERFORM refuse('werklabs_status_transition',
                       format('a werklab cannot go from %s to %s', OLD.status, NEW.status));
    END IF;
    IF TG_OP = 'INSERT' AND NEW.status NOT IN ('inquiry', 'intake') THEN
        PERFORM refuse('werklabs_status_initial', 'a new werklab starts in inquiry or intake');
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER werklabs_check BEFORE INSERT OR UPDATE ON werklabs
    FOR EACH ROW EXECUTE FUNCTION werklabs_check();
CREATE TRIGGER werklabs_touch BEFORE UPDATE ON werklabs FOR EACH ROW EXECUTE FUNCTION touch_row();

CREATE FUNCTION werklabs_deletable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status NOT IN ('inquiry', 'cancelled') THEN
        PERFORM refuse('werklabs_delete_status',
                       format('a werklab can be deleted in inquiry or cancelled, not in %s', OLD.status));
    END IF;
    RETURN OLD;
END
$$;
CREATE TRIGGER werklabs_deletable BEFORE DELETE ON werklabs
    FOR EACH ROW EXECUTE FUNCTION werklabs_deletable();

-- A change to what a werklab shows (its trainers, its participant count, its dates) is a
-- change of the werklab: its version moves, so ETags and updatedSince see it.
CREATE FUNCTION werklab_touch(werklab uuid) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE werklabs w SET
        participant_count = (SELECT count(*) FROM participants p WHERE p.werklab_id = w.id),
        starts_on = (SELECT min(s.starts_at AT TIME ZONE 'Europe/Amsterdam')::date
                     FROM sessions s WHERE s.werklab_id = w.id),
        ends_on = (SELECT max(s.ends_at AT TIME ZONE 'Europe/Amsterdam')::date
                   FROM sessions s WHERE s.werklab_id = w.id)
    WHERE w.id = werklab;
END
$$;

-- Everything that changes what a werklab's status depends on (trainers, participants,
-- sessions, their initiatives) locks the werklab's row first, as a status change does: changes
-- to one werklab take turns, so a status check never sees a state that a concurrent change is
-- about to undo. One lock order (werklab, then the row) keeps this free of deadlocks.
CREATE FUNCTION werklab_lock(werklab uuid) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM werklabs WHERE id = werklab FOR UPDATE;
END
$$;

CREATE TABLE werklab_trainers (
    werklab_id uuid NOT NULL
        CONSTRAINT werklab_trainers_werklab_fkey REFERENCES werklabs (id) ON DELETE CASCADE,
    role text NOT NULL CONSTRAINT werklab_trainers_role
        CHECK (role IN ('municipalOrganisation', 'residentInitiatives')),
    trainer_id uuid NOT NULL CONSTRAINT werklab_trainers_trainer_fkey REFERENCES trainers (id),
    assigned_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (werklab_id, role),
    CONSTRAINT werklab_trainers_one_role UNIQUE (werklab_id, trainer_id)
);
CREATE INDEX werklab_trainers_trainer ON werklab_trainers (trainer_id);

CREATE FUNCTION werklab_trainers_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    expertise text[];
    werklab_status text;
BEGIN
    PERFORM werklab_lock(CASE WHEN TG_OP = 'DELETE' THEN OLD.werklab_id ELSE NEW.werklab_id END);
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        -- Shared lock: an expertise change of this trainer waits for this assignment, and the
        -- other way round (trainers_check reads the assignments after its own row lock).
        SELECT t.expertise INTO expertise FROM trainers t WHERE t.id = NEW.trainer_id FOR SHARE;
        IF expertise IS NOT NULL AND NOT NEW.role = ANY (expertise) THEN
            PERFORM refuse('werklab_trainers_expertise',
                           format('the trainer''s expertise does not include %s', NEW.role));
        END IF;
        RETURN NEW;
    END IF;
    SELECT w.status INTO werklab_status FROM werklabs w WHERE w.id = OLD.werklab_id;
    IF werklab_status IN ('planned', 'running', 'completed') THEN
        PERFORM refuse('werklab_trainers_required', format(
            'a %s werklab keeps both trainers: assign another instead of removing one', werklab_status));
    END IF;
    RETURN OLD;
END
$$;
CREATE TRIGGER werklab_trainers_check BEFORE INSERT OR UPDATE OR DELETE ON werklab_trainers
    FOR EACH ROW EXECUTE FUNCTION werklab_trainers_check();

-- After the change, once (an upsert fires BEFORE INSERT and then BEFORE UPDATE).
CREATE FUNCTION werklab_trainers_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM werklab_touch(CASE WHEN TG_OP = 'DELETE' THEN OLD.werklab_id ELSE NEW.werklab_id END);
    RETURN NULL;
END
$$;
CREATE TRIGGER werklab_trainers_touch AFTER INSERT OR UPDATE OR DELETE ON werklab_trainers
    FOR EACH ROW EXECUTE FUNCTION werklab_trainers_touch();

-- A trainer's expertise may not lose a role the trainer holds somewhere.
CREATE FUNCTION trainers_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM werklab_trainers a
               WHERE a.trainer_id = NEW.id AND NOT a.role = ANY (NEW.expertise)) THEN
        PERFORM refuse('trainers_expertise_assigned',
                       'the trainer holds a role in a werklab that the new expertise leaves out');
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER trainers_check BEFORE UPDATE OF expertise ON trainers
    FOR EACH ROW EXECUTE FUNCTION trainers_check();

CREATE TABLE participants (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    werklab_id uuid NOT NULL CONSTRAINT participants_werklab_fkey REFERENCES werklabs (id),
    name text NOT NULL CONSTRAINT participants_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    email text NOT NULL CONSTRAINT participants_email_length CHECK (char_length(email) <= 254),
    job_title text CHECK (char_length(job_title) <= 200),
    department text CHECK (char_length(department) <= 200),
    role text CONSTRAINT participants_role CHECK (role IN ('adviser', 'connector', 'director')),
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX participants_email_key ON participants (werklab_id, lower(email));
CREATE INDEX participants_werklab ON participants (werklab_id, created_at, id);
CREATE INDEX participants_created ON participants (created_at, id);
CREATE INDEX participants_email ON participants (lower(email));
CREATE TRIGGER participants_touch BEFORE UPDATE ON participants
    FOR EACH ROW EXECUTE FUNCTION touch_row();

-- Capacity holds also when requests race for the last place: the werklab's row is locked
-- before counting, so concurrent inserts into one werklab take turns.
CREATE FUNCTION participants_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    w record;
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM werklab_lock(OLD.werklab_id);
        RETURN OLD;
    END IF;
    IF TG_OP = 'INSERT' THEN
        SELECT status, capacity_max INTO w FROM werklabs WHERE id = NEW.werklab_id FOR UPDATE;
        IF FOUND AND w.status NOT IN ('intake', 'planned', 'running') THEN
            PERFORM refuse('participants_werklab_status', format(
                'participants join a werklab in intake, planned or running, not in %s', w.status));
        END IF;
        IF FOUND AND (SELECT count(*) FROM participants WHERE werklab_id = NEW.werklab_id)
                     >= w.capacity_max THEN
            PERFORM refuse('participants_capacity',
                           format('the werklab is full: %s places', w.capacity_max));
        END IF;
    ELSIF NEW.werklab_id <> OLD.werklab_id THEN
        PERFORM refuse('participants_werklab_fixed', 'a participant stays in its werklab');
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER participants_check BEFORE INSERT OR UPDATE OR DELETE ON participants
    FOR EACH ROW EXECUTE FUNCTION participants_check();

CREATE FUNCTION participants_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM werklab_touch(CASE WHEN TG_OP = 'DELETE' THEN OLD.werklab_id ELSE NEW.werklab_id END);
    RETURN NULL;
END
$$;
CREATE TRIGGER participants_count AFTER INSERT OR DELETE ON participants
    FOR EACH ROW EXECUTE FUNCTION participants_count();

CREATE TABLE sessions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    werklab_id uuid NOT NULL CONSTRAINT sessions_werklab_fkey REFERENCES werklabs (id),
    sequence integer NOT NULL CONSTRAINT sessions_sequence_minimum CHECK (sequence >= 1),
    kind text NOT NULL CONSTRAINT sessions_kind CHECK (kind IN ('initiativeVisit',
        'municipalCollaboration', 'ownRole', 'custom')),
    title text NOT NULL CONSTRAINT sessions_title_length CHECK (char_length(title) BETWEEN 1 AND 200),
    description text CONSTRAINT sessions_description_length CHECK (char_length(description) <= 4000),
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    location_name text CHECK (char_length(location_name) <= 200),
    location_address text CHECK (char_length(location_address) <= 400),
    location_on_site boolean,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sessions_time_order CHECK (starts_at < ends_at),
    CONSTRAINT sessions_sequence_key UNIQUE (werklab_id, sequence),
    CONSTRAINT sessions_no_overlap EXCLUDE USING gist
        (werklab_id WITH =, tstzrange(starts_at, ends_at) WITH &&)
);
CREATE INDEX sessions_created ON sessions (created_at, id);
CREATE INDEX sessions_updated ON sessions (updated_at, id);
CREATE INDEX sessions_starts ON sessions (starts_at, id);
CREATE INDEX sessions_werklab ON sessions (werklab_id, starts_at);
CREATE TRIGGER sessions_touch BEFORE UPDATE ON sessions FOR EACH ROW EXECUTE FUNCTION touch_row();

CREATE FUNCTION sessions_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM werklab_lock(OLD.werklab_id);
        RETURN OLD;
    END IF;
    PERFORM werklab_lock(NEW.werklab_id);
    IF TG_OP = 'UPDATE' AND NEW.werklab_id <> OLD.werklab_id THEN
        PERFORM refuse('sessions_werklab_fixed', 'a session stays in its werklab');
    END IF;
    -- A closed werklab gets no new sessions and none move in time; words may still be mended
    -- (and erased, for a data subject).
    IF (TG_OP = 'INSERT' OR NEW.starts_at <> OLD.starts_at OR NEW.ends_at <> OLD.ends_at)
       AND EXISTS (SELECT 1 FROM werklabs w WHERE w.id = NEW.werklab_id
                   AND w.status IN ('completed', 'cancelled')) THEN
        PERFORM refuse('sessions_werklab_closed',
                       'the werklab is completed or cancelled: its sessions do not change');
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER sessions_check BEFORE INSERT OR UPDATE OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION sessions_check();

CREATE FUNCTION sessions_dates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM werklab_touch(CASE WHEN TG_OP = 'DELETE' THEN OLD.werklab_id ELSE NEW.werklab_id END);
    RETURN NULL;
END
$$;
CREATE TRIGGER sessions_dates AFTER INSERT OR DELETE OR UPDATE OF starts_at, ends_at ON sessions
    FOR EACH ROW EXECUTE FUNCTION sessions_dates();

CREATE TABLE session_initiatives (
    session_id uuid NOT NULL CONSTRAINT session_initiatives_session_fkey
        REFERENCES sessions (id) ON DELETE CASCADE,
    initiative_id uuid NOT NULL
        CONSTRAINT session_initiatives_initiative_fkey REFERENCES initiatives (id),
    role text NOT NULL CONSTRAINT session_initiatives_role CHECK (role IN ('host', 'guest')),
    PRIMARY KEY (session_id, initiative_id)
);
CREATE INDEX session_initiatives_initiative ON session_initiatives (initiative_id);

-- Initiatives take part in werklabs of their own municipality.
CREATE FUNCTION session_initiatives_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM werklab_lock(s.werklab_id) FROM sessions s
    WHERE s.id = CASE WHEN TG_OP = 'DELETE' THEN OLD.session_id ELSE NEW.session_id END;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    -- Shared lock: a move of this initiative to another municipality waits for this, and the
    -- other way round (initiatives_check reads session_initiatives after its own row lock).
    PERFORM 1 FROM initiatives WHERE id = NEW.initiative_id FOR SHARE;
    IF NOT EXISTS (SELECT 1 FROM sessions s JOIN werklabs w ON w.id = s.werklab_id
                   JOIN initiatives i ON i.municipality_id = w.municipality_id
                   WHERE s.id = NEW.session_id AND i.id = NEW.initiative_id)
       AND EXISTS (SELECT 1 FROM initiatives i WHERE i.id = NEW.initiative_id) THEN
        PERFORM refuse('session_initiatives_municipality',
                       'an initiative takes part only in werklabs of its own municipality');
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER session_initiatives_check BEFORE INSERT OR UPDATE OR DELETE ON session_initiatives
    FOR EACH ROW EXECUTE FUNCTION session_initiatives_check();

-- An initiative that takes part in a session cannot move to another municipality.
CREATE FUNCTION initiatives_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.municipality_id <> OLD.municipality_id
       AND EXISTS (SELECT 1 FROM session_initiatives si WHERE si.initiative_id = NEW.id) THEN
        PERFORM refuse('initiatives_taking_part',
                       'the initiative takes part in sessions of werklabs in its municipality');
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER initiatives_check BEFORE UPDATE OF municipality_id ON initiatives
    FOR EACH ROW EXECUTE FUNCTION initiatives_check();

CREATE TABLE attendance (
    session_id uuid NOT NULL
        CONSTRAINT attendance_session_fkey REFERENCES sessions (id) ON DELETE CASCADE,
    participant_id uuid NOT NULL
        CONSTRAINT attendance_participant_fkey REFERENCES participants (id),
    status text NOT NULL CONSTRAINT attendance_status CHECK (status IN ('present', 'absent', 'excused')),
    PRIMARY KEY (session_id, participant_id)
);
CREATE INDEX attendance_participant ON attendance (participant_id);

CREATE FUNCTION attendance_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM sessions s JOIN participants p ON p.werklab_id = s.werklab_id
                   WHERE s.id = NEW.session_id AND p.id = NEW.participant_id) THEN
        PERFORM refuse('attendance_participant_werklab',
                       'attendance is kept for participants of the session''s werklab');
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER attendance_check BEFORE INSERT OR UPDATE ON attendance
    FOR EACH ROW EXECUTE FUNCTION attendance_check();

CREATE TABLE feedback (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    werklab_id uuid NOT NULL CONSTRAINT feedback_werklab_fkey REFERENCES werklabs (id),
    session_id uuid CONSTRAINT feedback_session_fkey REFERENCES sessions (id),
    kind text NOT NULL CONSTRAINT feedback_kind CHECK (kind IN ('evaluation',
        'initiativePerspective', 'trainerNote')),
    participant_id uuid CONSTRAINT feedback_participant_fkey REFERENCES participants (id),
    initiative_id uuid CONSTRAINT feedback_initiative_fkey REFERENCES initiatives (id),
    rating integer CONSTRAINT feedback_rating CHECK (rating BETWEEN 1 AND 5),
    body text NOT NULL CONSTRAINT feedback_body_length CHECK (char_length(body) BETWEEN 1 AND 4000),
    attribution text CONSTRAINT feedback_attribution_length CHECK (char_length(attribution) <= 200),
    consent_to_publish boolean NOT NULL DEFAULT false,
    moderation text NOT NULL DEFAULT 'pending' CONSTRAINT feedback_moderation
        CHECK (moderation IN ('pending', 'approved', 'rejected')),
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT feedback_participant_kind CHECK (participant_id IS NULL OR kind = 'evaluation'),
    CONSTRAINT feedback_initiative_kind
        CHECK (initiative_id IS NULL OR kind = 'initiativePerspective')
);
CREATE INDEX feedback_created ON feedback (created_at, id);
CREATE INDEX feedback_updated ON feedback (updated_at, id);
CREATE INDEX feedback_werklab ON feedback (werklab_id, created_at, id);
CREATE INDEX feedback_session ON feedback (session_id);
CREATE INDEX feedback_participant ON feedback (participant_id);
CREATE INDEX feedback_initiative ON feedback (initiative_id);
CREATE INDEX feedback_published ON feedback (created_at, id)
    WHERE consent_to_publish AND moderation = 'approved';
CREATE TRIGGER feedback_touch BEFORE UPDATE ON feedback FOR EACH ROW EXECUTE FUNCTION touch_row();

-- Feedback links stay within its werklab.
CREATE FUNCTION feedback_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.session_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM sessions s WHERE s.id = NEW.session_id AND s.werklab_id = NEW.werklab_id)
       AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = NEW.session_id) THEN
        PERFORM refuse('feedback_session_werklab', 'the session is not one of this werklab');
    END IF;
    IF NEW.participant_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM participants p WHERE p.id = NEW.participant_id AND p.werklab_id = NEW.werklab_id)
       AND EXISTS (SELECT 1 FROM participants p WHERE p.id = NEW.participant_id) THEN
        PERFORM refuse('feedback_participant_werklab', 'the participant is not in this werklab');
    END IF;
    IF NEW.initiative_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM session_initiatives si JOIN sessions s ON s.id = si.session_id
        WHERE si.initiative_id = NEW.initiative_id AND s.werklab_id = NEW.werklab_id)
       AND EXISTS (SELECT 1 FROM initiatives i WHERE i.id = NEW.initiative_id) THEN
        PERFORM refuse('feedback_initiative_werklab',
                       'the initiative takes part in no session of this werklab');
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.werklab_id <> OLD.werklab_id THEN
        PERFORM refuse('feedback_werklab_fixed', 'feedback stays with its werklab');
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER feedback_check BEFORE INSERT OR UPDATE ON feedback
    FOR EACH ROW EXECUTE FUNCTION feedback_check();

-- What the public may see of feedback: approved, with consent, signed with its attribution.
CREATE VIEW testimonials AS
SELECT f.id, f.body, f.attribution, m.name AS municipality_name,
       coalesce(extract(year FROM w.starts_on),
                extract(year FROM f.created_at AT TIME ZONE 'Europe/Amsterdam'))::integer AS year,
       f.version, f.created_at, f.updated_at
FROM feedback f
JOIN werklabs w ON w.id = f.werklab_id
JOIN municipalities m ON m.id = w.municipality_id
WHERE f.consent_to_publish AND f.moderation = 'approved';

CREATE TABLE inquiries (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    municipality_code text CONSTRAINT inquiries_municipality_code
        CHECK (municipality_code ~ '^GM[0-9]{4}$'),
    municipality_name text CHECK (char_length(municipality_name) <= 100),
    contact_name text NOT NULL CONSTRAINT inquiries_contact_name_length
        CHECK (char_length(contact_name) BETWEEN 1 AND 200),
    email text NOT NULL CHECK (char_length(email) <= 254),
    phone text CHECK (char_length(phone) <= 40),
    message text NOT NULL CONSTRAINT inquiries_message_length
        CHECK (char_length(message) BETWEEN 1 AND 4000),
    preferred_period text CHECK (char_length(preferred_period) <= 200),
    status text NOT NULL DEFAULT 'new' CONSTRAINT inquiries_status
        CHECK (status IN ('new', 'contacted', 'converted', 'closed')),
    werklab_id uuid CONSTRAINT inquiries_werklab_fkey REFERENCES werklabs (id),
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT inquiries_municipality
        CHECK (municipality_code IS NOT NULL OR municipality_name IS NOT NULL),
    CONSTRAINT inquiries_converted CHECK (status <> 'converted' OR werklab_id IS NOT NULL)
);
CREATE INDEX inquiries_created ON inquiries (created_at, id);
CREATE INDEX inquiries_updated ON inquiries (updated_at, id);
CREATE INDEX inquiries_status ON inquiries (status, created_at, id);
CREATE INDEX inquiries_email ON inquiries (lower(email));
CREATE TRIGGER inquiries_touch BEFORE UPDATE ON inquiries FOR EACH ROW EXECUTE FUNCTION touch_row();
