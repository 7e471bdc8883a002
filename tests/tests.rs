//! Integration tests against real files, sockets and processes.

mod util;

mod bad_input;
mod book;
mod compare;
mod crash;
mod docker;
mod follow;
mod kafka;
mod metrics;
mod modes;
mod sources;
mod timing;
