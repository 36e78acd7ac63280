//! Where requests go.

use crate::LoadgenError;

/// An OpenAI-compatible API root such as `http://localhost:8000/v1`.
#[derive(Clone)]
pub struct Endpoint {
    base: String,
    api_key: Option<String>,
}

// The API key never appears in debug output.
impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("base", &self.base)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Endpoint {
    /// Validates `base` (http or https, a host) and drops a trailing slash.
    pub fn new(base: &str, api_key: Option<String>) -> Result<Self, LoadgenError> {
        let invalid = |reason: &str| LoadgenError::InvalidUrl {
            url: base.to_owned(),
            reason: reason.to_owned(),
        };
        // Schemes are case-insensitive (RFC 3986 §3.1): `HTTP://` is `http://`.
        let (scheme, rest) = base
            .split_once("://")
            .filter(|(s, _)| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"))
            .ok_or_else(|| invalid("it must start with http:// or https://"))?;
        let base = format!("{}://{rest}", scheme.to_ascii_lowercase());
        let authority = rest.split('/').next().unwrap_or("");
        if authority.is_empty() {
            return Err(invalid("it has no host"));
        }
        if let Some((_, port)) = authority
            .rsplit_once(':')
            .filter(|(h, _)| !h.ends_with(']') || authority.starts_with('['))
        {
            if !authority.ends_with(']') && port.parse::<u16>().is_err() {
                return Err(invalid("the port is not a number from 0 to 65535"));
            }
        }
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            api_key,
        })
    }

    /// From upstream's `--host`/`--port` (defaults localhost:8000): `http://HOST:PORT/v1`.
    pub fn from_host_port(
        host: Option<&str>,
        port: Option<u16>,
        api_key: Option<String>,
    ) -> Result<Self, LoadgenError> {
        let host = host.unwrap_or("localhost");
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        Self::new(
            &format!("http://{host}:{}/v1", port.unwrap_or(8000)),
            api_key,
        )
    }

    /// The API root, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The bearer token sent with every request, if any.
    pub fn api_key(&self) -> Option<&str> {
        self.api_key.as_deref()
    }

    /// `{base}/{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// The server root (scheme and authority): `/metrics`, `/health` live there in vLLM.
    pub fn origin(&self) -> &str {
        let after_scheme = self.base.find("://").map_or(0, |i| i + 3);
        match self.base[after_scheme..].find('/') {
            Some(i) => &self.base[..after_scheme + i],
            None => &self.base,
        }
    }

    /// Default Prometheus URL: `/metrics` beside the API.
    pub fn default_metrics_url(&self) -> String {
        format!("{}/metrics", self.origin())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Usability finding 33: schemes are case-insensitive.
    #[test]
    fn schemes_are_case_insensitive() {
        let e = Endpoint::new("HTTP://localhost:8000/v1", None).unwrap();
        assert_eq!(e.base(), "http://localhost:8000/v1");
        assert_eq!(
            Endpoint::new("Https://h/v1", None).unwrap().base(),
            "https://h/v1"
        );
        assert!(Endpoint::new("ftp://h/v1", None).is_err());
    }

    #[test]
    fn derives_urls() {
        let e = Endpoint::new("http://localhost:8000/v1/", None).unwrap();
        assert_eq!(e.base(), "http://localhost:8000/v1");
        assert_eq!(
            e.url("chat/completions"),
            "http://localhost:8000/v1/chat/completions"
        );
        assert_eq!(e.origin(), "http://localhost:8000");
        assert_eq!(e.default_metrics_url(), "http://localhost:8000/metrics");
        let e = Endpoint::new("https://api.example.com", None).unwrap();
        assert_eq!(e.origin(), "https://api.example.com");
    }

    #[test]
    fn host_port_defaults_like_upstream() {
        assert_eq!(
            Endpoint::from_host_port(None, None, None).unwrap().base(),
            "http://localhost:8000/v1"
        );
        assert_eq!(
            Endpoint::from_host_port(Some("10.0.0.2"), Some(9000), None)
                .unwrap()
                .base(),
            "http://10.0.0.2:9000/v1"
        );
        assert_eq!(
            Endpoint::from_host_port(Some("::1"), Some(9000), None)
                .unwrap()
                .base(),
            "http://[::1]:9000/v1"
        );
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in [
            "localhost:8000",
            "ftp://x/v1",
            "http:///v1",
            "http://host:99999/v1",
            "http://host:abc/v1",
        ] {
            assert!(Endpoint::new(bad, None).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn debug_hides_the_key() {
        let e = Endpoint::new("http://h:1/v1", Some("sk-secret".into())).unwrap();
        assert!(!format!("{e:?}").contains("sk-secret"));
    }
}
