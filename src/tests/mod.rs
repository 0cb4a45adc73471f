//! In-backend tests (`cargo pgrx test`): behaviour best checked from inside
//! PostgreSQL.  The pg_regress suite under tests/ covers the SQL surface.
