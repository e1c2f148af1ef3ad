//! Builds the guests (a no-op when the runtime's build script already did) and tells the tests
//! where the test-only components are: `env!("HEARTH_TEST_GUEST_<NAME>")` (and the built-in
//! tools' own: `env!("HEARTH_TEST_TOOL_<NAME>")`).

fn main() {
    match hearth_guest_build::build() {
        Ok(guests) => {
            let out_dir = std::env::var("OUT_DIR").unwrap_or_default();
            println!("cargo:rustc-env=HEARTH_TEST_CACHE_DIR={out_dir}/compile-cache");
            // The built-in tools too, as components a test can install under another name.
            for tool in &guests.tools {
                println!(
                    "cargo:rustc-env=HEARTH_TEST_TOOL_{}={}",
                    tool.name.to_uppercase(),
                    tool.path.display()
                );
            }
            for guest in &guests.test_guests {
                println!(
                    "cargo:rustc-env=HEARTH_TEST_GUEST_{}={}",
                    guest.name.to_uppercase(),
                    guest.path.display()
                );
            }
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
