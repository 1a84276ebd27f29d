//! Drives `tests/ws_client.py`, an MSRP-over-WebSocket client written with
//! Python's `websockets` (a third-party implementation, Debian package
//! `python3-websockets`), from Rust tests.
//!
//! [`PyWsClient::spawn`] runs the script in its interactive mode: frames
//! written with [`PyWsClient::send_frame`] go to its stdin as base64 lines
//! (each is sent as one binary WebSocket message), and its stdout events
//! (`open`, `frame`, `close`, `error`) come back as [`PyWsEvent`]s.
//! [`PyWsClient::run_batch`] runs it once with a list of frames to send and
//! a number of frames to wait for.

use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use msrp_core::{Event, Limits, Parser};
use sha2::{Digest, Sha256};

use crate::peer::ReceivedFrame;

/// What can go wrong driving the script.
#[derive(Debug)]
pub enum PyWsError {
    /// The script or its Python could not be started or talked to.
    Io(io::Error),
    /// Python or its `websockets` module is missing.
    Missing(String),
    /// No event within the time given.
    Timeout(String),
    /// The script said `error ...` (refused upgrade, TLS failure, ...).
    Script(String),
    /// The script printed something that is not an event, or an event the
    /// caller did not expect.
    Unexpected(String),
}

impl fmt::Display for PyWsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PyWsError::Io(e) => write!(f, "ws_client.py: {e}"),
            PyWsError::Missing(e) => write!(f, "ws_client.py cannot run: {e}"),
            PyWsError::Timeout(e) => write!(f, "ws_client.py: timed out: {e}"),
            PyWsError::Script(e) => write!(f, "ws_client.py: error {e}"),
            PyWsError::Unexpected(e) => write!(f, "ws_client.py: unexpected {e}"),
        }
    }
}

impl std::error::Error for PyWsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PyWsError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for PyWsError {
    fn from(e: io::Error) -> Self {
        PyWsError::Io(e)
    }
}

/// One line of the script's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PyWsEvent {
    /// Handshake done; the selected subprotocol (`None`: none).
    Open(Option<String>),
    /// One complete MSRP frame, as received.
    Frame(Vec<u8>),
    /// The WebSocket closed: code (1006 without a closing handshake) and
    /// reason.
    Close(u16, String),
    /// `error refused STATUS`: the upgrade was answered with this status.
    Refused(u16),
    /// Any other `error ...` line.
    Error(String),
}

impl PyWsEvent {
    /// Parses one output line.
    pub fn parse(line: &str) -> Result<PyWsEvent, PyWsError> {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let bad = || PyWsError::Unexpected(format!("output line {line:?}"));
        Ok(match word {
            "open" => PyWsEvent::Open(match rest.trim() {
                "-" | "" => None,
                p => Some(p.to_owned()),
            }),
            "frame" => PyWsEvent::Frame(
                data_encoding::BASE64
                    .decode(rest.trim().as_bytes())
                    .map_err(|_| bad())?,
            ),
            "close" => {
                let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
                PyWsEvent::Close(code.trim().parse().map_err(|_| bad())?, reason.to_owned())
            }
            "error" => match rest.strip_prefix("refused ") {
                Some(status) => PyWsEvent::Refused(status.trim().parse().map_err(|_| bad())?),
                None => PyWsEvent::Error(rest.to_owned()),
            },
            _ => return Err(bad()),
        })
    }
}

/// TLS and WebSocket options of the script.
#[derive(Debug, Clone, Default)]
pub struct PyWsOptions {
    /// `--ca FILE`: CA bundle to verify a wss server against.
    pub ca: Option<PathBuf>,
    /// `--cert FILE --key FILE`: client certificate and key.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// `--server-name NAME`: TLS name to verify instead of the URL's host.
    pub server_name: Option<String>,
    /// `--origin ORIGIN`.
    pub origin: Option<String>,
    /// `--subprotocol P` each (empty: the script's default, `msrp`).
    pub subprotocols: Vec<String>,
    /// `--no-subprotocol`.
    pub no_subprotocol: bool,
    /// `--timeout SECONDS` of the script (its handshake, and the batch
    /// mode's wait); default 10.
    pub timeout: Option<Duration>,
}

