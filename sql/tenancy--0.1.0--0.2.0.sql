-- tenancy 0.1.0 -> 0.2.0 (ALTER EXTENSION tenancy UPDATE).
-- tests/faults/upgrade.test.sh checks that an upgraded database is, object by
-- object, the same as a fresh CREATE EXTENSION of 0.2.0.
\echo Use "ALTER EXTENSION tenancy UPDATE" to load this file. \quit
