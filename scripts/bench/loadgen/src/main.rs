//! Load generator for scripts/bench.
fn main() {}
