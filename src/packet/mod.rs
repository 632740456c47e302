//! Packet check: watch real resets (live) or reproduce findings in
//! throwaway network namespaces (lab).

pub mod lab;
