//! The header and keep-alive time-outs of an HTTP/1 connection. hyper has one timer for both:
//! its header read time-out starts when it begins waiting for a request, on a new connection
//! and after every answer on a kept-alive one, so on its own it would close an idle kept-alive
//! connection after the (short) header time-out. [`HeadTimer`] is that timer: while a kept-alive
//! connection has read nothing of its next request, the deadline is the keep-alive time-out;
//! from the first byte on it is the header time-out. A new connection's first request is due
//! a header time-out after the accept: a client that connects and sends nothing is treated
//! like one that trickles.
//! [`Counted`] is the connection's socket, counting the bytes read so the timer can tell idle
//! from slow; it also carries the connection's admission slot, so the slot is held for as long
//! as the socket lives, after a WebSocket upgrade too.

use crate::serve::admission::Slot;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A client's socket, counting what it read.
#[derive(Debug)]
pub struct Counted {
    stream: TcpStream,
    /// When it was accepted: a new connection's first request is due a header time-out later.
    opened: Instant,
    /// Bytes read so far, shared with the connection's [`HeadTimer`].
    read: Arc<AtomicU64>,
    /// Held, never read: dropping the socket frees the client's place.
    _slot: Slot,
}

impl Counted {
    /// Wraps an admitted client's socket.
    pub fn new(stream: TcpStream, slot: Slot) -> Self {
        Counted {
            stream,
            opened: Instant::now(),
            read: Arc::new(AtomicU64::new(0)),
            _slot: slot,
        }
    }

    /// Waits until the client has sent something: true then, false when it closed first.
    /// (`readable()` alone is ready at once for a new socket; a peek is not.)
    pub async fn sent_something(&self) -> io::Result<bool> {
        let mut first = [0u8; 1];
        Ok(self.stream.peek(&mut first).await? > 0)
    }

    /// The timer for hyper to use on this connection.
    pub fn timer(&self, header: Duration, keepalive: Duration) -> HeadTimer {
        HeadTimer {
            read: self.read.clone(),
            first_due: self.opened + header,
            header,
            keepalive,
        }
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before) as u64;
        if read > 0 {
            this.read.fetch_add(read, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// hyper's header read timer for one connection; see the module header.
#[derive(Debug, Clone)]
pub struct HeadTimer {
    read: Arc<AtomicU64>,
    /// The deadline of the first request's headers, counted from the accept: the accept loop
    /// waits for the first byte before it hands the connection to hyper.
    first_due: Instant,
    header: Duration,
    keepalive: Duration,
}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    /// hyper asks for `now + header time-out` when it starts waiting for a request.
    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let read_at_start = self.read.load(Ordering::Relaxed);
        let idle = read_at_start > 0;
        let deadline = if idle {
            let started = deadline
                .checked_sub(self.header)
                .unwrap_or_else(Instant::now);
            started + self.keepalive
        } else {
            self.first_due.min(deadline)
        };
        Box::pin(HeadDeadline {
            sleep: Box::pin(tokio::time::sleep_until(deadline.into())),
            idle,
            read: self.read.clone(),
            read_at_start,
            header: self.header,
        })
    }
}

/// The deadline of one wait for a request's headers.
struct HeadDeadline {
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// Nothing of the request has been read yet on a kept-alive connection.
    idle: bool,
    read: Arc<AtomicU64>,
    read_at_start: u64,
    header: Duration,
}

impl Future for HeadDeadline {
    type Output = ();

    /// hyper polls this after every read that left the headers incomplete, so the first byte
    /// of a request is seen here as soon as it is read.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.idle && this.read.load(Ordering::Relaxed) != this.read_at_start {
            this.idle = false;
            let deadline = tokio::time::Instant::now() + this.header;
            this.sleep.as_mut().reset(deadline);
        }
        this.sleep.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for HeadDeadline {}
