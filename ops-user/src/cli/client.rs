//! The daemon's local API over its Unix socket, for the CLI.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::{io::AsyncWriteExt as _, net::UnixStream};

/// An API error as the daemon reported it.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RemoteError {
    pub code: String,
    pub message: String,
}

pub struct Client {
    socket: PathBuf,
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl Client {
    pub fn new(socket: &Path) -> Self {
        Self {
            socket: socket.to_owned(),
        }
    }

    async fn send(
        &self,
        method: &str,
        uri: &str,
    ) -> anyhow::Result<hyper::Response<hyper::body::Incoming>> {
        let stream = UnixStream::connect(&self.socket).await.with_context(|| {
            format!(
                "connecting to the ops daemon at {} (is `ops serve` running?)",
                self.socket.display()
            )
        })?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = hyper::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "localhost")
            .body(Empty::<Bytes>::new())?;
        Ok(sender.send_request(req).await?)
    }

    /// Call `action` with `params`; the JSON answer, or the API error.
    pub async fn call(&self, action: &str, params: &[(&str, &str)]) -> anyhow::Result<Value> {
        let mut uri = format!("/?Action={action}&Version={}", crate_version());
        for (k, v) in params {
            uri.push_str(&format!("&{}={}", encode(k), encode(v)));
        }
        let resp = self.send("POST", &uri).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        let value: Value = serde_json::from_slice(&body)
            .with_context(|| format!("daemon answered {status} with non-JSON"))?;
        if !status.is_success() {
            return Err(RemoteError {
                code: value["Code"].as_str().unwrap_or("Unknown").to_owned(),
                message: value["Message"].as_str().unwrap_or_default().to_owned(),
            }
            .into());
        }
        Ok(value)
    }

    /// GET `path` and copy the body into `out` (file or stdout).
    pub async fn download(
        &self,
        path: &str,
        out: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
    ) -> anyhow::Result<u64> {
        let resp = self.send("GET", path).await?;
        let status = resp.status();
        let mut body = resp.into_body();
        if !status.is_success() {
            let bytes = body.collect().await?.to_bytes();
            let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            return Err(RemoteError {
                code: v["Code"].as_str().unwrap_or("Unknown").to_owned(),
                message: v["Message"].as_str().unwrap_or_default().to_owned(),
            }
            .into());
        }
        let mut total = 0;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                total += data.len() as u64;
                if let Err(e) = out.write_all(&data).await {
                    // A closed pipe (`| head`) ends the download quietly.
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        return Ok(total);
                    }
                    return Err(e.into());
                }
            }
        }
        out.flush().await?;
        Ok(total)
    }
}

fn crate_version() -> &'static str {
    ops_user::api::protocol::VERSION
}