impl PyWsOptions {
    fn args(&self) -> Vec<String> {
        let mut a = Vec::new();
        let mut push = |k: &str, v: String| {
            a.push(k.to_owned());
            a.push(v);
        };
        if let Some(p) = &self.ca {
            push("--ca", p.display().to_string());
        }
        if let Some((c, k)) = &self.client_cert {
            push("--cert", c.display().to_string());
            push("--key", k.display().to_string());
        }
        if let Some(n) = &self.server_name {
            push("--server-name", n.clone());
        }
        if let Some(o) = &self.origin {
            push("--origin", o.clone());
        }
        for p in &self.subprotocols {
            push("--subprotocol", p.clone());
        }
        if let Some(t) = self.timeout {
            push("--timeout", format!("{:.3}", t.as_secs_f64()));
        }
        if self.no_subprotocol {
            a.push("--no-subprotocol".into());
        }
        a
    }
}

/// The script of this source tree (`tests/ws_client.py`).
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("tests")
        .join("ws_client.py")
}

/// The Python to run it with: `$MSRP_PYTHON`, else Debian's
/// `/usr/bin/python3` (which sees python3-websockets; a python3 earlier in
/// `PATH`, e.g. pyenv's, may not), else `python3`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("MSRP_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let debian = Path::new("/usr/bin/python3");
    if debian.is_file() {
        debian.to_owned()
    } else {
        PathBuf::from("python3")
    }
}

/// Errors unless [`python`] can import `websockets`; returns its version.
pub fn check_python() -> Result<String, PyWsError> {
    let py = python();
    let out = Command::new(&py)
        .args(["-c", "import websockets; print(websockets.__version__)"])
        .output()
        .map_err(|e| PyWsError::Missing(format!("cannot run {}: {e}", py.display())))?;
    if !out.status.success() {
        return Err(PyWsError::Missing(format!(
            "{} cannot import websockets (Debian: apt-get install python3-websockets, \
             or `make deps`): {}",
            py.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A running `ws_client.py --stdin`.
pub struct PyWsClient {
    child: Child,
    stdin: Option<ChildStdin>,
    events: Receiver<Result<PyWsEvent, String>>,
    stderr: Receiver<String>,
}

impl fmt::Debug for PyWsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PyWsClient")
            .field("pid", &self.child.id())
            .finish()
    }
}

/// Lines of `r`, each sent on `tx` (parsed by `f`), until EOF.
fn pump<T: Send + 'static>(
    r: impl io::Read + Send + 'static,
    tx: mpsc::Sender<T>,
    f: impl Fn(String) -> T + Send + 'static,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { return };
            if tx.send(f(line)).is_err() {
                return;
            }
        }
    });
}

