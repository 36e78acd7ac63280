//! When a request's first bytes reached this machine's kernel, from the socket's own
//! receive timestamp (`SO_TIMESTAMPNS`).
//!
//! The client benchmark subtracts the server's TTFT from the client's. Measured from the
//! moment the server *read* the request, the server's own read queue (a burst of 512
//! requests takes a single-threaded server milliseconds to read) would be charged to the
//! client. Measured from the kernel's receive timestamp, the server's TTFT holds all of the
//! server's time, and what is left is the client's send path, the loopback crossing and the
//! client's receive path.
//!
//! The kernel stamps with `CLOCK_REALTIME`; the stamp is moved onto `CLOCK_MONOTONIC`
//! (the clock of `std::time::Instant`, shared by every process) by the offset between the
//! two clocks read together. A clock step between the packet and the read would show as an
//! error of the step's size; NTP slewing is parts per million of a millisecond interval.
//!
//! Linux only; elsewhere no arrival is known.

#![allow(
    unsafe_code,
    reason = "setsockopt, recvmsg with its CMSG walk, clock_gettime; each has a SAFETY comment"
)]

use std::io;

use tokio::io::Interest;
use tokio::net::TcpStream;

/// `CLOCK_MONOTONIC` now, in ns: the clock of `std::time::Instant`, one for every process
/// on the machine, so two processes' stamps can be subtracted (the client benchmark
/// does). 0 off Linux.
pub fn monotonic_now_ns() -> u64 {
    imp::monotonic_now_ns()
}

/// `t` on `CLOCK_MONOTONIC`, in ns (see [`monotonic_now_ns`]).
pub fn monotonic_ns(t: std::time::Instant) -> u64 {
    monotonic_now_ns().saturating_sub(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX))
}

/// Asks the kernel to stamp received data on this socket.
pub(crate) fn enable(socket: &TcpStream) {
    imp::enable(socket);
}

/// Waits for data on `socket` and gives the receive timestamp of its first unread byte,
/// on `CLOCK_MONOTONIC`, in ns; `None` at end of stream, when the kernel had no stamp, or
/// off Linux.
///
/// Peeks (`MSG_PEEK`): the data stays for the request parser.
pub(crate) async fn first_unread_byte(socket: &TcpStream) -> io::Result<Option<u64>> {
    loop {
        socket.readable().await?;
        // `readable` can report a readiness that a read already used up: `try_io` clears
        // it on `WouldBlock`, and the loop waits for the next one.
        match socket.try_io(Interest::READABLE, || imp::peek_first_byte(socket)) {
            Ok(stamp) => return Ok(stamp),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::os::fd::AsRawFd;

    use tokio::net::TcpStream;

    pub(super) fn enable(socket: &TcpStream) {
        let on: libc::c_int = 1;
        // SAFETY: a valid fd and a pointer to a c_int of the size passed.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }

    /// `Err(WouldBlock)` when nothing is buffered; `Ok(None)` at end of stream or
    /// without a stamp.
    pub(super) fn peek_first_byte(socket: &TcpStream) -> io::Result<Option<u64>> {
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: byte.len(),
        };
        // Room for one SCM_TIMESTAMPNS (a timespec) and then some, u64-aligned.
        let mut control = [0u64; 16];
        // SAFETY: msghdr is plain data; zeroed is a valid empty header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: every pointer in `msg` points at live buffers of the lengths given.
        let n = unsafe {
            libc::recvmsg(
                socket.as_raw_fd(),
                &mut msg,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Ok(None);
        }
        // SAFETY: the CMSG_* walk stays within `msg_controllen`, which the kernel set.
        let stamp = unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            let mut found = None;
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET
                    && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
                {
                    found = Some(std::ptr::read_unaligned(
                        libc::CMSG_DATA(cmsg).cast::<libc::timespec>(),
                    ));
                    break;
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
            found
        };
        Ok(stamp.and_then(realtime_to_monotonic))
    }

    fn realtime_to_monotonic(stamp: libc::timespec) -> Option<u64> {
        let realtime_ns = timespec_ns(stamp)?;
        if realtime_ns == 0 {
            return None; // the kernel had no stamp for this data
        }
        let age = now_ns(libc::CLOCK_REALTIME)?.checked_sub(realtime_ns)?;
        now_ns(libc::CLOCK_MONOTONIC)?.checked_sub(age)
    }

    pub(super) fn monotonic_now_ns() -> u64 {
        now_ns(libc::CLOCK_MONOTONIC).unwrap_or(0)
    }

    fn now_ns(clock: libc::clockid_t) -> Option<u64> {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid, writable timespec.
        if unsafe { libc::clock_gettime(clock, &mut t) } != 0 {
            return None;
        }
        timespec_ns(t)
    }

    fn timespec_ns(t: libc::timespec) -> Option<u64> {
        let secs = u64::try_from(t.tv_sec).ok()?;
        let nanos = u64::try_from(t.tv_nsec).ok()?;
        secs.checked_mul(1_000_000_000)?.checked_add(nanos)
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;

    use tokio::net::TcpStream;

    pub(super) fn enable(_socket: &TcpStream) {}

    pub(super) fn monotonic_now_ns() -> u64 {
        0
    }

    pub(super) fn peek_first_byte(_socket: &TcpStream) -> io::Result<Option<u64>> {
        Ok(None)
    }
}
