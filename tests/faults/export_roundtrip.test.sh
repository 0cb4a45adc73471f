#!/usr/bin/env bash
# export_tenant → file → import_tenant into a fresh database of the same
# cluster (SPEC §9) gives identical rows, for every column type a user is
# likely to have: text with quotes, backslashes, newlines and tabs, numeric
# and floats (NaN, infinities; not -0, which JSON cannot tell from 0), timestamps, intervals, json and jsonb
# (JSON null apart from SQL NULL), arrays (2-D, NULL elements), bytea, enum,
# domain, composite, range, inet, tsvector, identity and serial keys,
# composite and self-referencing foreign keys; an RLS tenant and a schema
# tenant.  The export is saved as psql saves it (COPY … TO STDOUT) and loaded
# with \copy.  Then: a value changed in the file is caught by the comparison
# (the check is not vacuous), sequences of the fresh database go on past
# the imported keys, and a database lacking a column refuses the file with
# 0A000, leaving no tenant behind.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
src=$PGDATABASE
dst=${src}_dst
lack=${src}_lack
export PGOPTIONS="-c client_min_messages=warning"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

schema() { # the same user schema in every database ($2: leave out orders.note)
  local note=", note text"
  [ "${2:-}" = lacking ] && note=""
  q -d "$1" <<SQL >/dev/null
CREATE EXTENSION tenancy;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TYPE address AS (street text, zip text);
CREATE TABLE customers (tenant_id uuid NOT NULL, id int GENERATED ALWAYS AS IDENTITY, name text NOT NULL,
                        addr address, PRIMARY KEY (tenant_id, id));
CREATE TABLE orders (tenant_id uuid NOT NULL, id bigserial, customer_id int NOT NULL, parent bigint$note,
    i2 int2, i8 int8, amount numeric(12,4), f4 float4, f8 float8, ok boolean, code char(3), label varchar(10),
    day date, at_time time, local timestamp, at timestamptz, took interval, ref uuid, doc jsonb, raw json,
    tags text[], grid int[], blob bytea, feeling mood, qty posint, span int4range, host inet, words tsvector,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers, FOREIGN KEY (tenant_id, parent) REFERENCES orders);
SELECT tenancy.enable_rls('customers');
SELECT tenancy.enable_rls('orders');
SELECT tenancy.add_migration('001_notes', 'CREATE TABLE notes (id serial PRIMARY KEY, body text, prev int REFERENCES notes)');
-- The rows of a tenant's tables as text, ordered, without the tenant column.
CREATE FUNCTION fingerprint(tenant uuid) RETURNS text LANGUAGE plpgsql AS \$f\$
DECLARE t regclass; cols text; part text; whole text := '';
BEGIN
  FOR t IN SELECT r.tbl FROM tenancy.rls_tables r ORDER BY r.tbl::text LOOP
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols FROM pg_attribute
     WHERE attrelid = t AND attnum > 0 AND NOT attisdropped AND attname <> 'tenant_id';
    EXECUTE format('SELECT string_agg(x, E''\n'' ORDER BY x) FROM (SELECT ROW(%s)::text AS x FROM %s WHERE tenant_id = \$1) r', cols, t)
      INTO part USING tenant;
    whole := whole || t || E':\n' || coalesce(part, '') || E'\n';
  END LOOP;
  RETURN md5(whole);
END \$f\$;
SQL
}

# The schema tenant's notes, compared by name.
notes() { q -d "$1" -c "SELECT coalesce(string_agg(format('%s|%s|%s', id, body, prev), ';' ORDER BY id), '') FROM $2.notes"; }

schema "$src"
q -d "$src" <<'SQL' >/dev/null
SET timezone = 'Pacific/Chatham';
SELECT tenancy.create_tenant('rt-acme', 'Acme', '{"tier": "gold", "nested": {"a": [1, null]}}', id => '00000000-0000-7000-8000-00000000aaaa');
SELECT tenancy.create_tenant('rt-other', 'Other', id => '00000000-0000-7000-8000-00000000bbbb');
SELECT tenancy.create_tenant('rt-shop', 'Shop', isolation => 'schema', id => '00000000-0000-7000-8000-00000000cccc');
INSERT INTO customers (tenant_id, name, addr) VALUES
  ('00000000-0000-7000-8000-00000000aaaa', 'O''Brien "the" \ backslash', ROW('1 Main St, "A"', '0\1')),
  ('00000000-0000-7000-8000-00000000aaaa', E'multi\nline\ttab\r\\n literal', NULL),
  ('00000000-0000-7000-8000-00000000bbbb', 'other', ROW(NULL, 'z'));
