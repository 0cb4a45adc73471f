//! `search_tenants` (SPEC §2): case-insensitive, literal substring search
//! over identifier and name, ranked exact identifier, identifier prefix,
//! name contains, identifier contains, then by identifier.
//!
//! One statement that finds every match and then sorts them is fast only
//! for selective queries: the first queries of an admin search box (one to
//! three letters, a prefix every tenant shares, a common word) match most
//! of the catalog, and sorting 100,000 matches to return ten is what made
//! them slow.  So each rank is asked for separately, in rank order, and
//! only for the rows still needed, each the cheap way:
//!
//! 1. exact and prefix matches are one range of the identifier's "C" index,
//!    read in order (the exact identifier sorts first in its range);
//! 2. name and identifier matches are looked for first among the first
//!    `window!()` identifiers, read in order and only until enough are
//!    found: when a query is common there, its first matches overall are
//!    there too, a few rows in;
//! 3. only a query too rare for that goes to a GIN index of 1- to
//!    3-character keys (one of the identifiers, one of the names: each rank
//!    asks the index of its own column), whose candidates are then few.
//!
//! Every step reads a bounded number of rows: a common query stops in the
//! window, a rare one has few candidates.

use pgrx::prelude::*;

use crate::base::db::{self, Mode};
use crate::base::errors::required;
use crate::base::settings;
use crate::base::validate;
use crate::catalog::tenants::{self, Tenant};
use crate::tenant_cols;

/// How many identifiers, in order, a common query is looked for in before
/// the key index is asked (a literal in the statement, so that its kept
/// generic plan is the ordered index scan it needs).
macro_rules! window {
    () => {
        "1000"
    };
}

/// Case-insensitive substring search over identifier and name, ranked: exact
/// identifier, identifier prefix, name contains, identifier contains; then by
/// identifier.  The query is matched literally (`%`, `_` and `\` included):
/// it is compared with `strpos`, never turned into a LIKE pattern.
#[pg_extern(stable, security_definer, requires = ["catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn search_tenants(
    query: Option<&str>,
    limit: default!(Option<i32>, 10),
) -> SetOfIterator<'static, pgrx::composite_type!('static, "tenants")> {
    let query = required(query, "query");
    let limit = tenants::check_limit(limit, "limit");
    // Nothing longer than the longest name can be a substring of one.
    if query.chars().count() > validate::MAX_NAME_CHARS || limit == 0 {
        return tenants::rows(Vec::new());
    }
    if !crate::catalog::direct::has_relation(c"tenants_search_name_idx") {
        // A database not yet updated to 0.3.0: its index has 2- and 3-character grams.
        return tenants::rows(search_by_grams(query, limit));
    }
    tenants::rows(search_ranked(query, limit))
}

/// The ranks after the prefix ones, which the window and the key index serve.
#[derive(Clone, Copy, PartialEq)]
enum Rank {
    NameContains,
    IdentifierContains,
}

