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
//! finds the relations of a query whose row security quals contain
//! tenancy's policy as a conjunct, and gives Citus something to prune on:
//!
//! - A statement on one such table (SELECT, UPDATE, DELETE; no CTE, no
//!   sublink, no join: Citus's fast path) gets `tenant_id = $K` ANDed into
//!   its WHERE clause, an extern parameter numbered past every parameter of
//!   the statement.  The executor start hook supplies `$K`, for each
//!   execution, as what `current_tenant_id()` returns then (with its checks
//!   and errors).  Citus prunes on it at each execution, as it does for the
//!   hand-written `WHERE tenant_id = $1` (deferred pruning), so the plan does
//!   not depend on the tenant and stays cached across tenant switches.
//! - Any other statement (joins, sub-queries, CTEs, INSERT ... SELECT) gets
//!   `tenant_id = '<uuid>'::uuid`, the checked tenant of planning time,
//!   appended to each such relation's security quals: Citus's router
//!   planner prunes on Consts among a relation's restrictions, not on
//!   parameters.
//!
//! Why it can never widen access: it only ever appends conjuncts (an AND
//! with what is there), never removes or rewrites a qual, and the policy
//! stays as it was, on the coordinator and on every shard, where the worker
//! evaluates it with its own context.  Appending a conjunct can only shrink
//! the set of rows a scan returns or a statement changes, and pruning can
//! only drop shards, each of which still answers under its own policy.  The
//! uuid is never taken from the setting unchecked: a forged, suspended or
//! ungranted context raises exactly as `current_tenant_id()` would.  The
//! operator (`uuid = uuid`) is leakproof, so where the conjunct is evaluated
//! cannot leak rows either.  See docs/design/citus-routing.md.
//!
//! Plans with a Const must not run under another tenant (they would prune
//! to the wrong shard: no rows, never someone else's).  Each is marked with
//! plan-invalidation items, which the `tenancy.tenant_id` assign hook fires
//! when the context moves to another tenant, so PostgreSQL's plan cache
//! (PREPARE, PL/pgSQL, generic plans) re-plans it.  And the executor refuses,
//! with 0A000, a routed plan whose first run comes under another tenant than
//! it was planned (Const) or started (parameter) for: a SQL function's
//! statements are planned before the first runs, a cursor is started when
//! it is opened.
//!
//! Only installed where Citus is loaded: on a single node the planner is
//! PostgreSQL's alone, as before.

use super::nodes::{dist, Dist};
use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void};

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::base::errors;
use crate::base::settings;
use crate::base::validate;
use crate::context;

/// `uuid = uuid` (`pg_catalog.uuid_eq`), a pinned OID the same in every
/// PostgreSQL version; what enable_rls's policy writes as
/// `OPERATOR(pg_catalog.=)`.
const UUID_EQ: pg_sys::Oid = pg_sys::Oid::from_u32(2972);

/// The hash value of the plan-invalidation item that marks a plan routed
/// with a Const, under the `pg_proc` cache id (whose items PostgreSQL's plan
/// cache checks one by one); [`CONST_KIND`] and four items with the
/// tenant's uuid follow.  Calling the `pg_proc` callbacks with this value
/// invalidates exactly these plans; a real function whose hash collided
/// would only have its dependent plans re-planned too.
const MARKER: u32 = 0x7465_6e61;
const CONST_KIND: u32 = 0x726f_7501;

/// The marker of a plan routed with the parameter, never invalidated by
/// tenancy; [`PARAM_KIND`] and the parameter's number follow.  Two marker
/// words in a row: a plan of someone else's is not mistaken for a routed
/// one unless two of its functions' hashes collide with them, in order.
const PARAM_MARKER: u32 = 0x7465_6e62;
const PARAM_KIND: u32 = 0x726f_7502;

/// PostgreSQL's limit on a statement's parameters (the protocol's 16 bits).
const MAX_PARAMS: c_int = 65535;

/// What a routed plan was given.
#[derive(Clone, Copy)]
enum Routed {
    /// `tenant_id = $K` in the WHERE of a one-table statement.
    Param(c_int),
    /// `tenant_id = '<uuid>'` in the security quals, for this tenant.
    Const([u8; 16]),
}

