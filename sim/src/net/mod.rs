//! The network scenario (turmoil).
