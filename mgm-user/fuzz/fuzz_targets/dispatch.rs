// SPDX-License-Identifier: MIT OR Apache-2.0
//! The request dispatcher against a live MGM core (see `mgm::testing::fuzz::dispatch`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mgm::testing::fuzz::dispatch(data));
