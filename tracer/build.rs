//! Builds the kernel programs (`tracer-ebpf`) for the BPF target and puts the object in OUT_DIR,
//! where `loader.rs` embeds it.
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    // aya-build watches the kernel crate; the shared types it is built from live here.
    println!("cargo:rerun-if-changed=../tracer-common");
    aya_build::build_ebpf(
        [Package {
            name: "tracer-ebpf",
            root_dir: "../tracer-ebpf",
            ..Default::default()
        }],
        Toolchain::default(),
    )
}
