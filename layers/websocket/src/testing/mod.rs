//! Scriptable loopback upstream for tests (placeholder: being written).
