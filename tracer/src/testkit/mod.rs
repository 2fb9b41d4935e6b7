//! Test-only helpers shared by unit tests: input mutations for parser property tests, network
//! namespaces, and the tables recorded from real kernels.

#[cfg(test)]
mod layout;
pub mod mutations;
pub mod netns;
pub mod recorded_kernels;
