//! Writes the offline busybox test image (from Debian's busybox-static) as an OCI image-layout
//! tarball, for `rudder image import` and the pod benchmarks:
//! `cargo run -p rudder-runtime --features testing --example busybox-image -- busybox.tar`.

fn main() -> std::io::Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .unwrap_or_else(|| "busybox.tar".into());
    let image = rudder_runtime::testing::TestImage::busybox()?;
    image.write_oci_layout(std::path::Path::new(&out), "docker.io/library/busybox:1.36")?;
    println!(
        "wrote {} (docker.io/library/busybox:1.36)",
        out.to_string_lossy()
    );
    Ok(())
}
