-- People signed in with OpenID Connect access tokens.
--
-- A trainer record is linked to a person by the token's sub (subject), set by staff; where it is
-- empty, by a verified e-mail address. An audit entry names the person (sub) and the client the
-- token was issued to where it names a key for machines.

ALTER TABLE trainers ADD COLUMN subject text
    CONSTRAINT trainers_subject_length CHECK (char_length(subject) BETWEEN 1 AND 255);
ALTER TABLE trainers ADD CONSTRAINT trainers_subject_unique UNIQUE (subject);
-- The e-mail link: a token's verified address finds its trainer by this index.
CREATE INDEX trainers_email_lower ON trainers (lower(email));

ALTER TABLE audit_log ADD COLUMN subject text;
ALTER TABLE audit_log ADD COLUMN client text;
CREATE INDEX audit_log_subject ON audit_log (subject, at) WHERE subject IS NOT NULL;
