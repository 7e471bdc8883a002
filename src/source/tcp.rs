//! A TCP client source, like Spark's socketTextStream: it connects to
//! HOST:PORT and reads lines until the peer closes the connection.

use std::io::{self, Read};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use sluice_lines::LineReader;

use super::file::pump;
use super::{Feed, Source};
use crate::error::RunError;

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to a TCP server and reads lines.
#[derive(Debug, Clone)]
pub struct TcpSource {
    /// `HOST:PORT`.
    addr: String,
    /// Longest line before it is cut.
    max_line: usize,
}

impl TcpSource {
    /// A source that connects to `addr`.
    pub fn new(addr: String, max_line: usize) -> Self {
        TcpSource { addr, max_line }
    }

    fn connect(&self) -> Result<TcpStream, String> {
        let addrs = self
            .addr
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}; check the host name", self.addr))?;
        let mut last = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) if e.kind() == io::ErrorKind::ConnectionRefused => format!(
                "connection refused: nothing listens at {}; start the server first or fix the address",
                self.addr
            ),
            Some(e) if e.kind() == io::ErrorKind::TimedOut => format!(
                "no answer from {} within {} s; check the address and any firewall",
                self.addr,
                CONNECT_TIMEOUT.as_secs()
            ),
            Some(e) => format!("cannot connect to {}: {e}", self.addr),
            None => format!("{} resolves to no address; check the host name", self.addr),
        })
    }
}

/// Reads a socket with a short timeout so that a stopping run is noticed.
struct Stoppable<'a> {
    /// The connection.
    stream: TcpStream,
    /// Tells when to give up.
    feed: &'a Feed,
}

impl Read for Stoppable<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.stream.read(buf) {
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    if self.feed.stopping() {
                        return Ok(0);
                    }
                }
                other => return other,
            }
        }
    }
}

impl Source for TcpSource {
    fn name(&self) -> String {
        format!("tcp:{}", self.addr)
    }

    fn run(self: Box<Self>, feed: Feed) -> Result<(), RunError> {
        let name = self.name();
        let stream = self.connect().map_err(|message| RunError::Source { source_name: name.clone(), message })?;
        let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
        let _ = stream.set_nodelay(true);
        tracing::info!(source = %name, "connected");
        pump(LineReader::new(Stoppable { stream, feed: &feed }, self.max_line), &feed, &name, 0)
    }
}
