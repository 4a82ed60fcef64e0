//! The workspace benchmark suite: one criterion group per crate.
//!
//! Run with `cargo bench`; CI only compiles it (`cargo check --workspace --benches`).

use criterion::{criterion_group, criterion_main};

mod core;
mod ipc;
mod jstp;
mod reconnect;
mod session;

criterion_group!(
    benches,
    core::framing,
    core::transport,
    ipc::codec,
    ipc::round_trips,
    jstp::value,
    jstp::call_round_trips,
    reconnect::backoff,
    reconnect::recovery,
    session::status_stream
);
criterion_main!(benches);
