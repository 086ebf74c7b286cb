//! TCP_NODELAY on the connections to PostgreSQL.
//!
//! sqlx 0.9.0 opens its TCP connections without TCP_NODELAY (sqlx issue #4335; the fix, #4336,
//! is merged upstream but not released). A statement whose message leaves in more than one
//! segment then waits for the server's delayed ACK, 40 ms on Linux: reading a report page of
//! 500 requests by id took 45 ms per query over TCP and 1.5 ms over the Unix socket. Until a
//! sqlx release sets it, each new connection's socket is found among this process's file
//! descriptors by its peer's port and given TCP_NODELAY. Remove this module with that release.
#![allow(unsafe_code)]

/// Calls `visit` with every TCP socket of this process connected to a peer on `port`, and
/// whether it has TCP_NODELAY. A descriptor it cannot inspect is skipped.
#[cfg(target_os = "linux")]
fn each_socket_to(port: u16, mut visit: impl FnMut(&socket2::SockRef<'_>, bool)) {
    use std::os::fd::{BorrowedFd, RawFd};

    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(raw) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<RawFd>().ok())
        else {
            continue;
        };
        // SAFETY: the descriptor was open when listed. If another thread closes it meanwhile,
        // the calls below fail with EBADF, or act on whatever reused the number, and they only
        // ask for the peer and read or set a TCP option on a socket to the database's port:
        // nothing here reads or writes memory through it.
        let fd = unsafe { BorrowedFd::borrow_raw(raw) };
        let socket = socket2::SockRef::from(&fd);
        let to_database = socket
            .peer_addr()
            .ok()
            .and_then(|peer| peer.as_socket())
            .is_some_and(|peer| peer.port() == port);
        if let (true, Ok(nodelay)) = (to_database, socket.tcp_nodelay()) {
            visit(&socket, nodelay);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn each_socket_to(_port: u16, _visit: impl FnMut(&socket2::SockRef<'_>, bool)) {}

/// Sets TCP_NODELAY on every socket of this process to a peer on `port` that lacks it.
pub(super) fn set_on_sockets_to(port: u16) {
    each_socket_to(port, |socket, nodelay| {
        if !nodelay && let Err(error) = socket.set_tcp_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY on a database connection");
        }
    });
}

/// The sockets of this process to a peer on `port`: how many, and how many lack TCP_NODELAY.
pub fn sockets_to(port: u16) -> (usize, usize) {
    let (mut all, mut without) = (0, 0);
    each_socket_to(port, |_, nodelay| {
        all += 1;
        without += usize::from(!nodelay);
    });
    (all, without)
}
