//! The subcommands, one module each, and what several of them share.

pub mod bench;
pub mod common;
pub mod demo;
pub mod devices;
pub mod impair;
pub mod opts;
pub mod recv;
pub mod relay;
pub mod send;
