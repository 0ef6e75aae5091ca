-- PostgreSQL version of sqlite/0005_deliveries.sql: PostgreSQL changes the
-- CHECK constraint and adds the column in place (seq values are kept).
ALTER TABLE deliveries DROP CONSTRAINT deliveries_state_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_state_check
	CHECK (state IN ('pending', 'processing', 'done', 'failed', 'ignored'));
ALTER TABLE deliveries ADD COLUMN subject TEXT NOT NULL DEFAULT '';
CREATE INDEX deliveries_subject ON deliveries(subject, state, seq);
