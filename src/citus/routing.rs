//! Routing of single-tenant statements on a Citus cluster (SPEC §8: "each
//! such single-tenant statement runs as one task on the node that holds the
//! tenant's shard").
//!
//! Why it is needed: Citus prunes shards only on `column = Const` (or an
//! extern Param) in a query's quals.  tenancy's policy, `tenant_id =
//! tenancy.current_tenant_id()`, is a function call, so without help every
//! statement on an RLS table goes to every shard, as in Citus issues 7415
//! and 6712.  The policy itself cannot change: it must stay a function of
//! the context, evaluated on each worker with the context Citus propagated.
//!
//! What this does: a planner hook, which runs before Citus's
//! (`distributed_planner`) because tenancy's library is loaded after Citus,
//! finds every relation of the query (sub-queries, CTEs and sublinks
//! included) whose row security quals contain tenancy's policy as a
//! conjunct, and appends `tenant_id = '<uuid>'::uuid` to them, where the uuid
//! is what `current_tenant_id()` returns now, with its checks and errors.
//! Citus's router planner then sees a Const among the relation's
//! restrictions and prunes to the tenant's shard.  A statement on one
//! relation (no CTE, no sublink, no join) also gets the conjunct in its
//! WHERE clause, which is what Citus's fast path reads; the worker query
//! then carries it too.
//!
//! Why it can never widen access: it only ever appends conjuncts (an AND
//! with what is there), never removes or rewrites a qual, and the policy
//! stays as it was, on the coordinator and on every shard, where the worker
//! evaluates it with its own context.  Appending a conjunct can only shrink
//! the set of rows a scan returns or a statement changes, and pruning can
//! only drop shards, each of which still answers under its own policy.  The
//! uuid is never taken from the setting unchecked: a forged, suspended or
//! ungranted context raises here exactly as `current_tenant_id()` would.
//! The operator (`uuid = uuid`) is leakproof, so where the conjunct is
//! evaluated cannot leak rows either.  See docs/design/citus-routing.md.
//!
//! Plans: a plan built with the Const must not run under another tenant (it
//! would prune to the wrong shard: no rows, never someone else's).  Each
//! such plan is marked with plan-invalidation items (below), which the
//! `tenancy.tenant_id` assign hook fires when the context moves to another
//! tenant, so PostgreSQL's plan cache (PREPARE, PL/pgSQL, generic plans)
//! re-plans it; and the executor refuses, with 0A000, a plan whose first run
//! comes under another tenant than it was planned for (a SQL function's
//! statements are all planned before the first runs; a cursor opened before
//! set_tenant).
//!
//! Only installed where Citus is loaded: on a single node the planner is
//! PostgreSQL's alone, as before.

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void};

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::context;
use crate::base::errors;
use crate::base::settings;
use crate::base::validate;

/// `uuid = uuid` (`pg_catalog.uuid_eq`), a pinned OID the same in every
/// PostgreSQL version; what enable_rls's policy writes as
/// `OPERATOR(pg_catalog.=)`.
const UUID_EQ: pg_sys::Oid = pg_sys::Oid::from_u32(2972);

/// The hash value of the plan-invalidation item that marks a routed plan,
/// under the `pg_proc` cache id (whose items PostgreSQL's plan cache checks
/// one by one).  Four more items after it carry the tenant's uuid.  Calling
/// the `pg_proc` callbacks with this value invalidates exactly the routed
/// plans; a real function whose hash collided would only have its dependent
/// plans re-planned too.
const MARKER: u32 = 0x7465_6e61;

/// `tenancy.citus_routing`: on by default.  Off, statements are planned as
/// if this module did not exist (every shard, guarded by its policy): what
/// the test suite compares against, and a way around a Citus planner
/// problem.  Anyone may turn it off: it only ever narrows what a statement
/// reads, so off can never widen access.
pub static ENABLED: GucSetting<bool> = GucSetting::<bool>::new(true);

static mut PREV_PLANNER: pg_sys::planner_hook_type = None;
static mut PREV_RUN: pg_sys::ExecutorRun_hook_type = None;

thread_local! {
    /// The tenant routed plans were built for since the context last moved
    /// to another tenant (and they were invalidated): none, or one tenant.
    static ROUTED_FOR: Cell<Option<[u8; 16]>> = const { Cell::new(None) };
    /// `tenancy.current_tenant_id()`'s OID and its `pg_proc` cache hash,
    /// forgotten when that row changes (DROP EXTENSION, upgrades).
    static POLICY_FUNCTION: Cell<Option<(pg_sys::Oid, u32)>> = const { Cell::new(None) };
}

