//! Browser bindings (wasm32).
