//! HTTP transports: the root-only Unix socket (peers trusted by
//! credentials) and the optional TCP listener (every request signed).
//!
//! Requests are handled by blocking code (`spawn_blocking`): the actions
//! call the engines and SQLite, which are synchronous by design.

use std::{
    future::IntoFuture as _,
    net::SocketAddr,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    sync::Arc,
    time::SystemTime,
};

use axum::{
    body::{Body, Bytes},
    extract::{connect_info, ConnectInfo, State},
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    serve::IncomingStream,
    Router,
};
use serde_json::json;
use tokio::net::{TcpListener, UnixListener};

use super::{
    actions::{Api, Caller},
    protocol::{self, ErrorBody},
    signature::{SignedRequest, Verifier},
    ApiError,
};
use crate::{records::OpsStatus, store::now_ms};

/// Shared by both transports.
pub struct Server {
    pub api: Arc<Api>,
    /// None: no keys configured, so the TCP listener refuses everything.
    pub verifier: Option<Verifier>,
    /// Identifies this node in error bodies.
    pub host_id: String,
    /// Base of download URLs handed out over the socket (the TCP address, if
    /// any, else the socket is the only way to download).
    pub public_base: String,
}

#[derive(Clone)]
struct Ctx {
    server: Arc<Server>,
    caller: Caller,
}

/// Credentials of a Unix-socket peer.
#[derive(Clone, Debug)]
struct PeerCred {
    uid: Option<u32>,
}

impl connect_info::Connected<IncomingStream<'_, UnixListener>> for PeerCred {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> Self {
        Self {
            uid: stream.io().peer_cred().ok().map(|c| c.uid()),
        }
    }
}

