//! Just enough of the QEMU Machine Protocol (QMP) to learn the host thread
//! of each vCPU: connect to the monitor's unix socket, leave capabilities
//! negotiation, and run `query-cpus-fast`.
//!
//! Invariants:
//! - QMP sends one JSON object per line; asynchronous events
//!   (`{"event": ...}`) may arrive before any reply and are skipped.
//! - A reply is parsed strictly: `return` or `error`, anything else is an
//!   error; `query-cpus-fast` must give each vCPU index once, with a
//!   positive thread id.
//! - Every read and write has a deadline; a monitor that does not answer
//!   makes an error, never a hang.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Why QMP failed.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// Connecting, reading or writing failed.
    #[error("QMP {what}: {cause}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        cause: std::io::Error,
    },
    /// The monitor closed the connection.
    #[error("QMP: the monitor closed the connection while {0}")]
    Closed(&'static str),
    /// A line was not JSON or not a QMP message.
    #[error("QMP: {0}")]
    Protocol(String),
    /// A command returned an error.
    #[error("QMP command {command} failed: {class}: {description}")]
    Command {
        /// The command.
        command: String,
        /// QEMU's error class.
        class: String,
        /// QEMU's description.
        description: String,
    },
}

/// One message from the monitor.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// The greeting sent on connect.
    Greeting,
    /// A command's result.
    Return(Value),
    /// A command's error.
    Error {
        /// QEMU's error class.
        class: String,
        /// QEMU's description.
        description: String,
    },
    /// An asynchronous event, by name.
    Event(String),
}

/// Parse one line the monitor sent.
pub fn parse_message(line: &str) -> Result<Message, QmpError> {
    let value: Value = serde_json::from_str(line.trim())
        .map_err(|error| QmpError::Protocol(format!("not JSON ({error}): {:.200}", line.trim())))?;
    let Value::Object(object) = value else {
        return Err(QmpError::Protocol(format!(
            "not an object: {:.200}",
            line.trim()
        )));
    };
    if object.contains_key("QMP") {
        return Ok(Message::Greeting);
    }
    if let Some(result) = object.get("return") {
        return Ok(Message::Return(result.clone()));
    }
    if let Some(error) = object.get("error") {
        let text = |key: &str| {
            error
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string()
        };
        return Ok(Message::Error {
            class: text("class"),
            description: text("desc"),
        });
    }
    if let Some(event) = object.get("event").and_then(Value::as_str) {
        return Ok(Message::Event(event.to_string()));
    }
    Err(QmpError::Protocol(format!(
        "neither a greeting, a reply nor an event: {:.200}",
        line.trim()
    )))
}

/// A vCPU and the host thread that runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuThread {
    /// QEMU's `cpu-index` (0 is the boot CPU).
    pub index: u32,
    /// Host thread id (`thread-id`).
    pub thread_id: u32,
}

/// Parse the `return` value of `query-cpus-fast`, sorted by vCPU index.
pub fn parse_cpus_fast(value: &Value) -> Result<Vec<VcpuThread>, QmpError> {
    let Value::Array(entries) = value else {
        return Err(QmpError::Protocol(
            "query-cpus-fast did not return a list".into(),
        ));
    };
    let mut vcpus = Vec::with_capacity(entries.len());
    for entry in entries {
        let number = |key: &str| -> Result<u32, QmpError> {
            entry
                .get(key)
                .and_then(Value::as_u64)
                .and_then(|number| u32::try_from(number).ok())
                .ok_or_else(|| {
                    QmpError::Protocol(format!(
                        "query-cpus-fast entry without a valid {key:?}: {entry}"
                    ))
                })
        };
        let vcpu = VcpuThread {
            index: number("cpu-index")?,
            thread_id: number("thread-id")?,
        };
        if vcpu.thread_id == 0 {
            return Err(QmpError::Protocol(format!(
                "query-cpus-fast gives vCPU {} thread id 0",
                vcpu.index
            )));
        }
        vcpus.push(vcpu);
    }
    vcpus.sort_by_key(|vcpu| vcpu.index);
    if vcpus.windows(2).any(|pair| pair[0].index == pair[1].index) {
        return Err(QmpError::Protocol(
            "query-cpus-fast lists a vCPU index twice".into(),
        ));
    }
    Ok(vcpus)
}

