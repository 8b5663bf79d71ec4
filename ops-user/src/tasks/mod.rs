//! The O&M tasks: each engine is plain synchronous code that the API calls.

pub mod coredump;
pub mod tcpdump;