/// Bind the socket: parent directory 0700, socket 0600, a stale socket from
/// an earlier run replaced.
pub fn bind_socket(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serve the socket (and TCP, if given) until `shutdown` resolves.
pub async fn serve(
    server: Arc<Server>,
    socket: UnixListener,
    tcp: Option<TcpListener>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let stop = |tx: &tokio::sync::broadcast::Sender<()>| {
        let mut rx = tx.subscribe();
        async move {
            let _ = rx.recv().await;
        }
    };
    let socket_app = Router::new()
        .fallback(handle_socket)
        .with_state(Ctx {
            server: server.clone(),
            caller: Caller::Socket,
        })
        .into_make_service_with_connect_info::<PeerCred>();
    let socket_task = tokio::spawn(
        axum::serve(socket, socket_app)
            .with_graceful_shutdown(stop(&tx))
            .into_future(),
    );
    let tcp_task = tcp.map(|listener| {
        let app = Router::new().fallback(handle_tcp).with_state(Ctx {
            server: server.clone(),
            caller: Caller::Network,
        });
        tokio::spawn(
            axum::serve(listener, app)
                .with_graceful_shutdown(stop(&tx))
                .into_future(),
        )
    });
    shutdown.await;
    let _ = tx.send(());
    socket_task.await.map_err(std::io::Error::other)??;
    if let Some(t) = tcp_task {
        t.await.map_err(std::io::Error::other)??;
    }
    Ok(())
}

async fn handle_socket(
    ConnectInfo(peer): ConnectInfo<PeerCred>,
    State(ctx): State<Ctx>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The socket is 0600 root; the credential check also covers a socket
    // whose mode someone loosened.
    if peer.uid != Some(0) {
        let err = ApiError::InvalidAccessKeyIdNotFound;
        return error_response(&ctx, &err, &uuid::Uuid::new_v4().to_string());
    }
    handle(ctx, method, uri, headers, body).await
}

async fn handle_tcp(
    State(ctx): State<Ctx>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(ctx, method, uri, headers, body).await
}

fn error_response(ctx: &Ctx, err: &ApiError, request_id: &str) -> Response {
    let status = StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let body = ErrorBody::new(err, request_id, &ctx.server.host_id);
    (status, axum::Json(body)).into_response()
}

async fn handle(ctx: Ctx, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string().to_uppercase();
    let path = uri.path().to_owned();
    let query = protocol::decode_pairs(uri.query().unwrap_or_default());

    if let Some(id) = path.strip_prefix("/download/") {
        return match download(&ctx, &path, id, &query).await {
            Ok(r) => r,
            Err(e) => error_response(&ctx, &e, &request_id),
        };
    }
    if let Some(id) = path.strip_prefix("/stream/") {
        if ctx.caller != Caller::Socket {
            return error_response(&ctx, &ApiError::InvalidActionNotFound, &request_id);
        }
        return match stream(&ctx, id).await {
            Ok(r) => r,
            Err(e) => error_response(&ctx, &e, &request_id),
        };
    }
    if path != "/" || !(method == Method::POST || method == Method::GET) {
        return error_response(&ctx, &ApiError::InvalidActionNotFound, &request_id);
    }

    let header_pairs: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let base_url = match ctx.caller {
        Caller::Network => headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .map(|h| format!("http://{h}"))
            .unwrap_or_else(|| ctx.server.public_base.clone()),
        Caller::Socket => ctx.server.public_base.clone(),
    };
    let server = ctx.server.clone();
    let caller = ctx.caller;
    let method_s = method.as_str().to_owned();
    let result = tokio::task::spawn_blocking(move || {
        if caller == Caller::Network {
            let verifier = server
                .verifier
                .as_ref()
                .ok_or(ApiError::InvalidAccessKeyIdNotFound)?;
            let signed = SignedRequest {
                method: &method_s,
                path: &path,
                query: &query,
                headers: &header_pairs,
                body: &body,
            };
            verifier.verify(&signed, SystemTime::now())?;
        }
        let req = protocol::parse(uri.query(), &header_pairs, &body)?;
        server.api.dispatch(&req, caller, &base_url)
    })
    .await
    .unwrap_or_else(|e| Err(ApiError::InternalError(format!("handler failed: {e}"))));

    match result {
        Ok(mut value) => {
            value["RequestId"] = json!(request_id);
            axum::Json(value).into_response()
        }
        Err(e) => {
            if e.http_status() >= 500 {
                tracing::error!(code = %e.code(), "{e}");
            } else {
                tracing::debug!(code = %e.code(), "{e}");
            }
            error_response(&ctx, &e, &request_id)
        }
    }
}

/// GET /download/<id>?Expires&Signature: the artifact, as a plain file
/// (compressed cores are decompressed on the fly).
async fn download(
    ctx: &Ctx,
    path: &str,
    id: &str,
    query: &[(String, String)],
) -> Result<Response, ApiError> {
    // Over the socket the caller is root already; the network needs the
    // presigned URL.
    if ctx.caller == Caller::Network {
        ctx.server
            .api
            .presigner
            .check(path, query, now_ms() / 1000)?;
    }
    let record = ctx
        .server
        .api
        .records
        .get(id)?
        .ok_or_else(|| ApiError::InvalidParameter(format!("no record {id}")))?;
    let artifact = match (&record.status, &record.artifact) {
        (OpsStatus::Success, Some(a)) => a.clone(),
        _ => {
            return Err(ApiError::InvalidParameter(format!(
                "record {id} has no artifact"
            )))
        }
    };
    let reader = crate::tasks::open_artifact(&artifact)
        .map_err(|e| ApiError::InternalError(format!("opening {}: {e}", artifact.display())))?;
    Ok(body_from_reader(reader, file_name(&artifact)))
}

/// GET /stream/<id> (socket only): a capture's file as it grows, until the
/// capture ends. The pcap is written sequentially, so following the file
/// yields a valid stream for `tshark -r -`.
async fn stream(ctx: &Ctx, id: &str) -> Result<Response, ApiError> {
    let records = ctx.server.api.records.clone();
    let record = records
        .get(id)?
        .ok_or_else(|| ApiError::InvalidParameter(format!("no record {id}")))?;
    let path =
        ctx.server.api.tasks.live_path(&record).ok_or_else(|| {
            ApiError::InvalidParameter(format!("record {id} has no capture file"))
        })?;
    let id = id.to_owned();
    let reader = crate::tasks::follow::Follow::new(path, move || {
        records
            .get(&id)
            .ok()
            .flatten()
            .is_none_or(|r| r.status != OpsStatus::Ready)
    });
    Ok(body_from_reader(Box::new(reader), "capture.pcapng".into()))
}

fn file_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.strip_suffix(".zst").map(str::to_owned).unwrap_or(name)
}

/// Stream a blocking reader as the response body.
fn body_from_reader(mut reader: Box<dyn std::io::Read + Send>, name: String) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    let stream = futures_stream(rx);
    Response::builder()
        .header("content-type", "application/octet-stream")
        .header(
            "content-disposition",
            format!("attachment; filename=\"{name}\""),
        )
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn futures_stream(
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
) -> impl futures_core::Stream<Item = std::io::Result<Bytes>> + Send {
    struct S(tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>);
    impl futures_core::Stream for S {
        type Item = std::io::Result<Bytes>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            self.0.poll_recv(cx)
        }
    }
    S(rx)
}

/// The default socket path.
pub fn default_socket() -> PathBuf {
    PathBuf::from("/run/ops/ops.sock")
}

/// Bind TCP.
pub async fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
