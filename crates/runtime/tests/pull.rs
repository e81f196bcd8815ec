//! Pulling from a real `docker-registry` on 127.0.0.1: single manifests, multi-arch indexes,
//! pulls by digest, concurrent pulls of one image, progress reporting.

use std::sync::{Arc, Mutex};

use rudder_runtime::images::{ImageError, ImageStore, Progress, PullOptions};
use rudder_runtime::testing::{LayerBuilder, Registry, TestImage};

fn two_layer_image(marker: &str) -> TestImage {
    let layer = LayerBuilder::new()
        .file("marker", 0o644, marker.as_bytes())
        .unwrap()
        .finish()
        .unwrap();
    let mut image = TestImage::busybox().unwrap().with_layer(layer);
    image.config.cmd = Some(vec!["echo".into(), marker.into()]);
    image
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_from_local_registry() {
    let registry = Registry::start().await.unwrap();
    let image = two_layer_image("v1");
    let pushed = registry.push("test/busybox", "v1", &image).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("images")).unwrap();

    let events: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let sink = events.clone();
    let options = PullOptions {
        credentials: None,
        progress: Some(Arc::new(move |p: &Progress| {
            sink.lock().unwrap().push(p.clone())
        })),
    };
    let reference = format!("{}/test/busybox:v1", registry.host());
    let pulled = store.pull(&reference, &options).await.unwrap();
    assert_eq!(pulled.manifest_digest, pushed);
    assert_eq!(pulled.reference, reference);

    let rootfs = store.rootfs(&reference).unwrap();
    assert_eq!(rootfs.config.cmd, image.config.cmd);
    assert_eq!(
        std::fs::read(rootfs.lower_dirs[0].join("marker")).unwrap(),
        b"v1"
    );
    assert!(rootfs.lower_dirs[1].join("bin/busybox").is_file());

    let events = events.lock().unwrap().clone();
    let layers = store.image(&reference).unwrap().manifest.layers;
    for layer in &layers {
        let last = events.iter().rfind(|p| p.layer == layer.digest).unwrap();
        assert_eq!((last.done, last.total), (layer.size, layer.size));
    }

    // By digest, with the layers already present.
    let by_digest = format!("{}/test/busybox@{pushed}", registry.host());
    store
        .pull(&by_digest, &PullOptions::default())
        .await
        .unwrap();
    assert!(store.contains(&by_digest).unwrap());

    let missing = store
        .pull(
            &format!("{}/test/nothing:1", registry.host()),
            &PullOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(missing, ImageError::Registry { .. }), "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picks_linux_amd64_from_an_index() {
    let registry = Registry::start().await.unwrap();
    let amd64 = two_layer_image("amd64");
    let mut arm64 = two_layer_image("arm64");
    arm64.architecture = "arm64".into();
    let (_, amd64_digest) = registry
        .push_index("multi", "1", &amd64, &arm64)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    let reference = format!("{}/multi:1", registry.host());
    let pulled = store
        .pull(&reference, &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(pulled.manifest_digest, amd64_digest);
    let rootfs = store.rootfs(&reference).unwrap();
    assert_eq!(
        std::fs::read(rootfs.lower_dirs[0].join("marker")).unwrap(),
        b"amd64"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_of_one_image() {
    let registry = Registry::start().await.unwrap();
    let image = two_layer_image("same");
    registry.push("conc", "1", &image).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    let reference = format!("{}/conc:1", registry.host());
    let pulls = (0..4).map(|_| {
        let (store, reference) = (store.clone(), reference.clone());
        tokio::spawn(async move { store.pull(&reference, &PullOptions::default()).await })
    });
    for result in futures::future::join_all(pulls).await {
        result.unwrap().unwrap();
    }
    // A second store on the same directory (another process, as far as the files go) agrees.
    let again = ImageStore::open(dir.path().join("images")).unwrap();
    let rootfs = again.rootfs(&reference).unwrap();
    assert_eq!(
        std::fs::read(rootfs.lower_dirs[0].join("marker")).unwrap(),
        b"same"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("images/layers/sha256"))
            .unwrap()
            .count(),
        2
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("images/tmp"))
            .unwrap()
            .count(),
        0
    );
}
