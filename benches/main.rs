//! The workspace benchmark suite: one criterion group per crate.
//!
//! Run with `cargo bench`; CI only compiles it (`cargo check --workspace --benches`).

use criterion::{criterion_group, criterion_main};

mod core;

criterion_group!(benches, core::framing, core::transport);
criterion_main!(benches);
