//! The Alibaba Cloud RPC API the daemon serves (ECI, version 2018-08-08).

pub mod actions;
pub mod error;
pub mod presign;
pub mod protocol;
pub mod server;
pub mod signature;

pub use error::ApiError;
