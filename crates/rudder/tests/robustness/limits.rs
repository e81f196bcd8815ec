//! One client cannot take the server down: 10,000 watches (the excess refused with 429, memory
//! bounded), a 1 GiB body (413 after reading at most the 3 MiB limit), and more requests in
//! flight than a user may have (429 with `Retry-After: 1`; `system:masters` exempt).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};

use crate::client::{Conn, admin_tls, assert_status, full, rss_kib, server_pid, user_tls};
use crate::common::Server;

/// Binds ClusterRole `role` to `user` cluster-wide, as the admin.
async fn bind_cluster(admin: &Conn, role: &str, user: &str) {
    let binding = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": format!("{user}-{role}")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    });
    let a = admin
        .call(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            Some("application/json"),
            binding.to_string(),
        )
        .await
        .expect("bind");
    assert_eq!(a.status, 201, "{}", a.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_watches_from_one_client() {
    let s = Server::start_with(&["--disable-agent"]);
    let pid = server_pid(&s).expect("server pid");
    let admin = Conn::open(s.port, admin_tls(&s)).await.expect("admin");
    bind_cluster(&admin, "view", "greedy").await;
    let before = rss_kib(pid).expect("rss");
    let greedy = user_tls(&s, "greedy", &[]);
    // 64 connections: a server takes a bounded number of streams on each.
    let mut conns = Vec::new();
    for _ in 0..64 {
        conns.push(Conn::open(s.port, greedy.clone()).await.expect("connect"));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..10_000usize {
        let conn = conns[i % conns.len()].clone();
        tasks.spawn(async move {
            let path = "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=600";
            let resp = conn.start("GET", path, &[], full(Bytes::new())).await?;
            let status = resp.status().as_u16();
            if status == 200 {
                // Kept open: the body is returned to the test, which holds it.
                return Ok::<_, String>((status, None, Some(resp.into_body())));
            }
            let retry = resp.headers().get("retry-after").cloned();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            let answer = crate::client::Answer {
                status,
                headers: http::HeaderMap::new(),
                body: body.to_bytes(),
            };
            assert_status(&answer, "refused watch");
            assert_eq!(
                answer.json()["reason"],
                "TooManyRequests",
                "{}",
                answer.text()
            );
            assert_eq!(retry.as_ref().map(|v| v.as_bytes()), Some(&b"1"[..]));
            Ok((status, Some(answer.text()), None))
        });
    }
    let (mut open, mut refused, mut message) = (Vec::new(), 0, String::new());
    while let Some(r) = tasks.join_next().await {
        match r.expect("task").expect("watch request") {
            (200, _, Some(body)) => open.push(body),
            (429, Some(m), _) => {
                refused += 1;
                message = m;
            }
            (status, m, _) => panic!("watch answered {status}: {m:?}"),
        }
    }
    let during = rss_kib(pid).expect("rss");
    println!(
        "10,000 watches: {} open, {refused} refused with 429 ({message}); server RSS {} MiB before, {} MiB with them open",
        open.len(),
        before / 1024,
        during / 1024
    );
    assert_eq!(open.len(), 5_000, "the default --max-watches-per-user");
    assert_eq!(refused, 5_000);
    // Others are still served, and the watches still work.
    assert_eq!(admin.get("/readyz").await.expect("readyz").status, 200);
    let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"seen"}}"#;
    let a = admin
        .call(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            Some("application/json"),
            cm,
        )
        .await
        .expect("create");
    assert_eq!(a.status, 201, "{}", a.text());
    // A held watch still delivers: past the initial ADDED events comes the new object.
    let mut first = open.pop().expect("a watch");
    let mut seen = String::new();
    while !seen.contains("\"seen\"") {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(30), first.frame())
            .await
            .expect("an event on a held watch")
            .expect("the watch ended")
            .expect("frame");
        if let Some(data) = frame.data_ref() {
            seen.push_str(&String::from_utf8_lossy(data));
        }
    }
    // Closing them gives the places back.
    drop(first);
    drop(open);
    drop(conns);
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let again = Conn::open(s.port, greedy.clone()).await.expect("connect");
        let resp = again
            .start(
                "GET",
                "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=5",
                &[],
                full(Bytes::new()),
            )
            .await
            .expect("watch");
        if resp.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "watch places were not given back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let after = rss_kib(pid).expect("rss");
    println!("server RSS {} MiB after the watches closed", after / 1024);
}

