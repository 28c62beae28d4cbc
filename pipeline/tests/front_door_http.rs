//! The server's own bounds: a client that trickles its headers is cut off, and connections beyond
//! `max_connections` wait instead of being served (or costing memory) at once.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weir_pipeline::http::Limits;

const CONFIG: &str = "functions:\n  - { name: thumbs, kind: thumbnail, params: { sizes: [64] } }\n";

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let limits = Limits {
        max_connections: 8,
        header_timeout: Duration::from_millis(300),
    };
    let srv = start_with(CONFIG, None, limits).await;
    let addr = srv.running.http_addr();
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"POST /v1/functions/thumbs/invoke HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), slow.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the server kept a connection with unfinished headers open"
    );
    assert_eq!(srv.json("/healthz").await["status"], "ok");
}

#[tokio::test]
async fn connections_past_the_limit_wait_for_a_free_one() {
    let limits = Limits {
        max_connections: 2,
        header_timeout: Duration::from_secs(30),
    };
    let srv = start_with(CONFIG, None, limits).await;
    let addr = srv.running.http_addr();
    // Two idle connections take both places.
    let idle = [
        TcpStream::connect(addr).await.unwrap(),
        TcpStream::connect(addr).await.unwrap(),
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let client = reqwest::Client::new();
    let url = format!("{}/healthz", srv.base);
    let mut waiting =
        tokio::spawn(async move { client.get(url).send().await.map(|r| r.status().as_u16()) });
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut waiting)
            .await
            .is_err(),
        "a third connection was served while two were open and the limit is two"
    );
    drop(idle);
    let status = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
}
