//! The Rust peer (placeholder).
