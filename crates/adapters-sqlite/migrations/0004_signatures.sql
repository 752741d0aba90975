-- guildconf schema, version 4: signatures beside entries (issue 13).
--
-- An entry written with a signing key carries an Ed25519 signature over its
-- entry hash. It is stored in three columns beside the body, never inside
-- it, so the body, its hash and the chain are the same whether or not the
-- entry is signed. The three columns are all empty (an unsigned entry) or
-- all set. The append-only triggers already refuse any UPDATE, so a
-- signature can be neither added to nor stripped from a stored entry.
ALTER TABLE audit_entries ADD COLUMN sig_alg TEXT NULL;
ALTER TABLE audit_entries ADD COLUMN sig_key TEXT NULL;
ALTER TABLE audit_entries ADD COLUMN sig_value TEXT NULL
    CHECK ((sig_alg IS NULL) = (sig_key IS NULL) AND (sig_key IS NULL) = (sig_value IS NULL));