/// Defines `tenancy.citus_routing` (before settings.rs reserves the
/// `tenancy` prefix, which would drop a value set before the library
/// loaded), and installs the hooks when Citus is loaded: Citus can only be
/// preloaded, so it is loaded before tenancy or not at all in this backend.
pub fn init() {
    GucRegistry::define_bool_guc(
        c"tenancy.citus_routing",
        c"Route single-tenant statements on RLS tables to the tenant's shard (Citus).",
        c"Adds the checked tenant as a constant to the statement's row security quals, so Citus plans one task.",
        &ENABLED,
        GucContext::Userset,
        GucFlags::default(),
    );
    if !super::loaded() {
        return;
    }
    unsafe {
        PREV_PLANNER = pg_sys::planner_hook;
        pg_sys::planner_hook = Some(plan);
        PREV_RUN = pg_sys::ExecutorRun_hook;
        pg_sys::ExecutorRun_hook = Some(run);
        pg_sys::CacheRegisterSyscacheCallback(
            pg_sys::SysCacheIdentifier::PROCOID as c_int,
            Some(forget_function),
            pg_sys::Datum::from(0usize),
        );
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn forget_function(_arg: pg_sys::Datum, _cache: c_int, hash: u32) {
    if let Some((_, h)) = POLICY_FUNCTION.get() {
        if hash == 0 || hash == h {
            POLICY_FUNCTION.set(None);
        }
    }
}

/// `tenancy.current_tenant_id()`'s OID, or None where the extension is not
/// installed (the library may be preloaded in any database).
fn policy_function() -> Option<pg_sys::Oid> {
    if let Some((oid, _)) = POLICY_FUNCTION.get() {
        return Some(oid);
    }
    unsafe {
        if pg_sys::get_namespace_oid(c"tenancy".as_ptr(), true) == pg_sys::InvalidOid {
            return None;
        }
        let mut name = std::ptr::null_mut();
        name = pg_sys::lappend(
            name,
            pg_sys::makeString(pg_sys::pstrdup(c"tenancy".as_ptr())).cast(),
        );
        name = pg_sys::lappend(
            name,
            pg_sys::makeString(pg_sys::pstrdup(c"current_tenant_id".as_ptr())).cast(),
        );
        let oid = pg_sys::LookupFuncName(name, 0, std::ptr::null(), true);
        if oid == pg_sys::InvalidOid {
            return None;
        }
        let hash = pg_sys::GetSysCacheHashValue(
            pg_sys::SysCacheIdentifier::PROCOID as c_int,
            pg_sys::Datum::from(oid),
            pg_sys::Datum::from(0usize),
            pg_sys::Datum::from(0usize),
            pg_sys::Datum::from(0usize),
        );
        POLICY_FUNCTION.set(Some((oid, hash)));
        Some(oid)
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn plan(
    parse: *mut pg_sys::Query,
    query_string: *const c_char,
    cursor_options: c_int,
    bound_params: pg_sys::ParamListInfo,
) -> *mut pg_sys::PlannedStmt {
    // The rewriter sets hasRowSecurity on the top query when it added row
    // security quals anywhere in it: a statement without them, or without
    // a context, costs two loads.
    let routed =
        if unsafe { (*parse).hasRowSecurity } && settings::tenant_id_is_set() && ENABLED.get() {
            unsafe { route(parse) }
        } else {
            None
        };
    let stmt = unsafe {
        pg_sys::ffi::pg_guard_ffi_boundary(|| match PREV_PLANNER {
            Some(prev) => prev(parse, query_string, cursor_options, bound_params),
            None => pg_sys::standard_planner(parse, query_string, cursor_options, bound_params),
        })
    };
    if let Some(tenant) = routed {
        unsafe { mark(stmt, tenant) };
    }
    stmt
}

/// What the walk over a query found and did.
struct Walk {
    function: pg_sys::Oid,
    /// The checked tenant, looked up at the first relation that needs it.
    tenant: Option<[u8; 16]>,
    /// Each relation given the conjunct, with the conjunct.
    added: Vec<(*mut pg_sys::RangeTblEntry, *mut pg_sys::OpExpr)>,
}

/// Adds the checked tenant to every relation of `parse` that carries
/// tenancy's policy; returns the tenant when it added any.
unsafe fn route(parse: *mut pg_sys::Query) -> Option<[u8; 16]> {
    let function = policy_function()?;
    let mut walk = Walk {
        function,
        tenant: None,
        added: Vec::new(),
    };
    unsafe {
        walker(parse.cast(), (&mut walk as *mut Walk).cast());
        if walk.added.is_empty() {
            return None;
        }
        fast_path(parse, &walk);
    }
    walk.tenant
}

#[pg_guard]
unsafe extern "C-unwind" fn walker(node: *mut pg_sys::Node, cx: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    unsafe {
        if pgrx::is_a(node, pg_sys::NodeTag::T_Query) {
            // Range table entries are shown to the walker before their
            // contents (sub-queries, security quals) are walked.
            return pg_sys::query_tree_walker(
                node.cast(),
                Some(walker),
                cx,
                pg_sys::QTW_EXAMINE_RTES_BEFORE as c_int,
            );
        }
        if pgrx::is_a(node, pg_sys::NodeTag::T_RangeTblEntry) {
            let rte: *mut pg_sys::RangeTblEntry = node.cast();
            if (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION {
                visit(rte, &mut *(cx as *mut Walk));
            }
            return false;
        }
        pg_sys::expression_tree_walker(node, Some(walker), cx)
    }
}

/// Appends `Var = '<tenant>'::uuid` to the relation's security quals when
/// one of them (each is a conjunct) is tenancy's policy.  A policy that is
/// only one arm of an OR (another permissive policy on the table) is not a
/// conjunct and is left alone: the table is then not routed.
unsafe fn visit(rte: *mut pg_sys::RangeTblEntry, walk: &mut Walk) {
    unsafe {
        let quals = (*rte).securityQuals;
        for i in 0..list_len(quals) {
            let qual: *mut pg_sys::Node = pg_sys::list_nth(quals, i as c_int).cast();
            let Some((op, var)) = policy_var(qual, walk.function) else {
                continue;
            };
            let tenant = match walk.tenant {
                Some(t) => t,
                None => match context::checked_tenant_id() {
                    Some(t) => *walk.tenant.insert(*t.as_bytes()),
                    // No tenant: the policy lets nothing through anyway.
                    None => return,
                },
            };
            let conjunct = tenant_equals(op, var, &tenant);
            (*rte).securityQuals = pg_sys::lappend((*rte).securityQuals, conjunct.cast());
            walk.added.push((rte, conjunct));
            return;
        }
    }
}

fn list_len(list: *mut pg_sys::List) -> usize {
    if list.is_null() {
        0
    } else {
        unsafe { (*list).length as usize }
    }
}

/// The column of `qual` when it is tenancy's policy, `Var = current_tenant_id()`
/// (either way round) on a uuid column of this query level.
unsafe fn policy_var(
    qual: *mut pg_sys::Node,
    function: pg_sys::Oid,
) -> Option<(*mut pg_sys::OpExpr, *mut pg_sys::Var)> {
    unsafe {
        if !pgrx::is_a(qual, pg_sys::NodeTag::T_OpExpr) {
            return None;
        }
        let op: *mut pg_sys::OpExpr = qual.cast();
        if (*op).opno != UUID_EQ || list_len((*op).args) != 2 {
            return None;
        }
        let (a, b): (*mut pg_sys::Node, *mut pg_sys::Node) = (
            pg_sys::list_nth((*op).args, 0).cast(),
            pg_sys::list_nth((*op).args, 1).cast(),
        );
        let is_policy_call = |n: *mut pg_sys::Node| {
            pgrx::is_a(n, pg_sys::NodeTag::T_FuncExpr) && {
                let f: *mut pg_sys::FuncExpr = n.cast();
                (*f).funcid == function && (*f).args.is_null()
            }
        };
        let as_column = |n: *mut pg_sys::Node| {
            (pgrx::is_a(n, pg_sys::NodeTag::T_Var) && {
                let v: *mut pg_sys::Var = n.cast();
                (*v).varlevelsup == 0 && (*v).vartype == pg_sys::UUIDOID
            })
            .then_some(n.cast::<pg_sys::Var>())
        };
        if is_policy_call(b) {
            as_column(a).map(|v| (op, v))
        } else if is_policy_call(a) {
            as_column(b).map(|v| (op, v))
        } else {
            None
        }
    }
}

/// A copy of the policy's operator with the function call replaced by the
/// tenant's uuid: `Var = '<tenant>'::uuid`.
unsafe fn tenant_equals(
    op: *mut pg_sys::OpExpr,
    var: *mut pg_sys::Var,
    tenant: &[u8; 16],
) -> *mut pg_sys::OpExpr {
    unsafe {
        let bytes = pg_sys::palloc(16) as *mut u8;
        std::ptr::copy_nonoverlapping(tenant.as_ptr(), bytes, 16);
        let value = pg_sys::makeConst(
            pg_sys::UUIDOID,
            -1,
            pg_sys::InvalidOid,
            16,
            pg_sys::Datum::from(bytes),
            false,
            false,
        );
        let copy: *mut pg_sys::OpExpr = pg_sys::copyObjectImpl(op.cast()).cast();
        let mut args = pg_sys::lappend(std::ptr::null_mut(), pg_sys::copyObjectImpl(var.cast()));
        args = pg_sys::lappend(args, value.cast());
        (*copy).args = args;
        (*copy).location = -1;
        copy
    }
}

/// Citus's fast path (planning without PostgreSQL's planner) reads only the
/// WHERE clause of a statement on one table, and wants the distribution
/// column there once, `= Const`.  For such a statement the conjunct goes
/// into the WHERE clause too.  With one relation and no sublink there is
/// no outer join for it to change, and the WHERE is ANDed with the
/// relation's security quals anyway.  Where the user's WHERE already names
/// the column (`tenant_id = $1`, `tenant_id = '…'`), Citus routes on that.
unsafe fn fast_path(parse: *mut pg_sys::Query, walk: &Walk) {
    unsafe {
        let q = &mut *parse;
        let command_ok = matches!(
            q.commandType,
            pg_sys::CmdType::CMD_SELECT | pg_sys::CmdType::CMD_UPDATE | pg_sys::CmdType::CMD_DELETE
        );
        if !command_ok
            || list_len(q.rtable) != 1
            || !q.cteList.is_null()
            || q.hasSubLinks
            || !q.setOperations.is_null()
            || q.hasTargetSRFs
            || q.hasModifyingCTE
            || q.jointree.is_null()
        {
            return;
        }
        let rte: *mut pg_sys::RangeTblEntry = pg_sys::list_nth(q.rtable, 0).cast();
        let Some(&(_, conjunct)) = walk.added.iter().find(|(r, _)| *r == rte) else {
            return;
        };
        let var: *mut pg_sys::Var = pg_sys::list_nth((*conjunct).args, 0).cast();
        let quals = (*q.jointree).quals;
        let mut column = ((*var).varno, (*var).varattno, false);
        if !quals.is_null() {
            names_column(quals, (&mut column as *mut (_, _, bool)).cast());
            if column.2 {
                return;
            }
        }
        let conjunct: *mut pg_sys::Node = pg_sys::copyObjectImpl(conjunct.cast()).cast();
        (*q.jointree).quals = if quals.is_null() {
            conjunct
        } else {
            let mut both = pg_sys::lappend(std::ptr::null_mut(), quals.cast());
            both = pg_sys::lappend(both, conjunct.cast());
            pg_sys::makeBoolExpr(pg_sys::BoolExprType::AND_EXPR, both, -1).cast()
        };
    }
}

/// Sets the flag of `(varno, varattno, found)` when the expression names
/// that column of this query level.
#[pg_guard]
unsafe extern "C-unwind" fn names_column(node: *mut pg_sys::Node, cx: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    unsafe {
        let column = &mut *(cx as *mut (c_int, pg_sys::AttrNumber, bool));
        if pgrx::is_a(node, pg_sys::NodeTag::T_Var) {
            let v: *mut pg_sys::Var = node.cast();
            if (*v).varlevelsup == 0
                && (*v).varno as c_int == column.0 as c_int
                && (*v).varattno == column.1
            {
                column.2 = true;
                return true;
            }
            return false;
        }
        pg_sys::expression_tree_walker(node, Some(names_column), cx)
    }
}

unsafe fn inval_item(hash: u32) -> *mut pg_sys::PlanInvalItem {
    unsafe {
        let item = pg_sys::palloc0(std::mem::size_of::<pg_sys::PlanInvalItem>())
            as *mut pg_sys::PlanInvalItem;
        (*item).type_ = pg_sys::NodeTag::T_PlanInvalItem;
        (*item).cacheId = pg_sys::SysCacheIdentifier::PROCOID as c_int;
        (*item).hashValue = hash;
        item
    }
}

/// Marks a routed plan: the [`MARKER`] item, then the tenant's uuid in four
/// items.  They survive the copies the plan cache makes, and cost the plan
/// cache nothing but a comparison on each `pg_proc` invalidation.
unsafe fn mark(stmt: *mut pg_sys::PlannedStmt, tenant: [u8; 16]) {
    if ROUTED_FOR.get().is_some_and(|t| t != tenant) {
        // Cannot happen (the assign hook invalidated when the context
        // moved), but a stale plan must never survive.
        invalidate();
    }
    unsafe {
        let mut items = pg_sys::lappend((*stmt).invalItems, inval_item(MARKER).cast());
        for word in tenant.chunks_exact(4) {
            items = pg_sys::lappend(
                items,
                inval_item(u32::from_be_bytes([word[0], word[1], word[2], word[3]])).cast(),
            );
        }
        (*stmt).invalItems = items;
    }
    ROUTED_FOR.set(Some(tenant));
}

/// The tenant a plan was routed for, from its marker items.
unsafe fn routed_tenant(stmt: *mut pg_sys::PlannedStmt) -> Option<[u8; 16]> {
    unsafe {
        if stmt.is_null() {
            return None;
        }
        let items = (*stmt).invalItems;
        let n = list_len(items);
        let item =
            |i: usize| &*(pg_sys::list_nth(items, i as c_int) as *const pg_sys::PlanInvalItem);
        let at = (0..n).find(|&i| {
            let it = item(i);
            it.cacheId == pg_sys::SysCacheIdentifier::PROCOID as c_int
                && it.hashValue == MARKER
                && i + 4 < n
        })?;
        let mut tenant = [0u8; 16];
        for w in 0..4 {
            tenant[w * 4..w * 4 + 4].copy_from_slice(&item(at + 1 + w).hashValue.to_be_bytes());
        }
        Some(tenant)
    }
}

/// Re-plans every routed plan at its next use (PostgreSQL's plan cache:
/// prepared statements, PL/pgSQL, SPI plans kept by anyone).  It only flips
/// validity flags, so it is safe where assign hooks run, transaction abort
/// included (PostgreSQL runs the same callbacks while aborting).
fn invalidate() {
    unsafe { pg_sys::CallSyscacheCallbacks(pg_sys::SysCacheIdentifier::PROCOID as c_int, MARKER) };
    ROUTED_FOR.set(None);
}

/// Called by the `tenancy.tenant_id` assign hook with the value about to be
/// in force (set, reset, or restored by COMMIT, ROLLBACK or ROLLBACK TO
/// SAVEPOINT): routed plans built for another tenant become invalid.  An
/// empty context leaves them valid: run under no tenant, the policy lets
/// nothing through, routed or not.
pub fn context_assigned(value: &str) {
    let Some(routed) = ROUTED_FOR.get() else {
        return;
    };
    if value.is_empty() {
        return;
    }
    if validate::parse_pg_uuid(value) != Some(routed) {
        invalidate();
    }
}

#[cfg(not(feature = "pg18"))]
#[pg_guard]
unsafe extern "C-unwind" fn run(
    query: *mut pg_sys::QueryDesc,
    direction: pg_sys::ScanDirection::Type,
    count: u64,
    execute_once: bool,
) {
    unsafe {
        check_first_run(query);
        pg_sys::ffi::pg_guard_ffi_boundary(|| match PREV_RUN {
            Some(prev) => prev(query, direction, count, execute_once),
            None => pg_sys::standard_ExecutorRun(query, direction, count, execute_once),
        })
    }
}

#[cfg(feature = "pg18")]
#[pg_guard]
unsafe extern "C-unwind" fn run(
    query: *mut pg_sys::QueryDesc,
    direction: pg_sys::ScanDirection::Type,
    count: u64,
) {
    unsafe {
        check_first_run(query);
        pg_sys::ffi::pg_guard_ffi_boundary(|| match PREV_RUN {
            Some(prev) => prev(query, direction, count),
            None => pg_sys::standard_ExecutorRun(query, direction, count),
        })
    }
}

/// Refuses a routed plan whose first run comes under another tenant than
/// it was planned for: plans the plan cache keeps are re-planned instead
/// (see [`context_assigned`]), so this is the statement planned before an
/// earlier one changed the context (a SQL function's body), or a cursor
/// opened before set_tenant and first read after.  Citus runs a statement's
/// tasks at its first run, so later reads of a cursor are safe.
unsafe fn check_first_run(query: *mut pg_sys::QueryDesc) {
    unsafe {
        if (*query).already_executed || !settings::tenant_id_is_set() {
            return;
        }
        let Some(planned) = routed_tenant((*query).plannedstmt) else {
            return;
        };
        if validate::parse_pg_uuid(&settings::tenant_id_text()) != Some(planned) {
            errors::unsupported("the tenant context changed after this statement was planned")
                .detail("The statement was routed to the shard of the tenant set when it was planned.")
                .hint("Set the tenant before the statement: a SQL function's statements are planned before the first one runs, a cursor when it is opened.")
                .raise();
        }
    }
}
