//! The CRI exec client against a scripted streaming server: the upgrade, the streams it opens,
//! stdin half-closed at its end, output and the exit status, a terminal's size and resizes.

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

#[test]
fn streaming_urls() {
    assert_eq!(
        target("http://127.0.0.1:35001/exec/abc").ok(),
        Some(("127.0.0.1:35001".to_owned(), "/exec/abc".to_owned()))
    );
    assert!(target("https://127.0.0.1:1/exec/abc").is_err());
    assert!(target("http:///exec").is_err());
}

#[test]
fn upgrade_answers() {
    let ok = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
              X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n";
    assert!(check_upgrade(ok).is_ok());
    let other = ok.replace("v4.channel", "v3.channel");
    assert!(check_upgrade(&other).is_err());
    let refused = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
    let err = check_upgrade(refused).expect_err("refused");
    assert!(err.to_string().contains("403"), "{err}");
}

fn request(stdin: bool, tty: bool) -> ExecRequest {
    ExecRequest {
        cmd: vec!["cat".into()],
        stdin,
        tty,
        terminal_size: None,
    }
}

#[test]
fn streams_match_the_request() {
    let ids = Ids::for_request(&request(true, false));
    let kinds: Vec<_> = ids.opened().into_iter().map(|(_, k)| k).collect();
    assert_eq!(kinds, ["error", "stdin", "stdout", "stderr"]);
    assert_eq!((ids.error, ids.stdin, ids.stdout, ids.stderr), (1, 3, 5, 7));
    // On a terminal stderr is stdout, and the window size has a stream.
    let ids = Ids::for_request(&request(false, true));
    let kinds: Vec<_> = ids.opened().into_iter().map(|(_, k)| k).collect();
    assert_eq!(kinds, ["error", "stdout", "resize"]);
}

/// Plays containerd's streaming server for one `cat`: echoes stdin to stdout until the client
/// half-closes stdin, then writes `status` on the error stream and goes away. Returns the stream
/// types it saw opened.
async fn serve_cat(listener: tokio::net::TcpListener, status: &'static str) -> Vec<String> {
    let (mut tcp, _) = listener.accept().await.expect("accept");
    let mut buf = BytesMut::new();
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        assert!(tcp.read_buf(&mut buf).await.expect("read") > 0);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    assert!(head.starts_with("POST /exec/tok HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("Upgrade: SPDY/3.1"), "{head}");
    tcp.write_all(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
          X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n",
    )
    .await
    .expect("write");
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head end");
    let _ = buf.split_to(end + 4);
    let (mut rd, mut wr) = (HeaderCodec::new(), HeaderCodec::new());
    let mut kinds = Vec::new();
    let mut out = BytesMut::new();
    'conn: loop {
        while let Some(frame) = spdy_frame::decode(&mut buf, &mut rd).expect("frame") {
            match frame {
                Frame::SynStream {
                    stream_id, headers, ..
                } => {
                    kinds.push(headers[0].1.clone());
                    spdy_frame::syn_reply(&mut out, &mut wr, stream_id, false);
                }
                Frame::Data {
                    stream_id: 3,
                    data,
                    fin,
                } => {
                    spdy_frame::data(&mut out, 5, &data, false);
                    if fin {
                        spdy_frame::data(&mut out, 5, b"", true);
                        spdy_frame::data(&mut out, 1, status.as_bytes(), true);
                        spdy_frame::goaway(&mut out, 9);
                        tcp.write_all(&out).await.expect("write");
                        break 'conn;
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        tcp.write_all(&out).await.expect("write");
        out.clear();
        assert!(
            tcp.read_buf(&mut buf).await.expect("read") > 0,
            "client left"
        );
    }
    kinds
}

#[tokio::test]
async fn stdin_ends_and_the_exit_code_arrives() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/exec/tok", listener.local_addr().expect("addr"));
    let server = tokio::spawn(serve_cat(
        listener,
        r#"{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#,
    ));
    let mut p = exec(&url, &request(true, false)).await.expect("exec");
    let mut stdin = p.stdin.take().expect("stdin");
    stdin.write_all(b"hello ").await.expect("stdin");
    stdin.write_all(b"world").await.expect("stdin");
    // The end of stdin is what makes the server answer at all.
    drop(stdin);
    let mut out = String::new();
    p.stdout.read_to_string(&mut out).await.expect("stdout");
    assert_eq!(out, "hello world");
    let code = tokio::time::timeout(std::time::Duration::from_secs(10), p.wait)
        .await
        .expect("exit in time");
    assert_eq!(code.expect("exit code"), 3);
    assert_eq!(
        server.await.expect("server"),
        ["error", "stdin", "stdout", "stderr"]
    );
}

/// Plays containerd's streaming server for an exec on a terminal: records the stream types
/// opened and every size that arrives on the resize stream, in order; once it has `sizes`
/// of them, writes a success status and goes away.
async fn serve_terminal(
    listener: tokio::net::TcpListener,
    sizes: usize,
) -> (Vec<String>, Vec<serde_json::Value>) {
    let (mut tcp, _) = listener.accept().await.expect("accept");
    let mut buf = BytesMut::new();
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        assert!(tcp.read_buf(&mut buf).await.expect("read") > 0);
    };
    let _ = buf.split_to(end);
    tcp.write_all(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
          X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n",
    )
    .await
    .expect("write");
    let (mut rd, mut wr) = (HeaderCodec::new(), HeaderCodec::new());
    let (mut kinds, mut seen) = (Vec::new(), Vec::new());
    let mut resize_id = 0;
    let mut out = BytesMut::new();
    loop {
        while let Some(frame) = spdy_frame::decode(&mut buf, &mut rd).expect("frame") {
            match frame {
                Frame::SynStream {
                    stream_id, headers, ..
                } => {
                    if headers[0].1 == "resize" {
                        resize_id = stream_id;
                    }
                    kinds.push(headers[0].1.clone());
                    spdy_frame::syn_reply(&mut out, &mut wr, stream_id, false);
                }
                Frame::Data {
                    stream_id, data, ..
                } if stream_id == resize_id => {
                    let mut it = serde_json::Deserializer::from_slice(&data).into_iter();
                    seen.extend(it.by_ref().map(|v| v.expect("a JSON size")));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        if seen.len() >= sizes {
            spdy_frame::data(&mut out, 1, br#"{"status":"Success"}"#, true);
            spdy_frame::goaway(&mut out, 5);
            tcp.write_all(&out).await.expect("write");
            return (kinds, seen);
        }
        tcp.write_all(&out).await.expect("write");
        out.clear();
        assert!(
            tcp.read_buf(&mut buf).await.expect("read") > 0,
            "client left"
        );
    }
}

#[tokio::test]
async fn a_terminal_gets_its_size_first_then_resizes() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/exec/tok", listener.local_addr().expect("addr"));
    let server = tokio::spawn(serve_terminal(listener, 2));
    let request = ExecRequest {
        terminal_size: Some((91, 17)),
        ..request(false, true)
    };
    let mut p = exec(&url, &request).await.expect("exec");
    let resize = p.resize.take().expect("a terminal can be resized");
    resize(120, 40).expect("resize");
    let code = tokio::time::timeout(std::time::Duration::from_secs(10), p.wait)
        .await
        .expect("exit in time");
    assert_eq!(code.expect("exit code"), 0);
    let (kinds, sizes) = server.await.expect("server");
    assert_eq!(kinds, ["error", "stdout", "resize"]);
    assert_eq!(
        sizes,
        [
            serde_json::json!({"Width": 91, "Height": 17}),
            serde_json::json!({"Width": 120, "Height": 40}),
        ]
    );
}
