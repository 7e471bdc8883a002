//! Integration tests against real files, sockets and processes.

mod util;

mod bad_input;
mod book;
mod compare;
mod docker;
mod follow;
mod kafka;
mod modes;
mod sources;
mod timing;
