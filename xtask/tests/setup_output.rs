//! `cargo xtask setup` (and so `cargo xtask run`) keeps stdout free: everything it prints goes to
//! stderr, so `cargo xtask run -- report | jq .root_cause` reads the document alone.

use std::process::Command;

#[test]
fn setup_prints_on_stderr_only() {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("setup")
        .output()
        .expect("xtask runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Whether or not this machine has everything (setup may fail without root or apt-get), not
    // one byte of its output may land on stdout.
    assert_eq!(stdout, "", "stdout must stay empty; stderr was:\n{stderr}");
    if output.status.success() {
        assert!(stderr.contains("ok: "), "stderr: {stderr}");
    }
}
