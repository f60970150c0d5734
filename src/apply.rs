//! Applying a plan through the Engine API, then waiting for convergence.
