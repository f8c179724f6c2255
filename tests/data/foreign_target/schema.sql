-- A small lending library: nothing like CodeBlack. PostgreSQL only: no Redis, no app, no base backups,
-- no uploads bucket, no Alembic project, no audit table, no heartbeat.
-- For now every critical table has an insert-time column (lent_at, joined_at); `books` has none and is
-- not critical: it is restored but not counted (counting tables without a time column is separate work).
CREATE TABLE members (
    member_no  integer PRIMARY KEY,
    full_name  text NOT NULL,
    joined_at  timestamptz NOT NULL
);
CREATE TABLE books (
    isbn   text PRIMARY KEY,
    title  text NOT NULL
);
CREATE TABLE loans (
    loan_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    member_no  integer NOT NULL REFERENCES members,
    isbn       text NOT NULL REFERENCES books,
    lent_at    timestamptz NOT NULL
);
-- Rows spread hourly over the 10 days before now: some in the 24 hours before any backup taken now.
INSERT INTO members SELECT i, 'member ' || i, now() - make_interval(hours => i * 4) FROM generate_series(1, 60) i;
INSERT INTO books SELECT '978-' || lpad(i::text, 9, '0'), 'book ' || i FROM generate_series(1, 40) i;
INSERT INTO loans (member_no, isbn, lent_at)
    SELECT 1 + i % 60, '978-' || lpad((1 + i % 40)::text, 9, '0'), now() - make_interval(hours => i)
    FROM generate_series(1, 240) i;
