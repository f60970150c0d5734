//! Rendering a plan for people (text) and machines (JSON).
