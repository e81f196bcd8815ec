//! End to end, as root: `rudder server --container-runtime-endpoint` on a private containerd
//! (Debian's containerd + runc; `rudder_runtime::testing::containerd`, its own root, state,
//! socket and CNI dir, busybox and a pause image imported with `ctr`), driven with real kubectl:
//! a pod runs with its address from the node's pod subnet (the agent's CNI config), `kubectl
//! logs` (and `-f`), `exec` (exit codes, stdin whose end ends `cat`, a terminal with its size
//! and resizes), `attach` (also under `run -i`/`-it` and `debug -it`), `cp` both ways and
//! `port-forward` through containerd's streaming server and the sandbox's netns, `debug --target`
//! and `shareProcessNamespace` (CRI's TARGET and POD PID namespaces), a crashing pod
//! in CrashLoopBackOff, a host-network pod, `kubectl top` from CRI stats, and deleted pods gone
//! from containerd.
//!
//! The server is declared after the containerd, so it stops first; the containerd's Drop then
//! removes whatever is left by CRI, PID, mount and dir, even when an assertion failed.

mod common;

use common::node::{busybox_pod, running, wait_for};
use common::streams::{
    check_cp_round_trip, check_exec_output, check_exec_stdin, check_port_forward,
    check_terminal_size, exec_in_terminal, http_get,
};
use common::{KUBECTLS, Server, json};
use rudder_runtime::testing::TestImage;
use rudder_runtime::testing::containerd::Containerd;

