//! Writes the offline busybox test image (from Debian's busybox-static) as an OCI image-layout
//! tarball, for `rudder image import` and the pod benchmarks:
//! `cargo run -p rudder-runtime --features testing --example busybox-image -- busybox.tar`.
//! `-- pause.tar --pause` writes `rudder.local/pause:1` instead, busybox sleeping forever: the
//! sandbox image for a containerd without registry access (`scripts/bench-pod-startup-cri`).

fn main() -> std::io::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let out = args.next().unwrap_or_else(|| "busybox.tar".into());
    let pause = args.next().is_some_and(|a| a == "--pause");
    let mut image = rudder_runtime::testing::TestImage::busybox()?;
    let name = if pause {
        image.config.cmd = Some(vec!["sleep".into(), "2147483647".into()]);
        "rudder.local/pause:1"
    } else {
        "docker.io/library/busybox:1.36"
    };
    image.write_oci_layout(std::path::Path::new(&out), name)?;
    println!("wrote {} ({name})", out.to_string_lossy());
    Ok(())
}
