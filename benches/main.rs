//! The workspace benchmark suite: one criterion group per crate.
//!
//! Run with `cargo bench`; CI only compiles it (`cargo check --workspace --benches`).

use criterion::{criterion_group, criterion_main};

mod core;
mod jstp;

criterion_group!(benches, core::framing, core::transport, jstp::value);
criterion_main!(benches);
