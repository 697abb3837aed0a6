//! Store tests. Every scenario in `images`, `revocations` and `sweep` runs against
//! SQLite (a temporary file) and against PostgreSQL when `RUNBOX_TEST_POSTGRES_URL` is
//! set, each test in a schema of its own; see `harness`. `connect` holds the tests that
//! need no particular server.

// Integration tests are their own crate; the workspace lints apply here too, and
// `unwrap` on a setup step is the clearest way to fail a test.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod harness;

mod cluster;
mod connect;
mod environments;
mod functions;
mod images;
mod revocations;
mod sweep;
mod task_queue;
mod tasks;
mod text;
