//! shoal: a declarative GitOps reconciler for Docker Swarm.
//!
//! Pipeline: source -> compose load -> convert -> desired state;
//! live read -> live state; diff(desired, live) -> plan;
//! policy(desired, facts) -> verdict; render; apply.
pub mod agent;
pub mod apply;
pub mod compose;
pub mod convert;
pub mod diff;
pub mod docker_cli;
pub mod engine;
pub mod healthcheck;
pub mod images;
pub mod nesting;
pub mod pipeline;
pub mod plan;
pub mod planning;
pub mod policy;
pub mod reconcile;
pub mod registry_auth;
pub mod render;
pub mod saved_plan;
pub mod secrets;
pub mod source;
pub mod state;
