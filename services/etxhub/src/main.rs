//! etxhub: the one binary and composition root.
fn main() {}
