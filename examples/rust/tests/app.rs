//! Runs against a fresh database made by ../test.sh: PGHOST, PGPORT, PGDATABASE
//! and PGUSER (a superuser, the admin) come from the environment, APP_ROLE is
//! the non-superuser login role the application connects as. Tests run in
//! parallel, each with tenants of its own.

use std::time::Duration;

use serde_json::json;
use tokio::sync::OnceCell;
use tokio_postgres::Client;
use uuid::Uuid;

use tenancy_example::app::{add_invoice, add_note, list_invoices, list_notes, setup_schema};
use tenancy_example::connect;
use tenancy_example::tenancy::{self as t, Error, with_tenant};

fn app_role() -> String {
    std::env::var("APP_ROLE").unwrap_or_else(|_| "example_rust_app".into())
}

static SETUP: OnceCell<()> = OnceCell::const_new();

/// A superuser connection; the first caller also creates the app's tables.
async fn admin() -> Client {
    let user = std::env::var("PGUSER").unwrap_or_else(|_| "postgres".into());
    SETUP
        .get_or_init(|| async {
            let mut c = connect(&user).await.expect("admin connects");
            setup_schema(&mut c, &app_role()).await.expect("schema set up");
        })
        .await;
    connect(&user).await.expect("admin connects")
}

/// The application's connection. Each test reuses one connection for all its
/// requests, as a pooled connection (or PgBouncer's server session) would be:
/// a leaked tenant would show up on the next request.
async fn app() -> Client {
    connect(&app_role()).await.expect("app role connects")
}

/// Creates an RLS tenant, granted to the app role when `grant`.
async fn tenant(admin: &Client, identifier: &str, grant: bool) -> Uuid {
    let t = t::create_tenant(admin, identifier, identifier, &json!({}), None)
        .await
        .unwrap();
    if grant {
        t::grant_tenant(admin, &app_role(), t.id).await.unwrap();
    }
    t.id
}

async fn notes_of(app: &mut Client, tenant: &str) -> Result<Vec<String>, Error> {
    let notes = with_tenant(app, tenant, async |tx| list_notes(tx).await).await?;
    Ok(notes.into_iter().map(|n| n.body).collect())
}

#[tokio::test]
async fn each_tenant_reads_and_writes_only_its_own_rows() {
    let admin = admin().await;
    let a = tenant(&admin, "rls-a", true).await;
    let b = tenant(&admin, "rls-b", true).await;
    let mut app = app().await;

    let note = with_tenant(&mut app, "rls-a", async |tx| {
        let n = add_note(tx, "a: first").await?;
        add_note(tx, "a: second").await?;
        Ok::<_, Error>(n)
    })
    .await
    .unwrap();
    assert_eq!(note.tenant_id, a, "tenant_id is filled in from the context");
    with_tenant(&mut app, "rls-b", async |tx| add_note(tx, "b: only").await)
        .await
        .unwrap();

    assert_eq!(
        notes_of(&mut app, "rls-a").await.unwrap(),
        ["a: first", "a: second"]
    );
    // A uuid names the tenant as well as its identifier.
    assert_eq!(notes_of(&mut app, &b.to_string()).await.unwrap(), ["b: only"]);
}

