//! SPDY/3.1 framing, the transport older kubectl (and every kubectl's fallback) uses for
//! `exec`, `attach`, `cp` and `port-forward`: frame encoding and decoding and the zlib-compressed
//! header blocks with the protocol's fixed dictionary. Pure. It lives here because both ends use
//! it: the agent's streaming server (`rudder-node`, towards kubectl) and the CRI backend's exec
//! client (towards containerd's streaming server, `cri::stream`).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Frame types of SPDY/3 control frames that either end reads or writes.
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;
const VERSION: u16 = 3;
/// The FIN flag, on data and control frames alike.
pub const FLAG_FIN: u8 = 0x01;
/// Largest frame payload accepted (the length field has 24 bits).
pub const MAX_PAYLOAD: usize = (1 << 24) - 1;

/// Names and values of a header block (names are lower case on the wire).
pub type Headers = Vec<(String, String)>;

/// A decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// The peer opens a stream.
    SynStream {
        stream_id: u32,
        headers: Headers,
        fin: bool,
    },
    /// The answer to a stream we opened (what the CRI exec client waits for; a server never
    /// gets one).
    SynReply { stream_id: u32, headers: Headers },
    /// The peer aborts a stream.
    RstStream { stream_id: u32, status: u32 },
    /// Connection settings: read and ignored (there is no flow control to tune).
    Settings,
    /// A ping to echo.
    Ping { id: u32 },
    /// The peer is going away.
    GoAway { last_stream_id: u32 },
    /// Extra headers on a stream: ignored.
    Headers { stream_id: u32 },
    /// A flow-control window update: ignored (the Go client does no flow control either).
    WindowUpdate { stream_id: u32 },
    /// Stream data.
    Data {
        stream_id: u32,
        data: Bytes,
        fin: bool,
    },
    /// A control frame of a type neither end uses: skipped, as the protocol asks.
    Unknown,
}

/// Malformed input. The connection is closed on any of these.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// A control frame with a version other than 3.
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    /// A frame shorter than its fixed fields, or a header block that does not parse.
    #[error("malformed SPDY frame: {0}")]
    Malformed(&'static str),
    /// The header block did not decompress.
    #[error("SPDY header block: {0}")]
    Compression(String),
}

