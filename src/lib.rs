//! The `connkit-suite` package holds the workspace-wide examples (`examples/`), interop tests
//! (`tests/`) and benchmarks (`benches/`). It has no library API of its own.
#![deny(missing_docs)]