/// A connected monitor.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connect to the QMP socket at `path`, retrying until `deadline` (QEMU
    /// creates it shortly after it starts), read the greeting and leave
    /// capabilities negotiation.
    pub fn connect(path: &Path, deadline: Instant) -> Result<Client, QmpError> {
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(stream) => break stream,
                Err(cause) if Instant::now() >= deadline => {
                    return Err(QmpError::Io {
                        what: "connect",
                        cause,
                    })
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        let timeout = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        let io = |what, cause| QmpError::Io { what, cause };
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|cause| io("set_read_timeout", cause))?;
        stream
            .set_write_timeout(Some(timeout))
            .map_err(|cause| io("set_write_timeout", cause))?;
        let writer = stream.try_clone().map_err(|cause| io("clone", cause))?;
        let mut client = Client {
            reader: BufReader::new(stream),
            writer,
        };
        match client.next_message("waiting for the greeting")? {
            Message::Greeting => {}
            other => {
                return Err(QmpError::Protocol(format!(
                    "expected the greeting, got {other:?}"
                )))
            }
        }
        client.execute("qmp_capabilities")?;
        Ok(client)
    }

    fn next_message(&mut self, doing: &'static str) -> Result<Message, QmpError> {
        let mut line = String::new();
        let read = self
            .reader
            .read_line(&mut line)
            .map_err(|cause| QmpError::Io {
                what: "read",
                cause,
            })?;
        if read == 0 {
            return Err(QmpError::Closed(doing));
        }
        parse_message(&line)
    }

    /// Run `command` (no arguments) and return its result, skipping events.
    pub fn execute(&mut self, command: &str) -> Result<Value, QmpError> {
        let request = serde_json::json!({ "execute": command }).to_string() + "\n";
        self.writer
            .write_all(request.as_bytes())
            .map_err(|cause| QmpError::Io {
                what: "write",
                cause,
            })?;
        loop {
            match self.next_message("waiting for a reply")? {
                Message::Event(_) => continue,
                Message::Return(value) => return Ok(value),
                Message::Error { class, description } => {
                    return Err(QmpError::Command {
                        command: command.to_string(),
                        class,
                        description,
                    })
                }
                Message::Greeting => {
                    return Err(QmpError::Protocol("a second greeting".into()));
                }
            }
        }
    }

    /// The host thread of every vCPU.
    pub fn vcpu_threads(&mut self) -> Result<Vec<VcpuThread>, QmpError> {
        parse_cpus_fast(&self.execute("query-cpus-fast")?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from QEMU 7.2 (`-smp 2`, TCG) on this project's machine.
    const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}"#;
    const CPUS_FAST: &str = r#"{"return": [{"thread-id": 25422, "props": {"core-id": 0, "thread-id": 0, "socket-id": 0}, "qom-path": "/machine/unattached/device[0]", "cpu-index": 0, "target": "x86_64"}, {"thread-id": 25423, "props": {"core-id": 1, "thread-id": 0, "socket-id": 0}, "qom-path": "/machine/unattached/device[2]", "cpu-index": 1, "target": "x86_64"}]}"#;

    #[test]
    fn parses_greeting_replies_errors_and_events() {
        assert_eq!(parse_message(GREETING).unwrap(), Message::Greeting);
        assert_eq!(
            parse_message("{\"return\": {}}\r\n").unwrap(),
            Message::Return(serde_json::json!({}))
        );
        assert_eq!(
            parse_message(r#"{"error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}}"#).unwrap(),
            Message::Error { class: "CommandNotFound".into(), description: "The command nope has not been found".into() }
        );
        assert_eq!(
            parse_message(r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "RESUME"}"#)
                .unwrap(),
            Message::Event("RESUME".into())
        );
        assert!(parse_message("not json").is_err());
        assert!(parse_message("[1]").is_err());
        assert!(parse_message(r#"{"something": 1}"#).is_err());
    }

    #[test]
    fn parses_query_cpus_fast() {
        let Message::Return(value) = parse_message(CPUS_FAST).unwrap() else {
            panic!("not a return");
        };
        assert_eq!(
            parse_cpus_fast(&value).unwrap(),
            [
                VcpuThread {
                    index: 0,
                    thread_id: 25422
                },
                VcpuThread {
                    index: 1,
                    thread_id: 25423
                }
            ]
        );
    }

    #[test]
    fn refuses_bad_cpu_lists() {
        for bad in [
            r#"{}"#,
            r#"[{"cpu-index": 0}]"#,
            r#"[{"cpu-index": 0, "thread-id": 0}]"#,
            r#"[{"cpu-index": 0, "thread-id": -5}]"#,
            r#"[{"cpu-index": 0, "thread-id": 7}, {"cpu-index": 0, "thread-id": 8}]"#,
        ] {
            let value: Value = serde_json::from_str(bad).unwrap();
            assert!(parse_cpus_fast(&value).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_fake_monitor_is_spoken_to_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            writeln!(writer, "{GREETING}").unwrap();
            let mut requests = Vec::new();
            for reply in [
                "{\"return\": {}}".to_string(),
                format!("{{\"event\": \"RESUME\"}}\n{CPUS_FAST}"),
            ] {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                requests.push(line.trim().to_string());
                writeln!(writer, "{reply}").unwrap();
            }
            requests
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut client = Client::connect(&path, deadline).unwrap();
        let threads = client.vcpu_threads().unwrap();
        assert_eq!(threads.len(), 2);
        assert_eq!(
            server.join().unwrap(),
            [
                r#"{"execute":"qmp_capabilities"}"#,
                r#"{"execute":"query-cpus-fast"}"#
            ]
        );
    }

    #[test]
    fn a_missing_socket_fails_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let deadline = Instant::now() + Duration::from_millis(50);
        let error = Client::connect(&dir.path().join("none"), deadline)
            .err()
            .unwrap();
        assert!(error.to_string().contains("QMP connect"), "{error}");
    }
}
