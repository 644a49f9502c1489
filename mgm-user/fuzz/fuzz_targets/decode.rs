// SPDX-License-Identifier: MIT OR Apache-2.0
//! The control socket's line decoder (see `mgm::testing::fuzz::decode`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mgm::testing::fuzz::decode(data));
