//! `hearth-jail SPEC-JSON`: builds the jail the spec describes and runs its program in it.
//! Started by the worker (`hearth_python_runner::Runner`), never by hand.

fn main() {
    hearth_python_runner::jail::run_main()
}
