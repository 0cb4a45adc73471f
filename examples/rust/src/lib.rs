//! Multi-tenancy from Rust: the tenancy extension does the work, the client
//! only calls SQL. See `tenancy` (the client: errors, `with_tenant`, admin
//! calls) and `app` (an application using it).

pub mod app;
pub mod tenancy;

use tokio_postgres::{Client, NoTls};

/// Connects as `user` to the server named by PGHOST, PGPORT and PGDATABASE,
/// like libpq would (a PGHOST starting with `/` is a Unix socket directory).
pub async fn connect(user: &str) -> Result<Client, tokio_postgres::Error> {
    let env = |k: &str, default: &str| std::env::var(k).unwrap_or_else(|_| default.to_string());
    let mut config = tokio_postgres::Config::new();
    config
        .host(env("PGHOST", "localhost"))
        .port(env("PGPORT", "5432").parse().expect("PGPORT is a port number"))
        .dbname(env("PGDATABASE", user))
        .user(user);
    let (client, connection) = config.connect(NoTls).await?;
    // The connection object does the I/O; it ends when the client is dropped.
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("connection error: {e}");
        }
    });
    Ok(client)
}