impl PyWsClient {
    /// Starts the script for `url` (`ws://...` or `wss://...`) in its
    /// interactive mode. The handshake runs in the background: see
    /// [`PyWsClient::wait_open`].
    pub fn spawn(url: &str, opts: &PyWsOptions) -> Result<PyWsClient, PyWsError> {
        check_python()?;
        let mut child = Command::new(python())
            .arg(script())
            .arg(url)
            .arg("--stdin")
            .args(opts.args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| PyWsError::Missing(format!("cannot start {}: {e}", python().display())))?;
        let (tx, events) = mpsc::channel();
        let (etx, stderr) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            pump(out, tx, |l| PyWsEvent::parse(&l).map_err(|_| l));
        }
        if let Some(err) = child.stderr.take() {
            pump(err, etx, |l| l);
        }
        let stdin = child.stdin.take();
        Ok(PyWsClient {
            child,
            stdin,
            events,
            stderr,
        })
    }

    /// Runs the script once: sends `frames` (each one message), waits for
    /// `expect` frames, closes. Returns its events and exit status.
    pub fn run_batch(
        url: &str,
        opts: &PyWsOptions,
        frames: &[&[u8]],
        expect: usize,
    ) -> Result<(Vec<PyWsEvent>, ExitStatus), PyWsError> {
        check_python()?;
        let mut cmd = Command::new(python());
        cmd.arg(script()).arg(url).args(opts.args());
        for f in frames {
            cmd.arg("--send-b64").arg(data_encoding::BASE64.encode(f));
        }
        cmd.arg("--expect").arg(expect.to_string());
        let out = cmd.stdin(Stdio::null()).output()?;
        let events = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(PyWsEvent::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((events, out.status))
    }

    /// The next event, waiting at most `timeout`.
    pub fn next_event(&mut self, timeout: Duration) -> Result<PyWsEvent, PyWsError> {
        match self.events.recv_timeout(timeout) {
            Ok(Ok(ev)) => Ok(ev),
            Ok(Err(line)) => Err(PyWsError::Unexpected(format!(
                "output line {line:?}{}",
                self.stderr_text()
            ))),
            Err(RecvTimeoutError::Timeout) => Err(PyWsError::Timeout(format!(
                "no event within {timeout:?}{}",
                self.stderr_text()
            ))),
            Err(RecvTimeoutError::Disconnected) => Err(PyWsError::Unexpected(format!(
                "end of output (the script exited){}",
                self.stderr_text()
            ))),
        }
    }

    /// Waits for `open`; returns the selected subprotocol. `error` lines
    /// become [`PyWsError::Script`].
    pub fn wait_open(&mut self, timeout: Duration) -> Result<Option<String>, PyWsError> {
        match self.next_event(timeout)? {
            PyWsEvent::Open(p) => Ok(p),
            PyWsEvent::Refused(s) => Err(PyWsError::Script(format!("refused {s}"))),
            PyWsEvent::Error(e) => Err(PyWsError::Script(e)),
            other => Err(PyWsError::Unexpected(format!("{other:?} before open"))),
        }
    }

    /// Sends one frame (as one binary WebSocket message).
    pub fn send_frame(&mut self, frame: &[u8]) -> Result<(), PyWsError> {
        self.write_line(&data_encoding::BASE64.encode(frame))
    }

    /// Closes the WebSocket with `code` and `reason`.
    pub fn close(&mut self, code: u16, reason: &str) -> Result<(), PyWsError> {
        self.write_line(&format!("close {code} {reason}"))
    }

    fn write_line(&mut self, line: &str) -> Result<(), PyWsError> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| PyWsError::Unexpected("stdin already closed".into()))?;
        stdin.write_all(line.as_bytes())?;
        stdin.write_all(b"\n")?;
        stdin.flush()?;
        Ok(())
    }

    /// The next frame, parsed. Any other event is an error.
    pub fn read_frame(&mut self, timeout: Duration) -> Result<ReceivedFrame, PyWsError> {
        match self.next_event(timeout)? {
            PyWsEvent::Frame(bytes) => parse_frame(&bytes),
            PyWsEvent::Error(e) => Err(PyWsError::Script(e)),
            other => Err(PyWsError::Unexpected(format!(
                "{other:?} instead of a frame"
            ))),
        }
    }

    /// Ends stdin (the script then closes with 1000) and waits at most
    /// `timeout` for it to exit; returns the events it printed meanwhile
    /// and its exit status. Kills it when it does not exit.
    pub fn finish(mut self, timeout: Duration) -> Result<(Vec<PyWsEvent>, ExitStatus), PyWsError> {
        drop(self.stdin.take());
        let deadline = Instant::now() + timeout;
        let mut events = Vec::new();
        loop {
            while let Ok(ev) = self.events.try_recv() {
                events.push(ev.map_err(|l| PyWsError::Unexpected(format!("output line {l:?}")))?);
            }
            if let Some(status) = self.child.try_wait()? {
                // what it printed last
                std::thread::sleep(Duration::from_millis(20));
                while let Ok(ev) = self.events.try_recv() {
                    events
                        .push(ev.map_err(|l| PyWsError::Unexpected(format!("output line {l:?}")))?);
                }
                return Ok((events, status));
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(PyWsError::Timeout(format!(
                    "the script did not exit within {timeout:?}{}",
                    self.stderr_text()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stderr_text(&self) -> String {
        let lines: Vec<String> = self.stderr.try_iter().collect();
        if lines.is_empty() {
            String::new()
        } else {
            format!("; stderr: {}", lines.join(" | "))
        }
    }
}

impl Drop for PyWsClient {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Parses one complete MSRP frame (as the script prints them).
pub fn parse_frame(bytes: &[u8]) -> Result<ReceivedFrame, PyWsError> {
    let mut buf = BytesMut::from(bytes);
    let mut parser = Parser::new(Limits::default());
    let mut head = None;
    let mut body = Vec::new();
    let bad = |what: String| PyWsError::Unexpected(format!("frame {what}"));
    loop {
        match parser
            .next(&mut buf)
            .map_err(|e| bad(format!("does not parse: {e}")))?
        {
            Some(Event::Head(h)) => head = Some(h),
            Some(Event::Body(b)) => body.extend_from_slice(&b),
            Some(Event::End(flag)) => {
                let head = head.ok_or_else(|| bad("without head".into()))?;
                if !buf.is_empty() {
                    return Err(bad(format!("followed by {} more bytes", buf.len())));
                }
                return Ok(ReceivedFrame {
                    head,
                    body_sha256: Sha256::digest(&body).into(),
                    body_len: body.len() as u64,
                    body,
                    flag,
                });
            }
            None => return Err(bad("is incomplete".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events() {
        assert_eq!(
            PyWsEvent::parse("open msrp").unwrap(),
            PyWsEvent::Open(Some("msrp".into()))
        );
        assert_eq!(PyWsEvent::parse("open -").unwrap(), PyWsEvent::Open(None));
        assert_eq!(
            PyWsEvent::parse("frame TVNSUA==").unwrap(),
            PyWsEvent::Frame(b"MSRP".to_vec())
        );
        assert_eq!(
            PyWsEvent::parse("close 1000 ").unwrap(),
            PyWsEvent::Close(1000, String::new())
        );
        assert_eq!(
            PyWsEvent::parse("close 1002 not MSRP").unwrap(),
            PyWsEvent::Close(1002, "not MSRP".into())
        );
        assert_eq!(
            PyWsEvent::parse("error refused 403").unwrap(),
            PyWsEvent::Refused(403)
        );
        assert_eq!(
            PyWsEvent::parse("error SSLError x").unwrap(),
            PyWsEvent::Error("SSLError x".into())
        );
        assert!(PyWsEvent::parse("frame !!!").is_err());
        assert!(PyWsEvent::parse("hello").is_err());
    }

    #[test]
    fn frames() {
        let req = crate::peer::Request::send(&["msrp://a:1/x;ws"], &["msrp://b:2/y;ws"], b"hi");
        let f = parse_frame(&req.to_wire()).unwrap();
        assert_eq!(f.tid(), req.tid);
        assert_eq!(f.body, b"hi");
        let mut two = req.to_wire();
        two.extend_from_slice(&req.to_wire());
        assert!(parse_frame(&two).is_err());
        assert!(parse_frame(&req.to_wire()[..20]).is_err());
    }

    #[test]
    fn options_become_arguments() {
        let o = PyWsOptions {
            ca: Some("/c/ca.pem".into()),
            client_cert: Some(("/c/client.pem".into(), "/c/client.key".into())),
            server_name: Some("relay.test".into()),
            origin: Some("https://o".into()),
            subprotocols: vec!["msrp".into(), "x".into()],
            no_subprotocol: false,
            timeout: Some(Duration::from_millis(2500)),
        };
        assert_eq!(
            o.args().join(" "),
            "--ca /c/ca.pem --cert /c/client.pem --key /c/client.key --server-name relay.test \
             --origin https://o --subprotocol msrp --subprotocol x --timeout 2.500"
        );
    }
}
