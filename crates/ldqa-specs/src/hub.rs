//! A small Hugging Face Hub client: `config.json` from `/{repo}/resolve/main/config.json` and the
//! weight sizes from `/api/models/{repo}` (its `safetensors.parameters` map, dtype → count).
//!
//! Blocking API over reqwest: each call runs on its own thread with a current-thread runtime, so it
//! is safe to call from sync code and from inside another runtime alike. Short timeout (5 s by
//! default); `HF_TOKEN` is sent as a bearer token.

use std::time::Duration;

use serde_json::Value;

use crate::config::parse_config;
use crate::error::SpecError;
use crate::model::ModelSpec;

/// The public Hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Hub client settings.
#[derive(Debug, Clone)]
pub struct Hub {
    endpoint: String,
    token: Option<String>,
    timeout: Duration,
}

impl Hub {
    /// `endpoint` defaults to [`DEFAULT_ENDPOINT`] (`HF_ENDPOINT` overrides it).
    pub fn new(endpoint: Option<&str>, token: Option<String>) -> Hub {
        Hub {
            endpoint: endpoint
                .unwrap_or(DEFAULT_ENDPOINT)
                .trim_end_matches('/')
                .to_string(),
            token,
            timeout: Duration::from_secs(5),
        }
    }

    /// Change the whole-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Hub {
        self.timeout = timeout;
        self
    }

    /// Fetch and parse `config.json`, then size the weights from the API's safetensors metadata.
    pub fn model_spec(&self, repo: &str) -> Result<ModelSpec, SpecError> {
        let this = self.clone();
        let repo = repo.to_string();
        std::thread::spawn(move || this.model_spec_blocking(&repo))
            .join()
            .unwrap_or_else(|_| Err(SpecError::Hub("the Hub client thread panicked".into())))
    }

    fn model_spec_blocking(&self, repo: &str) -> Result<ModelSpec, SpecError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SpecError::Hub(format!("cannot start a runtime: {e}")))?;
        rt.block_on(async {
            let client = reqwest::Client::builder()
                .timeout(self.timeout)
                .build()
                .map_err(|e| SpecError::Hub(format!("cannot build an HTTP client: {e}")))?;
            let cfg_url = format!("{}/{repo}/resolve/main/config.json", self.endpoint);
            let text = self.get(&client, &cfg_url, repo).await?;
            let mut spec = parse_config(&text, repo, &cfg_url)?;
            let api_url = format!("{}/api/models/{repo}", self.endpoint);
            // The weight sizes are a refinement: keep the architecture estimate if they are missing.
            if let Ok(info) = self.get(&client, &api_url, repo).await {
                if let Ok(v) = serde_json::from_str::<Value>(&info) {
                    if let Some(bytes) = weight_bytes_from_api(&v) {
                        spec.weight_bytes = bytes;
                    }
                }
            }
            Ok(spec)
        })
    }

    async fn get(
        &self,
        client: &reqwest::Client,
        url: &str,
        repo: &str,
    ) -> Result<String, SpecError> {
        let mut req = client.get(url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                SpecError::Hub(format!(
                    "{url} timed out after {:?} (offline? set HF_HUB_OFFLINE=1)",
                    self.timeout
                ))
            } else {
                SpecError::Hub(format!(
                    "cannot reach {url} (offline? set HF_HUB_OFFLINE=1): {e}"
                ))
            }
        })?;
        let status = resp.status().as_u16();
        match status {
            200..=299 => resp
                .text()
                .await
                .map_err(|e| SpecError::Hub(format!("reading {url}: {e}"))),
            401 | 403 => Err(SpecError::Hub(format!(
                "{repo} is gated or private (HTTP {status}): accept its licence on the Hub and set HF_TOKEN{}",
                if self.token.is_some() { " (a token was sent)" } else { "" }
            ))),
            404 => Err(SpecError::Hub(format!("{repo} was not found (HTTP 404)"))),
            _ => Err(SpecError::Hub(format!("{url} answered HTTP {status}"))),
        }
    }
}

/// Σ parameters × dtype bytes over `safetensors.parameters` of an `/api/models/{repo}` answer.
pub fn weight_bytes_from_api(v: &Value) -> Option<u64> {
    let params = v.pointer("/safetensors/parameters")?.as_object()?;
    let mut bytes = 0u64;
    for (dtype, n) in params {
        let n = n.as_u64()?;
        let per = match dtype.as_str() {
            "F64" | "I64" | "U64" => 8.0,
            "F32" | "I32" | "U32" => 4.0,
            "BF16" | "F16" | "I16" => 2.0,
            "F8_E4M3" | "F8_E5M2" | "I8" | "U8" | "BOOL" | "F8_E8M0" => 1.0,
            "F4" | "I4" | "U4" => 0.5,
            _ => return None,
        };
        bytes += (n as f64 * per) as u64;
    }
    (bytes > 0).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A fake Hub on 127.0.0.1:0 answering `routes` (path → (status, body)) until dropped.
    fn fake_hub(routes: Vec<(&'static str, u16, String)>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let req = String::from_utf8_lossy(&buf).to_string();
                let path = req.split_whitespace().nth(1).unwrap_or("").to_string();
                let authed = req.to_lowercase().contains("authorization: bearer secret");
                let (status, body) = routes
                    .iter()
                    .find(|(p, _, _)| *p == path)
                    .map(|(_, st, b)| (*st, b.clone()))
                    .unwrap_or((404, String::new()));
                let status = if path.contains("gated") && !authed {
                    401
                } else {
                    status
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        format!("http://{addr}")
    }

    const CFG: &str = r#"{"num_hidden_layers":2,"hidden_size":64,"num_attention_heads":4,"num_key_value_heads":2,
        "intermediate_size":128,"vocab_size":100,"torch_dtype":"bfloat16"}"#;

    #[test]
    fn fetches_config_and_weight_sizes() {
        let url = fake_hub(vec![
            ("/acme/tiny/resolve/main/config.json", 200, CFG.to_string()),
            (
                "/api/models/acme/tiny",
                200,
                r#"{"safetensors":{"parameters":{"BF16":1000,"F32":10}}}"#.to_string(),
            ),
            ("/acme/gated/resolve/main/config.json", 200, CFG.to_string()),
        ]);
        let hub = Hub::new(Some(&url), None);
        let m = hub.model_spec("acme/tiny").unwrap();
        assert_eq!((m.num_layers, m.weight_bytes), (2, 2040));
        let e = hub.model_spec("acme/gated").unwrap_err().to_string();
        assert!(e.contains("gated") && e.contains("HF_TOKEN"), "{e}");
        let with_token = Hub::new(Some(&url), Some("secret".into()));
        assert_eq!(with_token.model_spec("acme/gated").unwrap().num_layers, 2);
        let e = hub.model_spec("acme/missing").unwrap_err().to_string();
        assert!(e.contains("not found"), "{e}");
    }

    #[test]
    fn unreachable_hub_is_a_clear_error() {
        // Bind then drop: the port is closed, so the connection is refused at once.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let hub = Hub::new(Some(&format!("http://127.0.0.1:{port}")), None)
            .with_timeout(Duration::from_secs(2));
        let e = hub.model_spec("acme/tiny").unwrap_err().to_string();
        assert!(
            e.contains("cannot reach") && e.contains("HF_HUB_OFFLINE"),
            "{e}"
        );
    }
}
