// SPDX-License-Identifier: MIT OR Apache-2.0
//! Test support, compiled for the unit tests and with the `testing` feature (the fuzz
//! targets): the in-memory data plane, and the bodies of the fuzz targets.

pub mod fuzz;

pub use crate::dataplane::mem::{MemFastPath, Write};