INSERT INTO orders (tenant_id, customer_id, parent, note, i2, i8, amount, f4, f8, ok, code, label, day, at_time, local, at,
                    took, ref, doc, raw, tags, grid, blob, feeling, qty, span, host, words) VALUES
  ('00000000-0000-7000-8000-00000000aaaa', 2, NULL, E'caf\u00e9 \u2603 "q" \\', -32768, 9223372036854775807, 12345678.1234,
   3.14159, 1e-300, true, 'ab', 'ten chars!', '2024-02-29', '23:59:59.999999', '2000-01-01 00:00:00', '2024-03-10 02:30:00.5+13:45',
   '1 year 2 mons 3 days 04:05:06.789', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"k": [1, 2.50, null, true], "s": "x\"y\\z", "e": {}}',
   '{"b": 1,  "a": [ ]}', ARRAY['a', NULL, 'with,comma', 'with"quote', E'back\\slash', ''], '{{1,2},{3,NULL}}', '\x00ff10',
   'happy', 7, '[1,5)', '192.168.0.1/24', 'the quick fox'),
  ('00000000-0000-7000-8000-00000000aaaa', 1, 1, NULL, NULL, NULL, 'NaN', '-Infinity', '-1.5e-7', false, NULL, NULL, 'infinity', NULL,
   '-infinity', 'infinity', '-1 day', NULL, 'null', 'null', '{}', '{}', '', 'sad', NULL, 'empty', '::1', ''),
  ('00000000-0000-7000-8000-00000000aaaa', 1, 2, '', 0, 0, 0, 'NaN', 'Infinity', NULL, '   ', '', NULL, '00:00', NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('00000000-0000-7000-8000-00000000bbbb', 3, NULL, 'other tenant', 1, 1, 1, 1, 1, true, 'x', 'x', now(), now(), now(), now(),
   '1s', NULL, '{}', '{}', '{x}', '{1}', '\x01', 'ok', 1, '[1,2]', '10.0.0.1', 'x');
-- A gap in the keys: the import keeps them, and the sequence ends past them.
SELECT setval('orders_id_seq', 100);
INSERT INTO orders (tenant_id, customer_id) VALUES ('00000000-0000-7000-8000-00000000aaaa', 1);
INSERT INTO tenant_rt_shop.notes (body, prev) VALUES (E'first\nnote', NULL), ('second', 1), ('third \\ "x"', 2);
SQL

psql -X -q -v ON_ERROR_STOP=1 -d "$src" -c "COPY (SELECT tenancy.export_tenant('00000000-0000-7000-8000-00000000aaaa')) TO STDOUT" > "$work/acme.jsonl"
psql -X -q -v ON_ERROR_STOP=1 -d "$src" -c "COPY (SELECT tenancy.export_tenant('00000000-0000-7000-8000-00000000cccc')) TO STDOUT" > "$work/shop.jsonl"
[ "$(wc -l < "$work/acme.jsonl")" = 7 ] || { echo "expected 7 lines (header, 2 customers, 4 orders), got:"; cat "$work/acme.jsonl"; exit 1; }

import() { # db file identifier -> new tenant's id
  q -d "$1" <<SQL | tail -1
CREATE TEMP TABLE lines (line jsonb);
\\copy lines FROM '$2'
SELECT id FROM tenancy.import_tenant('lines', '$3');
SQL
}

q -d postgres -c "DROP DATABASE IF EXISTS $dst" -c "CREATE DATABASE $dst" >/dev/null
schema "$dst"
acme=$(import "$dst" "$work/acme.jsonl" rt-acme)
shop=$(import "$dst" "$work/shop.jsonl" rt-shop)

before=$(q -d "$src" -c "SELECT fingerprint('00000000-0000-7000-8000-00000000aaaa')")
after=$(q -d "$dst" -c "SELECT fingerprint('$acme')")
if [ "$before" != "$after" ]; then
  echo "rows differ after the round trip"
  diff <(q -d "$src" -c "SELECT ROW(o.*)::text FROM orders o WHERE tenant_id = '00000000-0000-7000-8000-00000000aaaa' ORDER BY id") \
       <(q -d "$dst" -c "SELECT ROW(o.*)::text FROM orders o ORDER BY id") || true
  exit 1
fi
[ "$(notes "$src" tenant_rt_shop)" = "$(notes "$dst" tenant_rt_shop)" ] || { echo "schema tenant rows differ"; exit 1; }
echo "round trip: identical rows (rls $after, schema tenant's notes too)"

# Not vacuous: one value changed in the file shows.
sed 's/"ten chars!"/"ten chars?"/' "$work/acme.jsonl" > "$work/changed.jsonl"
cmp -s "$work/acme.jsonl" "$work/changed.jsonl" && { echo "the edit did not apply"; exit 1; }
changed=$(import "$dst" "$work/changed.jsonl" rt-acme-changed)
[ "$(q -d "$dst" -c "SELECT fingerprint('$changed')")" != "$before" ] || { echo "a changed value went unnoticed"; exit 1; }

# Same tenant metadata, a new id, its audit rows; sequences past the imported keys.
q -d "$dst" <<SQL >/dev/null
DO \$\$ BEGIN
  IF (SELECT metadata FROM tenancy.tenants WHERE id = '$acme') <> '{"tier": "gold", "nested": {"a": [1, null]}}' THEN RAISE EXCEPTION 'metadata'; END IF;
  IF '$acme' = '00000000-0000-7000-8000-00000000aaaa' THEN RAISE EXCEPTION 'kept the old id'; END IF;
  IF (SELECT string_agg(action, ',' ORDER BY id) FROM tenancy.audit_log WHERE tenant_id = '$acme') <> 'create,import' THEN RAISE EXCEPTION 'audit'; END IF;
  IF (SELECT details->'rows' FROM tenancy.audit_log WHERE tenant_id = '$acme' AND action = 'import') <> '{"public.orders": 4, "public.customers": 2}' THEN
    RAISE EXCEPTION 'audit rows: %', (SELECT details FROM tenancy.audit_log WHERE tenant_id = '$acme' AND action = 'import');
  END IF;
END \$\$;
SQL
[ "$(q -d "$dst" -c "INSERT INTO orders (tenant_id, customer_id) VALUES ('$acme', 1) RETURNING id")" = 102 ] || { echo "orders_id_seq not past 101"; exit 1; }
[ "$(q -d "$dst" -c "INSERT INTO customers (tenant_id, name) VALUES ('$acme', 'n') RETURNING id")" = 3 ] || { echo "identity not past 2"; exit 1; }
[ "$(q -d "$dst" -c "INSERT INTO tenant_rt_shop.notes (body) VALUES ('n') RETURNING id")" = 4 ] || { echo "notes_id_seq not past 3"; exit 1; }
echo "sequences go on past the imported keys"

# A database without orders.note: 0A000 naming it, no tenant left behind.
q -d postgres -c "DROP DATABASE IF EXISTS $lack" -c "CREATE DATABASE $lack" >/dev/null
schema "$lack" lacking
out=$(psql -X -q -d "$lack" -v VERBOSITY=verbose 2>&1 <<SQL || true
CREATE TEMP TABLE lines (line jsonb);
\\copy lines FROM '$work/acme.jsonl'
SELECT tenancy.import_tenant('lines', 'rt-acme');
SQL
)
echo "$out" | grep -q 'ERROR:  0A000: column "note" of table public.orders does not exist here' || { echo "expected 0A000, got: $out"; exit 1; }
[ "$(q -d "$lack" -c "SELECT count(*) FROM tenancy.tenants")" = 0 ] || { echo "a tenant was left behind"; exit 1; }
echo "a database lacking a column: 0A000, nothing left"

q -d postgres -c "DROP DATABASE $dst" -c "DROP DATABASE $lack" >/dev/null
