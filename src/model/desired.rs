//! What the repository wants, per stack, as far as it could be loaded: the
//! output of loading, and the input of pinning, diffing and policies.
use super::state::DesiredStack;

/// A stack whose files could not be loaded or converted.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StackError {
    pub stack: String,
    pub message: String,
}

impl std::fmt::Display for StackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stack {}: {}", self.stack, self.message)
    }
}

/// What the repository wants, as far as it could be loaded.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub stacks: Vec<DesiredStack>,
    /// Stacks that failed to load: reported, and left as they are.
    pub errors: Vec<StackError>,
}

impl Desired {
    /// Names of every stack the repository holds (loaded or not), so a
    /// broken stack is never mistaken for a removed one.
    pub fn all_names(&self) -> impl Iterator<Item = &str> {
        self.stacks
            .iter()
            .map(|s| s.name.as_str())
            .chain(self.errors.iter().map(|e| e.stack.as_str()))
    }
}