/// The zlib dictionary both sides prime header compression with (SPDY/3 §2.6.10.1): the
/// length-prefixed words, then a run of status codes, months, days and common values.
fn dictionary() -> Vec<u8> {
    const WORDS: &[&str] = &[
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &str = concat!(
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417",
        "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently",
        "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error",
        "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct ",
        "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,",
        "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,",
        "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8",
        "charset=iso-8859-1,utf-,*,enq=0.",
    );
    let mut d = Vec::with_capacity(1424);
    for w in WORDS {
        d.put_u32(w.len() as u32);
        d.extend_from_slice(w.as_bytes());
    }
    d.extend_from_slice(TAIL.as_bytes());
    d
}

/// Header compression state of one direction of a connection: one zlib stream for every header
/// block, flushed at the end of each block.
pub struct HeaderCodec {
    compress: Compress,
    decompress: Decompress,
    dictionary: Vec<u8>,
}

impl Default for HeaderCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderCodec {
    pub fn new() -> Self {
        let dictionary = dictionary();
        let mut compress = Compress::new(Compression::default(), true);
        // Setting a dictionary on a fresh stream cannot fail.
        let _ = compress.set_dictionary(&dictionary);
        HeaderCodec {
            compress,
            decompress: Decompress::new(true),
            dictionary,
        }
    }

    /// Encodes and compresses a header block.
    pub fn encode(&mut self, headers: &[(String, String)]) -> Vec<u8> {
        let mut raw = Vec::new();
        raw.put_u32(headers.len() as u32);
        for (k, v) in headers {
            raw.put_u32(k.len() as u32);
            raw.extend_from_slice(k.to_ascii_lowercase().as_bytes());
            raw.put_u32(v.len() as u32);
            raw.extend_from_slice(v.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut input = &raw[..];
        loop {
            out.reserve(256);
            let before = self.compress.total_in();
            // Errors are impossible for a sync flush into a growing buffer.
            let _ = self
                .compress
                .compress_vec(input, &mut out, FlushCompress::Sync);
            let used = (self.compress.total_in() - before) as usize;
            input = &input[used..];
            if input.is_empty() && out.len() < out.capacity() {
                return out;
            }
        }
    }

    /// Decompresses and parses a header block.
    pub fn decode(&mut self, block: &[u8]) -> Result<Headers, FrameError> {
        let mut raw = Vec::with_capacity(block.len() * 4 + 64);
        let mut input = block;
        loop {
            raw.reserve(1024);
            let (before, produced) = (self.decompress.total_in(), raw.len());
            let mut primed = false;
            match self
                .decompress
                .decompress_vec(input, &mut raw, FlushDecompress::Sync)
            {
                Ok(Status::Ok | Status::BufError | Status::StreamEnd) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.decompress
                        .set_dictionary(&self.dictionary)
                        .map_err(|e| FrameError::Compression(e.to_string()))?;
                    primed = true;
                }
                Err(e) => return Err(FrameError::Compression(e.to_string())),
            }
            let used = (self.decompress.total_in() - before) as usize;
            input = &input[used..];
            if input.is_empty() && raw.len() < raw.capacity() {
                break;
            }
            if used == 0 && raw.len() == produced && !primed {
                return Err(FrameError::Compression("no progress".into()));
            }
            if raw.len() > MAX_PAYLOAD {
                return Err(FrameError::Malformed("header block too large"));
            }
        }
        parse_header_block(&raw)
    }
}

fn parse_header_block(mut raw: &[u8]) -> Result<Headers, FrameError> {
    let short = FrameError::Malformed("truncated header block");
    let take = |raw: &mut &[u8]| -> Result<String, FrameError> {
        if raw.len() < 4 {
            return Err(FrameError::Malformed("truncated header block"));
        }
        let n = raw.get_u32() as usize;
        if raw.len() < n {
            return Err(FrameError::Malformed("truncated header block"));
        }
        let s = String::from_utf8_lossy(&raw[..n]).into_owned();
        raw.advance(n);
        Ok(s)
    };
    if raw.len() < 4 {
        return Err(short);
    }
    let count = raw.get_u32();
    let mut headers = Vec::new();
    for _ in 0..count {
        let name = take(&mut raw)?;
        let value = take(&mut raw)?;
        // Several values of one name are NUL-separated.
        for v in value.split('\0') {
            headers.push((name.clone(), v.to_owned()));
        }
    }
    Ok(headers)
}

/// Splits one frame off the front of `buf`, or returns `None` if it is not complete yet.
pub fn decode(buf: &mut BytesMut, codec: &mut HeaderCodec) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let length = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
    if buf.len() < 8 + length {
        return Ok(None);
    }
    let head = buf.split_to(8);
    let mut p = buf.split_to(length).freeze();
    let flags = head[4];
    if head[0] & 0x80 == 0 {
        let stream_id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        return Ok(Some(Frame::Data {
            stream_id,
            data: p,
            fin: flags & FLAG_FIN != 0,
        }));
    }
    let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
    if version != VERSION {
        return Err(FrameError::Version(version));
    }
    let kind = u16::from_be_bytes([head[2], head[3]]);
    let need = |p: &Bytes, n: usize| {
        if p.len() < n {
            Err(FrameError::Malformed("control frame too short"))
        } else {
            Ok(())
        }
    };
    let id31 = |p: &mut Bytes| p.get_u32() & 0x7fff_ffff;
    Ok(Some(match kind {
        SYN_STREAM => {
            need(&p, 10)?;
            let stream_id = id31(&mut p);
            p.advance(6); // associated stream, priority, slot
            Frame::SynStream {
                stream_id,
                headers: codec.decode(&p)?,
                fin: flags & FLAG_FIN != 0,
            }
        }
        SYN_REPLY => {
            need(&p, 4)?;
            let stream_id = id31(&mut p);
            Frame::SynReply {
                stream_id,
                headers: codec.decode(&p)?,
            }
        }
        RST_STREAM => {
            need(&p, 8)?;
            Frame::RstStream {
                stream_id: id31(&mut p),
                status: p.get_u32(),
            }
        }
        SETTINGS => Frame::Settings,
        PING => {
            need(&p, 4)?;
            Frame::Ping { id: p.get_u32() }
        }
        GOAWAY => {
            need(&p, 4)?;
            Frame::GoAway {
                last_stream_id: id31(&mut p),
            }
        }
        HEADERS => {
            need(&p, 4)?;
            let stream_id = id31(&mut p);
            // The block must still go through the decompressor to keep its state in step.
            codec.decode(&p)?;
            Frame::Headers { stream_id }
        }
        WINDOW_UPDATE => {
            need(&p, 8)?;
            Frame::WindowUpdate {
                stream_id: id31(&mut p),
            }
        }
        _ => Frame::Unknown,
    }))
}

fn control(out: &mut BytesMut, kind: u16, flags: u8, payload: &[u8]) {
    out.put_u16(0x8000 | VERSION);
    out.put_u16(kind);
    out.put_u32((u32::from(flags) << 24) | payload.len() as u32);
    out.extend_from_slice(payload);
}

/// Appends a SYN_REPLY accepting `stream_id`.
pub fn syn_reply(out: &mut BytesMut, codec: &mut HeaderCodec, stream_id: u32, fin: bool) {
    let mut p = Vec::new();
    p.put_u32(stream_id & 0x7fff_ffff);
    p.extend_from_slice(&codec.encode(&[]));
    control(out, SYN_REPLY, if fin { FLAG_FIN } else { 0 }, &p);
}

/// Appends a SYN_STREAM opening `stream_id` (the client side: the CRI exec client, and tests).
pub fn syn_stream(out: &mut BytesMut, codec: &mut HeaderCodec, stream_id: u32, headers: &Headers) {
    let mut p = Vec::new();
    p.put_u32(stream_id & 0x7fff_ffff);
    p.put_u32(0);
    p.put_u16(0);
    p.extend_from_slice(&codec.encode(headers));
    control(out, SYN_STREAM, 0, &p);
}

/// Appends a RST_STREAM.
pub fn rst_stream(out: &mut BytesMut, stream_id: u32, status: u32) {
    let mut p = Vec::new();
    p.put_u32(stream_id & 0x7fff_ffff);
    p.put_u32(status);
    control(out, RST_STREAM, 0, &p);
}

/// Appends a PING answer.
pub fn ping(out: &mut BytesMut, id: u32) {
    control(out, PING, 0, &id.to_be_bytes());
}

/// Appends a GOAWAY.
pub fn goaway(out: &mut BytesMut, last_stream_id: u32) {
    let mut p = Vec::new();
    p.put_u32(last_stream_id & 0x7fff_ffff);
    p.put_u32(0);
    control(out, GOAWAY, 0, &p);
}

/// Appends data frames carrying `data` (split to frames of at most 32 KiB), the last one with
/// FIN if `fin`. An empty `data` with `fin` is one empty FIN frame.
pub fn data(out: &mut BytesMut, stream_id: u32, data: &[u8], fin: bool) {
    const CHUNK: usize = 32 * 1024;
    let mut chunks = data.chunks(CHUNK).peekable();
    if chunks.peek().is_none() {
        if fin {
            out.put_u32(stream_id & 0x7fff_ffff);
            out.put_u32(u32::from(FLAG_FIN) << 24);
        }
        return;
    }
    while let Some(c) = chunks.next() {
        let last = chunks.peek().is_none();
        let flags = if last && fin { FLAG_FIN } else { 0 };
        out.put_u32(stream_id & 0x7fff_ffff);
        out.put_u32((u32::from(flags) << 24) | c.len() as u32);
        out.extend_from_slice(c);
    }
}

/// Headers from pairs.
pub fn h(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_is_the_specified_one() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        // zlib names the dictionary by its Adler-32; peers refuse a stream primed otherwise.
        assert_eq!(adler32(&d), 0xe3c6_a7c2);
    }

    fn adler32(d: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &x in d {
            a = (a + u32::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    }

    #[test]
    fn frames_round_trip() {
        let mut client = HeaderCodec::new();
        let mut server = HeaderCodec::new();
        let mut wire = BytesMut::new();
        let first = h(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]);
        let second = h(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")]);
        syn_stream(&mut wire, &mut client, 1, &first);
        syn_stream(&mut wire, &mut client, 3, &second);
        data(&mut wire, 3, &vec![7u8; 70_000], true);
        data(&mut wire, 1, b"", true);
        ping(&mut wire, 9);
        rst_stream(&mut wire, 5, 5);
        goaway(&mut wire, 3);
        let mut frames = Vec::new();
        // Bytes arrive in arbitrary pieces: decode must wait for whole frames.
        let mut buf = BytesMut::new();
        for piece in wire.chunks(1000) {
            buf.extend_from_slice(piece);
            while let Some(f) = decode(&mut buf, &mut server).expect("decode") {
                frames.push(f);
            }
        }
        assert!(buf.is_empty());
        let datas: Vec<_> = frames
            .iter()
            .filter_map(|f| match f {
                Frame::Data {
                    stream_id: 3,
                    data,
                    fin,
                } => Some((data.len(), *fin)),
                _ => None,
            })
            .collect();
        assert_eq!(datas, vec![(32768, false), (32768, false), (4464, true)]);
        assert_eq!(
            frames[0],
            Frame::SynStream {
                stream_id: 1,
                headers: first,
                fin: false
            }
        );
        assert_eq!(
            frames[1],
            Frame::SynStream {
                stream_id: 3,
                headers: second,
                fin: false
            }
        );
        assert!(frames.contains(&Frame::Data {
            stream_id: 1,
            data: Bytes::new(),
            fin: true
        }));
        assert!(frames.contains(&Frame::Ping { id: 9 }));
        assert!(frames.contains(&Frame::RstStream {
            stream_id: 5,
            status: 5
        }));
        assert!(frames.contains(&Frame::GoAway { last_stream_id: 3 }));
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut codec = HeaderCodec::new();
        let mut wire = BytesMut::from(&[0x80, 2, 0, 1, 0, 0, 0, 0][..]);
        assert_eq!(decode(&mut wire, &mut codec), Err(FrameError::Version(2)));
        let mut wire = BytesMut::from(&[0x80, 3, 0, 1, 0, 0, 0, 2, 0, 0][..]);
        assert!(matches!(
            decode(&mut wire, &mut codec),
            Err(FrameError::Malformed(_))
        ));
        let mut wire = BytesMut::new();
        control(
            &mut wire,
            SYN_STREAM,
            0,
            &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4],
        );
        assert!(matches!(
            decode(&mut wire, &mut codec),
            Err(FrameError::Compression(_))
        ));
    }
}
