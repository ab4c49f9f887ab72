//! Placeholder: the snapshot file format is being built (issue 5). Nothing here works yet.
