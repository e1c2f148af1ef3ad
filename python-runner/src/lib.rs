//! Runs the agent's programs on the worker, jailed to its session.
//!
//! The host side ([`Runner`]) turns a request into a [`spec::JailSpec`] and starts the
//! `hearth-jail` helper, which builds the jail and `execve`s the program (see [`jail`] for the
//! order of the layers). The host enforces what a process cannot enforce on itself: the wall
//! time (the whole process tree is killed), output caps, and the memory and process limits of
//! the run's cgroups.

mod cgroup;
pub mod identity;
pub mod jail;
pub mod netns;
pub mod privileges;
mod runner;
pub mod seccomp;
pub mod spec;

pub use runner::{
    ExecLimits, Interpreter, Job, Outcome, OutputSink, RunControl, RunError, RunStdin, Runner,
    Running, StdinError, Stream,
};
pub use spec::{Bind, Layer, Layers, SocketPolicy};
