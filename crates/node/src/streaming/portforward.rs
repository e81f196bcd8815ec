//! Port forwarding into a pod's network namespace: over SPDY (a pair of `error` and `data`
//! streams per connection, tied by `requestID`), over SPDY tunnelled in a WebSocket (the same,
//! kubectl 1.31+), and over the WebSocket channel protocol (channels `2i` and `2i+1` for the
//! `i`-th port of the `ports` query; kube-rs and the Python client).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::negotiate::{Io, Transport};
use super::spdy::{Connection, Stream};
use super::websocket;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where connections go.
pub struct Target {
    /// `namespace/name`, for messages.
    pub pod: String,
    /// The pod's network namespace.
    pub netns: PathBuf,
}

/// The ports of a channel-protocol request (`ports=80,8080` or repeated); SPDY names the port
/// on each stream instead.
pub fn ports_of(query: &[(String, String)], transport: Transport) -> Result<Vec<u16>, String> {
    if transport != Transport::ChannelV4 {
        return Ok(Vec::new());
    }
    let mut ports = Vec::new();
    for (_, v) in query.iter().filter(|(k, _)| k == "ports") {
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => ports.push(n),
                _ => return Err(format!("unable to parse \"{p}\" as a port: invalid port")),
            }
        }
    }
    if ports.is_empty() {
        return Err("query parameter \"ports\" is required".into());
    }
    Ok(ports)
}

fn failure(target: &Target, port: u16, e: &std::io::Error) -> String {
    format!(
        "error forwarding port {port} to pod {}: failed to connect to localhost:{port} inside the pod's network namespace: {e}",
        target.pod
    )
}

/// Serves a port-forward session on an upgraded connection.
pub async fn serve(transport: Transport, io: Io, target: Target, ports: Vec<u16>) {
    match transport {
        Transport::Spdy => serve_spdy(io, target).await,
        Transport::SpdyOverWebSocket => serve_spdy(websocket::byte_stream(io).await, target).await,
        Transport::ChannelV4 | Transport::ChannelV5 => serve_channels(io, target, ports).await,
    }
}

async fn serve_spdy<IO>(io: IO, target: Target)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let Connection {
        mut streams,
        control,
    } = Connection::serve(io);
    let target = std::sync::Arc::new(target);
    // Streams of one forwarded connection share a request id; a client too old to send one
    // opens the error stream and then the data stream.
    let mut pending: HashMap<String, (Option<Stream>, Option<Stream>)> = HashMap::new();
    while let Some(s) = streams.recv().await {
        let port = s.header("port").and_then(|p| p.parse::<u16>().ok());
        let Some(port) = port.filter(|p| *p > 0) else {
            s.out.reset().await;
            continue;
        };
        let request = s.header("requestid").unwrap_or("").to_owned();
        let entry = pending.entry(request.clone()).or_default();
        match s.header("streamtype") {
            Some("error") => entry.0 = Some(s),
            Some("data") => entry.1 = Some(s),
            _ => {
                s.out.reset().await;
                continue;
            }
        }
        if let (Some(_), Some(_)) = entry
            && let Some((Some(error), Some(data))) = pending.remove(&request)
        {
            tokio::spawn(forward_spdy(error, data, port, target.clone()));
        }
    }
    control.close().await;
}

async fn forward_spdy(error: Stream, data: Stream, port: u16, target: std::sync::Arc<Target>) {
    let tcp =
        match crate::netns::connect_loopback(target.netns.clone(), port, CONNECT_TIMEOUT).await {
            Ok(t) => t,
            Err(e) => {
                error
                    .out
                    .write(Bytes::from(failure(&target, port, &e)))
                    .await;
                error.out.close().await;
                data.out.close().await;
                return;
            }
        };
    let (read, write) = tcp.into_split();
    // Client to pod runs until the client half-closes or drops the stream.
    tokio::spawn(write_all_of(data.incoming, write));
    read_chunks(read, |d| {
        let out = data.out.clone();
        async move { out.write(d).await }
    })
    .await;
    data.out.close().await;
    // The client waits for the error stream to end before it lets go of the connection.
    error.out.close().await;
}

async fn serve_channels(io: Io, target: Target, ports: Vec<u16>) {
    let ws = websocket::accept(io).await;
    let (mut sink, mut incoming) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
    let mut to_pod: Vec<Option<mpsc::Sender<Bytes>>> = Vec::new();
    for (i, port) in ports.iter().copied().enumerate() {
        let (data_ch, error_ch) = ((2 * i) as u8, (2 * i + 1) as u8);
        // Each channel opens with its port number, little-endian.
        for ch in [data_ch, error_ch] {
            let _ = sink.send(websocket::framed(ch, &port.to_le_bytes())).await;
        }
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        to_pod.push(Some(tx));
        let out = out_tx.clone();
        let netns = target.netns.clone();
        let message = |e: &std::io::Error| failure(&target, port, e);
        let connected = crate::netns::connect_loopback(netns, port, CONNECT_TIMEOUT).await;
        let tcp = match connected {
            Ok(t) => t,
            Err(e) => {
                let _ = out
                    .send(websocket::framed(error_ch, message(&e).as_bytes()))
                    .await;
                continue;
            }
        };
        tokio::spawn(async move {
            let (read, write) = tcp.into_split();
            let up = tokio::spawn(write_all_of(rx, write));
            read_chunks(read, |d| {
                let out = out.clone();
                async move { out.send(websocket::framed(data_ch, &d)).await.is_ok() }
            })
            .await;
            up.abort();
        });
    }
    drop(out_tx);
    loop {
        tokio::select! {
            msg = out_rx.recv() => match msg {
                Some(m) => if sink.send(m).await.is_err() { break },
                // Every port's connection ended.
                None => break,
            },
            msg = incoming.next() => match msg {
                Some(Ok(Message::Binary(d))) => {
                    let Some((&ch, rest)) = d.split_first() else { continue };
                    let idx = usize::from(ch / 2);
                    if ch % 2 == 0 && !rest.is_empty()
                        && let Some(Some(tx)) = to_pod.get(idx)
                        && tx.send(Bytes::copy_from_slice(rest)).await.is_err()
                    {
                        to_pod[idx] = None;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = sink.send(websocket::normal_close()).await;
    let _ = sink.close().await;
}

/// Writes what arrives on `rx` to the pod's connection, then half-closes it.
async fn write_all_of(mut rx: mpsc::Receiver<Bytes>, mut write: OwnedWriteHalf) {
    while let Some(d) = rx.recv().await {
        if write.write_all(&d).await.is_err() {
            return;
        }
    }
    let _ = write.shutdown().await;
}

/// Reads the pod's connection to its end, handing each chunk to `send` until it refuses.
async fn read_chunks<F, Fut>(mut read: OwnedReadHalf, mut send: F)
where
    F: FnMut(Bytes) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match read.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if !send(Bytes::copy_from_slice(&buf[..n])).await {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        let q = |s: &str| rudder_machinery::query::parse_multi(Some(s));
        assert_eq!(
            ports_of(&q("ports=80,8080&ports=9000"), Transport::ChannelV4),
            Ok(vec![80, 8080, 9000])
        );
        assert!(ports_of(&q(""), Transport::ChannelV4).is_err());
        assert!(ports_of(&q("ports=http"), Transport::ChannelV4).is_err());
        assert!(ports_of(&q("ports=0"), Transport::ChannelV4).is_err());
        assert_eq!(ports_of(&q(""), Transport::Spdy), Ok(vec![]));
    }
}
