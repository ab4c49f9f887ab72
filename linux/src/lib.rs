//! Placeholder: the Linux backend is being built (issue 4). Nothing here works yet.
pub mod fork;
pub mod output;
pub mod plot;
