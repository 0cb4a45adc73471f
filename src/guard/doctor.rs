//! `tenancy.doctor()` (SPEC §11): the checks are SQL, one commented query
//! per leak in `sql/doctor.sql`, run by a SQL function that is SECURITY
//! DEFINER with `search_path` pinned, because they read tenancy's registries
//! (which PUBLIC may not) and run no code of anyone's: views are inspected
//! through the catalogs (`pg_depend`, `pg_class.reloptions`), never queried.
//! PUBLIC may not call it (it tells which tables and roles are weak); a DBA
//! grants EXECUTE to the roles that administer tenants.

use pgrx::prelude::*;

extension_sql_file!(
    "../../sql/doctor.sql",
    name = "doctor",
    requires = ["isolation_catalog", "migrate", isolation::rls::enable_rls]
);
