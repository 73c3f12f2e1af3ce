//! The command surfaces: what each command does beyond rendering one
//! environment (the plugin contract, diffs, tags write-back).

pub mod cmp;
pub mod diff;
pub mod explain;
pub mod markdown;
pub mod tags;
