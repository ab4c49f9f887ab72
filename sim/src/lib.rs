//! Placeholder: the simulator is being built (issue 3). Nothing here works yet.
