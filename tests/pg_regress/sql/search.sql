-- search_tenants (SPEC §2) answers each rank the cheap way (src/lifecycle/search.rs):
-- its answers must equal, for every kind of query, what one statement that
-- finds every match and sorts them by the SPEC's ranking returns.
CREATE EXTENSION IF NOT EXISTS tenancy;
INSERT INTO tenancy.tenants (identifier, name, isolation)
SELECT CASE WHEN i % 7 = 0 THEN 'shop-' || i ELSE 'tnt-' || i END,
       CASE WHEN i % 3 = 0 THEN 'Tenant ' || i || ' Company'
            WHEN i % 5 = 0 THEN 'ACME tnt-' || (i * 7 % 3000) || ' 50%_off\'
            WHEN i = 1234 THEN 'Quixotic Zebra'
            ELSE 'Tenant number ' || i END,
       'rls'
  FROM generate_series(1, 3000) i;
ANALYZE tenancy.tenants;

-- The reference: every match, ranked exact identifier, identifier prefix,
-- name contains, identifier contains, then identifier.
CREATE FUNCTION pg_temp.reference(q text, n int) RETURNS text[] LANGUAGE sql AS $$
  SELECT coalesce(array_agg(identifier ORDER BY rank, identifier COLLATE "C"), '{}') FROM (
    SELECT t.identifier,
           CASE WHEN t.identifier = lower(q) THEN 0
                WHEN starts_with(t.identifier, lower(q)) THEN 1
                WHEN strpos(lower(t.name), lower(q)) > 0 THEN 2
                ELSE 3 END AS rank
      FROM tenancy.tenants t
     WHERE strpos(t.identifier, lower(q)) > 0 OR strpos(lower(t.name), lower(q)) > 0
     ORDER BY rank, t.identifier COLLATE "C" LIMIT n) s
$$;

SELECT q, n, (SELECT coalesce(array_agg(identifier), '{}') FROM tenancy.search_tenants(q, n)) = pg_temp.reference(q, n) AS same,
       cardinality(pg_temp.reference(q, n)) AS found
  FROM unnest(ARRAY['', 'a', 'T', 'q', 'x', '-', '9', 'tnt', 'TNT-', 'tnt-1', 'tnt-2999', 'shop', 'shop-7',
                    'company', 'COMPANY', 'number 12', 'acme', 'ny', 'co', 'zebra', 'quixotic zebra', 'ebra',
                    '%', '_', '\', '50%_', ' ', '1 ', 'zzzz', 'nothing-here', 'p-1', '-14', '300']) q,
       unnest(ARRAY[1, 3, 10, 50]) n
 WHERE NOT ((SELECT coalesce(array_agg(identifier), '{}') FROM tenancy.search_tenants(q, n)) = pg_temp.reference(q, n))
 ORDER BY 1, 2;

-- Every (query, limit) pair above agrees: count them, with what they found.
SELECT count(*) AS pairs_checked, sum(cardinality(pg_temp.reference(q, n))) AS rows_compared
  FROM unnest(ARRAY['', 'a', 'T', 'q', 'x', '-', '9', 'tnt', 'TNT-', 'tnt-1', 'tnt-2999', 'shop', 'shop-7',
                    'company', 'COMPANY', 'number 12', 'acme', 'ny', 'co', 'zebra', 'quixotic zebra', 'ebra',
                    '%', '_', '\', '50%_', ' ', '1 ', 'zzzz', 'nothing-here', 'p-1', '-14', '300']) q,
       unnest(ARRAY[1, 3, 10, 50]) n;

-- The three paths, each chosen where it is cheap: the prefix range, the
-- first identifiers, and the key index for a rare query.
SELECT identifier FROM tenancy.search_tenants('tnt-29');
SELECT identifier, name FROM tenancy.search_tenants('zebra');
SELECT identifier, name FROM tenancy.search_tenants('Q', 3);
SELECT count(*) FROM tenancy.search_tenants('', 5000);

-- What each query reads (its plans, in counts that do not depend on costs):
-- the table's and its indexes' scan counters of this transaction, before
-- and after one search_tenants(q, 10).  No query reads the whole table (no
-- sequential scan; at most the 1,000-identifier window plus the key index's
-- few candidates), also the unselective ones an admin search box sends first:
-- one character, a prefix every identifier shares, a common word.
CREATE FUNCTION pg_temp.reads(q text) RETURNS TABLE (seq_scans bigint, heap_rows bigint, index_rows bigint)
LANGUAGE plpgsql AS $$
DECLARE
  t constant oid := 'tenancy.tenants'::regclass;
  s0 bigint; h0 bigint; i0 bigint;
BEGIN
  SELECT pg_stat_get_xact_numscans(t), pg_stat_get_xact_tuples_returned(t) + pg_stat_get_xact_tuples_fetched(t),
         (SELECT sum(pg_stat_get_xact_tuples_returned(indexrelid)) FROM pg_index WHERE indrelid = t)
    INTO s0, h0, i0;
  PERFORM count(*) FROM tenancy.search_tenants(q, 10);
  RETURN QUERY
  SELECT pg_stat_get_xact_numscans(t) - s0, pg_stat_get_xact_tuples_returned(t) + pg_stat_get_xact_tuples_fetched(t) - h0,
         (SELECT sum(pg_stat_get_xact_tuples_returned(indexrelid)) FROM pg_index WHERE indrelid = t)::bigint - i0;
END $$;
SELECT q, r.* FROM unnest(ARRAY['a', 'T', 'q', 'x', '-', '9', 'tnt', 'TNT-', 'tnt-1', 'shop', 'company', 'number 12',
                                'acme', 'ny', 'co', 'zebra', 'ebra', '%', '_', ' ', 'zzzz', 'nothing-here', '300']) q,
                  pg_temp.reads(q) r;
-- The hand-written query an admin tool would send reads every row.
CREATE FUNCTION pg_temp.ilike_reads(q text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE t constant oid := 'tenancy.tenants'::regclass; h0 bigint;
BEGIN
  h0 := pg_stat_get_xact_tuples_returned(t);
  PERFORM count(*) FROM (SELECT 1 FROM tenancy.tenants WHERE identifier ILIKE '%' || q || '%' OR name ILIKE '%' || q || '%'
                          ORDER BY identifier LIMIT 10) s;
  RETURN pg_stat_get_xact_tuples_returned(t) - h0;
END $$;
SELECT pg_temp.ilike_reads('nothing-here') AS ilike_heap_rows;

DELETE FROM tenancy.tenants;
