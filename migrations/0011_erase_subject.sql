-- Erasure also unlinks a trainer record from the person's account at the identity provider.
--
-- trainers.subject (0010) is the person's sub: personal data like the address it is found by.
-- It is cleared before the records are erased, while they still carry the address; the rest of
-- the erasure is 0006's, unchanged, under its new name.
ALTER FUNCTION erase_data_subject(text) RENAME TO erase_data_subject_records;

CREATE FUNCTION erase_data_subject(address text)
RETURNS TABLE (what text, changed bigint) LANGUAGE plpgsql AS $$
BEGIN
    -- Counted with the trainers the erasure changes: it is part of erasing them.
    UPDATE trainers SET subject = NULL WHERE lower(email) = lower(address) AND subject IS NOT NULL;
    RETURN QUERY SELECT * FROM erase_data_subject_records(address);
END
$$;
