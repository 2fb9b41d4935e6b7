//! Library target of the kernel crate, present only so `tracer/build.rs` can depend on it and be
//! rebuilt when it changes. The programs live in the modules `main.rs` declares.
#![no_std]
