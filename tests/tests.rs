//! Integration tests against real files, sockets and processes.

mod util;

mod bad_input;
mod book;
mod modes;
mod sources;
mod timing;
