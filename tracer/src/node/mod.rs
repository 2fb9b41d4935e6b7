//! The node's own state, read without changing it: counters (procfs, sysfs, ethtool, netlink,
//! qdiscs), facts (rules, routes, sysctls, tools), pods and network namespaces, and the evidence
//! types that carry them. May use `kernel`; never the judging or presenting stages.

pub mod counters;
pub mod counterset;
pub mod evidence;
pub mod facts;
pub mod netns;
pub mod pods;
pub mod rtnetlink;
pub mod shared;