/// `tenancy.citus_routing`: on by default.  Off, statements are planned as
/// if this module did not exist (every shard, guarded by its policy): what
/// the test suite compares against, and a way around a Citus planner
/// problem.  Anyone may turn it off: it only ever narrows what a statement
/// reads, so off can never widen access.
pub static ENABLED: GucSetting<bool> = GucSetting::<bool>::new(true);

static mut PREV_PLANNER: pg_sys::planner_hook_type = None;
static mut PREV_START: pg_sys::ExecutorStart_hook_type = None;
static mut PREV_RUN: pg_sys::ExecutorRun_hook_type = None;

thread_local! {
    /// The tenant routed plans were built for since the context last moved
    /// to another tenant (and they were invalidated): none, or one tenant.
    static ROUTED_FOR: Cell<Option<[u8; 16]>> = const { Cell::new(None) };
    /// `tenancy.current_tenant_id()`'s OID and its `pg_proc` cache hash,
    /// forgotten when that row changes (DROP EXTENSION, upgrades).
    static POLICY_FUNCTION: Cell<Option<(pg_sys::Oid, u32)>> = const { Cell::new(None) };
}

/// Whether Citus's fast path is on (`citus.enable_fast_path_router_planner`).
fn fast_path_enabled() -> bool {
    unsafe {
        let p = pg_sys::GetConfigOption(
            c"citus.enable_fast_path_router_planner".as_ptr(),
            true,
            false,
        );
        !p.is_null() && std::ffi::CStr::from_ptr(p).to_bytes() == b"on"
    }
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
    settings::on_context_change(context_assigned);
    unsafe {
        PREV_PLANNER = pg_sys::planner_hook;
        pg_sys::planner_hook = Some(plan);
        PREV_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(start);
        PREV_RUN = pg_sys::ExecutorRun_hook;
        pg_sys::ExecutorRun_hook = Some(run);
        // Loaded at its first function call, tenancy may find plans cached
        // without its hook (a statement prepared before the first
        // set_tenant): they would stay unrouted.  Re-plan them once.
        pg_sys::ResetPlanCache();
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
    // security quals anywhere in it: a statement without them costs a load.
    let routed = if unsafe { (*parse).hasRowSecurity } && ENABLED.get() {
        unsafe { route(parse, bound_params) }
    } else {
        None
    };
    let stmt = unsafe {
        pg_sys::ffi::pg_guard_ffi_boundary(|| match PREV_PLANNER {
            Some(prev) => prev(parse, query_string, cursor_options, bound_params),
            None => pg_sys::standard_planner(parse, query_string, cursor_options, bound_params),
        })
    };
    if let Some(routed) = routed {
        unsafe { mark(stmt, routed) };
    }
    stmt
}

/// What the walk over a query found and did.
struct Walk {
    function: pg_sys::Oid,
    /// The checked tenant, looked up at the first relation that needs it.
    tenant: Option<[u8; 16]>,
    /// The relations given the conjunct.
    added: Vec<*mut pg_sys::RangeTblEntry>,
}

/// Routes `parse`: the parameter for a one-table statement, else the
/// checked tenant (when there is a context) as a Const on every relation
/// that carries tenancy's policy.
unsafe fn route(parse: *mut pg_sys::Query, bound_params: pg_sys::ParamListInfo) -> Option<Routed> {
    let function = policy_function()?;
    unsafe {
        if let Some(candidate) = one_table(parse, function) {
            return candidate.and_then(|(op, var)| with_param(parse, op, var, bound_params));
        }
        if !settings::tenant_id_is_set() {
            return None;
        }
        let mut walk = Walk {
            function,
            tenant: None,
            added: Vec::new(),
        };
        walker(parse.cast(), (&mut walk as *mut Walk).cast());
        if walk.added.is_empty() {
            return None;
        }
        walk.tenant.map(Routed::Const)
    }
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
        // Only Citus tables are pruned: on a local table (or a shard, on a
        // worker) the Const would repeat the policy and tie the plan to the
        // tenant for nothing.
        if list_len(quals) == 0 || dist((*rte).relid) == Dist::Local {
            return;
        }
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
            let conjunct = equals(op, var, uuid_const(&tenant).cast());
            (*rte).securityQuals = pg_sys::lappend((*rte).securityQuals, conjunct.cast());
            walk.added.push(rte);
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

/// `'<uuid>'::uuid`.
unsafe fn uuid_const(tenant: &[u8; 16]) -> *mut pg_sys::Const {
    unsafe {
        let bytes = pg_sys::palloc(16) as *mut u8;
        std::ptr::copy_nonoverlapping(tenant.as_ptr(), bytes, 16);
        pg_sys::makeConst(
            pg_sys::UUIDOID,
            -1,
            pg_sys::InvalidOid,
            16,
            pg_sys::Datum::from(bytes),
            false,
            false,
        )
    }
}

/// A copy of the policy's operator with the function call replaced by
/// `value`: `Var = value`.
unsafe fn equals(
    op: *mut pg_sys::OpExpr,
    var: *mut pg_sys::Var,
    value: *mut pg_sys::Node,
) -> *mut pg_sys::OpExpr {
    unsafe {
        let copy: *mut pg_sys::OpExpr = pg_sys::copyObjectImpl(op.cast()).cast();
        let mut args = pg_sys::lappend(std::ptr::null_mut(), pg_sys::copyObjectImpl(var.cast()));
        args = pg_sys::lappend(args, value.cast());
        (*copy).args = args;
        (*copy).location = -1;
        copy
    }
}

/// Whether `parse` is a statement Citus's fast path can plan (it reads
/// only the WHERE clause, and wants the distribution column there once,
/// `= Const` or `= $n`): SELECT, UPDATE or DELETE of one relation, no CTE,
/// sublink, set operation or set-returning function.  None when it is not;
/// Some(None) when it is but has nothing to add (no tenancy policy as a
/// conjunct, or the WHERE already names the column: Citus routes on the
/// user's `tenant_id = …`); else the policy and its column.
unsafe fn one_table(
    parse: *mut pg_sys::Query,
    function: pg_sys::Oid,
) -> Option<Option<(*mut pg_sys::OpExpr, *mut pg_sys::Var)>> {
    unsafe {
        let q = &*parse;
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
            return None;
        }
        let rte: *mut pg_sys::RangeTblEntry = pg_sys::list_nth(q.rtable, 0).cast();
        if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION {
            return None;
        }
        let quals = (*rte).securityQuals;
        let found = (0..list_len(quals))
            .find_map(|i| policy_var(pg_sys::list_nth(quals, i as c_int).cast(), function));
        let Some((op, var)) = found else {
            return Some(None);
        };
        // Citus plans it on its fast path only when the table is
        // hash-distributed by the policy's column (its router planner
        // prunes on Consts, not parameters, and refuses a parameter it has
        // no value for): else the Const, like a join.
        if !fast_path_enabled() || dist((*rte).relid) != Dist::Hash((*var).varattno) {
            return None;
        }
        let user_quals = (*q.jointree).quals;
        if !user_quals.is_null() {
            let mut column = ((*var).varno, (*var).varattno, false);
            names_column(user_quals, (&mut column as *mut (_, _, bool)).cast());
            if column.2 {
                return Some(None);
            }
        }
        Some(Some((op, var)))
    }
}

/// ANDs `Var = $K` into the statement's WHERE, `$K` numbered past every
/// parameter the statement uses and every one it was planned with (Citus
/// substitutes the bound parameters it is given while planning, by number).
/// With one relation and no sublink there is no outer join for it to change,
/// and the WHERE is ANDed with the relation's security quals anyway.
unsafe fn with_param(
    parse: *mut pg_sys::Query,
    op: *mut pg_sys::OpExpr,
    var: *mut pg_sys::Var,
    bound_params: pg_sys::ParamListInfo,
) -> Option<Routed> {
    unsafe {
        let mut highest: c_int = if bound_params.is_null() {
            0
        } else {
            (*bound_params).numParams
        };
        pg_sys::query_tree_walker(
            parse,
            Some(highest_param),
            (&mut highest as *mut c_int).cast(),
            0,
        );
        let k = highest.checked_add(1).filter(|k| *k <= MAX_PARAMS)?;
        let param = pg_sys::palloc0(std::mem::size_of::<pg_sys::Param>()) as *mut pg_sys::Param;
        (*param).xpr.type_ = pg_sys::NodeTag::T_Param;
        (*param).paramkind = pg_sys::ParamKind::PARAM_EXTERN;
        (*param).paramid = k;
        (*param).paramtype = pg_sys::UUIDOID;
        (*param).paramtypmod = -1;
        (*param).paramcollid = pg_sys::InvalidOid;
        (*param).location = -1;
        let conjunct: *mut pg_sys::Node = equals(op, var, param.cast()).cast();
        let jointree = (*parse).jointree;
        let quals = (*jointree).quals;
        (*jointree).quals = if quals.is_null() {
            conjunct
        } else {
            let mut both = pg_sys::lappend(std::ptr::null_mut(), quals.cast());
            both = pg_sys::lappend(both, conjunct.cast());
            pg_sys::makeBoolExpr(pg_sys::BoolExprType::AND_EXPR, both, -1).cast()
        };
        Some(Routed::Param(k))
    }
}

/// Raises the `c_int` behind `cx` to the highest extern parameter number
/// of the query.
#[pg_guard]
unsafe extern "C-unwind" fn highest_param(node: *mut pg_sys::Node, cx: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    unsafe {
        if pgrx::is_a(node, pg_sys::NodeTag::T_Query) {
            return pg_sys::query_tree_walker(node.cast(), Some(highest_param), cx, 0);
        }
        if pgrx::is_a(node, pg_sys::NodeTag::T_Param) {
            let p: *mut pg_sys::Param = node.cast();
            if (*p).paramkind == pg_sys::ParamKind::PARAM_EXTERN {
                let highest = &mut *(cx as *mut c_int);
                *highest = (*highest).max((*p).paramid);
            }
            return false;
        }
        pg_sys::expression_tree_walker(node, Some(highest_param), cx)
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

/// Marks a routed plan with plan-invalidation items, which survive the
/// copies the plan cache makes and cost it nothing but a comparison on each
/// `pg_proc` invalidation: [`PARAM_MARKER`] and the parameter's number, or
/// [`MARKER`] and the tenant's uuid in four items.
unsafe fn mark(stmt: *mut pg_sys::PlannedStmt, routed: Routed) {
    let words: Vec<u32> = match routed {
        Routed::Param(k) => vec![PARAM_MARKER, PARAM_KIND, k as u32],
        Routed::Const(tenant) => {
            if ROUTED_FOR.get().is_some_and(|t| t != tenant) {
                // Cannot happen (the assign hook invalidated when the
                // context moved), but a stale plan must never survive.
                invalidate();
            }
            ROUTED_FOR.set(Some(tenant));
            let mut w = vec![MARKER, CONST_KIND];
            w.extend(
                tenant
                    .chunks_exact(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])),
            );
            w
        }
    };
    unsafe {
        let mut items = (*stmt).invalItems;
        for w in words {
            items = pg_sys::lappend(items, inval_item(w).cast());
        }
        (*stmt).invalItems = items;
    }
}

/// How a plan was routed, from its marker items.
unsafe fn routed_of(stmt: *mut pg_sys::PlannedStmt) -> Option<Routed> {
    unsafe {
        if stmt.is_null() {
            return None;
        }
        let items = (*stmt).invalItems;
        let n = list_len(items);
        let item =
            |i: usize| &*(pg_sys::list_nth(items, i as c_int) as *const pg_sys::PlanInvalItem);
        let ours = |i: usize, marker: u32, kind: u32, after: usize| {
            i + 1 + after < n
                && [i, i + 1]
                    .iter()
                    .all(|&j| item(j).cacheId == pg_sys::SysCacheIdentifier::PROCOID as c_int)
                && item(i).hashValue == marker
                && item(i + 1).hashValue == kind
        };
        for i in 0..n {
            if ours(i, PARAM_MARKER, PARAM_KIND, 1) {
                let k = item(i + 2).hashValue;
                return (1..=MAX_PARAMS as u32)
                    .contains(&k)
                    .then_some(Routed::Param(k as c_int));
            }
            if ours(i, MARKER, CONST_KIND, 4) {
                let mut tenant = [0u8; 16];
                for w in 0..4 {
                    tenant[w * 4..w * 4 + 4]
                        .copy_from_slice(&item(i + 2 + w).hashValue.to_be_bytes());
                }
                return Some(Routed::Const(tenant));
            }
        }
        None
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

/// The tenant a parameter-routed statement runs for: the checked context,
/// or, with none, the nil uuid, which is no tenant's (uuid v7) and routes
/// to one shard whose policy lets nothing through, as it would everywhere.
fn tenant_now() -> [u8; 16] {
    if settings::tenant_id_is_set() {
        if let Some(t) = context::checked_tenant_id() {
            return *t.as_bytes();
        }
    }
    [0u8; 16]
}

/// Gives a parameter-routed statement its `$K`: a copy of its parameters
/// (values fetched through any fetch hook, as PostgreSQL copies them for a
/// cursor), at least `k` long, with `$K` the tenant of this execution.  The
/// statement uses no parameter numbered `k` or more (see [`with_param`]);
/// numbers between its own and `k` stay unset.
unsafe fn with_tenant(
    params: pg_sys::ParamListInfo,
    k: c_int,
    tenant: &[u8; 16],
) -> pg_sys::ParamListInfo {
    unsafe {
        let have = if params.is_null() {
            0
        } else {
            (*params).numParams.max(0)
        };
        let list = pg_sys::makeParamList(have.max(k));
        let slots = (*list).params.as_mut_slice((*list).numParams as usize);
        if have > 0 {
            let copy = pg_sys::copyParamList(params);
            let copied = (*copy).params.as_slice(have as usize);
            slots[..have as usize].copy_from_slice(copied);
        }
        for slot in slots.iter_mut().skip(have as usize) {
            *slot = pg_sys::ParamExternData {
                value: pg_sys::Datum::from(0usize),
                isnull: true,
                pflags: 0,
                ptype: pg_sys::InvalidOid,
            };
        }
        let bytes = pg_sys::palloc(16) as *mut u8;
        std::ptr::copy_nonoverlapping(tenant.as_ptr(), bytes, 16);
        slots[k as usize - 1] = pg_sys::ParamExternData {
            value: pg_sys::Datum::from(bytes),
            isnull: false,
            pflags: pg_sys::PARAM_FLAG_CONST as u16,
            ptype: pg_sys::UUIDOID,
        };
        list
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn start(query: *mut pg_sys::QueryDesc, eflags: c_int) {
    unsafe {
        if let Some(Routed::Param(k)) = routed_of((*query).plannedstmt) {
            // The copy lives as long as the query: in its memory context.
            let cx = pg_sys::GetMemoryChunkContext(query.cast());
            let old = pg_sys::MemoryContextSwitchTo(cx);
            let tenant = tenant_now();
            (*query).params = with_tenant((*query).params, k, &tenant);
            pg_sys::MemoryContextSwitchTo(old);
        }
        pg_sys::ffi::pg_guard_ffi_boundary(|| match PREV_START {
            Some(prev) => prev(query, eflags),
            None => pg_sys::standard_ExecutorStart(query, eflags),
        })
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
/// it was planned for (Const) or started for (parameter): plans the plan
/// cache keeps are re-planned instead (see [`context_assigned`]), so this
/// is a statement planned before an earlier one changed the context (a SQL
/// function's body), or a cursor opened before set_tenant and first read
/// after.  Citus runs a statement's tasks at its first run, so later reads
/// of a cursor are safe.  No context now is safe too: the workers' policy
/// then lets nothing through.
unsafe fn check_first_run(query: *mut pg_sys::QueryDesc) {
    unsafe {
        if (*query).already_executed || !settings::tenant_id_is_set() {
            return;
        }
        let meant = match routed_of((*query).plannedstmt) {
            None => return,
            Some(Routed::Const(tenant)) => tenant,
            Some(Routed::Param(k)) => {
                let params = (*query).params;
                if params.is_null() || (*params).numParams < k {
                    return;
                }
                let slot = &(*params).params.as_slice(k as usize)[k as usize - 1];
                if slot.isnull || slot.ptype != pg_sys::UUIDOID {
                    return;
                }
                let mut t = [0u8; 16];
                std::ptr::copy_nonoverlapping(slot.value.cast_mut_ptr::<u8>(), t.as_mut_ptr(), 16);
                t
            }
        };
        if validate::parse_pg_uuid(&settings::tenant_id_text()) != Some(meant) {
            errors::unsupported("the tenant context changed after this statement was planned")
                .detail("The statement was routed to the shard of the tenant set when it was planned or opened.")
                .hint("Set the tenant before the statement: a SQL function's statements are planned before the first one runs, a cursor when it is opened.")
                .raise();
        }
    }
}
