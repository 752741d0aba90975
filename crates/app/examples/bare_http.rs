//! The load benchmark's baseline (docs/BENCHMARKS.md, "HTTP API"): a bare
//! axum handler answering a constant JSON body of the size of a guild's
//! config, with the same axum, Tokio and build profile as `guildconf
//! serve`, so `wrk` measures what guildconf adds on top of the framework.
//!
//! `cargo run --release -p guildconf --example bare_http -- 127.0.0.1:0`
//! prints `listening on http://ADDR` and serves `GET /` until Ctrl-C.

use std::net::SocketAddr;

use axum::http::header;
use axum::routing::get;
use axum::Router;

/// A guild's default config as `GET …/config` answers it, byte for byte
/// the same length class (about 600 bytes).
const BODY: &str = r#"{"document":{"announcements":{"channel":null,"webhook_url":null},"features":{"beta":false},"limits":{"max_warnings":3},"moderation":{"log_channel":null,"mute_role":null},"onboarding":{"enabled":false,"welcome_channel":null,"welcome_message":null},"role_mapping":{}},"guild_id":"123456789012345678","version":1}"#;

async fn constant() -> ([(header::HeaderName, &'static str); 1], &'static str) {
    ([(header::CONTENT_TYPE, "application/json")], BODY)
}

fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // The same runtime shape as the `guildconf` binary: two workers.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        println!("listening on http://{}", listener.local_addr()?);
        let app = Router::new().route("/", get(constant));
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
    })
}