/// A busybox pod running `script`, with `extra` fields in its spec.
fn pod(name: &str, node: &str, script: &str, extra: serde_json::Value) -> String {
    let mut p = busybox_pod(node, name, script);
    if let (Some(spec), Some(extra)) = (p["spec"].as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    p.to_string()
}

/// Whether IPv4 `ip` lies in `cidr`.
fn in_cidr(ip: &str, cidr: &str) -> bool {
    let parse = |s: &str| s.parse::<std::net::Ipv4Addr>().map(u32::from).ok();
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    match (parse(ip), parse(net), bits.parse::<u32>()) {
        (Some(ip), Some(net), Ok(bits)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            ip & mask == net & mask
        }
        _ => false,
    }
}

#[test]
fn the_agent_runs_pods_on_containerd() {
    let ctrd = Containerd::start_bare().expect("a private containerd");
    let busybox = TestImage::busybox().expect("busybox image (apt-get install busybox-static)");
    ctrd.import(&busybox, "docker.io/library/busybox:1.36")
        .expect("import busybox");
    let cni_dir = ctrd.cni_conf_dir();
    let s = Server::start_with(&[
        "--container-runtime-endpoint",
        &ctrd.endpoint(),
        "--cni-conf-dir",
        cni_dir.to_str().expect("utf-8 path"),
        "--metric-resolution",
        "2s",
    ]);
    let k = KUBECTLS[KUBECTLS.len() - 1];
    let node = wait_for("a Ready node with a pod subnet", 60, || {
        let list = json(&s.ok_kubectl(k, &["get", "nodes", "-o", "json"]));
        let n = list["items"][0].clone();
        let ready = n["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        (ready && n["spec"]["podCIDR"].is_string()).then_some(n)
    });
    let node_name = node["metadata"]["name"].as_str().expect("name").to_owned();
    let pod_cidr = node["spec"]["podCIDR"]
        .as_str()
        .expect("podCIDR")
        .to_owned();
    // The runtime the node reports is containerd, through CRI.
    let version = node["status"]["nodeInfo"]["containerRuntimeVersion"]
        .as_str()
        .unwrap_or_default();
    assert!(version.starts_with("containerd://"), "{version}");

    // A web server: its address is from the node's subnet (CNI on the agent's bridge) and
    // answers from the host.
    s.create(
        k,
        None,
        &pod(
            "web",
            &node_name,
            "mkdir -p /www && echo hello from the pod > /www/index.html && exec httpd -f -p 8080 -h /www",
            serde_json::json!({}),
        ),
    );
    let web = running(&s, k, "web", 90);
    let ip = web["status"]["podIP"].as_str().expect("podIP").to_owned();
    assert!(in_cidr(&ip, &pod_cidr), "{ip} not in {pod_cidr}");
    let cid = web["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(cid.starts_with("containerd://"), "{cid}");
    assert!(
        std::fs::read_to_string(cni_dir.join("10-rudder.conflist"))
            .expect("the agent's CNI config")
            .contains(&s.pod_bridge())
    );
    let page = wait_for("the pod's web server", 20, || {
        http_get((ip.as_str(), 8080)).filter(|r| r.contains("hello from the pod"))
    });
    assert!(page.starts_with("HTTP/1."), "{page}");

    // Logs, and following them.
    s.create(
        k,
        None,
        &pod(
            "talker",
            &node_name,
            "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.3; done",
            serde_json::json!({}),
        ),
    );
    running(&s, k, "talker", 90);
    let logs = wait_for("logs", 20, || {
        let out = s.ok_kubectl(k, &["logs", "talker"]);
        out.contains("line 2").then_some(out)
    });
    assert!(logs.starts_with("line 0\n"), "{logs}");
    let mut follow = s.kubectl_stream(k, &["logs", "-f", "talker", "--tail", "1"]);
    let seen = follow
        .until("followed log lines", |l| l.len() >= 4)
        .to_vec();
    drop(follow);
    let numbers: Vec<u32> = seen
        .iter()
        .filter_map(|l| l.strip_prefix("line ")?.parse().ok())
        .collect();
    assert_eq!(numbers.len(), seen.len(), "{seen:?}");
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{seen:?}");

    // exec, cp and port-forward, with the SPDY kubectl and the WebSocket ones.
    let payload: Vec<u8> = (0..600_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let local = s.dir.path().join("payload.bin");
    std::fs::write(&local, &payload).expect("write payload");
    for k in KUBECTLS {
        check_exec_output(&s, k);
        // The end of stdin reaches `cat` through containerd (SPDY towards its streaming
        // server), so it ends; nothing is cut or altered.
        check_exec_stdin(&s, k, &payload);

        // A terminal, of kubectl's size and following its resizes. containerd applies the
        // initial size right after the process started (CRI has no field for it), so a look in
        // the first milliseconds can see none; not checked here.
        let text = exec_in_terminal(&s, k, "tty; echo done");
        assert!(text.contains("/dev/pts/"), "{k}: {text}");
        assert!(text.contains("done"), "{k}: {text}");
        check_terminal_size(&s, k, false);

        check_cp_round_trip(&s, k, &local, &payload);
        check_port_forward(&s, k);
    }

    // attach through containerd's streaming server: live output, `run -i`/`-it` with piped
    // input, `debug -it` with an ephemeral container, a shell on a terminal of kubectl's size.
    common::attach::start_ticker(&s, k, &node_name, "ticker");
    for (i, k) in KUBECTLS.iter().enumerate() {
        common::attach::check_attach_output(&s, k, "ticker");
        common::attach::check_run_interactive(&s, k, &format!("run-i-{i}"));
        common::attach::check_run_terminal(&s, k, &format!("run-it-{i}"));
        common::attach::check_debug_interactive(&s, k, "ticker", &format!("debugger-{i}"));
        common::attach::check_attach_terminal(&s, k, &node_name, &format!("shell-{i}"));
    }
    common::attach::check_attach_errors(&s, k, "ticker");

    // Process namespaces through CRI: `debug --target` (TARGET), `shareProcessNamespace` (POD).
    let both = [KUBECTLS[0], KUBECTLS[KUBECTLS.len() - 1]];
    common::pid_namespaces::check_debug_target_and_shared(&s, &both, &node_name);

    // A crashing container: restarted with back-off, counted.
    s.create(
        k,
        None,
        &pod(
            "crasher",
            &node_name,
            "echo crashing; exit 1",
            serde_json::json!({}),
        ),
    );
    let restarts = wait_for("CrashLoopBackOff", 90, || {
        let p = json(&s.ok_kubectl(k, &["get", "pod", "crasher", "-o", "json"]));
        let c = &p["status"]["containerStatuses"][0];
        let count = c["restartCount"].as_u64().unwrap_or(0);
        (c["state"]["waiting"]["reason"] == "CrashLoopBackOff" && count >= 1).then_some(count)
    });
    assert!(restarts >= 1);
    assert!(s.ok_kubectl(k, &["logs", "crasher"]).contains("crashing"));

    // A host-network pod shares the node's network and has its address.
    s.create(
        k,
        None,
        &pod(
            "hostnet",
            &node_name,
            "exec sleep 3600",
            serde_json::json!({"hostNetwork": true}),
        ),
    );
    let hostnet = running(&s, k, "hostnet", 90);
    assert_eq!(
        hostnet["status"]["podIP"], hostnet["status"]["hostIP"],
        "{hostnet}"
    );
    // The pod sees the node's bridge: it is in the host's network namespace.
    let out = s.ok_kubectl(k, &["exec", "hostnet", "--", "cat", "/proc/net/dev"]);
    assert!(out.contains(&s.pod_bridge()), "{out}");

    // kubectl top, from the runtime's container stats over CRI.
    let top = wait_for("kubectl top pod web", 60, || {
        let out = s.kubectl(k, &["top", "pod", "web", "--no-headers"]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert!(top.starts_with("web "), "{top}");
    assert!(top.contains("Mi"), "{top}");

    // Deleting the pods removes their containers and sandboxes from containerd.
    let before = ctrd.container_ids().expect("ctr containers ls");
    let web_id = cid.trim_start_matches("containerd://");
    assert!(
        before.iter().any(|id| id == web_id),
        "{web_id} not in {before:?}"
    );
    s.ok_kubectl(
        k,
        &["delete", "pods", "--all", "--wait=true", "--timeout=60s"],
    );
    let left = wait_for("containerd to have no containers", 60, || {
        let ids = ctrd.container_ids().expect("ctr containers ls");
        ids.is_empty().then_some(ids)
    });
    assert!(left.is_empty());
    assert!(
        ctrd.shim_children().is_empty(),
        "processes left under the shims"
    );
}
