//! The edge as an attacker meets it: a client trickling its headers, a connection left idle,
//! more connections than the cap, made-up methods swelling `/metrics`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tollgate::app::Mode;

use crate::support::{TestApp, spawn_app_with};

async fn app(settings: &[(&str, &str)]) -> TestApp {
    spawn_app_with(Mode::WebOnly, settings).await
}

/// Reads until the server closes the connection (or `limit` passes); what it sent.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Headers sent one byte every 200 ms (a request that would take a minute): the connection
/// is closed once the header timeout has passed, long before the headers end.
#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off() {
    let app = app(&[("TOLLGATE_SERVER_HEADER_TIMEOUT", "1s")]).await;
    let mut stream = TcpStream::connect(app.address).await.expect("connect");
    let request = format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\nx-padding: {}\r\n\r\n",
        "a".repeat(300)
    );
    let mut cut_off = false;
    for byte in request.as_bytes() {
        if stream.write_all(&[*byte]).await.is_err() {
            cut_off = true;
            break;
        }
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut_off = true;
                break;
            }
            Ok(Ok(_)) => panic!("the server answered a request whose headers never ended"),
            Err(_) => {}
        }
    }
    assert!(
        cut_off,
        "the trickling client was still connected after its whole request"
    );
}

/// A keep-alive connection: answered, then left idle; the server closes it after the header
/// timeout (the wait for the next request's headers).
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = app(&[("TOLLGATE_SERVER_HEADER_TIMEOUT", "1s")]).await;
    let mut stream = TcpStream::connect(app.address).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).await.expect("answer");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let closed = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(
        closed.is_some(),
        "the idle connection was still open after 10 s"
    );
}

/// With a cap of 2, two silent connections hold both slots: a third is not served until one
/// of them goes, then it is.
#[tokio::test]
async fn connections_past_the_cap_wait_for_a_slot() {
    let app = app(&[
        ("TOLLGATE_SERVER_MAX_CONNECTIONS", "2"),
        ("TOLLGATE_SERVER_HEADER_TIMEOUT", "30s"),
    ])
    .await;
    let first = TcpStream::connect(app.address).await.expect("first");
    let _second = TcpStream::connect(app.address).await.expect("second");
    // Accepted by the kernel (the backlog), not by Tollgate.
    let mut third = TcpStream::connect(app.address).await.expect("third");
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let early = tokio::time::timeout(Duration::from_secs(1), third.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "the third connection was served past the cap"
    );
    drop(first);
    let answer = read_until_closed(&mut third, Duration::from_secs(10))
        .await
        .expect("served once a slot was free");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
}

/// 300 made-up methods add one `other` series, not 300.
#[tokio::test]
async fn metrics_stay_bounded_whatever_methods_clients_send() {
    let app = app(&[]).await;
    let lines = || async {
        let text = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        text.lines().count()
    };
    // Every series the odd methods could share exists once before counting.
    for method in ["BREW", "GET"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        app.client
            .request(method, app.url("/healthz"))
            .send()
            .await
            .expect("sent");
    }
    // The first read of /metrics adds its own series; the second sees them.
    lines().await;
    let before = lines().await;
    for n in 0..300 {
        let method = reqwest::Method::from_bytes(format!("M{n}").as_bytes()).expect("method");
        let response = app
            .client
            .request(method, app.url("/healthz"))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 405, "an unknown method is refused");
    }
    let after = lines().await;
    assert_eq!(after, before, "lines before and after");
}
