//! `hearth-jail [--join CGROUP_PROCS]… < FRAMED-SPEC PROGRAM-STDIN`: joins the cgroups, makes
//! the namespaces, then reads the spec, builds the jail it describes and runs its program in it.
//! Started by the worker (`hearth_python_runner::Runner`), never by hand.

fn main() {
    hearth_python_runner::jail::run_main()
}
