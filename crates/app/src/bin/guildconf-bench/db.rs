//! Database lifecycle: scratch PostgreSQL databases on the `--pg-url` server,
//! made fresh and dropped afterwards, and the temporary directory the SQLite
//! files live in.

use std::path::PathBuf;

use sqlx::{Connection, Executor, PgConnection};

use crate::{s, R};

/// `admin` with its database name replaced by `db`.
fn pg_url_for(admin: &str, db: &str) -> String {
    let base = admin.split('?').next().unwrap_or(admin);
    match base.rfind('/') {
        Some(i) if i > "postgres://".len() => format!("{}/{db}", &base[..i]),
        _ => format!("{base}/{db}"),
    }
}

/// Creates database `db` on the server of `admin` (dropping any earlier one
/// of that name) and returns its URL.
pub async fn fresh_pg_db(admin: &str, db: &str) -> R<String> {
    let mut conn = s(PgConnection::connect(admin).await)?;
    drop_on(&mut conn, db).await?;
    s(conn.execute(format!("CREATE DATABASE {db}").as_str()).await)?;
    Ok(pg_url_for(admin, db))
}

pub async fn drop_pg_db(admin: &str, db: &str) -> R<()> {
    let mut conn = s(PgConnection::connect(admin).await)?;
    drop_on(&mut conn, db).await
}

/// Drops database `db`, if there is one, over the admin connection `conn`.
async fn drop_on(conn: &mut PgConnection, db: &str) -> R<()> {
    s(conn
        .execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
        .await)?;
    Ok(())
}

/// This process's own temporary directory, for the SQLite files.
pub fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("guildconf-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
