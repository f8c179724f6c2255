-- The same shop's catalog database: nothing in common with orders.sql; its products in a schema of their own.
CREATE SCHEMA catalog;
CREATE TABLE catalog.products (
    sku        text PRIMARY KEY,
    title      text NOT NULL,
    listed_on  timestamptz NOT NULL
);
CREATE TABLE price_changes (
    change_id    integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku          text NOT NULL REFERENCES catalog.products,
    changed_at   timestamptz NOT NULL,
    price_cents  integer NOT NULL
);
-- Price changes every 45 minutes up to 45 minutes before now.
INSERT INTO catalog.products SELECT 'SKU-' || i, 'product ' || i, now() - make_interval(hours => i * 3)
    FROM generate_series(1, 50) i;
INSERT INTO price_changes (sku, changed_at, price_cents)
    SELECT 'SKU-' || (1 + i % 50), now() - make_interval(mins => i * 45), 99 + i FROM generate_series(1, 200) i;
