//! A server under test as a child process: started in its own process group with its output
//! in a log file, polled until ready, stopped with SIGTERM then SIGKILL (also when dropped).

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The process group of the server running now (0: none), so that a second Ctrl-C, which
/// exits at once, can still kill it.
pub static CURRENT_GROUP: AtomicI32 = AtomicI32::new(0);

/// How to start a server.
#[derive(Debug, Clone)]
pub enum ServerCommand {
    /// A shell string, run with `sh -c` (user overrides, recommender commands).
    Shell(String),
    /// A program and its arguments (the simulator).
    Argv(Vec<OsString>),
}

/// Where `vllm serve` listens unless told otherwise; it does not print a `listening on`
/// line, so a shell command with no URL given is looked for here.
pub const VLLM_DEFAULT_URL: &str = "http://127.0.0.1:8000/v1";

impl ServerCommand {
    /// The URL to fall back on when the server announces none: vLLM's default for a shell
    /// command (a `vllm serve …`), none for the simulator (which always announces its own).
    pub fn fallback_url(&self) -> Option<&'static str> {
        match self {
            ServerCommand::Shell(_) => Some(VLLM_DEFAULT_URL),
            ServerCommand::Argv(_) => None,
        }
    }

    /// The command as people read it.
    pub fn display(&self) -> String {
        match self {
            ServerCommand::Shell(s) => s.clone(),
            ServerCommand::Argv(v) => v
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// Why a server could not be used.
#[derive(Debug)]
pub enum ServerProblem {
    /// It exited; the status and the end of its log.
    Exited { status: String, log_tail: String },
    /// It was still not ready after the timeout.
    NotReady {
        waited: Duration,
        last: String,
        log_tail: String,
    },
    /// Interrupted while waiting.
    Interrupted,
}

impl ServerProblem {
    /// What happened, in one line, without the log.
    pub fn summary(&self) -> String {
        match self {
            ServerProblem::Exited { status, .. } => format!("the server exited ({status})"),
            ServerProblem::NotReady { waited, last, .. } => format!(
                "the server was not ready after {:.0}s ({last})",
                waited.as_secs_f64()
            ),
            ServerProblem::Interrupted => "interrupted while the server was starting".to_string(),
        }
    }

    /// The last lines of the server's log, when they tell why.
    pub fn log_tail(&self) -> Option<&str> {
        match self {
            ServerProblem::Exited { log_tail, .. } | ServerProblem::NotReady { log_tail, .. } => {
                Some(log_tail)
            }
            ServerProblem::Interrupted => None,
        }
    }
}

impl std::fmt::Display for ServerProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())?;
        match self.log_tail() {
            Some(tail) => write!(f, "; last lines of its log:\n{tail}"),
            None => Ok(()),
        }
    }
}

/// A running server.
pub struct Server {
    child: Child,
    pgid: i32,
    log: PathBuf,
    stopped: bool,
}

