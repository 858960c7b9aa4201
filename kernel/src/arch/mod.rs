//! Architecture support. Only x86_64 exists; the rest of the kernel names `crate::platform`.

pub mod x86_64;
