//! isostream: real-time audio over UDP. This library part of the CLI package holds what the
//! subcommands share: the virtual-clock simulation behind `bench`, and the glue between the
//! media crate and the drivers.
#![deny(missing_docs)]

pub mod io;
pub mod report;
pub mod sim;
