//! `serve`: the HTTP API, and the audit pages at `/ui`, on a listening
//! socket, until a signal says stop.

use std::io::Write;
use std::net::SocketAddr;

use guildconf::http::{router, serve as serve_http, ApiState, HttpOptions};
use guildconf::ui::{self, UiState};
use guildconf::{CacheOptions, Error, ReadCache, VerifyOptions};
use serde_json::json;

use super::super::args::ServeArgs;
use super::super::input::invalid;
use super::super::{exit, Ctx};

pub async fn serve(ctx: &Ctx<'_>, args: ServeArgs) -> Result<u8, Error> {
    let addr: SocketAddr = args.listen.parse().map_err(|_| {
        invalid(
            "/listen",
            format!(
                "--listen must be IP:PORT, such as 127.0.0.1:8080; got {:?}",
                args.listen
            ),
        )
    })?;
    let service = ctx.service(true).await?;
    let cache = ReadCache::start(&service, CacheOptions::default()).await?;
    let options = HttpOptions {
        verify: VerifyOptions::new().trusted_keys(ctx.trusted.iter().copied()),
        ..HttpOptions::default()
    };
    // The pages keep their own error pages and security headers: they are
    // nested beside the API's layers (which answer every error as
    // problem+json), not inside them.
    let pages = ui::router(UiState::new(service.clone()).with_secure_cookies(args.secure_cookies));
    let app = router(ApiState::with_cache(cache), options).nest(ui::DEFAULT_BASE_PATH, pages);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Storage(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::Storage(format!("cannot read the listening address: {e}")))?;
    // The first line on stdout is the real address (a test asks for port 0).
    {
        let mut stdout = std::io::stdout().lock();
        let line = if ctx.out.is_json() {
            json!({"listening": bound.to_string()}).to_string()
        } else {
            format!("listening on http://{bound}")
        };
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    }
    serve_http(listener, app, shutdown_signal())
        .await
        .map_err(|e| Error::Storage(format!("the server failed: {e}")))?;
    Ok(exit::OK)
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM; the server then stops accepting
/// and lets the requests in flight finish.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
