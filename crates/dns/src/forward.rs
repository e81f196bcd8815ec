//! Forwarding questions outside the cluster domain to the node's resolvers (the `nameserver`
//! lines of its `/etc/resolv.conf`), as CoreDNS's `forward . /etc/resolv.conf`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_server::net::xfer::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest UDP answer accepted from an upstream (EDNS's usual ceiling).
const MAX_UDP: usize = 4096;
/// Bit of the DNS header's third byte saying the answer was truncated.
const TC_BIT: u8 = 0x02;

/// The resolvers named by a resolv.conf's text, on port 53, skipping `skip` (this server's own
/// address: forwarding to itself would loop).
pub fn upstreams(resolv_conf: &str, skip: Option<SocketAddr>) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            // Scoped IPv6 addresses (`fe80::1%eth0`) are not usable from here.
            words.next()?.parse::<IpAddr>().ok()
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .filter(|a| Some(*a) != skip)
        .collect()
}

/// Sends the raw question `query` to each upstream in turn until one answers; over TCP when the
/// client asked over TCP or the UDP answer was truncated. Returns the raw answer.
pub async fn query(
    upstreams: &[SocketAddr],
    query: &[u8],
    protocol: Protocol,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    if upstreams.is_empty() {
        return Err("no upstream resolvers".into());
    }
    let mut last = String::new();
    for up in upstreams {
        let attempt = async {
            if protocol == Protocol::Udp {
                let reply = udp(*up, query).await?;
                if reply.get(2).is_some_and(|b| b & TC_BIT == 0) {
                    return Ok(reply);
                }
            }
            tcp(*up, query).await
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(reply)) => return Ok(reply),
            Ok(Err(e)) => last = format!("{up}: {e}"),
            Err(_) => last = format!("{up}: timed out"),
        }
    }
    Err(last)
}

async fn udp(up: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = if up.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(local).await?;
    socket.connect(up).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; MAX_UDP];
    loop {
        let n = socket.recv(&mut buf).await?;
        // A stray datagram with another id is not the answer.
        if n >= 12 && buf[..2] == query[..2.min(query.len())] {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn tcp(up: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = tokio::net::TcpStream::connect(up).await?;
    let len = u16::try_from(query.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "query too long"))?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut reply).await?;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_from_resolv_conf() {
        let text = "# comment\nsearch corp.example\nnameserver 10.0.0.2\nnameserver  fd00::1 \n\
                    nameserver fe80::1%eth0\nnameserver bogus\noptions ndots:2\nnameserver 10.0.0.53\n";
        let cases: &[(Option<SocketAddr>, &[&str])] = &[
            (None, &["10.0.0.2:53", "[fd00::1]:53", "10.0.0.53:53"]),
            (
                Some("10.0.0.53:53".parse().expect("addr")),
                &["10.0.0.2:53", "[fd00::1]:53"],
            ),
        ];
        for (skip, want) in cases {
            let got: Vec<String> = upstreams(text, *skip)
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(got, *want);
        }
        assert!(upstreams("", None).is_empty());
    }

    #[tokio::test]
    async fn forwards_over_udp_and_reports_failures() {
        let fake = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let fake_addr = fake.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            if let Ok((n, from)) = fake.recv_from(&mut buf).await {
                let mut reply = buf[..n].to_vec();
                reply[2] |= 0x80;
                let _ = fake.send_to(&reply, from).await;
            }
        });
        let q = [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        let reply = query(&[fake_addr], &q, Protocol::Udp, Duration::from_secs(5))
            .await
            .expect("answer");
        assert_eq!(reply[..2], [0x12, 0x34]);
        assert_eq!(reply[2] & 0x80, 0x80);
        let err = query(&[], &q, Protocol::Udp, Duration::from_secs(1))
            .await
            .expect_err("no upstreams");
        assert!(err.contains("no upstream"), "{err}");
    }
}
