//! One module per subcommand: its clap arguments and its `run`.

pub mod ab;
#[cfg(test)]
mod agreement_tests;
pub mod calibrate;
pub mod catalog;
pub mod compare;
pub mod deployment_args;
pub mod engine_args;
pub mod multi_round;
pub mod predict;
pub mod predict_trace;
pub mod recommend;
mod recommend_gain;
pub mod replay;
pub mod report;
pub mod run;
pub mod run_args;
pub mod serve;
pub mod sweep;
pub mod trace;