/// A body of `total` bytes made of one shared 1 MiB chunk, counting what the server pulled.
fn huge_body(total: u64, pulled: Arc<AtomicU64>) -> crate::client::ReqBody {
    let chunk = Bytes::from(vec![b'x'; 1 << 20]);
    let n = total / chunk.len() as u64;
    let stream = futures::stream::iter(0..n).map(move |_| {
        pulled.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        Ok::<_, std::io::Error>(hyper::body::Frame::data(chunk.clone()))
    });
    BodyExt::boxed(StreamBody::new(stream))
}

use futures::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_body_is_refused_early() {
    let s = Server::start_with(&["--disable-agent"]);
    let admin = Conn::open(s.port, admin_tls(&s)).await.expect("admin");
    const GIB: u64 = 1 << 30;
    for declared in [true, false] {
        let pulled = Arc::new(AtomicU64::new(0));
        let conn = Conn::open(s.port, admin_tls(&s)).await.expect("connect");
        let len = GIB.to_string();
        let mut headers = vec![("content-type", "application/json")];
        if declared {
            headers.push(("content-length", len.as_str()));
        }
        let started = Instant::now();
        let resp = conn
            .start(
                "POST",
                "/api/v1/namespaces/default/configmaps",
                &headers,
                huge_body(GIB, pulled.clone()),
            )
            .await
            .expect("an answer");
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let answer = crate::client::Answer {
            status,
            headers: http::HeaderMap::new(),
            body,
        };
        let sent = pulled.load(Ordering::Relaxed);
        println!(
            "1 GiB body ({}): {status} after {:?}, {} MiB sent",
            if declared {
                "Content-Length"
            } else {
                "no length"
            },
            started.elapsed(),
            sent >> 20
        );
        assert_eq!(status, 413, "{}", answer.text());
        assert_status(&answer, "1 GiB body");
        assert_eq!(answer.json()["reason"], "RequestEntityTooLarge");
        // Refused after at most the 3 MiB limit plus what flow control let through.
        assert!(
            sent < 64 << 20,
            "the server read {sent} bytes of a refused body"
        );
    }
    assert_eq!(admin.get("/readyz").await.expect("readyz").status, 200);
    let a = admin
        .get("/api/v1/namespaces/default/configmaps")
        .await
        .expect("list");
    assert_eq!(a.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_per_user_are_limited() {
    let s = Server::start_with(&["--disable-agent", "--max-requests-inflight-per-user", "2"]);
    let admin = Conn::open(s.port, admin_tls(&s)).await.expect("admin");
    bind_cluster(&admin, "view", "busy").await;
    let busy = Conn::open(s.port, user_tls(&s, "busy", &[]))
        .await
        .expect("busy");
    // A read of a revision the server has not reached waits 3 s before its 504: ten of them at
    // once hold the user's two places long enough for the others to be refused.
    let rv =
        admin.get("/api/v1/namespaces").await.expect("list").json()["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse::<u64>().ok())
            .expect("resourceVersion");
    let path = format!(
        "/api/v1/namespaces/default/configmaps/none?resourceVersion={}&resourceVersionMatch=NotOlderThan",
        rv + 1_000_000
    );
    for (who, conn, expect_refusals) in [("busy", &busy, true), ("admin", &admin, false)] {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let (conn, path) = (conn.clone(), path.clone());
            tasks.spawn(async move { conn.get(&path).await });
        }
        let (mut refused, mut waited) = (0, 0);
        while let Some(r) = tasks.join_next().await {
            let a = r.expect("task").expect("answer");
            assert_status(&a, "slow read");
            match a.status {
                429 => {
                    refused += 1;
                    assert_eq!(
                        a.headers.get("retry-after").map(|v| v.as_bytes()),
                        Some(&b"1"[..])
                    );
                    assert_eq!(a.json()["reason"], "TooManyRequests");
                }
                504 => waited += 1,
                other => panic!("{who}: unexpected {other}: {}", a.text()),
            }
        }
        println!("{who}: 10 concurrent slow reads, {waited} served, {refused} refused with 429");
        if expect_refusals {
            assert!(refused >= 1, "{who}: {waited} served, none refused");
        } else {
            assert_eq!(refused, 0, "system:masters is exempt");
        }
    }
}
