//! The Kamailio boundary: the only layer with `unsafe` and raw pointers.
//! Generated bindings, the C shim, logging, the panic guard, the exported
//! tables and entry points, and the worker processes.

pub mod cmapshm;
pub mod cmds;
pub mod connlist;
pub mod exports;
pub mod guard;
#[cfg(target_env = "gnu")]
pub mod heap;
pub mod kemi;
pub mod loads;
pub mod log;
pub mod process;
pub mod pv;
pub mod rings;
pub mod rpc;
pub mod rpccall;
pub mod shm;
pub mod sockio;
pub mod stats;
pub mod sys;
pub mod table;
pub mod tlsreload;
pub mod transform;
pub mod txtable;
