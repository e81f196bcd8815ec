//! Robustness: faults that lose nothing (issue #8). A fuzzer over bodies, paths, selectors and
//! patches; `kill -9` amid 1,000 concurrent writes; a full disk; 10,000 watches and a 1 GiB
//! body from one client; in-flight limits; a `view` user who can read one namespace and write
//! nothing. Each is reported with its figures in `docs/robustness.md`; the figures are printed
//! (run with `--nocapture`), never asserted against a clock.

#[path = "../common/mod.rs"]
mod common;

mod client;
mod crash;
mod fuzz;
mod limits;
mod rbac;
