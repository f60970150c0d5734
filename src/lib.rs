//! shoal: a declarative GitOps reconciler for Docker Swarm.
//!
//! Data flows one way; each module imports only modules listed before it
//! (`scripts/import-graph.py` checks): model (shared values), docker_cli,
//! source, image, secrets, compose, convert, diff, policy, engine,
//! pipeline (load + plan), render, apply, agent. The command line
//! (`src/cli/`) is the binary's, not the library's.
pub mod agent;
pub mod apply;
pub mod compose;
pub mod convert;
pub mod diff;
pub mod docker_cli;
pub mod engine;
pub mod image;
pub mod model;
pub mod pipeline;
pub mod policy;
pub mod render;
pub mod secrets;
pub mod source;