#[tokio::test]
async fn after_commit_the_connection_carries_no_tenant_and_sees_no_rows() {
    let admin = admin().await;
    let a = tenant(&admin, "leak-a", true).await;
    let mut app = app().await;

    let current = with_tenant(&mut app, "leak-a", async |tx| {
        add_note(tx, "a: note").await?;
        let r = tx.query_one("SELECT tenancy.current_tenant_id()", &[]).await?;
        Ok::<Option<Uuid>, Error>(r.get(0))
    })
    .await
    .unwrap();
    assert_eq!(current, Some(a));

    // The next "request" on the same session, without with_tenant.
    let r = app
        .query_one(
            "SELECT tenancy.current_tenant_id(), (SELECT count(*) FROM notes)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, Option<Uuid>>(0), None);
    assert_eq!(r.get::<_, i64>(1), 0, "no tenant, no rows");
    // Writing without a tenant is refused by the policy, not silently stored.
    let err = add_note(&app, "orphan").await.unwrap_err();
    assert!(matches!(err, Error::AccessDenied(_)), "{err:?}");
}

#[tokio::test]
async fn an_error_in_the_request_rolls_back_its_writes_and_context() {
    let admin = admin().await;
    tenant(&admin, "rollback-a", true).await;
    let mut app = app().await;

    let res = with_tenant(&mut app, "rollback-a", async |tx| {
        add_note(tx, "never committed").await?;
        Err::<(), Box<dyn std::error::Error + Send + Sync>>("request failed".into())
    })
    .await;
    assert_eq!(res.unwrap_err().to_string(), "request failed");
    let r = app
        .query_one("SELECT tenancy.current_tenant_id()", &[])
        .await
        .unwrap();
    assert_eq!(r.get::<_, Option<Uuid>>(0), None);
    assert!(notes_of(&mut app, "rollback-a").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_row_with_another_tenants_id_is_refused() {
    let admin = admin().await;
    tenant(&admin, "smuggle-a", true).await;
    let b = tenant(&admin, "smuggle-b", true).await;
    let mut app = app().await;

    let err = with_tenant(&mut app, "smuggle-a", async |tx| {
        tx.execute(
            "INSERT INTO notes (tenant_id, body) VALUES ($1, $2)",
            &[&b, &"smuggled"],
        )
        .await?;
        Ok::<_, Error>(())
    })
    .await
    .unwrap_err();
    assert!(matches!(err, Error::AccessDenied(_)), "{err:?}");
    assert!(notes_of(&mut app, "smuggle-b").await.unwrap().is_empty());
}

#[tokio::test]
async fn why_is_local_a_session_level_set_tenant_leaks_into_the_next_request() {
    let admin = admin().await;
    let a = tenant(&admin, "session-a", true).await;
    let app = app().await;

    // The mistake: no transaction, not local.
    app.execute("SELECT tenancy.set_tenant($1)", &[&"session-a"])
        .await
        .unwrap();
    let r = app
        .query_one("SELECT tenancy.current_tenant_id()", &[])
        .await
        .unwrap();
    assert_eq!(
        r.get::<_, Option<Uuid>>(0),
        Some(a),
        "the next request inherited the tenant"
    );
    // What a session-mode pooler runs between clients.
    app.batch_execute("DISCARD ALL").await.unwrap();
    let r = app
        .query_one("SELECT tenancy.current_tenant_id()", &[])
        .await
        .unwrap();
    assert_eq!(r.get::<_, Option<Uuid>>(0), None);
}

#[tokio::test]
async fn schema_tenants_resolve_unqualified_tables_to_their_schema() {
    let admin = admin().await;
    for identifier in ["hooli", "pied-piper"] {
        let tn = t::create_tenant(&admin, identifier, identifier, &json!({}), Some("schema"))
            .await
            .unwrap();
        assert_eq!(tn.isolation, "schema");
        assert_eq!(
            tn.schema_name.as_deref(),
            Some(&*format!("tenant_{}", identifier.replace('-', "_")))
        );
        t::grant_tenant(&admin, &app_role(), tn.id).await.unwrap();
    }
    let mut app = app().await;

    with_tenant(&mut app, "hooli", async |tx| {
        add_invoice(tx, 1050).await?;
        add_invoice(tx, 2000).await
    })
    .await
    .unwrap();
    with_tenant(&mut app, "pied-piper", async |tx| add_invoice(tx, 9999).await)
        .await
        .unwrap();

    let hooli = with_tenant(&mut app, "hooli", async |tx| list_invoices(tx).await)
        .await
        .unwrap();
    let piper = with_tenant(&mut app, "pied-piper", async |tx| list_invoices(tx).await)
        .await
        .unwrap();
    assert_eq!(hooli, [1050, 2000]);
    assert_eq!(piper, [9999]);

    // search_path was local too: after COMMIT "invoices" names nothing.
    let err = Error::from(app.query("SELECT * FROM invoices", &[]).await.unwrap_err());
    assert_eq!(err.sqlstate(), Some("42P01"));
}

#[tokio::test]
async fn admin_lifecycle() {
    let admin = admin().await;
    let tn = t::create_tenant(&admin, "umbrella", "Umbrella Corp", &json!({"plan": "pro"}), None)
        .await
        .unwrap();
    assert_eq!((tn.status.as_str(), tn.isolation.as_str()), ("active", "rls"));
    t::grant_tenant(&admin, &app_role(), tn.id).await.unwrap();
    let mut app = app().await;

    assert_eq!(
        t::tenant_by_identifier(&admin, "umbrella").await.unwrap().id,
        tn.id
    );
    let merged = t::merge_metadata(&admin, tn.id, &json!({"seats": 25}))
        .await
        .unwrap();
    assert_eq!(merged.metadata, json!({"plan": "pro", "seats": 25}));

    assert_eq!(
        t::suspend_tenant(&admin, tn.id).await.unwrap().status,
        "suspended"
    );
    assert!(matches!(
        notes_of(&mut app, "umbrella").await,
        Err(Error::InvalidState(_))
    ));
    assert_eq!(t::activate_tenant(&admin, tn.id).await.unwrap().status, "active");
    assert!(notes_of(&mut app, "umbrella").await.unwrap().is_empty());

    let found = t::search_tenants(&admin, "UMBREL", 10).await.unwrap();
    assert_eq!(
        found.iter().map(|x| x.identifier.as_str()).collect::<Vec<_>>(),
        ["umbrella"]
    );
    let active = t::list_tenants(&admin, 0, 1000, Some("active")).await.unwrap();
    assert!(active.iter().any(|x| x.id == tn.id));

    t::delete_tenant(&admin, tn.id, false).await.unwrap();
    assert_eq!(
        t::tenant_by_identifier(&admin, "umbrella").await.unwrap().status,
        "deleted"
    );
    assert!(matches!(
        notes_of(&mut app, "umbrella").await,
        Err(Error::InvalidState(_))
    ));
    // deleted is final: no transition out of it.
    assert!(matches!(
        t::activate_tenant(&admin, tn.id).await,
        Err(Error::InvalidState(_))
    ));
}

#[tokio::test]
async fn suspending_a_tenant_takes_effect_at_the_next_statement_of_an_open_request() {
    let admin = admin().await;
    let id = tenant(&admin, "suspend-mid", true).await;
    let mut app = app().await;

    let res = with_tenant(&mut app, "suspend-mid", async |tx| {
        list_notes(tx).await?;
        t::suspend_tenant(&admin, id).await?; // another session, committed
        list_notes(tx).await
    })
    .await;
    assert!(matches!(res, Err(Error::InvalidState(_))), "{res:?}");
}

// --- error mapping: each variant from a real call ----------------------------

#[tokio::test]
async fn error_unknown_tenant_is_tenant_not_found() {
    let admin = admin().await;
    let mut app = app().await;
    assert!(matches!(
        notes_of(&mut app, "nobody").await,
        Err(Error::TenantNotFound(_))
    ));
    let err = t::tenant_by_identifier(&admin, "nobody").await.unwrap_err();
    assert_eq!(err.sqlstate(), Some("P0002"));
    assert!(err.to_string().contains("\"nobody\" not found"), "{err}");
}

#[tokio::test]
async fn error_duplicate_identifier_is_already_exists() {
    let admin = admin().await;
    tenant(&admin, "dup", false).await;
    let err = t::create_tenant(&admin, "dup", "Again", &json!({}), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
}

#[tokio::test]
async fn error_bad_identifier_or_metadata_is_invalid_input() {
    let admin = admin().await;
    let err = t::create_tenant(&admin, "Bad_Name", "x", &json!({}), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput(e) if e.message().contains("invalid tenant identifier")),
        "{err:?}"
    );
    let err = t::create_tenant(&admin, "fine-name", "x", &json!([1, 2]), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
}

#[tokio::test]
async fn error_suspended_tenant_as_context_is_invalid_state() {
    let admin = admin().await;
    let id = tenant(&admin, "soylent", true).await;
    t::suspend_tenant(&admin, id).await.unwrap();
    let mut app = app().await;
    let err = notes_of(&mut app, "soylent").await.unwrap_err();
    assert!(matches!(err, Error::InvalidState(_)), "{err:?}");
    assert_eq!(err.sqlstate(), Some("55000"));
}

#[tokio::test]
async fn error_tenant_not_granted_is_access_denied() {
    let admin = admin().await;
    tenant(&admin, "initech", false).await;
    let mut app = app().await;
    let err = notes_of(&mut app, "initech").await.unwrap_err();
    assert!(
        matches!(&err, Error::AccessDenied(e) if e.message().contains("may not act for tenant \"initech\"")),
        "{err:?}"
    );
    // The app role was not given the admin API either.
    let err = t::tenant_by_identifier(&app, "initech").await.unwrap_err();
    assert!(matches!(err, Error::AccessDenied(_)), "{err:?}");
}

#[tokio::test]
async fn error_database_isolation_without_dblink_is_unsupported() {
    let admin = admin().await;
    let err = t::create_tenant(&admin, "example-rust-db", "Db", &json!({}), Some("database"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported(e) if e.detail().is_some_and(|d| d.contains("CREATE DATABASE"))),
        "{err:?}"
    );
}

#[tokio::test]
async fn error_over_the_rate_limit_is_rate_limited_with_retry_after() {
    let admin = admin().await;
    let tn = t::create_tenant(&admin, "busy", "Busy", &json!({"rate_limit_per_minute": 2}), None)
        .await
        .unwrap();
    t::grant_tenant(&admin, &app_role(), tn.id).await.unwrap();
    let mut app = app().await;

    // First statement of each request, after set_tenant (docs/api.md).
    for _ in 0..2 {
        with_tenant(&mut app, "busy", async |tx| t::check_rate_limit(tx).await)
            .await
            .unwrap();
    }
    let err = with_tenant(&mut app, "busy", async |tx| t::check_rate_limit(tx).await)
        .await
        .unwrap_err();
    match err {
        Error::RateLimited {
            retry_after: Some(wait),
            ..
        } => {
            assert!(
                wait >= Duration::from_secs(1) && wait <= Duration::from_secs(60),
                "{wait:?}"
            )
        }
        other => panic!("expected RateLimited with a retry-after, got {other:?}"),
    }
}

#[tokio::test]
async fn error_anything_else_keeps_its_sqlstate() {
    tenant(&admin().await, "syntax", true).await;
    let mut app = app().await;
    let err = with_tenant(&mut app, "syntax", async |tx| {
        tx.execute("SELEC 1", &[]).await?;
        Ok::<_, Error>(())
    })
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Postgres(_)), "{err:?}");
    assert_eq!(err.sqlstate(), Some("42601"));
}

#[tokio::test]
async fn export_and_import_round_trip_through_copy() {
    let mut admin = admin().await;
    let id = tenant(&admin, "rs-export", true).await;
    let mut app = app().await;
    with_tenant(&mut app, "rs-export", async |tx| {
        add_note(tx, "quoted \"note\"\nsecond line").await?;
        add_note(tx, r"back\slash").await
    })
    .await
    .unwrap();
    let lines = t::export_tenant(&admin, id).await.unwrap();
    assert_eq!(lines.iter().filter(|b| **b == b'\n').count(), 3, "header and two rows");
    let copy = t::import_tenant(&mut admin, &lines, Some("rs-export-copy")).await.unwrap();
    assert_ne!(copy.id, id);
    t::grant_tenant(&admin, &app_role(), copy.id).await.unwrap();
    assert_eq!(notes_of(&mut app, "rs-export-copy").await.unwrap(), notes_of(&mut app, "rs-export").await.unwrap());
}

// --- guard rails ----------------------------------------------------------

/// The example's setup passes tenancy's guard rails (docs/guard-rails.md):
/// `doctor()` finds no error, so the pattern this example ships stays clean.
#[tokio::test]
async fn doctor_finds_no_error_in_the_setup() {
    let admin = admin().await;
    let rows = admin
        .query(
            "SELECT object, problem FROM tenancy.doctor() WHERE severity = 'error'",
            &[],
        )
        .await
        .expect("doctor runs");
    let found: Vec<String> = rows
        .iter()
        .map(|r| format!("{}: {}", r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    assert!(found.is_empty(), "{}", found.join("\n"));
}
