//! Proofs: contracts, runs, baselines, the figures computed from raw logs, reports and reproduction.
//!
//! Builds on [`crate::guest`] (to boot) and [`crate::bundle`] (to store and
//! audit); neither of those depends on this layer.

pub mod adaptive;
pub mod audit;
pub mod baseline;
pub mod bootstrap;
pub mod contract;
pub mod exit;
pub mod history;
pub mod host;
pub mod inputs;
pub mod measure;
pub mod numbers;
pub mod report;
pub mod reproduce;
pub mod run;
pub mod stats;
pub mod summary;
pub mod workload_size;