/// The condition of each rank on the columns `identifier` and `name` of
/// alias `$a`, with the folded query as $1.
macro_rules! rank_condition {
    (name, $a:literal) => {
        concat!(
            "NOT pg_catalog.starts_with(",
            $a,
            ".identifier, $1)
             AND pg_catalog.strpos(tenancy.search_fold(",
            $a,
            ".name), $1) OPERATOR(pg_catalog.>) 0"
        )
    };
    (identifier, $a:literal) => {
        concat!(
            "pg_catalog.strpos(",
            $a,
            ".identifier, $1) OPERATOR(pg_catalog.>) 0
             AND NOT pg_catalog.starts_with(",
            $a,
            ".identifier, $1)
             AND pg_catalog.strpos(tenancy.search_fold(",
            $a,
            ".name), $1) OPERATOR(pg_catalog.=) 0"
        )
    };
}

/// The first `need` rows of the rank among the first `window!()`
/// identifiers, read in order: the scan stops as soon as it has them, so a
/// common query reads a few rows, a rare one at most the window.
macro_rules! in_window {
    ($rank:tt) => {
        concat!(
            "SELECT w.t, (w.t).id, w.identifier, (w.t).status::text, (w.t).isolation::text,
                    (w.t).schema_name::text, (w.t).database_name::text
               FROM (SELECT t, t.identifier, t.name FROM tenancy.tenants t
                      ORDER BY t.identifier COLLATE \"C\" LIMIT ",
            window!(),
            ") w
              WHERE ",
            rank_condition!($rank, "w"),
            "
              ORDER BY w.identifier COLLATE \"C\" LIMIT $2"
        )
    };
}

fn search_ranked(query: &str, limit: i64) -> Vec<Tenant> {
    let folded = validate::search_fold(query);
    let fits_identifiers = validate::identifier_alphabet(&folded);
    let mut found = Vec::new();
    if fits_identifiers {
        // Identifiers are [a-z0-9-], all below '~' in byte order: the
        // identifiers starting with the query are the range [query, query~).
        found = db::query(
            concat!(
                "SELECT ",
                tenant_cols!(),
                " FROM tenancy.tenants t
                  WHERE t.identifier COLLATE \"C\" OPERATOR(pg_catalog.>=) $1
                    AND t.identifier COLLATE \"C\" OPERATOR(pg_catalog.<) $2
                  ORDER BY t.identifier COLLATE \"C\" LIMIT $3"
            ),
            Mode::Read,
            &[
                folded.as_str().into(),
                format!("{folded}~").into(),
                limit.into(),
            ],
            Tenant::from_row,
        );
    }
    let ranks: &[Rank] = if fits_identifiers {
        &[Rank::NameContains, Rank::IdentifierContains]
    } else {
        &[Rank::NameContains]
    };
    for &rank in ranks {
        let need = limit - found.len() as i64;
        if need <= 0 {
            break;
        }
        let keys = rank_keys(rank, query);
        // A key that few rows hold makes the key index the cheap way at once.
        if keys.rare {
            found.extend(by_keys(rank, &folded, need, keys.keys));
            continue;
        }
        let args = [folded.as_str().into(), need.into()];
        let in_window = match rank {
            Rank::NameContains => db::query(in_window!(name), Mode::Read, &args, Tenant::from_row),
            Rank::IdentifierContains => {
                db::query(in_window!(identifier), Mode::Read, &args, Tenant::from_row)
            }
        };
        // Enough in the window: they are the rank's first matches overall.
        if in_window.len() as i64 == need {
            found.extend(in_window);
        } else {
            found.extend(by_keys(rank, &folded, need, keys.keys));
        }
    }
    found
}

/// The keys a rank asks its index for, and whether one of them is rare.
struct RankKeys {
    keys: Vec<String>,
    /// ANALYZE did not find one of the keys among the column's most common
    /// elements: its posting list, and so the candidates, are short.
    rare: bool,
}

/// The query's keys that narrow the candidates of `rank`: a key every
/// tenant has (the `tnt` of `tnt-50042`, when every identifier starts so)
/// costs the index a walk of its whole posting list and removes nothing, so
/// keys that ANALYZE found in more than 5 % of the rows are left to the
/// recheck (the `strpos` conditions, which decide anyway).  The two rarest
/// are kept if every key is common; without statistics every key is kept.
fn rank_keys(rank: Rank, query: &str) -> RankKeys {
    let index = match rank {
        Rank::NameContains => c"tenants_search_name_idx",
        Rank::IdentifierContains => c"tenants_search_identifier_idx",
    };
    let keys = validate::query_keys(query);
    // From the statistics cache: the pg_stats view costs a millisecond a look.
    let Some(common) = crate::catalog::direct::common_elements(index, &keys) else {
        return RankKeys { keys, rare: false };
    };
    let freq = |k: &String| common.iter().find(|(e, _)| e == k).map(|(_, f)| *f);
    let rare = !keys.is_empty() && keys.iter().any(|k| freq(k).is_none());
    let mut ranked: Vec<(f32, String)> = keys
        .into_iter()
        .map(|k| (freq(&k).unwrap_or(0.0), k))
        .collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
    let keep = ranked
        .iter()
        .filter(|(f, _)| *f <= 0.05)
        .count()
        .max(2)
        .min(ranked.len());
    RankKeys {
        keys: ranked.into_iter().take(keep).map(|(_, k)| k).collect(),
        rare,
    }
}

/// The first `need` matches of `rank` in identifier order, from the key
/// index: its candidates are every row holding the query's keys, few for a
/// query with a rare key or that the window did not satisfy.  The planner is kept to that
/// index (a generic plan cannot tell a rare query from a common one, and
/// would walk the identifier index through the whole catalog).
fn by_keys(rank: Rank, folded: &str, need: i64, keys: Vec<String>) -> Vec<Tenant> {
    let args = [folded.into(), need.into(), keys.into()];
    // The rank's candidates from the key index of its own column.
    macro_rules! from_keys {
        ($column:literal, $rank:tt) => {
            concat!(
                "SELECT ",
                tenant_cols!(),
                " FROM tenancy.tenants t
                  WHERE tenancy.search_keys(t.",
                $column,
                ") OPERATOR(pg_catalog.@>) $3::text[]
                    AND ",
                rank_condition!($rank, "t"),
                "
                  ORDER BY t.identifier COLLATE \"C\" LIMIT $2"
            )
        };
    }
    let sql = match rank {
        Rank::NameContains => from_keys!("name", name),
        Rank::IdentifierContains => from_keys!("identifier", identifier),
    };
    settings::scoped(
        &[
            (c"enable_indexscan", "off"),
            (c"enable_seqscan", "off"),
            (c"jit", "off"),
        ],
        || db::query(sql, Mode::Read, &args, Tenant::from_row),
    )
}

/// 0.2.0's search, for a database whose index still has 2- and 3-character
/// grams (until ALTER EXTENSION tenancy UPDATE).
fn search_by_grams(query: &str, limit: i64) -> Vec<Tenant> {
    let folded = validate::search_fold(query);
    let grams = validate::query_grams(query);
    db::query(
        concat!(
            "SELECT ", tenant_cols!(), " FROM tenancy.tenants t
              WHERE tenancy.search_grams(t.identifier, t.name) OPERATOR(pg_catalog.@>) $1::text[]
                AND (pg_catalog.strpos(t.identifier, $2) OPERATOR(pg_catalog.>) 0
                     OR pg_catalog.strpos(tenancy.search_fold(t.name), $2) OPERATOR(pg_catalog.>) 0)
              ORDER BY CASE
                         WHEN t.identifier OPERATOR(pg_catalog.=) $2 THEN 0
                         WHEN pg_catalog.starts_with(t.identifier, $2) THEN 1
                         WHEN pg_catalog.strpos(tenancy.search_fold(t.name), $2) OPERATOR(pg_catalog.>) 0 THEN 2
                         ELSE 3
                       END,
                       t.identifier COLLATE \"C\"
              LIMIT $3"
        ),
        Mode::Read,
        &[grams.into(), folded.into(), limit.into()],
        Tenant::from_row,
    )
}
