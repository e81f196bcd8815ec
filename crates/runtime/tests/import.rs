//! Importing OCI layouts and docker-archives built offline from busybox-static, and checking
//! the unpacked layers: files, modes, owners, links, devices, whiteouts, path safety, GC.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use rudder_runtime::images::{ImageError, ImageStore, OPAQUE_XATTR};
use rudder_runtime::testing::{LayerBuilder, TestImage};

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "these tests need root (CI and the dev machines run as root)"
    );
}

/// busybox + a layer exercising every entry kind over the first.
fn rich_image() -> TestImage {
    let top = LayerBuilder::new()
        .dir("etc", 0o755)
        .and_then(|l| l.file("etc/motd", 0o640, b"hello\n"))
        .and_then(|l| l.whiteout("etc/group"))
        .and_then(|l| l.dir("root", 0o700))
        .and_then(|l| l.opaque("root"))
        .and_then(|l| l.file("root/new", 0o600, b"n"))
        .and_then(|l| l.file_owned("data", 0o4755, 1000, 1001, b"suid"))
        .and_then(|l| l.hardlink("data-link", "data"))
        .and_then(|l| l.hardlink("busybox-copy", "bin/busybox"))
        .and_then(|l| l.dir("dev", 0o755))
        .and_then(|l| l.char_device("dev/null", 1, 3))
        .and_then(|l| l.symlink("usrbin", "/bin"))
        .and_then(|l| l.file("usrbin/through-symlink", 0o644, b"t"))
        .and_then(|l| l.finish())
        .unwrap();
    TestImage::busybox().unwrap().with_layer(top)
}

fn store(dir: &Path) -> ImageStore {
    ImageStore::open(dir.join("images")).unwrap()
}

fn check_rich(store: &ImageStore, reference: &str) -> Vec<PathBuf> {
    let rootfs = store.rootfs(reference).unwrap();
    assert_eq!(rootfs.lower_dirs.len(), 2);
    let (top, base) = (&rootfs.lower_dirs[0], &rootfs.lower_dirs[1]);
    assert_eq!(rootfs.config.cmd.as_deref(), Some(&["sh".to_string()][..]));

    // The busybox binary is intact and runs.
    let out = Command::new(base.join("bin/busybox"))
        .args(["echo", "hi"])
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"hi\n");
    assert_eq!(
        fs::read_link(base.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        fs::metadata(base.join("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );

    assert_eq!(fs::read(top.join("etc/motd")).unwrap(), b"hello\n");
    assert_eq!(
        fs::metadata(top.join("etc/motd")).unwrap().mode() & 0o7777,
        0o640
    );
    let wh = fs::symlink_metadata(top.join("etc/group")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "whiteout is a 0/0 char device"
    );
    let mut buf = [0u8; 4];
    let n = rustix::fs::lgetxattr(top.join("root"), OPAQUE_XATTR, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"y");
    assert!(!top.join("root/.wh..wh..opq").exists());

    let data = fs::metadata(top.join("data")).unwrap();
    assert_eq!(
        (data.uid(), data.gid(), data.mode() & 0o7777),
        (1000, 1001, 0o4755)
    );
    let link = fs::metadata(top.join("data-link")).unwrap();
    assert_eq!(
        link.ino(),
        data.ino(),
        "hard link within a layer is a hard link"
    );
    assert_eq!(
        fs::read(top.join("busybox-copy")).unwrap(),
        fs::read(base.join("bin/busybox")).unwrap()
    );
    let null = fs::metadata(top.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    // `usrbin -> /bin` is resolved inside the image: the file lands in the layer's bin/.
    assert_eq!(fs::read(top.join("bin/through-symlink")).unwrap(), b"t");
    assert!(!Path::new("/bin/through-symlink").exists());
    rootfs.lower_dirs
}

#[test]
fn imports_oci_layout() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let tarball = dir.path().join("oci.tar");
    rich_image()
        .write_oci_layout(&tarball, "docker.io/library/busybox:oci")
        .unwrap();
    let store = store(dir.path());
    let refs = store.import(&tarball).unwrap();
    assert_eq!(refs, ["docker.io/library/busybox:oci"]);
    check_rich(&store, "busybox:oci");
    // Importing again is a no-op that still succeeds.
    assert_eq!(store.import(&tarball).unwrap(), refs);
}

#[test]
fn imports_docker_archive() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let tarball = dir.path().join("docker.tar");
    rich_image()
        .write_docker_archive(&tarball, "127.0.0.1:5000/foo:latest")
        .unwrap();
    let store = store(dir.path());
    assert_eq!(
        store.import(&tarball).unwrap(),
        ["127.0.0.1:5000/foo:latest"]
    );
    check_rich(&store, "127.0.0.1:5000/foo");
    let image = store.image("127.0.0.1:5000/foo:latest").unwrap();
    assert!(store.contains(image.manifest_digest.as_str()).unwrap());
}

#[test]
fn overlayfs_mounts_the_layer_stack() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let tarball = dir.path().join("oci.tar");
    rich_image()
        .write_oci_layout(&tarball, "busybox:mount")
        .unwrap();
    let store = store(dir.path());
    store.import(&tarball).unwrap();
    let lower = check_rich(&store, "busybox:mount");
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let lowerdir = lower
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let status = Command::new("mount")
        .args([
            "-t",
            "overlay",
            "overlay",
            "-o",
            &format!("lowerdir={lowerdir}"),
        ])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(status.success(), "mount overlay");
    let seen = (
        mnt.join("etc/group").exists(),
        mnt.join("etc/passwd").exists(),
        mnt.join("root/new").exists(),
        fs::read_dir(mnt.join("root"))
            .map(|d| d.count())
            .unwrap_or(0),
        mnt.join("bin/busybox").exists(),
    );
    let _ = Command::new("umount").arg(&mnt).status();
    assert_eq!(
        seen,
        (false, true, true, 1, true),
        "group whited out, root opaque"
    );
}

#[test]
fn hostile_paths_are_refused() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    for (i, name) in ["../outside", "a/../../outside", "/../outside"]
        .iter()
        .enumerate()
    {
        let layer = LayerBuilder::new()
            .raw_file(name.as_bytes(), b"pwned")
            .unwrap()
            .finish()
            .unwrap();
        let image = TestImage::busybox().unwrap().with_layer(layer);
        let tarball = dir.path().join(format!("evil{i}.tar"));
        image.write_docker_archive(&tarball, "evil:1").unwrap();
        let store = store(dir.path());
        let err = store.import(&tarball).unwrap_err();
        assert!(
            matches!(err, ImageError::PathEscape { .. }),
            "{name}: {err}"
        );
        assert!(!outside.exists());
        // No half-unpacked layer is left behind.
        assert_eq!(
            fs::read_dir(dir.path().join("images/tmp")).unwrap().count(),
            0
        );
    }
}

