-- A shop's orders database (tests/features/test_many_databases.py): customers and their orders, in public.
CREATE TABLE customers (
    customer_id   integer PRIMARY KEY,
    email         text NOT NULL,
    signed_up_at  timestamptz NOT NULL
);
CREATE TABLE orders (
    order_no     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id  integer NOT NULL REFERENCES customers,
    placed_at    timestamptz NOT NULL,
    total_cents  integer NOT NULL
);
-- Orders every 30 minutes up to 30 minutes before now: its RPO is about half an hour plus the drill's time.
INSERT INTO customers SELECT i, 'customer' || i || '@shop.invalid', now() - make_interval(hours => i * 5)
    FROM generate_series(1, 30) i;
INSERT INTO orders (customer_id, placed_at, total_cents)
    SELECT 1 + i % 30, now() - make_interval(mins => i * 30), 100 * i FROM generate_series(1, 120) i;
