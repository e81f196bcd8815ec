//! `rudder-shim`: the embedded runtime's per-sandbox and per-container monitor process, as a
//! standalone binary for tests and for agents that do not embed it (`rudder` has it as a mode).

fn main() {
    std::process::exit(rudder_runtime::embedded::shim_main(
        std::env::args_os().skip(1).collect(),
    ));
}