#[test]
fn remove_collects_unshared_blobs_and_layers() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let extra = LayerBuilder::new()
        .file("extra", 0o644, b"x")
        .unwrap()
        .finish()
        .unwrap();
    let a = TestImage::busybox().unwrap();
    let b = TestImage::busybox().unwrap().with_layer(extra);
    for (image, name) in [(&a, "a:1"), (&b, "b:1")] {
        let tarball = dir.path().join(format!("{name}.tar"));
        image.write_oci_layout(&tarball, name).unwrap();
        store.import(&tarball).unwrap();
    }
    let count = |sub: &str| {
        fs::read_dir(dir.path().join("images").join(sub))
            .unwrap()
            .count()
    };
    // a: manifest, config, 1 layer; b: manifest, config, 2 layers (one shared).
    assert_eq!((count("blobs/sha256"), count("layers/sha256")), (6, 2));

    let report = store.remove("docker.io/library/b:1").unwrap();
    assert_eq!((report.blobs.len(), report.layers.len()), (3, 1));
    assert!(store.rootfs("a:1").is_ok());
    assert!(matches!(store.image("b:1"), Err(ImageError::NotFound(_))));
    assert!(matches!(store.remove("b:1"), Err(ImageError::NotFound(_))));

    store.remove("a:1").unwrap();
    assert_eq!((count("blobs/sha256"), count("layers/sha256")), (0, 0));
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn corrupt_archive_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let tarball = dir.path().join("oci.tar");
    TestImage::busybox()
        .unwrap()
        .write_oci_layout(&tarball, "busybox:x")
        .unwrap();
    // Flip a byte inside the gzip layer blob: its digest no longer matches its file name.
    let mut bytes = fs::read(&tarball).unwrap();
    let len = bytes.len();
    bytes[len / 2] ^= 0xff;
    fs::write(&tarball, bytes).unwrap();
    let err = store(dir.path()).import(&tarball).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::DigestMismatch { .. }
                | ImageError::Io { .. }
                | ImageError::InvalidFormat { .. }
        ),
        "{err}"
    );
}
