//! Policies: Rego rules (conftest conventions) evaluated in-process with regorus.