/// The last `n` lines of a log file.
pub fn log_tail(path: &Path, n: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let len = f.metadata().map_or(0, |m| m.len());
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)));
        let mut bytes = Vec::new();
        let _ = f.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(n)..].join("\n");
    if tail.is_empty() {
        "  (empty log)".to_string()
    } else {
        tail.lines()
            .map(|l| format!("  | {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Server {
    /// Starts `cmd` in a new process group, stdout and stderr appended to `log`.
    pub fn start(cmd: &ServerCommand, log: &Path) -> std::io::Result<Server> {
        let out = File::create(log)?;
        let err = out.try_clone()?;
        let mut c = match cmd {
            ServerCommand::Shell(s) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(s);
                c
            }
            ServerCommand::Argv(v) => {
                let mut c = Command::new(&v[0]);
                c.args(&v[1..]);
                c
            }
        };
        c.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0);
        die_with_parent(&mut c);
        let child = c.spawn()?;
        let pgid = i32::try_from(child.id()).unwrap_or(0);
        CURRENT_GROUP.store(pgid, Ordering::SeqCst);
        Ok(Server {
            child,
            pgid,
            log: log.to_owned(),
            stopped: false,
        })
    }

    /// The exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The problem "it exited", with the end of its log.
    pub fn exit_problem(&self, status: ExitStatus) -> ServerProblem {
        ServerProblem::Exited {
            status: status.to_string(),
            log_tail: log_tail(&self.log, 20),
        }
    }

    /// The URL announced in the log (`… listening on http://HOST:PORT …`, as `ldqa serve`
    /// prints it), as an API root ending in `/v1`.
    pub fn announced_url(&self) -> Option<String> {
        let text = std::fs::read_to_string(&self.log).ok()?;
        let line = text.lines().find(|l| l.contains("listening on http://"))?;
        let start = line.find("http://")?;
        let url: String = line[start..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != ')')
            .collect();
        let url = url.trim_end_matches('/');
        Some(if url.ends_with("/v1") {
            url.to_string()
        } else {
            format!("{url}/v1")
        })
    }

    /// The GPU KV capacity an `ldqa serve` child announced (`… GPU KV N tokens …` on its
    /// listening line): what the simulated engine actually ran with.
    pub fn announced_gpu_kv_tokens(&self) -> Option<u64> {
        let text = std::fs::read_to_string(&self.log).ok()?;
        let line = text.lines().find(|l| l.contains("listening on http://"))?;
        let rest = &line[line.find("GPU KV ")? + "GPU KV ".len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    }

    /// Waits until `/health` answers 200 (the URL is `url`, else the one the server
    /// announces, else `fallback`), the server exits, `timeout` passes, or `cancelled` says
    /// so. Returns the API root.
    pub async fn wait_ready(
        &mut self,
        url: Option<&str>,
        fallback: Option<&str>,
        timeout: Duration,
        cancelled: &(dyn Fn() -> bool + Sync),
    ) -> Result<String, ServerProblem> {
        let start = Instant::now();
        let mut last;
        loop {
            if cancelled() {
                return Err(ServerProblem::Interrupted);
            }
            if let Some(status) = self.exited() {
                return Err(self.exit_problem(status));
            }
            let target = url
                .map(str::to_string)
                .or_else(|| self.announced_url())
                .or_else(|| fallback.map(str::to_string));
            if let Some(base) = &target {
                match http_status(base, "/health").await {
                    Ok(200) => return Ok(base.clone()),
                    Ok(code) => last = format!("/health answered {code}"),
                    Err(e) => last = format!("/health: {e}"),
                }
            } else {
                last =
                    "no URL: pass --baseline-url/--lmcache-url, or print `listening on http://…`"
                        .to_string();
            }
            if start.elapsed() >= timeout {
                return Err(ServerProblem::NotReady {
                    waited: start.elapsed(),
                    last,
                    log_tail: log_tail(&self.log, 20),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the server: SIGTERM to its group, up to `grace` to exit, then SIGKILL to the
    /// group. On a blocking thread, so that the runtime's workers are not held for `grace`.
    pub async fn stop(mut self, grace: Duration) {
        let stopping = tokio::task::spawn_blocking(move || self.stop_now(grace));
        if let Err(e) = stopping.await {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }

    /// [`Server::stop`] on this thread, blocking up to `grace`.
    fn stop_now(&mut self, grace: Duration) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        signal_group(self.pgid, libc::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < grace {
            if self.exited().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The leader may be gone while children of `sh -c` linger: kill the group anyway.
        signal_group(self.pgid, libc::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = CURRENT_GROUP.compare_exchange(self.pgid, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// The last resort, when a server was not stopped with [`Server::stop`] (an error or a
/// panic on the way): this blocks the dropping thread up to 5 s, even inside async code, but
/// leaves no server behind.
impl Drop for Server {
    fn drop(&mut self) {
        self.stop_now(Duration::from_secs(5));
    }
}

/// Linux: the child gets SIGTERM when `ab` dies, even by SIGKILL, which runs no handler and
/// no `Drop` (reliability review D5: the server was orphaned). The signal follows the
/// *thread* that spawned the child: `Server::start` runs on a worker of the command's
/// runtime, which lives until `ab` ends. A shell command (`--baseline-cmd`) gets it on its
/// `sh`, not on what the shell starts: write `exec vllm serve …` to pass it on.
#[cfg(target_os = "linux")]
#[allow(
    unsafe_code,
    reason = "prctl(2) in the child before exec, see the SAFETY comment"
)]
fn die_with_parent(c: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2),
    // which is async-signal-safe; it allocates nothing and touches no shared state.
    unsafe {
        c.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_c: &mut Command) {}

/// SIGKILL to the group of the server running now, if any: the last act of a second Ctrl-C,
/// which exits without unwinding, so no `Drop` would stop it.
pub fn kill_current_group() {
    signal_group(CURRENT_GROUP.load(Ordering::SeqCst), libc::SIGKILL);
}

/// Sends `sig` to process group `pgid` (ignoring "no such process").
#[allow(unsafe_code, reason = "kill(2), see the SAFETY comment")]
pub fn signal_group(pgid: i32, sig: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// `GET {origin}{path}` over plain HTTP/1.0; the status code.
pub async fn http_status(base: &str, path: &str) -> Result<u16, String> {
    let rest = base
        .strip_prefix("http://")
        .ok_or_else(|| format!("only http:// URLs are polled, not {base}"))?;
    let host = rest.split('/').next().unwrap_or(rest);
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(host)
            .await
            .map_err(|e| e.to_string())?;
        let req = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 64];
        let mut got = 0;
        while got < 12 {
            let n = s.read(&mut buf[got..]).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            got += n;
        }
        let head = String::from_utf8_lossy(&buf[..got]).into_owned();
        head.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| format!("not an HTTP answer: {head:?}"))
    };
    tokio::time::timeout(Duration::from_secs(2), fut)
        .await
        .map_err(|_| "no answer within 2s".to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_announced_url() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.log");
        std::fs::write(
            &log,
            "loading\nldqa serve: listening on http://127.0.0.1:4567 (vllm, H100)\n",
        )
        .unwrap();
        let server = Server {
            child: Command::new("true").spawn().unwrap(),
            pgid: 0,
            log: log.clone(),
            stopped: true,
        };
        assert_eq!(
            server.announced_url().as_deref(),
            Some("http://127.0.0.1:4567/v1")
        );
        assert_eq!(
            log_tail(&log, 1),
            "  | ldqa serve: listening on http://127.0.0.1:4567 (vllm, H100)"
        );
    }

    /// A `vllm serve` announces no `listening on` line: with no URL given, the server is
    /// looked for at the fallback (before, `ab` waited out its ready timeout).
    #[tokio::test]
    async fn a_server_that_announces_nothing_is_found_at_the_fallback() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            use std::io::Write;
            for stream in listener.incoming().flatten() {
                let mut stream = stream;
                let mut buf = [0u8; 1024];
                let _ = std::io::Read::read(&mut stream, &mut buf);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let cmd =
            ServerCommand::Shell("echo 'Starting API server on http://0.0.0.0'; sleep 30".into());
        let mut s = Server::start(&cmd, &dir.path().join("s.log")).unwrap();
        let fallback = format!("http://127.0.0.1:{port}/v1");
        let ready = s
            .wait_ready(None, Some(&fallback), Duration::from_secs(20), &|| false)
            .await;
        s.stop_now(Duration::from_millis(200));
        assert_eq!(ready.unwrap(), fallback);
        assert_eq!(cmd.fallback_url(), Some(VLLM_DEFAULT_URL));
    }

    #[test]
    fn stop_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("s.log");
        // A shell that ignores SIGTERM and has a child: both must be gone after stop.
        let cmd = ServerCommand::Shell("trap '' TERM; sleep 600 & echo $!; wait".into());
        let mut s = Server::start(&cmd, &log).unwrap();
        let pgid = s.pgid;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&log).unwrap().trim().is_empty() {
            assert!(Instant::now() < deadline, "the shell never started");
            std::thread::sleep(Duration::from_millis(10));
        }
        let grandchild: i32 = std::fs::read_to_string(&log)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        s.stop_now(Duration::from_millis(200));
        assert!(s.exited().is_some() || s.stopped);
        // Alive: in /proc and not a zombie.
        let alive = |pid: i32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
        };
        // The grandchild was in the group: it got SIGKILL (it may linger as a zombie of init
        // for a moment, so wait for it to be reaped).
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(grandchild) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!alive(grandchild));
        assert!(!alive(pgid));
    }
}
