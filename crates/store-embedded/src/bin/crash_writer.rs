//! Test helper for the kill -9 durability test: writes keys concurrently and prints each
//! acknowledged write as `ACK <key> <revision>` on stdout, until it is killed.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use rudder_store::{Store, WriteOutcome};
use rudder_store_embedded::EmbeddedStore;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(writers)) = (args.next(), args.next()) else {
        eprintln!("usage: rudder-store-crash-writer STORE_FILE WRITERS");
        std::process::exit(2);
    };
    let writers: usize = match writers.parse() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("bad writer count {writers:?}: {e}");
            std::process::exit(2);
        }
    };
    let store = match EmbeddedStore::open(&path) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("open {path}: {e}");
            std::process::exit(1);
        }
    };
    let stdout = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let stdout = stdout.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0u64.. {
                let key = format!("/crash/{}/{w}/{i:08}", std::process::id());
                // A value big enough that a torn write would be visible, derived from the key.
                let value = Bytes::from(format!("{key}:").repeat(64));
                match store.create(&key, value).await {
                    Ok(WriteOutcome::Written(kv)) => {
                        let mut out = stdout.lock().unwrap_or_else(|p| p.into_inner());
                        let _ = writeln!(out, "ACK {key} {}", kv.mod_revision);
                        let _ = out.flush();
                    }
                    Ok(other) => panic!("unexpected outcome {other:?}"),
                    Err(e) => panic!("write failed: {e}"),
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}
