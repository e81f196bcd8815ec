//! A SPDY/3.1 server connection: accepts the streams a client opens (answering each with a
//! SYN_REPLY), delivers their data, and writes data back. Enough of the protocol for
//! Kubernetes' stream protocols, whose Go client does no flow control.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::spdy_frame::{self, Frame, HeaderCodec, Headers};

/// A stream the client opened.
pub struct Stream {
    /// Its headers (lower-case names).
    pub headers: Headers,
    /// What the client sends on it; ends when the client half-closes or resets it.
    pub incoming: mpsc::Receiver<Bytes>,
    /// Writes to it.
    pub out: StreamWriter,
}

impl Stream {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

enum Out {
    Reply(u32),
    Data(u32, Bytes, bool),
    Ping(u32),
    Reset(u32, u32),
    Close,
}

/// Writes to one stream. Cheap to clone.
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    tx: mpsc::Sender<Out>,
}

impl StreamWriter {
    /// Sends `data`; false once the connection is gone.
    pub async fn write(&self, data: Bytes) -> bool {
        if data.is_empty() {
            return true;
        }
        self.tx.send(Out::Data(self.id, data, false)).await.is_ok()
    }

    /// Half-closes the stream (FIN): the client sees end of file.
    pub async fn close(&self) {
        let _ = self.tx.send(Out::Data(self.id, Bytes::new(), true)).await;
    }

    /// Resets the stream (the client's copy of it fails).
    pub async fn reset(&self) {
        let _ = self.tx.send(Out::Reset(self.id, 5)).await; // CANCEL
    }
}

/// A served connection: new streams arrive on `streams`.
pub struct Connection {
    /// Streams in the order the client opened them; ends when the connection does.
    pub streams: mpsc::Receiver<Stream>,
    /// Ends the connection.
    pub control: Closer,
}

/// Closes a connection.
pub struct Closer {
    tx: mpsc::Sender<Out>,
    reader: tokio::task::JoinHandle<()>,
}

impl Connection {
    /// Serves SPDY on `io` (the connection after the HTTP upgrade).
    pub fn serve<IO>(io: IO) -> Connection
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(io);
        let (out_tx, out_rx) = mpsc::channel::<Out>(64);
        let (streams_tx, streams) = mpsc::channel(16);
        tokio::spawn(write_loop(write, out_rx));
        let reader = tokio::spawn(read_loop(read, out_tx.clone(), streams_tx));
        Connection {
            streams,
            control: Closer { tx: out_tx, reader },
        }
    }
}

impl Closer {
    /// Sends GOAWAY and closes the connection once everything written so far is out.
    pub async fn close(self) {
        let _ = self.tx.send(Out::Close).await;
        self.reader.abort();
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut read: R,
    out: mpsc::Sender<Out>,
    new_streams: mpsc::Sender<Stream>,
) {
    let mut codec = HeaderCodec::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut open: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    loop {
        loop {
            let frame = match spdy_frame::decode(&mut buf, &mut codec) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "SPDY connection closed");
                    let _ = out.send(Out::Close).await;
                    return;
                }
            };
            match frame {
                Frame::SynStream {
                    stream_id,
                    headers,
                    fin,
                } => {
                    let (tx, rx) = mpsc::channel(64);
                    if !fin {
                        open.insert(stream_id, tx);
                    }
                    if out.send(Out::Reply(stream_id)).await.is_err() {
                        return;
                    }
                    let stream = Stream {
                        headers,
                        incoming: rx,
                        out: StreamWriter {
                            id: stream_id,
                            tx: out.clone(),
                        },
                    };
                    if new_streams.send(stream).await.is_err() {
                        // Nobody takes streams any more: the session is over.
                        let _ = out.send(Out::Reset(stream_id, 7)).await; // REFUSED_STREAM
                    }
                }
                Frame::Data {
                    stream_id,
                    data,
                    fin,
                } => {
                    if let Some(tx) = open.get(&stream_id)
                        && !data.is_empty()
                        && tx.send(data).await.is_err()
                    {
                        open.remove(&stream_id);
                    }
                    if fin {
                        open.remove(&stream_id);
                    }
                }
                Frame::RstStream { stream_id, .. } => {
                    open.remove(&stream_id);
                }
                Frame::Ping { id } => {
                    let _ = out.send(Out::Ping(id)).await;
                }
                Frame::GoAway { .. } => return,
                Frame::SynReply { .. }
                | Frame::Settings
                | Frame::Headers { .. }
                | Frame::WindowUpdate { .. }
                | Frame::Unknown => {}
            }
        }
        match read.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(mut write: W, mut rx: mpsc::Receiver<Out>) {
    let mut codec = HeaderCodec::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut last_stream = 0;
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let mut closing = false;
        // Batch what is queued into one write.
        while let Some(out) = next.take() {
            match out {
                Out::Reply(id) => {
                    last_stream = last_stream.max(id);
                    spdy_frame::syn_reply(&mut buf, &mut codec, id, false);
                }
                Out::Data(id, data, fin) => spdy_frame::data(&mut buf, id, &data, fin),
                Out::Ping(id) => spdy_frame::ping(&mut buf, id),
                Out::Reset(id, status) => spdy_frame::rst_stream(&mut buf, id, status),
                Out::Close => {
                    spdy_frame::goaway(&mut buf, last_stream);
                    closing = true;
                }
            }
            if closing || buf.len() > 256 * 1024 {
                break;
            }
            next = rx.try_recv().ok();
        }
        if write.write_all(&buf).await.is_err() || write.flush().await.is_err() {
            return;
        }
        buf.clear();
        if closing {
            let _ = write.shutdown().await;
            return;
        }
    }
    let _ = write.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::super::spdy_frame::h;
    use super::*;

    #[tokio::test]
    async fn accepts_streams_and_echoes() {
        let (client, server) = tokio::io::duplex(1 << 20);
        let mut conn = Connection::serve(server);
        let echo = tokio::spawn(async move {
            while let Some(mut s) = conn.streams.recv().await {
                let kind = s.header("streamType").unwrap_or("").to_owned();
                tokio::spawn(async move {
                    while let Some(d) = s.incoming.recv().await {
                        s.out.write(d).await;
                    }
                    s.out.write(Bytes::from(kind)).await;
                    s.out.close().await;
                });
            }
        });
        let (mut read, mut write) = tokio::io::split(client);
        let mut codec = HeaderCodec::new();
        let mut wire = BytesMut::new();
        spdy_frame::syn_stream(&mut wire, &mut codec, 1, &h(&[("streamtype", "stdin")]));
        spdy_frame::data(&mut wire, 1, b"hello", true);
        write.write_all(&wire).await.expect("write");
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut reply = false;
        while !got.ends_with(b"stdin") {
            read.read_buf(&mut buf).await.expect("read");
            while let Some(f) = spdy_frame::decode(&mut buf, &mut codec).expect("frame") {
                match f {
                    Frame::SynReply { stream_id: 1, .. } => reply = true,
                    Frame::Data { data, .. } => got.extend_from_slice(&data),
                    _ => {}
                }
            }
        }
        assert!(reply);
        assert_eq!(got, b"hellostdin");
        drop(write);
        drop(read);
        echo.abort();
    }
}
